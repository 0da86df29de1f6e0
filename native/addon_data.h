// Per-environment state (the addon may be loaded in several worker threads).
#pragma once

#include "logger.h"

#include <napi.h>

#include <memory>
#include <mutex>
#include <vector>

namespace llama_kv {

struct context_state;

struct addon_data {
    Napi::FunctionReference   model_ctor;
    Napi::FunctionReference   context_ctor;
    Napi::FunctionReference   lora_ctor;
    std::shared_ptr<log_sink> sink;
    bool                      sink_hook = false;  // an env cleanup hook releases the sink first

    // Live contexts, so that teardown of the environment aborts work in flight.
    std::mutex                               live_mutex;
    std::vector<std::weak_ptr<context_state>> live_contexts;

    void track(const std::shared_ptr<context_state> & state);
    ~addon_data();

    static addon_data * of(Napi::Env env) { return env.GetInstanceData<addon_data>(); }
};

// Type tag for Externals that carry our handles between native functions.
extern const napi_type_tag model_handle_tag;

}  // namespace llama_kv
