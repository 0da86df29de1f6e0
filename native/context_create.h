// Creating a llama context from NativeContext's parameters, in two steps: the parameters
// read and checked on the JS thread, then the allocations (KV cache, compute buffers, the
// graph reservation; remote round trips over RPC) on any thread, without JS.
#pragma once

#include "context_state.h"
#include "errors.h"

#include <napi.h>

#include <memory>

namespace llama_kv {

// A context to create: its state (with the model; the parameters' abort callback points
// into it) and llama.cpp's parameters.
struct context_request {
    std::shared_ptr<context_state> state;
    llama_context_params           cp{};
    bool                           embeddings = false;
};

// Reads and checks NativeContext(model, params)'s arguments: INVALID_ARGUMENT,
// INVALID_CONFIG or CONTEXT_CREATE_FAILED (a model that cannot have this context) on JS.
context_request read_context_request(Napi::Env env, Napi::Value model_value, Napi::Value params_value);

// Creates the context of a request (any thread, no JS): request.state then holds it, with
// its engine and threadpools. On failure, the error (the caller drops request.state).
failure create_llama_context(context_request & request);

}  // namespace llama_kv
