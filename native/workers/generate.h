// The token loop: decode the prompt, then sample and decode token after token in
// C++, with no JS round trip in between. Tokens stream to JS in batches.
#pragma once

#include "../context_state.h"

#include <napi.h>

#include <memory>
#include <string>
#include <vector>

namespace llama_kv {

struct generate_request {
    bool                     has_text = false;
    std::string              text;
    std::vector<llama_token> tokens;
    bool                     add_special   = true;
    bool                     parse_special = false;
    uint32_t                 max_tokens    = 0;
    float                    temperature   = 0.0f;
    int32_t                  top_k         = 0;
    float                    top_p         = 1.0f;
    float                    min_p         = 0.0f;
    float                    repeat_penalty = 1.0f;
    int32_t                  repeat_last_n  = 64;
    uint32_t                 seed           = 0;
    std::vector<std::string> stop;
    // Backpressure: at most this many delivered tokens unread by JS before the loop waits (0: no limit).
    uint32_t                 unread_limit   = 0;
};

generate_request read_generate_request(Napi::Env env, Napi::Object obj);

// Resolves to { finishReason, promptTokens, reusedTokens, promptMs, generatedTokens,
// generationMs, stopOffset }; onTokens(tokens: Int32Array, pieces: Buffer[]) streams.
Napi::Promise queue_generate(Napi::Env env, std::shared_ptr<context_state> state, generate_request request,
                             Napi::Function on_tokens);

}  // namespace llama_kv
