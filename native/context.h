// LlamaContext wrapper: create (with a persistent ggml threadpool), config, evaluate,
// generate, abort, dispose.
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

    // The live state, or a DISPOSED error. Marks it busy (BUSY error if it already is).
    std::shared_ptr<context_state> acquire(Napi::Env env);

  private:
    Napi::Value config(const Napi::CallbackInfo & info);
    Napi::Value evaluate(const Napi::CallbackInfo & info);
    Napi::Value generate(const Napi::CallbackInfo & info);
    Napi::Value abort(const Napi::CallbackInfo & info);
    Napi::Value dispose(const Napi::CallbackInfo & info);
    Napi::Value disposed(const Napi::CallbackInfo & info);

    std::shared_ptr<context_state> state_;
};

}  // namespace llama_kv
