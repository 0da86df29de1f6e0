// The sequences of a context: requests submitted to its engine, sequence copies and
// clears between two of the engine's steps, the engine's figures.
#include "context.h"
#include "context_state.h"
#include "model.h"

#include <cmath>
#include <string>

namespace llama_kv {

namespace {

llama_seq_id read_sequence(Napi::Env env, const context_state & state, Napi::Value value, const char * what) {
    if (!value.IsNumber()) {
        throw_error(env, code::invalid_argument, std::string(what) + " must be a sequence id");
    }
    const auto n = static_cast<int64_t>(state.cached.size());
    return static_cast<llama_seq_id>(checked_integer(env, value.As<Napi::Number>().DoubleValue(), 0, n - 1, what));
}

void require_idle(Napi::Env env, context_state & state, llama_seq_id seq) {
    if (state.engine->claimed(seq)) {
        throw_error(env, code::busy, "sequence " + std::to_string(seq) + " is running a request");
    }
}

}  // namespace

// submit(request, onTokens(tokens: Int32Array, pieces: Buffer[])) -> { promise, abort(), tokensRead(n) }
Napi::Value context_wrap::submit(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
        throw_error(env, code::invalid_argument, "submit(request: object, onTokens: function)");
    }
    engine_request request = read_engine_request(env, info[0].As<Napi::Object>());  // may run getters: state checked after
    const std::shared_ptr<context_state> state = live(env);
    if (static_cast<size_t>(request.seq) >= state->cached.size()) {
        throw_error(env, code::invalid_argument, "request: sequence " + std::to_string(request.seq) + " is outside [0, " +
                                                     std::to_string(state->cached.size()) + ")");
    }
    if (request.kind == engine_request::kind_t::generate && !vocab_has_tokenizer(llama_model_get_vocab(state->model.get()))) {
        throw_error(env, code::tokenize_failed, no_tokenizer_message);  // every sampled token is turned into text
    }
    {
        // Token ids the sampler uses (llama.cpp indexes its vocabulary with them unchecked).
        const llama_vocab *      vocab = llama_model_get_vocab(state->model.get());
        std::vector<llama_token> ids   = request.grammar.trigger_tokens;
        ids.insert(ids.end(), request.grammar.prefill.begin(), request.grammar.prefill.end());
        ids.insert(ids.end(), request.render_special.begin(), request.render_special.end());
        for (const auto & b : request.sampling.logit_bias) {
            ids.push_back(b.token);
        }
        const int64_t bad = find_invalid_token(vocab, ids.data(), ids.size());
        if (bad >= 0) {
            throw_error(env, code::invalid_argument, "request: token " + std::to_string(ids[static_cast<size_t>(bad)]) +
                                                         " (logitBias, grammar or renderSpecial) is outside the vocabulary");
        }
    }
    auto job  = std::make_shared<engine_job>(env);
    job->req  = std::move(request);
    job->tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "llama-kv:tokens", 0, 1);
    try {
        state->engine->submit(env, state, job);
    } catch (...) {
        job->tsfn.Release();
        throw;
    }
    const std::weak_ptr<context_state> weak = state;
    Napi::Object                       out  = Napi::Object::New(env);
    out.Set("promise", job->deferred.Promise());
    out.Set("abort", Napi::Function::New(env, [job, weak](const Napi::CallbackInfo &) {
                job->abort.store(true);
                if (auto s = weak.lock()) {
                    s->engine->wake();
                }
            }));
    // tokensRead(n): the JS reader has taken n tokens (backpressure). Ignored unless n is a count.
    out.Set("tokensRead", Napi::Function::New(env, [job, weak](const Napi::CallbackInfo & call) {
                if (call.Length() < 1 || !call[0].IsNumber()) {
                    return;
                }
                const double n = call[0].As<Napi::Number>().DoubleValue();
                if (std::isfinite(n) && n >= 0 && n <= static_cast<double>(UINT32_MAX)) {
                    job->tokens_read.store(static_cast<uint32_t>(n));
                    if (auto s = weak.lock()) {
                        s->engine->wake();
                    }
                }
            }));
    return out;
}

// clearSequence(seq): empties a sequence that runs no request.
Napi::Value context_wrap::clear_sequence(const Napi::CallbackInfo & info) {
    Napi::Env                            env   = info.Env();
    const std::shared_ptr<context_state> state = live(env);
    const llama_seq_id                   seq   = read_sequence(env, *state, info.Length() > 0 ? info[0] : env.Undefined(), "sequence");
    require_idle(env, *state, seq);
    std::unique_lock<std::mutex> lock = state->lock_between_steps();
    state->clear_sequence(seq);
    return env.Undefined();
}

// copySequence(src, dst): dst becomes a copy of src's cache (llama_memory_seq_cp); neither
// may run a request.
Napi::Value context_wrap::copy_sequence(const Napi::CallbackInfo & info) {
    Napi::Env                            env   = info.Env();
    const std::shared_ptr<context_state> state = live(env);
    const llama_seq_id src = read_sequence(env, *state, info.Length() > 0 ? info[0] : env.Undefined(), "source sequence");
    const llama_seq_id dst = read_sequence(env, *state, info.Length() > 1 ? info[1] : env.Undefined(), "target sequence");
    if (src == dst) {
        throw_error(env, code::invalid_argument, "a sequence cannot be copied onto itself");
    }
    require_idle(env, *state, src);
    require_idle(env, *state, dst);
    std::unique_lock<std::mutex> lock = state->lock_between_steps();
    llama_memory_t               mem  = llama_get_memory(state->ctx.get());
    llama_memory_seq_rm(mem, dst, -1, -1);
    llama_memory_seq_cp(mem, src, dst, -1, -1);
    state->cached[static_cast<size_t>(dst)] = state->cached[static_cast<size_t>(src)];
    state->publish_cells();
    return env.Undefined();
}

// sequenceCells() -> Uint32Array: the cells each sequence holds (as of the engine's last step).
Napi::Value context_wrap::sequence_cells(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) {
        throw_error(env, code::disposed, "the context has been disposed");
    }
    auto out = Napi::Uint32Array::New(env, state_->cached.size());
    for (size_t i = 0; i < state_->cached.size(); ++i) {
        out[i] = state_->cells[i].load(std::memory_order_relaxed);
    }
    return out;
}

// engineStats() -> { steps, tokens, decodeMs, stepMs }: cumulative since the context was created.
Napi::Value context_wrap::engine_stats(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) {
        throw_error(env, code::disposed, "the context has been disposed");
    }
    const llama_kv::engine_stats & s = state_->engine->stats;
    // decode_ns before step_ns: the engine adds to them in the other order (stepMs >= decodeMs).
    const uint64_t decode_ns = s.decode_ns.load();
    const uint64_t step_ns   = s.step_ns.load();
    Napi::Object   out       = Napi::Object::New(env);
    out.Set("steps", static_cast<double>(s.steps.load()));
    out.Set("tokens", static_cast<double>(s.tokens.load()));
    out.Set("decodeMs", static_cast<double>(decode_ns) / 1e6);
    out.Set("stepMs", static_cast<double>(step_ns) / 1e6);
    return out;
}

}  // namespace llama_kv
