#include "score.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

namespace llama_kv {

namespace {

// Logits held per decoded chunk and context are capped at this many floats (64 MiB): a
// 150k-token vocabulary then scores about 110 positions per chunk.
constexpr size_t max_chunk_floats = size_t{ 16 } << 20;

// Log-softmax normaliser (max and log-sum-exp, in double) and argmax of one row of logits.
// With `exps`, exp(logit - max) of each entry is kept there for kl_divergence.
struct row_stats {
    double  max_logit;
    double  log_sum;
    int32_t argmax;
};

row_stats stats_of(const float * logits, int32_t n_vocab, std::vector<double> * exps = nullptr) {
    int32_t best = 0;
    for (int32_t k = 1; k < n_vocab; ++k) {
        if (logits[k] > logits[best]) {
            best = k;
        }
    }
    const double max_logit = logits[best];
    double       sum       = 0.0;
    if (exps != nullptr) {
        exps->resize(static_cast<size_t>(n_vocab));
    }
    for (int32_t k = 0; k < n_vocab; ++k) {
        const double e = std::exp(static_cast<double>(logits[k]) - max_logit);
        if (exps != nullptr) {
            (*exps)[static_cast<size_t>(k)] = e;
        }
        sum += e;
    }
    return { max_logit, std::log(sum), best };
}

double log_prob(const float * logits, const row_stats & s, llama_token token) {
    return static_cast<double>(logits[token]) - s.max_logit - s.log_sum;
}

// KL(p || q) in nats for p = softmax(ref) (given as its exps and stats), q = softmax(cand).
// Identical rows give exactly 0: each term is p * 0.
double kl_divergence(const float * ref, const row_stats & rs, const std::vector<double> & ref_exps, const float * cand,
                     const row_stats & cs, int32_t n_vocab) {
    const double inv_sum = 1.0 / std::exp(rs.log_sum);
    double       kl      = 0.0;
    for (int32_t k = 0; k < n_vocab; ++k) {
        const double lp = static_cast<double>(ref[k]) - rs.max_logit - rs.log_sum;
        const double lq = static_cast<double>(cand[k]) - cs.max_logit - cs.log_sum;
        kl += ref_exps[static_cast<size_t>(k)] * inv_sum * (lp - lq);
    }
    return std::max(kl, 0.0);  // rounding can leave a tiny negative sum for near-equal rows
}

class score_worker : public Napi::AsyncProgressQueueWorker<char> {
  public:
    score_worker(Napi::Env env, score_target target, score_target reference, std::vector<llama_token> tokens,
                 std::shared_ptr<std::atomic<bool>> abort) :
        Napi::AsyncProgressQueueWorker<char>(Napi::Function::New(env, [](const Napi::CallbackInfo &) {}), "llama-kv:score"),
        deferred_(Napi::Promise::Deferred::New(env)),
        state_(std::move(target.state)),
        ref_(std::move(reference.state)),
        seq_(target.seq),
        ref_seq_(reference.seq),
        tokens_(std::move(tokens)),
        abort_(std::move(abort)) {}

    // The sequences were claimed for this score by queue_score's caller.
    ~score_worker() override {
        state_->engine->release(seq_);
        if (ref_) {
            ref_->engine->release(ref_seq_);
        }
    }

    Napi::Promise promise() const { return deferred_.Promise(); }

  protected:
    // Both contexts' locks, taken ahead of their engines' next steps: other sequences
    // decode between two chunks of a score. std::lock orders the two, so two scores with
    // their contexts swapped cannot deadlock.
    struct locks {
        std::unique_lock<std::mutex> own, other;
    };
    locks lock_contexts() {
        locks l;
        state_->waiters.fetch_add(1);
        l.own = std::unique_lock<std::mutex>(state_->mutex, std::defer_lock);
        if (ref_) {
            ref_->waiters.fetch_add(1);
            l.other = std::unique_lock<std::mutex>(ref_->mutex, std::defer_lock);
            std::lock(l.own, l.other);
            ref_->waiters.fetch_sub(1);
        } else {
            l.own.lock();
        }
        state_->waiters.fetch_sub(1);
        return l;
    }

    bool aborted() const { return abort_->load() || state_->abort.load() || (ref_ && ref_->abort.load()); }

    void Execute(const ExecutionProgress & progress) override {
        contain_exceptions({ state_.get(), ref_.get() }, fail_, [&] { score(progress); });
    }

    void score(const ExecutionProgress & progress) {
        log_capture_reset();

        const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(state_->model.get()));
        size_t        chunk   = llama_n_batch(state_->ctx.get());
        if (ref_) {
            chunk = std::min<size_t>(chunk, llama_n_batch(ref_->ctx.get()));
        }
        chunk = std::max<size_t>(1, std::min(chunk, max_chunk_floats / static_cast<size_t>(n_vocab)));

        const size_t n_scored = tokens_.size() - 1;
        log_prob_.resize(n_scored);
        top_.resize(n_scored);
        if (ref_) {
            ref_log_prob_.resize(n_scored);
            ref_top_.resize(n_scored);
            kl_.resize(n_scored);
        }

        {
            locks l = lock_contexts();
            clear_all();
        }
        batch_holder holder(static_cast<int32_t>(chunk));
        llama_batch & batch = holder.batch;
        const char    beat  = 0;
        for (size_t i = 0; i < tokens_.size(); i += chunk) {
            locks l = lock_contexts();
            if (aborted()) {
                clear_all();
                fail_ = { code::aborted, "aborted" };
                return;
            }
            const size_t n = std::min(chunk, tokens_.size() - i);
            batch.n_tokens = static_cast<int32_t>(n);
            for (size_t j = 0; j < n; ++j) {
                batch.token[j]     = tokens_[i + j];
                batch.pos[j]       = static_cast<llama_pos>(i + j);
                batch.n_seq_id[j]  = 1;
                batch.logits[j]    = 1;
            }
            if (!decode_chunk(*state_, batch, seq_) || (ref_ && !decode_chunk(*ref_, batch, ref_seq_))) {
                clear_all();
                return;
            }
            for (size_t j = 0; j < n && i + j < n_scored; ++j) {
                const size_t      at   = i + j;
                const llama_token next = tokens_[at + 1];
                const float *     cand = llama_get_logits_ith(state_->ctx.get(), static_cast<int32_t>(j));
                const float *     ref  = ref_ ? llama_get_logits_ith(ref_->ctx.get(), static_cast<int32_t>(j)) : nullptr;
                if (cand == nullptr || (ref_ && ref == nullptr)) {
                    clear_all();
                    fail_ = { code::decode_failed, with_log("llama.cpp returned no logits", log_capture_take()) };
                    return;
                }
                const row_stats cs = stats_of(cand, n_vocab);
                log_prob_[at]      = log_prob(cand, cs, next);
                top_[at]           = cs.argmax;
                if (ref_) {
                    const row_stats rs = stats_of(ref, n_vocab, &ref_exps_);
                    ref_log_prob_[at]  = log_prob(ref, rs, next);
                    ref_top_[at]       = rs.argmax;
                    kl_[at]            = kl_divergence(ref, rs, ref_exps_, cand, cs, n_vocab);
                }
            }
            progress.Send(&beat, 1);
        }
        // Both sequences now hold the whole token list: a later evaluate/generate reuses it.
        locks l = lock_contexts();
        state_->cached[static_cast<size_t>(seq_)] = tokens_;
        if (ref_) {
            ref_->cached[static_cast<size_t>(ref_seq_)] = tokens_;
            ref_->publish_cells();
        }
        state_->publish_cells();
    }

    void OnProgress(const char *, size_t) override {
        if (!outside_js([&] { Callback().Call({}); })) {
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
    bool decode_chunk(context_state & s, llama_batch & batch, llama_seq_id seq) {
        for (int32_t j = 0; j < batch.n_tokens; ++j) {
            batch.seq_id[j][0] = seq;
        }
        const int32_t rc = s.decode(batch);
        if (rc != 0) {
            fail_ = decode_failure(rc, log_capture_take());
            return false;
        }
        return true;
    }

    // A failed or aborted score leaves no half-decoded sequence behind (locks held).
    void clear_all() {
        state_->clear_sequence(seq_);
        if (ref_) {
            ref_->clear_sequence(ref_seq_);
        }
    }

    static Napi::Float64Array doubles(Napi::Env env, const std::vector<double> & v) {
        auto out = Napi::Float64Array::New(env, v.size());
        if (!v.empty()) {
            std::memcpy(out.Data(), v.data(), v.size() * sizeof(double));
        }
        return out;
    }

    static Napi::Int32Array ints(Napi::Env env, const std::vector<int32_t> & v) {
        auto out = Napi::Int32Array::New(env, v.size());
        if (!v.empty()) {
            std::memcpy(out.Data(), v.data(), v.size() * sizeof(int32_t));
        }
        return out;
    }

    void settle() {
        Napi::Env env = Env();
        if (fail_) {
            deferred_.Reject(make_error(env, fail_).Value());
            return;
        }
        Napi::Object out = Napi::Object::New(env);
        out.Set("logProbs", doubles(env, log_prob_));
        out.Set("topTokens", ints(env, top_));
        if (ref_) {
            Napi::Object ref = Napi::Object::New(env);
            ref.Set("logProbs", doubles(env, ref_log_prob_));
            ref.Set("topTokens", ints(env, ref_top_));
            ref.Set("kl", doubles(env, kl_));
            out.Set("reference", ref);
        }
        deferred_.Resolve(out);
    }

    Napi::Promise::Deferred        deferred_;
    std::shared_ptr<context_state> state_;
    std::shared_ptr<context_state> ref_;
    llama_seq_id                   seq_;
    llama_seq_id                   ref_seq_;
    std::vector<llama_token>       tokens_;
    std::shared_ptr<std::atomic<bool>> abort_;
    std::vector<double>            log_prob_, ref_log_prob_, kl_;
    std::vector<int32_t>           top_, ref_top_;
    std::vector<double>            ref_exps_;  // scratch: exp(logit - max) of the reference row
    failure                        fail_;
};

}  // namespace

Napi::Promise queue_score(Napi::Env env, score_target target, score_target reference, std::vector<llama_token> tokens,
                          std::shared_ptr<std::atomic<bool>> abort) {
    auto * worker = new score_worker(env, std::move(target), std::move(reference), std::move(tokens), std::move(abort));  // freed by node-addon-api
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
}

}  // namespace llama_kv
