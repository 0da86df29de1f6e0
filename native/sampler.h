// Per-sequence sampling: llama.cpp's sampler chain, and a greedy fast path that reads the
// logits row directly (the chain copies n_vocab candidates per token).
#pragma once

#include "handles.h"

#include <string>

namespace llama_kv {

struct sampler_params {
    float    temperature    = 0.0f;
    int32_t  top_k          = 0;
    float    top_p          = 1.0f;
    float    min_p          = 0.0f;
    float    repeat_penalty = 1.0f;
    int32_t  repeat_last_n  = 64;
    uint32_t seed           = 0;
};

class sequence_sampler {
  public:
    sequence_sampler() = default;
    sequence_sampler(const sampler_params & params, const llama_vocab * vocab);

    // Feeds prompt tokens to the stateful samplers (the repetition penalty's window).
    void accept_prompt(const llama_token * tokens, size_t n);
    // Samples from output row `idx` of the last decode and accepts the token.
    llama_token sample(llama_context * ctx, int32_t idx);

  private:
    llama_sampler_ptr chain_;    // null on the greedy fast path
    int32_t           n_vocab_ = 0;
};

// The text of one token (special tokens rendered as text).
std::string token_piece(const llama_vocab * vocab, llama_token token);

}  // namespace llama_kv
