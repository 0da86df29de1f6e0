// The shape of an abortable native operation: { promise, abort() }, with an optional
// progress callback (a no-op function when JS gave none).
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

namespace llama_kv {

// info[index] when it is a function, else a function that does nothing.
inline Napi::Function progress_callback_or_noop(const Napi::CallbackInfo & info, size_t index) {
    if (info.Length() > index && info[index].IsFunction()) {
        return info[index].As<Napi::Function>();
    }
    return Napi::Function::New(info.Env(), [](const Napi::CallbackInfo &) {});
}

// { promise, abort() }: abort() sets the flag the worker polls.
inline Napi::Object promise_with_abort(Napi::Env env, Napi::Promise promise, std::shared_ptr<std::atomic<bool>> abort) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("promise", promise);
    result.Set("abort", Napi::Function::New(env, [abort](const Napi::CallbackInfo &) { abort->store(true); }));
    return result;
}

}  // namespace llama_kv
