#include "evaluate.h"

#include <cstring>

namespace llama_kv {

namespace {

// A progress worker only for its heartbeat: after each decoded batch it calls a no-op
// JS function; if that fails, the environment is being torn down and the decode is aborted.
class evaluate_worker : public Napi::AsyncProgressQueueWorker<char> {
  public:
    evaluate_worker(Napi::Env env, std::shared_ptr<context_state> state, std::vector<llama_token> tokens) :
        Napi::AsyncProgressQueueWorker<char>(Napi::Function::New(env, [](const Napi::CallbackInfo &) {}), "llama-kv:evaluate"),
        deferred_(Napi::Promise::Deferred::New(env)),
        state_(std::move(state)),
        tokens_(std::move(tokens)) {}

    ~evaluate_worker() override { state_->busy.store(false); }

    Napi::Promise promise() const { return deferred_.Promise(); }

  protected:
    void Execute(const ExecutionProgress & progress) override {
        std::lock_guard<std::mutex> lock(state_->mutex);
        log_capture_reset();
        const char beat = 0;
        if (state_->decode_prompt(tokens_, fail_, [&] { progress.Send(&beat, 1); }) < 0) {
            return;
        }
        const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(state_->model.get()));
        const float * logits  = llama_get_logits_ith(state_->ctx.get(), -1);
        if (logits == nullptr) {
            fail_ = { code::decode_failed, with_log("llama.cpp returned no logits", log_capture_take()) };
            return;
        }
        logits_.assign(logits, logits + n_vocab);
    }

    void OnProgress(const char *, size_t) override {
        if (!outside_js([&] { Callback().Call({}); })) {
            state_->abort.store(true);
        }
    }

    void OnOK() override {
        outside_js([&] { settle(); });
    }

    void settle() {
        Napi::Env env = Env();
        if (fail_) {
            deferred_.Reject(make_error(env, fail_).Value());
            return;
        }
        auto out = Napi::Float32Array::New(env, logits_.size());
        std::memcpy(out.Data(), logits_.data(), logits_.size() * sizeof(float));
        deferred_.Resolve(out);
    }

    void OnError(const Napi::Error & e) override {
        outside_js([&] { deferred_.Reject(escaped_error(Env(), e).Value()); });
    }

  private:
    Napi::Promise::Deferred        deferred_;
    std::shared_ptr<context_state> state_;
    std::vector<llama_token>       tokens_;
    std::vector<float>             logits_;
    failure                        fail_;
};

}  // namespace

Napi::Promise queue_evaluate(Napi::Env env, std::shared_ptr<context_state> state, std::vector<llama_token> tokens) {
    auto * worker = new evaluate_worker(env, std::move(state), std::move(tokens));  // freed by node-addon-api
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
}

}  // namespace llama_kv
