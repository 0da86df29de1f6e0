// Creates a llama context off the JS thread: its allocations and graph reservation (on a GPU
// a driver's work, over RPC round trips to the servers) run on a worker; NativeContext
// then adopts the result.
#pragma once

#include "../context_state.h"

#include <napi.h>

#include <memory>

namespace llama_kv {

// JS: prepareContext(model: NativeModel, params: object) -> Promise<PreparedContext>, the
// parameters read and checked as NativeContext(model, params) checks them (an error is
// thrown at once); the promise rejects as NativeContext's constructor would throw.
Napi::Value prepare_context(const Napi::CallbackInfo & info);

// The state a prepareContext result holds, taken out of it (once: INVALID_ARGUMENT for
// anything else, or for a result already taken).
std::shared_ptr<context_state> take_prepared_context(Napi::Env env, Napi::Value handle);

}  // namespace llama_kv
