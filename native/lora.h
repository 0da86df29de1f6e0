// LoRA adapters (llama_adapter_lora): loading off the JS thread, the NativeLora class,
// and the handle contexts share while an adapter is in their active set.
#pragma once

#include "handles.h"

#include <napi.h>

#include <memory>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

namespace llama_kv {

// An adapter, kept alive by its wrapper and by every context that has it in its active
// set: a dispose while a context uses it is deferred to the last user. It holds its
// model, because llama.cpp frees an adapter with its model.
struct lora_handle {
    llama_adapter_lora * adapter = nullptr;
    llama_model_ptr      model;
    // The adapter's tensor buffers (type, bytes), and their total.
    std::vector<std::pair<ggml_backend_buffer_type_t, size_t>> buffers;
    size_t                                                     bytes = 0;

    lora_handle(llama_adapter_lora * a, llama_model_ptr m);
    ~lora_handle();
    lora_handle(const lora_handle &)             = delete;
    lora_handle & operator=(const lora_handle &) = delete;
};
using lora_ptr = std::shared_ptr<lora_handle>;

// llama.cpp keeps a model's adapters in a set (model.loras) that llama_adapter_lora_init
// and llama_adapter_lora_free change, and that a context reads when it reserves its
// compute graph (at creation, and at the first decode after its adapters changed):
// those take this lock shared, adapter load and free take it exclusive.
std::shared_mutex & adapter_set_mutex();

class lora_wrap : public Napi::ObjectWrap<lora_wrap> {
  public:
    static Napi::Function define(Napi::Env env);
    explicit lora_wrap(const Napi::CallbackInfo & info);
    ~lora_wrap() override;

    // The adapter, or throws DISPOSED.
    lora_ptr          lora(Napi::Env env) const;
    static lora_wrap * unwrap(Napi::Env env, Napi::Value value);

  private:
    Napi::Value metadata(const Napi::CallbackInfo & info);
    Napi::Value dispose(const Napi::CallbackInfo & info);
    Napi::Value disposed(const Napi::CallbackInfo & info);

    void release_external_memory();

    lora_ptr  lora_;
    napi_env  env_            = nullptr;
    int64_t   external_bytes_ = 0;  // reported to V8 while this wrapper holds the adapter
};

// JS: loadLora(model: NativeModel, path: string) -> Promise<NativeLora>
Napi::Value load_lora(const Napi::CallbackInfo & info);

}  // namespace llama_kv
