// Scores a token sequence position by position (off the JS thread): for each position i,
// ln p(tokens[i + 1]) and the most likely next token; with a reference context (another
// context, possibly on another model with the same vocabulary), the same for it and the
// KL divergence KL(reference || this) of the two next-token distributions. Both contexts
// decode the sequence from an empty cache in the same chunks, so that only their logits,
// never a whole sequence of them, are held at once.
#pragma once

#include "../context_state.h"

#include <napi.h>

#include <atomic>
#include <memory>
#include <vector>

namespace llama_kv {

// `reference` may be null. The caller has checked the tokens against both vocabularies
// and context sizes, and has acquired both states (busy), which the worker releases.
// A context and the sequence of it that a score decodes on (claimed by the caller: the
// worker releases it when done).
struct score_target {
    std::shared_ptr<context_state> state;
    llama_seq_id                   seq = 0;
};

// `reference.state` may be null. `abort` stops the score between two chunks.
Napi::Promise queue_score(Napi::Env env, score_target target, score_target reference, std::vector<llama_token> tokens,
                          std::shared_ptr<std::atomic<bool>> abort);

}  // namespace llama_kv
