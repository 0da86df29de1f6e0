// Module init: registers the native classes and functions. Context-aware: all state
// lives in per-environment instance data.
#include "addon_data.h"
#include "backends.h"
#include "context.h"
#include "errors.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"
#include "logger.h"
#include "lora.h"
#include "model.h"
#include "workers/load_model.h"
#include "workers/quantize.h"

#include <mutex>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <string>
#include <vector>

namespace llama_kv {

namespace {

// Node finalizes a thread-safe function in its own env cleanup hook. Hooks run newest
// first, so one registered after the function is created runs before it, while the
// function is still valid: take the sink out of the process-wide registry there.
void release_sink(void * arg) {
    auto * data = static_cast<addon_data *>(arg);
    data->sink_hook = false;
    if (data->sink) {
        logger_remove(data->sink);
        data->sink.reset();
    }
}

// setLogger(fn: (level, message) => void, minLevel: number) | setLogger(null)
Napi::Value set_logger(const Napi::CallbackInfo & info) {
    Napi::Env    env  = info.Env();
    addon_data * data = addon_data::of(env);
    if (data->sink_hook) {
        napi_remove_env_cleanup_hook(env, release_sink, data);
    }
    release_sink(data);
    if (info.Length() >= 2 && info[0].IsFunction() && info[1].IsNumber()) {
        data->sink = std::make_shared<log_sink>(env, info[0].As<Napi::Function>(), info[1].As<Napi::Number>().Int32Value());
        logger_add(data->sink);
        if (napi_add_env_cleanup_hook(env, release_sink, data) == napi_ok) {
            data->sink_hook = true;
        }
    }
    return env.Undefined();
}

Napi::Value set_log_level(const Napi::CallbackInfo & info) {
    addon_data * data = addon_data::of(info.Env());
    if (data->sink && info.Length() >= 1 && info[0].IsNumber()) {
        data->sink->set_level(info[0].As<Napi::Number>().Int32Value());
    }
    return info.Env().Undefined();
}

// Returns the allocator's free memory to the operating system (glibc's malloc_trim, over
// every arena): what a leak measurement reads RSS after. False where there is no such call.
Napi::Value trim_heap(const Napi::CallbackInfo & info) {
#if defined(__GLIBC__)
    malloc_trim(0);
    return Napi::Boolean::New(info.Env(), true);
#else
    return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Value system_info(const Napi::CallbackInfo & info) {
    Napi::Env    env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    backends_load({});
    {
        // llama_print_system_info() rebuilds a static string: serialize callers from all environments.
        static std::mutex           mutex;
        std::lock_guard<std::mutex> lock(mutex);
        out.Set("llamaSystemInfo", std::string(llama_print_system_info()));
    }
    out.Set("supportsMmap", llama_supports_mmap());
    out.Set("supportsMlock", llama_supports_mlock());
    // llama_supports_gpu_offload() would load backends from the current directory when
    // none is registered: ours are loaded above; do not ask when none loaded.
    out.Set("supportsGpuOffload", ggml_backend_reg_count() > 0 && llama_supports_gpu_offload());
    out.Set("maxParallelSequences", static_cast<double>(llama_max_parallel_sequences()));
    return out;
}

const char * device_type_name(enum ggml_backend_dev_type type) {
    switch (type) {
        case GGML_BACKEND_DEVICE_TYPE_CPU:
            return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU:
            return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU:
            return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL:
            return "accel";
        default:
            return "other";
    }
}

// loadBackends(extraDirs: string[]): loads ggml's backends, once per process (see
// backends.h). Later calls, from any environment, change nothing.
Napi::Value load_backends(const Napi::CallbackInfo & info) {
    std::vector<std::string> dirs;
    if (info.Length() >= 1 && info[0].IsArray()) {
        Napi::Array list = info[0].As<Napi::Array>();
        for (uint32_t i = 0; i < list.Length(); ++i) {
            Napi::Value v = list.Get(i);
            if (v.IsString()) {
                dirs.push_back(v.As<Napi::String>().Utf8Value());
            }
        }
    }
    backends_load(dirs);
    return info.Env().Undefined();
}

// backendInfo(withMemory: boolean) -> { addonDir, hasCpu,
//   registries: [{ name, path, features: {k: v}, devices: [{ name, description, type, freeBytes, totalBytes, extraBufferTypes }] }],
//   attempts: [{ name, path, error }] }
Napi::Value backend_info(const Napi::CallbackInfo & info) {
    Napi::Env  env         = info.Env();
    const bool with_memory = info.Length() >= 1 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
    backends_load({});
    Napi::Array registries = Napi::Array::New(env);
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        Napi::Object       r   = Napi::Object::New(env);
        Napi::Object       f   = Napi::Object::New(env);
        r.Set("name", ggml_backend_reg_name(reg));
        r.Set("path", backend_module_path(reg));
        auto * get_features = reinterpret_cast<ggml_backend_get_features_t>(
            ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features"));
        if (get_features != nullptr) {
            for (ggml_backend_feature * feat = get_features(reg); feat != nullptr && feat->name != nullptr; ++feat) {
                f.Set(feat->name, feat->value != nullptr ? feat->value : "");
            }
        }
        r.Set("features", f);
        Napi::Array devices = Napi::Array::New(env);
        for (size_t j = 0; j < ggml_backend_reg_dev_count(reg); ++j) {
            ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, j);
            Napi::Object       d   = Napi::Object::New(env);
            size_t             free_bytes = 0, total_bytes = 0;
            if (with_memory) {  // a GPU backend may create a driver context on the device to answer
                ggml_backend_dev_memory(dev, &free_bytes, &total_bytes);
            }
            d.Set("name", ggml_backend_dev_name(dev));
            d.Set("description", ggml_backend_dev_description(dev));
            d.Set("type", device_type_name(ggml_backend_dev_type(dev)));
            d.Set("freeBytes", static_cast<double>(free_bytes));
            d.Set("totalBytes", static_cast<double>(total_bytes));
            // The CPU backend's extra buffer types (repacked weight layouts, AMX): where
            // llama.cpp puts a copy of the weights they support, unless use_extra_bufts is off.
            Napi::Array extra = Napi::Array::New(env);
            auto *      get_extra = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(
                ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts"));
            if (get_extra != nullptr && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) {
                for (ggml_backend_buffer_type_t * t = get_extra(dev); t != nullptr && *t != nullptr; ++t) {
                    extra.Set(extra.Length(), ggml_backend_buft_name(*t));
                }
            }
            d.Set("extraBufferTypes", extra);
            devices.Set(static_cast<uint32_t>(j), d);
        }
        r.Set("devices", devices);
        registries.Set(static_cast<uint32_t>(i), r);
    }
    Napi::Array attempts = Napi::Array::New(env);
    for (const backend_attempt & a : backends_attempts()) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", a.name);
        o.Set("path", a.path);
        o.Set("error", a.error.empty() ? env.Null() : Napi::String::New(env, a.error));
        attempts.Set(attempts.Length(), o);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("addonDir", backends_addon_dir());
    out.Set("hasCpu", backends_have_cpu());
#ifdef LLAMA_KV_CPU_VARIANT_NAME
    out.Set("cpuVariantBuilt", LLAMA_KV_CPU_VARIANT_NAME);  // the ggml variant a single libggml-cpu was compiled as
#else
    out.Set("cpuVariantBuilt", env.Null());
#endif
    out.Set("registries", registries);
    out.Set("attempts", attempts);
    return out;
}

void backend_init_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        logger_install();  // before anything can log
        // llama_backend_init() without its last step: with no backend registered yet it
        // would call ggml_backend_load_all(), which loads libggml-*.so from node's folder
        // and the current directory. Backends come from backends_load() only.
        ggml_time_init();
        ggml_free(ggml_init({ 0, nullptr, false }));  // fills ggml's f16 tables
    });
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
    backend_init_once();
    auto * data = new addon_data();  // owned by the environment, deleted at its teardown
    env.SetInstanceData(data);

    Napi::Function model_ctor   = model_wrap::define(env);
    Napi::Function context_ctor = context_wrap::define(env);
    data->model_ctor            = Napi::Persistent(model_ctor);
    data->context_ctor          = Napi::Persistent(context_ctor);
    Napi::Function lora_ctor    = lora_wrap::define(env);
    data->lora_ctor             = Napi::Persistent(lora_ctor);

    exports.Set("NativeModel", model_ctor);
    exports.Set("NativeContext", context_ctor);
    exports.Set("NativeLora", lora_ctor);
    exports.Set("loadLora", Napi::Function::New(env, load_lora, "loadLora"));
    exports.Set("quantize", Napi::Function::New(env, quantize_model, "quantize"));
    exports.Set("loadModel", Napi::Function::New(env, load_model, "loadModel"));
    exports.Set("setLogger", Napi::Function::New(env, set_logger, "setLogger"));
    exports.Set("setLogLevel", Napi::Function::New(env, set_log_level, "setLogLevel"));
    exports.Set("systemInfo", Napi::Function::New(env, system_info, "systemInfo"));
    exports.Set("trimHeap", Napi::Function::New(env, trim_heap, "trimHeap"));
    exports.Set("loadBackends", Napi::Function::New(env, load_backends, "loadBackends"));
    exports.Set("backendInfo", Napi::Function::New(env, backend_info, "backendInfo"));
    exports.Set("llamaVersion", Napi::String::New(env, llama_version()));
    return exports;
}

}  // namespace llama_kv

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    return llama_kv::init(env, exports);
}

NODE_API_MODULE(llama_kv, Init)
