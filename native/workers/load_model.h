// Loads a model file off the JS thread (llama_model_load_from_file), reporting
// progress and honouring an abort flag through llama.cpp's progress callback.
#pragma once

#include <napi.h>

namespace llama_kv {

// JS: loadModel(path, { gpuLayers, useMmap, useMlock, vocabOnly, checkTensors }, onProgress?)
//     -> { promise: Promise<NativeModel>, abort(): void }
Napi::Value load_model(const Napi::CallbackInfo & info);

}  // namespace llama_kv
