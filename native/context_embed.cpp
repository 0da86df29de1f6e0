// ctx.embed(): embeddings of token sequences on an embedding context.
#include "context.h"
#include "context_state.h"
#include "errors.h"
#include "llama_internals.h"
#include "model.h"
#include "workers/abortable.h"
#include "workers/embed.h"

#include <algorithm>
#include <string>

namespace llama_kv {

// embed(inputs: Int32Array[], normalize: number, onProgress?: (done) => void) -> { promise, abort() }
Napi::Value context_wrap::embed(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber()) {
        throw_error(env, code::invalid_argument, "embed(inputs: Int32Array[], normalize: number, onProgress?)");
    }
    // Reading the inputs runs no user JS (typed arrays or plain arrays of numbers are read
    // by index), but hold the state anyway and check it after.
    Napi::Array list = info[0].As<Napi::Array>();
    embed_job   job;
    job.normalize = static_cast<int32_t>(checked_integer(env, info[1].As<Napi::Number>().DoubleValue(), -1, 1000, "embed(): normalize"));
    job.inputs.reserve(list.Length());
    for (uint32_t i = 0; i < list.Length(); ++i) {
        const std::string what = "inputs[" + std::to_string(i) + "]";
        job.inputs.push_back(read_tokens(env, list.Get(i), what.c_str()));
    }
    const std::shared_ptr<context_state> state = live_embedding(env);
    llama_context *                      ctx   = state->ctx.get();
    // What llama.cpp asserts on: a batch above n_batch or n_ubatch (non-causal, no memory);
    // and the cache must hold the batch (kvUnified: all sequences share it).
    // One micro-batch per decode: llama.cpp pools each micro-batch on its own (a text split
    // across two would be pooled from one part), and encodes a model without memory in one.
    uint32_t limit = std::min(llama_n_batch(ctx), llama_n_ubatch(ctx));
    limit = std::min(limit, llama_n_ctx_seq(ctx));
    // Absolute position embeddings (BERT) have a row per trained position: a position past
    // them is read out of bounds.
    const int32_t n_ctx_train = llama_model_n_ctx_train(state->model.get());
    if (n_ctx_train > 0) {
        limit = std::min(limit, static_cast<uint32_t>(n_ctx_train));
    }
    job.max_tokens            = limit;
    const llama_vocab * vocab = llama_model_get_vocab(state->model.get());
    for (size_t i = 0; i < job.inputs.size(); ++i) {
        const auto & tokens = job.inputs[i];
        if (tokens.empty()) {
            throw_error(env, code::invalid_argument, "inputs[" + std::to_string(i) + "] has no tokens");
        }
        if (tokens.size() > limit) {
            throw_error(env, code::context_full,
                        "inputs[" + std::to_string(i) + "] has " + std::to_string(tokens.size()) + " tokens, more than the " +
                            std::to_string(limit) + " one decode of this context takes");
        }
        const int64_t bad = find_invalid_token(vocab, tokens.data(), tokens.size());
        if (bad >= 0) {
            throw_error(env, code::invalid_argument,
                        "token id " + std::to_string(tokens[static_cast<size_t>(bad)]) + " at index " + std::to_string(bad) +
                            " of inputs[" + std::to_string(i) + "] is outside the vocabulary [0, " +
                            std::to_string(llama_vocab_n_tokens(vocab)) + ")");
        }
    }
    bool expected = false;
    if (!state->embedding_busy.compare_exchange_strong(expected, true)) {
        throw_error(env, code::busy, "the embedding context is already running an embed()");
    }
    job.state  = state;
    auto abort = std::make_shared<std::atomic<bool>>(false);
    try {
        Napi::Promise promise = queue_embed(env, std::move(job), progress_callback_or_noop(info, 2), abort);
        return promise_with_abort(env, promise, abort);
    } catch (...) {
        state->embedding_busy.store(false);
        throw;
    }
}

}  // namespace llama_kv
