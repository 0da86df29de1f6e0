// llama-kv-rpc-server: ggml's RPC server (ggml_backend_rpc_start_server, as llama.cpp's
// tools/rpc/rpc-server.cpp runs it), started by `llama-kv rpc-server` (lib/cli/commands/
// rpc-server.ts), which validates the flags and owns the policy (loopback unless
// --allow-remote, the security warning). Backends are loaded from the folders of
// LLAMA_KV_BACKEND_PATH (the GPU packages) and this executable's own folder, never from the
// current directory. A separate process: nothing here can take a llama-kv host down.
//
//   llama-kv-rpc-server --host 127.0.0.1 --port 50052 --threads N [--device NAME]... [--cache DIR]
// Exit codes: 0 never (the server runs until killed), 1 when it cannot start, 2 for bad arguments.
#include "ggml-backend.h"
#include "ggml-rpc.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#ifdef _WIN32
#    ifndef WIN32_LEAN_AND_MEAN
#        define WIN32_LEAN_AND_MEAN
#    endif
#    include <windows.h>
#endif
#ifdef __linux__
#    include <csignal>
#    include <sys/prctl.h>
#    include <unistd.h>
#endif

namespace fs = std::filesystem;

namespace {

struct options {
    std::string              host    = "127.0.0.1";
    int                      port    = 50052;
    int                      threads = 1;
    std::vector<std::string> devices;
    std::string              cache;
};

int usage_error(const std::string & message) {
    std::fprintf(stderr, "llama-kv-rpc-server: %s\n", message.c_str());
    return 2;
}

bool parse_int(const char * text, int min, int max, int & out) {
    char *     end = nullptr;
    const long v   = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < min || v > max) {
        return false;
    }
    out = static_cast<int>(v);
    return true;
}

fs::path executable_dir() {
#ifdef _WIN32
    std::wstring path(MAX_PATH, L'\0');
    const DWORD  n = GetModuleFileNameW(nullptr, path.data(), static_cast<DWORD>(path.size()));
    path.resize(n);
    return fs::path(path).parent_path();
#else
    std::error_code ec;
    const fs::path  self = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path() : self.parent_path();
#endif
}

void load_backends() {
    const char * extra = std::getenv("LLAMA_KV_BACKEND_PATH");
#ifdef _WIN32
    const char separator = ';';
#else
    const char separator = ':';
#endif
    std::string dirs = extra != nullptr ? extra : "";
    size_t      start = 0;
    while (start <= dirs.size()) {
        const size_t end = dirs.find(separator, start);
        const std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
        std::error_code ec;
        if (!dir.empty() && fs::is_directory(fs::u8path(dir), ec)) {
            ggml_backend_load_all_from_path(dir.c_str());
        }
        if (end == std::string::npos) {
            break;
        }
        start = end + 1;
    }
    const fs::path own = executable_dir();
    if (!own.empty()) {
        ggml_backend_load_all_from_path(own.u8string().c_str());
    }
}

void list_devices() {
    std::fprintf(stderr, "available devices:\n");
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        size_t             free = 0, total = 0;
        ggml_backend_dev_memory(dev, &free, &total);
        std::fprintf(stderr, "  %s: %s (%zu MiB, %zu MiB free)\n", ggml_backend_dev_name(dev), ggml_backend_dev_description(dev),
                     total / 1024 / 1024, free / 1024 / 1024);
    }
}

}  // namespace

int main(int argc, char ** argv) {
#ifdef __linux__
    // Started by `llama-kv rpc-server`: end with it, even when it is killed with SIGKILL.
    if (const char * parent = std::getenv("LLAMA_KV_RPC_SERVER_PARENT")) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (std::to_string(getppid()) != parent) {
            return 1;  // the parent is already gone
        }
    }
#endif
    options opts;
    for (int i = 1; i < argc; i++) {
        const std::string arg  = argv[i];
        const char *      next = i + 1 < argc ? argv[i + 1] : nullptr;
        if (next == nullptr) {
            return usage_error(arg + " needs a value");
        }
        if (arg == "--host") {
            opts.host = next;
        } else if (arg == "--port") {
            if (!parse_int(next, 1, 65535, opts.port)) {
                return usage_error(std::string("--port must be in [1, 65535], not ") + next);
            }
        } else if (arg == "--threads") {
            if (!parse_int(next, 1, 1024, opts.threads)) {
                return usage_error(std::string("--threads must be in [1, 1024], not ") + next);
            }
        } else if (arg == "--device") {
            opts.devices.emplace_back(next);
        } else if (arg == "--cache") {
            opts.cache = next;
        } else {
            return usage_error("unknown argument " + arg);
        }
        i++;
    }

    load_backends();
    std::vector<ggml_backend_dev_t> devices;
    for (const std::string & name : opts.devices) {
        ggml_backend_dev_t dev = ggml_backend_dev_by_name(name.c_str());
        if (dev == nullptr) {
            std::fprintf(stderr, "llama-kv-rpc-server: unknown device %s\n", name.c_str());
            list_devices();
            return 1;
        }
        devices.push_back(dev);
    }
    // As llama.cpp's rpc-server: the accelerators, else the CPU.
    if (devices.empty()) {
        for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
            ggml_backend_dev_t dev = ggml_backend_dev_get(i);
            if (ggml_backend_dev_type(dev) != GGML_BACKEND_DEVICE_TYPE_CPU) {
                devices.push_back(dev);
            }
        }
    }
    if (devices.empty()) {
        if (ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)) {
            devices.push_back(cpu);
        }
    }
    if (devices.empty()) {
        std::fprintf(stderr, "llama-kv-rpc-server: no device: no CPU backend library was found beside %s\n", argv[0]);
        return 1;
    }
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("RPC");
    auto * start = reg != nullptr ? reinterpret_cast<decltype(ggml_backend_rpc_start_server) *>(
                                        ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_start_server"))
                                  : nullptr;
    if (start == nullptr) {
        std::fprintf(stderr, "llama-kv-rpc-server: ggml's RPC backend (ggml-rpc) was not found beside %s\n", argv[0]);
        return 1;
    }
    const std::string endpoint = opts.host + ":" + std::to_string(opts.port);
    std::fflush(stdout);
    // Returns only when it cannot serve (the address is in use or not this machine's).
    start(endpoint.c_str(), opts.cache.empty() ? nullptr : opts.cache.c_str(), static_cast<size_t>(opts.threads), devices.size(),
          devices.data());
    std::fprintf(stderr, "llama-kv-rpc-server: cannot serve on %s (is the port in use, or the address not this machine's?)\n",
                 endpoint.c_str());
    return 1;
}
