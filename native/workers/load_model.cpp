#include "load_model.h"

#include "../addon_data.h"
#include "../backends.h"
#include "../errors.h"
#include "abortable.h"
#include "../handles.h"
#include "../model.h"
#include "../placement.h"
#include "../rpc_client.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace llama_kv {

namespace {

struct load_params {
    std::string path;
    int32_t     n_gpu_layers  = 0;
    bool        use_mmap      = true;
    bool        use_mlock     = false;
    bool        vocab_only    = false;
    bool        check_tensors = false;
    bool        no_alloc      = false;  // dry run: read metadata, simulate allocations, no weights
    bool        extra_bufts   = true;   // the CPU backend's extra buffer types (repacked layouts, AMX)
    model_placement placement;
    std::vector<std::string> rpc_servers;     // host:port, connected in Execute
    uint32_t                 rpc_timeout_ms = 0;
};

class load_model_worker : public abortable_progress_worker {
  public:
    load_model_worker(Napi::Function on_progress, load_params params, std::shared_ptr<std::atomic<bool>> abort) :
        abortable_progress_worker(on_progress, "llama-kv:loadModel", std::move(abort)),
        params_(std::move(params)) {}

  protected:
    void Execute(const ExecutionProgress & progress) override {
        struct callback_state {
            const ExecutionProgress * progress;
            std::atomic<bool> *       abort;
            float                     last;
        } state{ &progress, abort_.get(), -1.0f };

        if (!params_.rpc_servers.empty()) {
            // Network: a server that is slow to answer holds this worker, never the JS thread.
            rpc_connection remote = rpc_connect(params_.rpc_servers, params_.rpc_timeout_ms);
            if (!remote.error.empty()) {
                fail_ = { code::backend_unavailable, remote.error };
                return;
            }
            remote_devices_ = remote.devices;
            if (std::string problem = params_.placement.add_remote(remote.devices); !problem.empty()) {
                fail_ = { code::invalid_config, problem };
                return;
            }
        }

        llama_model_params mp          = llama_model_default_params();
        mp.n_gpu_layers                = params_.n_gpu_layers;
        mp.load_mode                   = params_.use_mmap ? (params_.use_mlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP)
                                                          : (params_.use_mlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE);
        mp.vocab_only                  = params_.vocab_only;
        mp.check_tensors               = params_.check_tensors;
        mp.no_alloc                    = params_.no_alloc;
        mp.use_extra_bufts             = params_.extra_bufts;
        params_.placement.apply(mp);
        if (params_.no_alloc) {
            mp.load_mode = LLAMA_LOAD_MODE_NONE;  // as llama.cpp's own fit does: nothing is mapped or read
        }
        mp.progress_callback_user_data = &state;
        mp.progress_callback           = [](float p, void * user_data) -> bool {
            auto * s = static_cast<callback_state *>(user_data);
            if (s->abort->load()) {
                return false;
            }
            // Sent even without a JS progress callback (a no-op then): a call that fails in
            // OnProgress means the environment is being torn down, and aborts the load.
            if (p - s->last >= 0.01f || (p >= 1.0f && s->last < 1.0f)) {
                s->last = p;
                s->progress->Send(&p, 1);
            }
            return true;
        };

        log_capture_reset();
        llama_model * model = nullptr;
        try {
            model = llama_model_load_from_file(params_.path.c_str(), mp);
        } catch (const std::exception & e) {
            log_capture_append(e.what());
        } catch (...) {
            log_capture_append("unknown C++ exception");
        }
        const std::string log_tail = log_capture_take();
        if (model != nullptr) {
            result_ = make_model_ptr(model);
            // The remote devices' memory after the weights went there, asked here and not on
            // the JS thread: the context memory guard counts against it.
            for (ggml_backend_dev_t dev : remote_devices_) {
                remote_memory entry{ ggml_backend_dev_name(dev), ggml_backend_dev_description(dev), 0, 0, false };
                entry.known = device_memory(dev, entry.free_bytes, entry.total_bytes);
                remote_memory_.push_back(std::move(entry));
            }
        } else if (abort_->load()) {
            fail_ = { code::aborted, "model loading was aborted" };
        } else {
            fail_ = { failure_code(code::model_load_failed, log_tail),
                      with_log("llama.cpp could not load the model from " + params_.path, log_tail) };
        }
    }

    void OnOK() override {
        outside_js([&] { settle(); });
    }

    void settle() {
        Napi::Env env = Env();
        if (reject_with_callback_error()) {
            return;  // a model that loaded anyway is freed with result_
        }
        if (fail_) {
            deferred_.Reject(make_error(env, fail_).Value());
            return;
        }
        try {
            auto handle = Napi::External<llama_model_ptr>::New(env, new llama_model_ptr(std::move(result_)),
                                                                [](Napi::Env, llama_model_ptr * p) { delete p; });
            napi_type_tag_object(env, handle, &model_handle_tag);
            Napi::Object model = addon_data::of(env)->model_ctor.New({ handle });
            if (!remote_memory_.empty()) {
                Napi::Array list = Napi::Array::New(env, remote_memory_.size());
                for (size_t i = 0; i < remote_memory_.size(); ++i) {
                    const remote_memory & r = remote_memory_[i];
                    Napi::Object d = Napi::Object::New(env);
                    d.Set("name", r.name);
                    d.Set("endpoint", r.endpoint);
                    if (r.known) {
                        d.Set("freeBytes", static_cast<double>(r.free_bytes));
                        d.Set("totalBytes", static_cast<double>(r.total_bytes));
                    }
                    list.Set(static_cast<uint32_t>(i), d);
                }
                model.Set("remoteDevices", list);
            }
            deferred_.Resolve(model);
        } catch (const Napi::Error & e) {
            deferred_.Reject(e.Value());
        }
    }

  private:
    struct remote_memory {
        std::string name;
        std::string endpoint;  // the device's description: its server's host:port
        size_t      free_bytes  = 0;
        size_t      total_bytes = 0;
        bool        known       = false;
    };

    load_params                     params_;
    llama_model_ptr                 result_;
    std::vector<ggml_backend_dev_t> remote_devices_;  // of rpcServers, connected in Execute
    std::vector<remote_memory>      remote_memory_;   // their memory once the model is loaded
};

// An optional parameter: `fallback` when absent, an INVALID_ARGUMENT error when present
// with the wrong type or out of range (never a silent default or a wrapped integer).
bool get_or(Napi::Env env, Napi::Object obj, const char * key, bool fallback) {
    Napi::Value v = obj.Get(key);
    if (v.IsUndefined()) {
        return fallback;
    }
    if (!v.IsBoolean()) {
        throw_error(env, code::invalid_argument, std::string("load parameter ") + key + " must be a boolean");
    }
    return v.As<Napi::Boolean>().Value();
}

int32_t get_or(Napi::Env env, Napi::Object obj, const char * key, int32_t fallback, int32_t min, int32_t max) {
    Napi::Value v = obj.Get(key);
    if (v.IsUndefined()) {
        return fallback;
    }
    if (!v.IsNumber()) {
        throw_error(env, code::invalid_argument, std::string("load parameter ") + key + " must be a number");
    }
    return static_cast<int32_t>(checked_integer(env, v.As<Napi::Number>().DoubleValue(), min, max, std::string("load parameter ") + key));
}

}  // namespace

Napi::Value load_model(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject()) {
        throw_error(env, code::invalid_argument, "loadModel(path: string, params: object, onProgress?: function)");
    }
    load_params  params;
    Napi::Object obj     = info[1].As<Napi::Object>();
    params.path          = info[0].As<Napi::String>().Utf8Value();
    params.n_gpu_layers  = get_or(env, obj, "gpuLayers", 0, -1, INT32_MAX);
    params.use_mmap      = get_or(env, obj, "useMmap", true);
    params.use_mlock     = get_or(env, obj, "useMlock", false);
    params.vocab_only    = get_or(env, obj, "vocabOnly", false);
    params.check_tensors = get_or(env, obj, "checkTensors", false);
    params.no_alloc      = get_or(env, obj, "noAlloc", false);
    params.extra_bufts   = get_or(env, obj, "extraBufferTypes", true);
    backends_load({});
    if (!backends_have_cpu()) {
        throw_error(env, code::backend_unavailable,
                    "no CPU backend was found beside the addon in " + backends_addon_dir() +
                        " (libggml-cpu*): the installation is incomplete; reinstall llama-kv");
    }
    params.placement = model_placement::parse(env, obj);
    Napi::Value rpc  = obj.Get("rpcServers");
    if (rpc.IsArray()) {
        Napi::Array list = rpc.As<Napi::Array>();
        for (uint32_t i = 0; i < list.Length(); ++i) {
            Napi::Value v = list.Get(i);
            const std::string endpoint = v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
            if (endpoint.empty() || endpoint.find('\0') != std::string::npos) {
                throw_error(env, code::invalid_config, "rpcServers[" + std::to_string(i) + "] must be a host:port string");
            }
            params.rpc_servers.push_back(endpoint);
        }
        if (!params.rpc_servers.empty()) {
            if (std::string problem = rpc_backend_problem(); !problem.empty()) {
                throw_error(env, code::backend_unavailable, "rpcServers needs ggml's RPC client: " + problem);
            }
        }
    } else if (!rpc.IsUndefined()) {
        throw_error(env, code::invalid_config, "rpcServers must be an array of host:port strings");
    }
    params.rpc_timeout_ms = static_cast<uint32_t>(get_or(env, obj, "rpcTimeoutMs", 0, 0, INT32_MAX));
    if (params.path.empty() || params.path.find('\0') != std::string::npos) {
        throw_error(env, code::invalid_argument, "model path must be a non-empty string without NUL bytes");
    }

    Napi::Function on_progress = progress_callback_or_noop(info, 2);

    auto  abort  = std::make_shared<std::atomic<bool>>(false);
    auto * worker = new load_model_worker(on_progress, std::move(params), abort);  // deleted by node-addon-api
    Napi::Object result = promise_with_abort(env, worker->promise(), abort);
    worker->Queue();
    return result;
}

}  // namespace llama_kv
