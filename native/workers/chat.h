// Chat templates off the JS thread: initializing a model's templates (llama.cpp parses
// and probes them) and rendering a conversation. Both abortable: { promise, abort() }.
#pragma once

#include <napi.h>

namespace llama_kv {

// JS: chatInit(model, override: string, limits) -> { promise: Promise<{ handle, info: string }>, abort }
Napi::Value chat_init(const Napi::CallbackInfo & info);
// JS: chatApply(model, handle, inputs: string, limits, tokenize: boolean, prefix?: string)
//     -> { promise: Promise<{ params: string, tokens?: Int32Array }>, abort }
//     (with `prefix`: the tokens of the prompt after it where that is clean; params.tokensFrom says)
Napi::Value chat_apply(const Napi::CallbackInfo & info);

}  // namespace llama_kv
