#include "embed.h"

#include "../embd_normalize.h"

#include <cstring>
#include <mutex>

namespace llama_kv {

namespace {

class embed_worker : public Napi::AsyncProgressQueueWorker<uint32_t> {
  public:
    embed_worker(Napi::Env env, embed_job job, Napi::Function on_progress, std::shared_ptr<std::atomic<bool>> abort) :
        Napi::AsyncProgressQueueWorker<uint32_t>(on_progress, "llama-kv:embed"),
        deferred_(Napi::Promise::Deferred::New(env)),
        job_(std::move(job)),
        abort_(std::move(abort)) {}

    ~embed_worker() override { job_.state->embedding_busy.store(false); }

    Napi::Promise promise() const { return deferred_.Promise(); }

  protected:
    bool aborted() const { return abort_->load() || job_.state->abort.load(); }

    void Execute(const ExecutionProgress & progress) override {
        contain_exceptions({ job_.state.get() }, fail_, [&] { embed(progress); });
    }

    void embed(const ExecutionProgress & progress) {
        log_capture_reset();
        context_state &     s       = *job_.state;
        llama_context *     ctx     = s.ctx.get();
        const llama_model * model   = s.model.get();
        const auto          pooling = llama_pooling_type(ctx);
        n_out_ = pooling == LLAMA_POOLING_TYPE_RANK ? static_cast<size_t>(llama_model_n_cls_out(model))
                                                    : static_cast<size_t>(llama_model_n_embd_out(model));
        const size_t n_seq_max = llama_n_seq_max(ctx);
        out_.resize(job_.inputs.size());

        batch_holder  holder(static_cast<int32_t>(job_.max_tokens));
        llama_batch & batch = holder.batch;
        size_t        next  = 0;
        while (next < job_.inputs.size()) {
            // The inputs of this decode: in order, while they fit.
            const size_t first = next;
            size_t       n_tok = 0;
            while (next < job_.inputs.size() && next - first < n_seq_max &&
                   n_tok + job_.inputs[next].size() <= job_.max_tokens) {
                n_tok += job_.inputs[next].size();
                ++next;
            }
            batch.n_tokens = 0;
            for (size_t k = first; k < next; ++k) {
                const auto & tokens = job_.inputs[k];
                for (size_t i = 0; i < tokens.size(); ++i) {
                    const int32_t j    = batch.n_tokens++;
                    batch.token[j]     = tokens[i];
                    batch.pos[j]       = static_cast<llama_pos>(i);
                    batch.n_seq_id[j]  = 1;
                    batch.seq_id[j][0] = static_cast<llama_seq_id>(k - first);
                    batch.logits[j]    = 1;  // llama.cpp pools only over outputs: every token is one
                }
            }
            std::unique_lock<std::mutex> lock = s.lock_between_steps();
            if (aborted()) {
                fail_ = { code::aborted, "aborted" };
                return;
            }
            if (llama_get_memory(ctx) != nullptr) {
                s.clear_memory();  // a causal model's cache: each decode starts empty
            }
            const int32_t rc = s.decode(batch);
            if (rc != 0) {
                fail_ = rc == 2 ? failure{ code::aborted, "aborted" } : decode_failure(rc, log_capture_take());
                return;
            }
            int32_t row = 0;
            for (size_t k = first; k < next; ++k) {
                const size_t n = job_.inputs[k].size();
                if (pooling == LLAMA_POOLING_TYPE_NONE) {
                    out_[k].resize(n * n_out_);
                    for (size_t i = 0; i < n; ++i, ++row) {
                        const float * e = llama_get_embeddings_ith(ctx, row);
                        if (e == nullptr) {
                            fail_ = { code::decode_failed, with_log("llama.cpp returned no token embeddings", log_capture_take()) };
                            return;
                        }
                        embd_normalize(e, out_[k].data() + i * n_out_, static_cast<int>(n_out_), job_.normalize);
                    }
                } else {
                    const float * e = llama_get_embeddings_seq(ctx, static_cast<llama_seq_id>(k - first));
                    if (e == nullptr) {
                        fail_ = { code::decode_failed, with_log("llama.cpp returned no sequence embedding", log_capture_take()) };
                        return;
                    }
                    out_[k].resize(n_out_);
                    embd_normalize(e, out_[k].data(), static_cast<int>(n_out_), job_.normalize);
                }
            }
            const uint32_t done = static_cast<uint32_t>(next);
            progress.Send(&done, 1);
        }
    }

    void OnProgress(const uint32_t * data, size_t count) override {
        if (count == 0) {
            return;
        }
        const bool delivered = outside_js([&] {
            try {
                Callback().Call({ Napi::Number::New(Env(), data[count - 1]) });
            } catch (const Napi::Error & e) {
                if (callback_error_.IsEmpty()) {
                    callback_error_ = Napi::Reference<Napi::Value>::New(e.Value(), 1);
                }
                abort_->store(true);
            }
        });
        if (!delivered) {
            abort_->store(true);  // the environment is going away
        }
    }

    void OnOK() override {
        outside_js([&] { settle(); });
    }

    void OnError(const Napi::Error & e) override {
        outside_js([&] { deferred_.Reject(escaped_error(Env(), e).Value()); });
    }

  private:
    void settle() {
        Napi::Env env = Env();
        if (!callback_error_.IsEmpty()) {
            deferred_.Reject(callback_error_.Value());
            return;
        }
        if (fail_) {
            deferred_.Reject(make_error(env, fail_).Value());
            return;
        }
        Napi::Array list = Napi::Array::New(env, out_.size());
        for (size_t k = 0; k < out_.size(); ++k) {
            auto v = Napi::Float32Array::New(env, out_[k].size());
            if (!out_[k].empty()) {
                std::memcpy(v.Data(), out_[k].data(), out_[k].size() * sizeof(float));
            }
            list.Set(static_cast<uint32_t>(k), v);
        }
        deferred_.Resolve(list);
    }

    Napi::Promise::Deferred             deferred_;
    embed_job                           job_;
    std::shared_ptr<std::atomic<bool>>  abort_;
    Napi::Reference<Napi::Value>        callback_error_;
    std::vector<std::vector<float>>     out_;
    size_t                              n_out_ = 0;
    failure                             fail_;
};

}  // namespace

Napi::Promise queue_embed(Napi::Env env, embed_job job, Napi::Function on_progress, std::shared_ptr<std::atomic<bool>> abort) {
    auto * worker = new embed_worker(env, std::move(job), on_progress, std::move(abort));  // freed by node-addon-api
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
}

}  // namespace llama_kv
