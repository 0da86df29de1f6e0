// The shape of an abortable native operation: { promise, abort() }, with an optional
// progress callback (a no-op function when JS gave none), and the worker behind it.
#pragma once

#include "../errors.h"

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

// A worker with progress, a promise and an abort flag: what loadModel and quantize share.
// Subclasses do the work in Execute (setting fail_ on failure) and settle in OnOK.
class abortable_progress_worker : public Napi::AsyncProgressWorker<float> {
  public:
    Napi::Promise promise() const { return deferred_.Promise(); }

  protected:
    abortable_progress_worker(Napi::Function on_progress, const char * name, std::shared_ptr<std::atomic<bool>> abort) :
        Napi::AsyncProgressWorker<float>(on_progress, name),
        deferred_(Napi::Promise::Deferred::New(on_progress.Env())),
        abort_(std::move(abort)) {}

    // The latest progress value to the JS callback; a call that fails means the
    // environment is going away, which aborts the work.
    // A callback that throws aborts the work, and the promise rejects with its error.
    void OnProgress(const float * data, size_t count) override {
        if (count > 0 && !Callback().IsEmpty()) {
            const bool delivered = outside_js([&] {
                try {
                    Callback().Call({ Napi::Number::New(Env(), data[count - 1]) });
                } catch (const Napi::Error & e) {
                    if (callback_error_.IsEmpty()) {
                        callback_error_ = Napi::Reference<Napi::Value>::New(e.Value(), 1);
                    }
                    abort_->store(true);
                }
            });
            if (!delivered) {
                abort_->store(true);
            }
        }
    }

    // Rejects with the progress callback's error when it threw; returns whether it did.
    bool reject_with_callback_error() {
        if (callback_error_.IsEmpty()) {
            return false;
        }
        deferred_.Reject(callback_error_.Value());
        return true;
    }

    void OnError(const Napi::Error & e) override {
        outside_js([&] { deferred_.Reject(escaped_error(Env(), e).Value()); });
    }

    Napi::Promise::Deferred            deferred_;
    Napi::Reference<Napi::Value>       callback_error_;
    std::shared_ptr<std::atomic<bool>> abort_;
    failure                            fail_;
};

// { promise, abort() }: abort() sets the flag the worker polls.
inline Napi::Object promise_with_abort(Napi::Env env, Napi::Promise promise, std::shared_ptr<std::atomic<bool>> abort) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("promise", promise);
    result.Set("abort", Napi::Function::New(env, [abort](const Napi::CallbackInfo &) { abort->store(true); }));
    return result;
}

}  // namespace llama_kv
