#include "generate.h"

#include "../model.h"

#include <chrono>
#include <cmath>
#include <limits>

namespace llama_kv {

namespace {

struct token_event {
    llama_token token = 0;
    std::string piece;
};

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// The text of one token; pieces longer than the stack buffer are fetched again at their size.
std::string token_piece(const llama_vocab * vocab, llama_token token) {
    char    buf[256];
    int32_t n = llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, false);
    if (n >= 0) {
        return std::string(buf, static_cast<size_t>(n));
    }
    std::string big(static_cast<size_t>(-n), '\0');
    n = llama_token_to_piece(vocab, token, big.data(), static_cast<int32_t>(big.size()), 0, false);
    return n >= 0 ? big.substr(0, static_cast<size_t>(n)) : std::string();
}

llama_sampler_ptr make_sampler(const generate_request & r, const llama_vocab * vocab) {
    llama_sampler_ptr chain(llama_sampler_chain_init(llama_sampler_chain_default_params()));
    if (r.repeat_penalty != 1.0f && r.repeat_last_n != 0) {
        llama_sampler_chain_add(chain.get(), llama_sampler_init_penalties(llama_vocab_n_tokens(vocab), r.repeat_last_n,
                                                                          r.repeat_penalty, 0.0f, 0.0f));
    }
    if (r.temperature <= 0.0f) {
        llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
        return chain;
    }
    if (r.top_k > 0) {
        llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(r.top_k));
    }
    if (r.top_p < 1.0f) {
        llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(r.top_p, 1));
    }
    if (r.min_p > 0.0f) {
        llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(r.min_p, 1));
    }
    llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(r.temperature));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(r.seed));
    return chain;
}

class generate_worker : public Napi::AsyncProgressQueueWorker<token_event> {
  public:
    generate_worker(Napi::Function on_tokens, std::shared_ptr<context_state> state, generate_request request) :
        Napi::AsyncProgressQueueWorker<token_event>(on_tokens, "llama-kv:generate"),
        deferred_(Napi::Promise::Deferred::New(on_tokens.Env())),
        state_(std::move(state)),
        req_(std::move(request)) {}

    ~generate_worker() override { state_->busy.store(false); }

    Napi::Promise promise() const { return deferred_.Promise(); }

  protected:
    void Execute(const ExecutionProgress & progress) override {
        std::lock_guard<std::mutex> lock(state_->mutex);
        log_capture_reset();
        const llama_vocab * vocab = llama_model_get_vocab(state_->model.get());

        std::vector<llama_token> prompt;
        if (req_.has_text) {
            std::string error;
            if (!tokenize_text(vocab, req_.text, req_.add_special, req_.parse_special, prompt, error)) {
                fail_ = { code::tokenize_failed, error };
                return;
            }
        } else {
            prompt = std::move(req_.tokens);
        }
        prompt_tokens_ = prompt.size();
        const uint32_t n_ctx = llama_n_ctx_seq(state_->ctx.get());
        if (static_cast<uint32_t>(req_.repeat_last_n) > n_ctx) {
            fail_ = { code::invalid_argument, "generate: repeatLastN (" + std::to_string(req_.repeat_last_n) +
                                                  ") is larger than the context of a sequence (" + std::to_string(n_ctx) + ")" };
            return;
        }

        const auto t_prompt = clock_type::now();
        // A heartbeat per prompt batch: if JS can no longer be called (the environment
        // is being torn down), OnProgress sets the abort flag and the decode stops.
        const token_event heartbeat{ -1, {} };
        const int64_t     reused = state_->decode_prompt(prompt, fail_, [&] { progress.Send(&heartbeat, 1); });
        if (reused < 0) {
            if (fail_.code == code::aborted) {
                fail_         = {};
                finish_reason_ = "abort";
            }
            return;
        }
        reused_tokens_ = static_cast<size_t>(reused);
        prompt_ms_     = ms_since(t_prompt);

        llama_sampler_ptr sampler = make_sampler(req_, vocab);
        // The repetition penalty sees the tail of the prompt, as in llama.cpp's tools.
        if (req_.repeat_penalty != 1.0f) {
            for (llama_token t : prompt) {
                llama_sampler_accept(sampler.get(), t);
            }
        }

        const auto     t_gen  = clock_type::now();
        std::string    text;
        while (true) {
            if (state_->abort.load()) {
                finish_reason_ = "abort";
                break;
            }
            if (generated_ >= req_.max_tokens) {
                finish_reason_ = "length";
                break;
            }
            const llama_token token = llama_sampler_sample(sampler.get(), state_->ctx.get(), -1);
            if (llama_vocab_is_eog(vocab, token)) {
                finish_reason_ = "eos";
                break;
            }
            token_event event{ token, token_piece(vocab, token) };
            ++generated_;
            if (!wait_for_reader()) {
                finish_reason_ = "abort";
                break;
            }
            const size_t before = text.size();
            if (!req_.stop.empty()) {
                text += event.piece;  // kept only to look for stop strings
            }
            progress.Send(&event, 1);

            if (!req_.stop.empty() && find_stop(text, before)) {
                finish_reason_ = "stop";
                break;
            }
            if (generated_ >= req_.max_tokens) {
                finish_reason_ = "length";
                break;
            }
            if (state_->cached.size() >= n_ctx) {
                finish_reason_ = "contextFull";  // no room for the next token: the context, not maxTokens, ended it
                break;
            }
            if (!state_->decode_one(token, fail_)) {
                if (fail_.code == code::aborted) {
                    fail_          = {};
                    finish_reason_ = "abort";
                }
                break;
            }
        }
        generation_ms_ = ms_since(t_gen);
    }

    void OnProgress(const token_event * events, size_t count) override {
        if (count == 0 || Callback().IsEmpty()) {
            return;
        }
        const bool delivered = outside_js([&] {
            Napi::Env env = Env();
            size_t    n   = 0;  // heartbeats (token -1) carry no token
            for (size_t i = 0; i < count; ++i) {
                n += events[i].token >= 0 ? 1 : 0;
            }
            auto        tokens = Napi::Int32Array::New(env, n);
            Napi::Array pieces = Napi::Array::New(env, n);
            for (size_t i = 0, j = 0; i < count; ++i) {
                if (events[i].token < 0) {
                    continue;
                }
                tokens[j] = events[i].token;
                pieces.Set(static_cast<uint32_t>(j++),
                           Napi::Buffer<char>::Copy(env, events[i].piece.data(), events[i].piece.size()));
            }
            try {
                Callback().Call({ tokens, pieces });
            } catch (const Napi::Error & e) {
                // The callback threw: stop, and reject with its error rather than lose it.
                if (callback_error_.IsEmpty()) {
                    callback_error_ = Napi::Reference<Napi::Value>::New(e.Value(), 1);
                }
                state_->abort.store(true);
            }
        });
        if (!delivered) {
            state_->abort.store(true);  // nobody is listening any more
        }
    }

    void OnOK() override {
        outside_js([&] { settle(); });
    }

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
        Napi::Object out = Napi::Object::New(env);
        out.Set("finishReason", finish_reason_);
        out.Set("promptTokens", static_cast<double>(prompt_tokens_));
        out.Set("reusedTokens", static_cast<double>(reused_tokens_));
        out.Set("promptMs", prompt_ms_);
        out.Set("generatedTokens", static_cast<double>(generated_));
        out.Set("generationMs", generation_ms_);
        out.Set("stopOffset", stop_offset_ >= 0 ? Napi::Number::New(env, static_cast<double>(stop_offset_)) : env.Null());
        deferred_.Resolve(out);
    }

    void OnError(const Napi::Error & e) override {
        outside_js([&] { deferred_.Reject(escaped_error(Env(), e).Value()); });
    }

  private:
    // Backpressure: waits while `unread_limit` delivered tokens are unread in JS, so that a
    // stream nobody reads stops generating. False when aborted meanwhile.
    bool wait_for_reader() {
        if (req_.unread_limit == 0) {
            return true;
        }
        std::unique_lock<std::mutex> lock(state_->read_mutex);
        while (!state_->abort.load() && generated_ - 1 >= state_->tokens_read.load() + req_.unread_limit) {
            state_->read_cv.wait_for(lock, std::chrono::milliseconds(50));
        }
        return !state_->abort.load();
    }

    // Looks for a stop string that ends in the bytes appended after `before`.
    bool find_stop(const std::string & text, size_t before) {
        for (const std::string & stop : req_.stop) {
            if (stop.empty()) {
                continue;
            }
            const size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
            const size_t pos  = text.find(stop, from);
            if (pos != std::string::npos) {
                stop_offset_ = static_cast<int64_t>(pos);
                return true;
            }
        }
        return false;
    }

    Napi::Promise::Deferred        deferred_;
    Napi::Reference<Napi::Value>   callback_error_;
    std::shared_ptr<context_state> state_;
    generate_request               req_;
    failure                        fail_;
    std::string                    finish_reason_ = "length";
    size_t                         prompt_tokens_ = 0;
    size_t                         reused_tokens_ = 0;
    uint32_t                       generated_     = 0;
    double                         prompt_ms_     = 0;
    double                         generation_ms_ = 0;
    int64_t                        stop_offset_   = -1;
};

double read_number(Napi::Env env, Napi::Object obj, const char * key) {
    Napi::Value v = obj.Get(key);
    if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue())) {
        throw_error(env, code::invalid_argument, std::string("generate: ") + key + " must be a finite number");
    }
    return v.As<Napi::Number>().DoubleValue();
}

// A sampler parameter: converting a double outside float's range to float is undefined behaviour.
float read_float(Napi::Env env, Napi::Object obj, const char * key) {
    const double d = read_number(env, obj, key);
    if (std::fabs(d) > std::numeric_limits<float>::max()) {
        throw_error(env, code::invalid_argument, std::string("generate: ") + key + " is outside the range of a float");
    }
    return static_cast<float>(d);
}

}  // namespace

generate_request read_generate_request(Napi::Env env, Napi::Object obj) {
    generate_request r;
    Napi::Value      prompt = obj.Get("prompt");
    if (prompt.IsString()) {
        r.has_text = true;
        r.text     = prompt.As<Napi::String>().Utf8Value();
    } else {
        r.tokens = read_tokens(env, prompt, "prompt");
    }
    r.add_special   = obj.Get("addSpecial").ToBoolean().Value();
    r.parse_special = obj.Get("parseSpecial").ToBoolean().Value();

    const double max_tokens = read_number(env, obj, "maxTokens");
    r.max_tokens     = static_cast<uint32_t>(checked_integer(env, max_tokens, 0, UINT32_MAX, "generate: maxTokens"));
    r.temperature    = read_float(env, obj, "temperature");
    r.top_k          = static_cast<int32_t>(checked_integer(env, read_number(env, obj, "topK"), 0, INT32_MAX, "generate: topK"));
    r.top_p          = read_float(env, obj, "topP");
    r.min_p          = read_float(env, obj, "minP");
    r.repeat_penalty = read_float(env, obj, "repeatPenalty");
    // Bounded by the context later (the penalty sampler allocates a ring of this size).
    r.repeat_last_n  = static_cast<int32_t>(checked_integer(env, read_number(env, obj, "repeatLastN"), 0, INT32_MAX, "generate: repeatLastN"));
    r.seed           = static_cast<uint32_t>(checked_integer(env, read_number(env, obj, "seed"), 0, UINT32_MAX, "generate: seed"));
    if (r.repeat_penalty <= 0.0f) {
        throw_error(env, code::invalid_argument, "generate: repeatPenalty must be > 0");
    }
    Napi::Value unread = obj.Get("unreadLimit");
    if (!unread.IsUndefined()) {
        r.unread_limit = static_cast<uint32_t>(checked_integer(env, read_number(env, obj, "unreadLimit"), 0, UINT32_MAX, "generate: unreadLimit"));
    }
    Napi::Value stop = obj.Get("stop");
    if (stop.IsArray()) {
        auto arr = stop.As<Napi::Array>();
        for (uint32_t i = 0; i < arr.Length(); ++i) {
            Napi::Value s = arr.Get(i);
            if (!s.IsString()) {
                throw_error(env, code::invalid_argument, "generate: stop must be an array of strings");
            }
            r.stop.push_back(s.As<Napi::String>().Utf8Value());
        }
    }
    return r;
}

Napi::Promise queue_generate(Napi::Env env, std::shared_ptr<context_state> state, generate_request request,
                             Napi::Function on_tokens) {
    auto * worker = new generate_worker(on_tokens, std::move(state), std::move(request));  // freed by node-addon-api
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
}

}  // namespace llama_kv
