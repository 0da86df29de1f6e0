// LlamaContext wrapper: create (with a persistent ggml threadpool), config, memory report,
// requests on sequences (run by the context's engine), sequence copies, score, dispose.
#pragma once

#include "context_state.h"

#include <napi.h>

#include <memory>

namespace llama_kv {

class context_wrap : public Napi::ObjectWrap<context_wrap> {
  public:
    static Napi::Function define(Napi::Env env);
    // JS: new NativeContext(model: NativeModel, params: object)
    explicit context_wrap(const Napi::CallbackInfo & info);
    ~context_wrap() override;

    // The live state, or a DISPOSED error (or INVALID_ARGUMENT for a memory dry run).
    std::shared_ptr<context_state> live(Napi::Env env);
    // The same for an embedding context (INVALID_ARGUMENT for a generation context).
    std::shared_ptr<context_state> live_embedding(Napi::Env env);
    // The context_wrap of a NativeContext instance, or INVALID_ARGUMENT.
    static context_wrap * unwrap(Napi::Env env, Napi::Value value);

  private:
    Napi::Value config(const Napi::CallbackInfo & info);
    Napi::Value memory_report(const Napi::CallbackInfo & info);
    Napi::Value submit(const Napi::CallbackInfo & info);          // context_sequences.cpp
    Napi::Value clear_sequence(const Napi::CallbackInfo & info);  // context_sequences.cpp
    Napi::Value copy_sequence(const Napi::CallbackInfo & info);   // context_sequences.cpp
    Napi::Value engine_stats(const Napi::CallbackInfo & info);    // context_sequences.cpp
    Napi::Value sequence_cells(const Napi::CallbackInfo & info);  // context_sequences.cpp
    Napi::Value score(const Napi::CallbackInfo & info);
    Napi::Value state_layout(const Napi::CallbackInfo & info);  // context_state_io.cpp
    Napi::Value save_state(const Napi::CallbackInfo & info);    // context_state_io.cpp
    Napi::Value load_state(const Napi::CallbackInfo & info);    // context_state_io.cpp
    Napi::Value abort(const Napi::CallbackInfo & info);
    Napi::Value set_loras(const Napi::CallbackInfo & info);  // context_loras.cpp
    Napi::Value embed(const Napi::CallbackInfo & info);      // context_embed.cpp
    Napi::Value dispose(const Napi::CallbackInfo & info);
    Napi::Value disposed(const Napi::CallbackInfo & info);

    void release_external_memory(napi_env env);

    std::shared_ptr<context_state> state_;
    int64_t                        external_bytes_ = 0;  // KV cache and compute buffers, reported to the GC
    napi_env                       env_            = nullptr;
};

}  // namespace llama_kv
