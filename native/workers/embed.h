// Embeddings of a list of token sequences (off the JS thread), on an embedding context:
// as many sequences per llama_decode as fit (one llama.cpp sequence each, at most the
// batch's tokens and the context's sequences), pooled as the context was created
// (llama_get_embeddings_seq) or per token (pooling none, llama_get_embeddings_ith), then
// normalized with llama.cpp's common_embd_normalize.
#pragma once

#include "../context_state.h"

#include <napi.h>

#include <atomic>
#include <memory>
#include <vector>

namespace llama_kv {

struct embed_job {
    std::shared_ptr<context_state>        state;
    std::vector<std::vector<llama_token>> inputs;  // checked: non-empty, in the vocabulary, each fits one batch
    uint32_t                              max_tokens = 0;  // tokens per decode (the batch limit)
    int32_t                               normalize  = -1;  // common_embd_normalize's embd_norm
};

// Resolves Float32Array[] (one per input: n_out floats pooled, n_tokens * n_out with
// pooling none); calls on_progress(inputsDone) after each decode. `abort` stops it between
// two decodes. The caller has set state->embedding_busy, which the worker clears.
Napi::Promise queue_embed(Napi::Env env, embed_job job, Napi::Function on_progress, std::shared_ptr<std::atomic<bool>> abort);

}  // namespace llama_kv
