// Tokenizes text off the JS thread (for large inputs).
#pragma once

#include "../handles.h"

#include <napi.h>

#include <string>

namespace llama_kv {

Napi::Promise queue_tokenize(Napi::Env env, llama_model_ptr model, std::string text, bool add_special, bool parse_special);

}  // namespace llama_kv
