// Quantizes a GGUF model file (llama_model_quantize) off the JS thread, with progress
// (read from llama.cpp's per-tensor log lines) and abort between tensors.
#pragma once

#include <napi.h>

namespace llama_kv {

// JS: quantize(input, output, { ftype, threads, allowRequantize }, onProgress?)
//     -> { promise: Promise<void>, abort(): void }
Napi::Value quantize_model(const Napi::CallbackInfo & info);

}  // namespace llama_kv
