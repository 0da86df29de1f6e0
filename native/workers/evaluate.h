// Decodes tokens and returns the logits of the last position (off the JS thread).
#pragma once

#include "../context_state.h"

#include <napi.h>

#include <memory>
#include <vector>

namespace llama_kv {

Napi::Promise queue_evaluate(Napi::Env env, std::shared_ptr<context_state> state, std::vector<llama_token> tokens);

}  // namespace llama_kv
