// Where a model's weights go: the devices it may use, how layers are split between
// them, and tensor buffer-type overrides (llama.cpp's -ot / --n-cpu-moe). Parsed and
// checked on the JS thread; owns the storage llama_model_params points into, so it
// must outlive the load.
#pragma once

#include "ggml-backend.h"
#include "llama.h"

#include <napi.h>

#include <string>
#include <vector>

namespace llama_kv {

struct model_placement {
    bool                                           all_devices = true;  // no "devices" given: llama.cpp's default
    std::vector<ggml_backend_dev_t>                devices;             // null-terminated when used
    std::vector<float>                             tensor_split;        // empty: llama.cpp's default
    size_t                                         tensor_split_given = 0;  // entries the caller gave
    std::vector<std::string>                       override_patterns;
    std::vector<ggml_backend_buffer_type_t>        override_types;
    std::vector<llama_model_tensor_buft_override>  overrides;           // built by apply()

    // Reads { devices?: string[], tensorSplit?: number[], tensorOverrides?: [{ pattern, bufferType }] }.
    // Throws INVALID_CONFIG naming the field and the accepted values.
    static model_placement parse(Napi::Env env, Napi::Object params);

    // Puts remote devices (rpcServers) at the front of the offload list, as llama.cpp's own
    // default does to keep network transfers low. Returns why the result is not valid ("" if it is).
    std::string add_remote(const std::vector<ggml_backend_dev_t> & remote);

    // Points `mp` at this object's storage.
    void apply(llama_model_params & mp);
};

}  // namespace llama_kv
