// The process heap, for leak measurements.
#pragma once

#include <napi.h>

namespace llama_kv {

// JS: trimHeap() -> boolean.
Napi::Value trim_heap(const Napi::CallbackInfo & info);

}  // namespace llama_kv
