#include "rpc_client.h"

#include "backends.h"

#include "ggml-rpc.h"
#include "llama.h"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace llama_kv {

namespace {

struct rpc_state {
    std::mutex                      mutex;  // guards devices; connections are serialized by ggml's own lock
    ggml_backend_reg_t              reg = nullptr;
    std::string                     problem;
    std::vector<ggml_backend_dev_t> devices;
};

rpc_state & state() {
    static auto * s = new rpc_state();  // never destroyed: worker threads may use it during exit
    return *s;
}

ggml_backend_reg_t rpc_reg() {
    static std::once_flag once;
    std::call_once(once, [] {
        backends_load({});
        rpc_state & s = state();
        if (ggml_backend_reg_by_name("RPC") == nullptr && !backends_load_library("rpc", s.problem)) {
            return;
        }
        s.reg = ggml_backend_reg_by_name("RPC");
    });
    return state().reg;
}

}  // namespace

std::string rpc_backend_problem() {
    return rpc_reg() != nullptr ? std::string() : state().problem;
}

rpc_connection rpc_connect(const std::vector<std::string> & endpoints, uint32_t timeout_ms) {
    rpc_connection     out;
    ggml_backend_reg_t reg = rpc_reg();
    if (reg == nullptr) {
        out.error = "the RPC client is not available: " + state().problem;
        return out;
    }
    auto * add_server  = reinterpret_cast<decltype(ggml_backend_rpc_add_server) *>(
        ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_add_server"));
    auto * set_timeout = reinterpret_cast<void (*)(unsigned)>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_set_timeout_ms"));
    if (add_server == nullptr || set_timeout == nullptr) {
        out.error = "this libggml-rpc lacks ggml_backend_rpc_add_server or ggml_backend_rpc_set_timeout_ms (vendor patch 0010)";
        return out;
    }
    set_timeout(timeout_ms);
    for (const std::string & endpoint : endpoints) {
        ggml_backend_reg_t server = nullptr;
        try {
            // Without vendor patch 0010 a server that is not there, refuses or answers garbage
            // aborts the process here; with it, the exchange throws.
            server = add_server(endpoint.c_str());
        } catch (const std::exception & e) {
            out.error = "RPC server " + endpoint + ": " + e.what();
            return out;
        } catch (...) {
            out.error = "RPC server " + endpoint + ": unknown exception";
            return out;
        }
        if (server == nullptr || ggml_backend_reg_dev_count(server) == 0) {
            out.error = "RPC server " + endpoint + " has no devices";
            return out;
        }
        // A damaged answer can claim any count: more than llama.cpp can split over is refused.
        if (ggml_backend_reg_dev_count(server) + out.devices.size() > llama_max_devices()) {
            out.error = "RPC server " + endpoint + " reports " + std::to_string(ggml_backend_reg_dev_count(server)) +
                        " devices: with the others, more than the " + std::to_string(llama_max_devices()) + " this build can use";
            return out;
        }
        std::lock_guard<std::mutex> lock(state().mutex);
        for (size_t i = 0; i < ggml_backend_reg_dev_count(server); ++i) {
            ggml_backend_dev_t dev = ggml_backend_reg_dev_get(server, i);
            if (std::find(out.devices.begin(), out.devices.end(), dev) != out.devices.end()) {
                out.error = "RPC server " + endpoint + " is listed twice";
                return out;
            }
            out.devices.push_back(dev);
            auto & known = state().devices;
            if (std::find(known.begin(), known.end(), dev) == known.end()) {
                known.push_back(dev);
            }
        }
    }
    return out;
}

std::vector<ggml_backend_dev_t> rpc_connected_devices() {
    std::lock_guard<std::mutex> lock(state().mutex);
    return state().devices;
}

bool rpc_is_remote(ggml_backend_dev_t dev) {
    ggml_backend_reg_t reg = dev != nullptr ? ggml_backend_dev_backend_reg(dev) : nullptr;
    return reg != nullptr && std::strcmp(ggml_backend_reg_name(reg), "RPC") == 0;
}

bool device_memory(ggml_backend_dev_t dev, size_t & free_bytes, size_t & total_bytes) {
    free_bytes = total_bytes = 0;
    try {
        ggml_backend_dev_memory(dev, &free_bytes, &total_bytes);
        return true;
    } catch (...) {  // a remote device whose server is gone (vendor patch 0010)
        free_bytes = total_bytes = 0;
        return false;
    }
}

}  // namespace llama_kv
