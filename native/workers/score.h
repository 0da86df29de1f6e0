// Scores a token sequence position by position (off the JS thread): for each position i,
// ln p(tokens[i + 1]) and the most likely next token; with a reference context (another
// context, possibly on another model with the same vocabulary), the same for it and the
// KL divergence KL(reference || this) of the two next-token distributions. Both contexts
// decode the sequence from an empty cache in the same chunks, so that only their logits,
// never a whole sequence of them, are held at once.
#pragma once

#include "../context_state.h"

#include <napi.h>

#include <memory>
#include <vector>

namespace llama_kv {

// `reference` may be null. The caller has checked the tokens against both vocabularies
// and context sizes, and has acquired both states (busy), which the worker releases.
Napi::Promise queue_score(Napi::Env env, std::shared_ptr<context_state> state, std::shared_ptr<context_state> reference,
                          std::vector<llama_token> tokens);

}  // namespace llama_kv
