// ggml's RPC client (libggml-rpc beside the addon, with vendor patch 0010): the servers a
// model load names (rpcServers), connected off the JS thread, and the devices they bring.
// ggml keeps one connection and one device list per endpoint for the whole process. The
// devices are never registered with ggml's device registry: a later load without
// rpcServers must not offload to them, and llama.cpp's default device choice would.
#pragma once

#include "ggml-backend.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llama_kv {

struct rpc_connection {
    std::vector<ggml_backend_dev_t> devices;  // every device of every endpoint, in order
    std::string                     error;    // empty on success: which endpoint failed, and ggml's reason
};

// Loads libggml-rpc from the addon's folder (once per process; after backends_load) and
// says why it cannot be used, or "" when it can.
std::string rpc_backend_problem();

// Sets the client sockets' send/receive timeout (0: none, for every RPC connection of the
// process), then connects to each endpoint not yet connected and lists the devices.
// Blocking (network): call off the JS thread. Never throws.
rpc_connection rpc_connect(const std::vector<std::string> & endpoints, uint32_t timeout_ms);

// The devices connected so far in this process, in connection order (getBackends()).
std::vector<ggml_backend_dev_t> rpc_connected_devices();

// Whether a device is a remote one (ggml's RPC backend).
bool rpc_is_remote(ggml_backend_dev_t dev);

// ggml_backend_dev_memory, which asks the server for a remote device: false (and zeros)
// when that fails instead of throwing.
bool device_memory(ggml_backend_dev_t dev, size_t & free_bytes, size_t & total_bytes);

}  // namespace llama_kv
