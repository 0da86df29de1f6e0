#include "create_context.h"

#include "../context_create.h"
#include "../errors.h"

#include <string>
#include <utility>

namespace llama_kv {

namespace {

// Marks the handles prepareContext resolves with: NativeContext adopts nothing else.
const napi_type_tag prepared_context_tag = { 0x6c6c616d614b5601ULL, 0x7072657061726503ULL };

struct prepared_context {
    std::shared_ptr<context_state> state;  // null once a NativeContext took it
};

class create_context_worker : public Napi::AsyncWorker {
  public:
    create_context_worker(Napi::Env env, context_request request) :
        Napi::AsyncWorker(env, "llama-kv:createContext"),
        deferred_(Napi::Promise::Deferred::New(env)),
        request_(std::move(request)) {}

    Napi::Promise promise() const { return deferred_.Promise(); }

  protected:
    void Execute() override { fail_ = create_llama_context(request_); }

    void OnOK() override {
        outside_js([&] { settle(); });
    }

    void OnError(const Napi::Error & e) override {
        outside_js([&] { deferred_.Reject(escaped_error(Env(), e).Value()); });
    }

  private:
    void settle() {
        Napi::Env env = Env();
        if (fail_) {
            request_.state.reset();  // frees what llama.cpp made before it failed
            deferred_.Reject(make_error(env, fail_).Value());
            return;
        }
        try {
            // Not adopted (the JS side failed before the constructor): the GC frees it.
            auto handle = Napi::External<prepared_context>::New(env, new prepared_context{ std::move(request_.state) },
                                                                [](Napi::Env, prepared_context * p) { delete p; });
            napi_type_tag_object(env, handle, &prepared_context_tag);
            deferred_.Resolve(handle);
        } catch (const Napi::Error & e) {
            deferred_.Reject(e.Value());
        }
    }

    Napi::Promise::Deferred deferred_;
    context_request         request_;
    failure                 fail_;
};

}  // namespace

Napi::Value prepare_context(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2) {
        throw_error(env, code::invalid_argument, "prepareContext(model, params)");
    }
    context_request request = read_context_request(env, info[0], info[1]);
    auto *          worker  = new create_context_worker(env, std::move(request));  // deleted by node-addon-api
    Napi::Promise   promise = worker->promise();
    worker->Queue();
    return promise;
}

std::shared_ptr<context_state> take_prepared_context(Napi::Env env, Napi::Value handle) {
    bool tagged = false;
    if (handle.IsExternal()) {
        napi_check_object_type_tag(env, handle, &prepared_context_tag, &tagged);
    }
    if (!tagged) {
        throw_error(env, code::invalid_argument, "NativeContext(model, params, prepared): prepared must come from prepareContext");
    }
    prepared_context * prepared = handle.As<Napi::External<prepared_context>>().Data();
    if (!prepared->state) {
        throw_error(env, code::invalid_argument, "this prepared context was already taken by a NativeContext");
    }
    return std::move(prepared->state);
}

}  // namespace llama_kv
