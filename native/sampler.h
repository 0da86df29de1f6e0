// Per-sequence sampling: llama.cpp's sampler chain, and a greedy fast path that reads the
// logits row directly (the chain copies n_vocab candidates per token).
#pragma once

#include "handles.h"

#include <string>
#include <vector>

namespace llama_kv {

struct sampler_params {
    float    temperature    = 0.0f;
    int32_t  top_k          = 0;
    float    top_p          = 1.0f;
    float    min_p          = 0.0f;
    float    repeat_penalty = 1.0f;
    int32_t  repeat_last_n  = 64;
    uint32_t seed           = 0;
    std::vector<llama_logit_bias> logit_bias;  // added to the logits before anything else
};

// A GBNF grammar the output must follow; lazy: only from the first match of a trigger
// (a regex over the generated text, or a token) on, as llama.cpp's tool-call grammars.
struct grammar_params {
    std::string              grammar;  // empty: none
    bool                     lazy = false;
    std::vector<std::string> trigger_patterns;
    std::vector<llama_token> trigger_tokens;
    std::vector<llama_token> prefill;  // accepted before sampling (the template's generation prompt)
};

class sequence_sampler {
  public:
    sequence_sampler() = default;
    sequence_sampler(const sampler_params & params, const grammar_params & grammar, const llama_vocab * vocab);

    // Why the grammar could not be set up, or why sampling found no token it allows.
    const std::string & error() const { return error_; }

    // Feeds prompt tokens to the stateful samplers (the repetition penalty's window).
    void accept_prompt(const llama_token * tokens, size_t n);
    // Samples from output row `idx` of the last decode and accepts the token.
    // LLAMA_TOKEN_NULL on failure (no logits; error() set when the grammar failed).
    llama_token sample(llama_context * ctx, int32_t idx);

  private:
    llama_token sample_constrained(llama_context * ctx, int32_t idx);
    llama_token pick(llama_token_data_array & cur);

    llama_sampler_ptr             chain_;    // null on the greedy fast path
    llama_sampler_ptr             grammar_;  // null without a grammar
    std::vector<llama_token_data> cur_;
    int32_t                       n_vocab_ = 0;
    std::string                   error_;
};

// The text of one token; with `special`, a special token's text too (else nothing).
std::string token_piece(const llama_vocab * vocab, llama_token token, bool special = false);

}  // namespace llama_kv
