#include "lora.h"

#include "addon_data.h"
#include "errors.h"
#include "llama_internals.h"
#include "model.h"

#include <mutex>
#include <thread>
#include <vector>

namespace llama_kv {

namespace {

const napi_type_tag lora_handle_tag = { 0x6c6c616d614b5601ULL, 0x6c6f726100000001ULL };
// Marks the JS objects that a lora_wrap constructor completed on: unwrap trusts this tag,
// not the prototype chain, which JS can change (Object.setPrototypeOf).
const napi_type_tag lora_instance_tag = { 0x6c6c616d614b5601ULL, 0x6c6f726100000002ULL };


std::string meta_by_index(const llama_adapter_lora * a, int32_t i, bool key) {
    std::vector<char> buf(256);
    for (int attempt = 0; attempt < 2; ++attempt) {
        const int32_t n = key ? llama_adapter_meta_key_by_index(a, i, buf.data(), buf.size())
                              : llama_adapter_meta_val_str_by_index(a, i, buf.data(), buf.size());
        if (n < 0) {
            return {};
        }
        if (static_cast<size_t>(n) < buf.size()) {
            return std::string(buf.data(), static_cast<size_t>(n));
        }
        buf.resize(static_cast<size_t>(n) + 1);
    }
    return {};
}

class load_lora_worker : public Napi::AsyncWorker {
  public:
    load_lora_worker(Napi::Env env, llama_model_ptr model, std::string path) :
        Napi::AsyncWorker(env, "llama-kv:loadLora"),
        deferred_(Napi::Promise::Deferred::New(env)),
        model_(std::move(model)),
        path_(std::move(path)) {}

    Napi::Promise promise() const { return deferred_.Promise(); }

  protected:
    void Execute() override {
        log_capture_reset();
        llama_adapter_lora * adapter = nullptr;
        try {
            std::unique_lock<std::shared_mutex> lock(adapter_set_mutex());
            adapter = llama_adapter_lora_init(model_.get(), path_.c_str());
        } catch (const std::exception & e) {
            log_capture_append(e.what());
        } catch (...) {
            log_capture_append("unknown C++ exception");
        }
        if (adapter == nullptr) {
            const std::string log_tail = log_capture_take();
            code_  = failure_code(code::lora_load_failed, log_tail);
            error_ = with_log("llama.cpp could not load the LoRA adapter " + path_, log_tail);
            SetError(error_);
            return;
        }
        result_ = std::make_shared<lora_handle>(adapter, model_);
    }

    void OnOK() override {
        outside_js([&] {
            Napi::Env env    = Env();
            auto      handle = Napi::External<lora_ptr>::New(env, new lora_ptr(std::move(result_)),
                                                             [](Napi::Env, lora_ptr * p) { delete p; });
            napi_type_tag_object(env, handle, &lora_handle_tag);
            try {
                deferred_.Resolve(addon_data::of(env)->lora_ctor.New({ handle }));
            } catch (const Napi::Error & e) {
                deferred_.Reject(e.Value());
            }
        });
    }

    void OnError(const Napi::Error & e) override {
        outside_js([&] { deferred_.Reject((error_.empty() ? escaped_error(Env(), e) : make_error(Env(), code_, error_)).Value()); });
    }

  private:
    Napi::Promise::Deferred deferred_;
    llama_model_ptr         model_;
    std::string             path_;
    lora_ptr                result_;
    std::string             code_ = code::lora_load_failed;
    std::string             error_;
};

void free_adapter(llama_adapter_lora * adapter) {
    std::unique_lock<std::shared_mutex> lock(adapter_set_mutex());
    llama_adapter_lora_free(adapter);
}

}  // namespace

std::shared_mutex & adapter_set_mutex() {
    static auto * m = new std::shared_mutex();  // never destroyed: a free may run during exit
    return *m;
}

lora_handle::lora_handle(llama_adapter_lora * a, llama_model_ptr m) : adapter(a), model(std::move(m)) {
    buffers = lora_buffers(a);
    for (const auto & b : buffers) {
        bytes += b.second;
    }
}

// Frees the adapter before `model` is released. The last reference is often dropped on
// the JS thread: when an adapter load elsewhere holds the lock, the free waits on its own
// thread (with the model kept alive) instead of stalling the event loop.
lora_handle::~lora_handle() {
    std::unique_lock<std::shared_mutex> lock(adapter_set_mutex(), std::try_to_lock);
    if (lock.owns_lock()) {
        llama_adapter_lora_free(adapter);
        return;
    }
    try {
        std::thread([adapter = adapter, model = model]() { free_adapter(adapter); }).detach();
    } catch (...) {
        free_adapter(adapter);  // no thread to be had: wait here
    }
}

Napi::Function lora_wrap::define(Napi::Env env) {
    return DefineClass(env, "NativeLora",
                       {
                           InstanceMethod<&lora_wrap::metadata>("metadata"),
                           InstanceMethod<&lora_wrap::dispose>("dispose"),
                           InstanceAccessor<&lora_wrap::disposed>("disposed"),
                       });
}

lora_wrap::lora_wrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<lora_wrap>(info) {
    Napi::Env env    = info.Env();
    bool      tagged = false;
    if (info.Length() == 1 && info[0].IsExternal()) {
        napi_check_object_type_tag(env, info[0], &lora_handle_tag, &tagged);
    }
    if (!tagged) {
        throw_error(env, code::invalid_argument, "NativeLora cannot be constructed directly; use model.loadLora()");
    }
    auto * handle = info[0].As<Napi::External<lora_ptr>>().Data();
    if (handle == nullptr || !*handle) {
        throw_error(env, code::disposed, "the adapter handle was already taken");
    }
    lora_           = std::move(*handle);
    env_            = env;
    external_bytes_ = static_cast<int64_t>(lora_->bytes);
    Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
    napi_type_tag_object(env, info.This(), &lora_instance_tag);
}

lora_wrap::~lora_wrap() {
    release_external_memory();
}

void lora_wrap::release_external_memory() {
    if (external_bytes_ != 0 && env_ != nullptr) {
        napi_adjust_external_memory(env_, -external_bytes_, nullptr);
    }
    external_bytes_ = 0;
}

lora_ptr lora_wrap::lora(Napi::Env env) const {
    if (!lora_) {
        throw_error(env, code::disposed, "this LoRA adapter has been disposed; load it again to use it");
    }
    return lora_;
}

lora_wrap * lora_wrap::unwrap(Napi::Env env, Napi::Value value) {
    bool tagged = false;
    if (value.IsObject()) {
        napi_check_object_type_tag(env, value, &lora_instance_tag, &tagged);
    }
    if (!tagged) {  // not one of ours, e.g. Object.create(NativeLora.prototype) or another class's object
        throw_error(env, code::invalid_argument, "expected a LoRA adapter from model.loadLora()");
    }
    return lora_wrap::Unwrap(value.As<Napi::Object>());
}

// metadata() -> { alpha, sizeBytes, tensorPairs, invocationTokens, kv: { key: value } }
Napi::Value lora_wrap::metadata(const Napi::CallbackInfo & info) {
    Napi::Env          env = info.Env();
    lora_ptr           l   = lora(env);
    const auto *       a   = l->adapter;
    const lora_counts  c   = lora_counts_of(a);
    Napi::Object       out = Napi::Object::New(env);
    out.Set("alpha", static_cast<double>(c.alpha));
    out.Set("sizeBytes", static_cast<double>(l->bytes));
    out.Set("tensorPairs", static_cast<double>(c.pairs));
    out.Set("invocationTokens", static_cast<double>(llama_adapter_get_alora_n_invocation_tokens(a)));
    Napi::Object kv = Napi::Object::New(env);
    const int32_t n = llama_adapter_meta_count(a);
    for (int32_t i = 0; i < n; ++i) {
        kv.Set(meta_by_index(a, i, true), meta_by_index(a, i, false));
    }
    out.Set("kv", kv);
    return out;
}

// Releases this wrapper's reference: the adapter is freed now, or when the last context
// using it lets it go.
Napi::Value lora_wrap::dispose(const Napi::CallbackInfo & info) {
    lora_.reset();
    release_external_memory();
    return info.Env().Undefined();
}

Napi::Value lora_wrap::disposed(const Napi::CallbackInfo & info) {
    return Napi::Boolean::New(info.Env(), !lora_);
}

Napi::Value load_lora(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsString()) {
        throw_error(env, code::invalid_argument, "loadLora(model: NativeModel, path: string)");
    }
    llama_model_ptr   model = model_wrap::unwrap(env, info[0])->model(env);
    const std::string path  = info[1].As<Napi::String>().Utf8Value();
    if (path.empty() || path.find('\0') != std::string::npos) {
        throw_error(env, code::invalid_argument, "adapter path must be a non-empty string without NUL bytes");
    }
    if (model_is_dry_run(model.get()) || !model_has_weights(model.get())) {
        throw_error(env, code::invalid_argument, "LoRA adapters need a model loaded with its weights (not vocabOnly)");
    }
    auto * worker = new load_lora_worker(env, std::move(model), path);  // freed by node-addon-api
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
}

}  // namespace llama_kv
