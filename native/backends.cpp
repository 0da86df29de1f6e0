#include "backends.h"

#include "errors.h"

#include <filesystem>
#include <mutex>
#include <system_error>

#ifdef _WIN32
#    ifndef WIN32_LEAN_AND_MEAN
#        define WIN32_LEAN_AND_MEAN
#    endif
#    include <windows.h>
#else
#    include <dlfcn.h>
#endif

namespace fs = std::filesystem;

namespace llama_kv {

namespace {

struct backend_state {
    std::string                  addon_dir;
    std::vector<backend_attempt> attempts;
    bool                         have_cpu = false;
};

backend_state & state() {
    static backend_state s;
    return s;
}

// GPU backends tried by name, in every folder, so that a failure is recorded with its
// reason (ggml's own folder scan is silent in release builds).
constexpr const char * gpu_backend_names[] = { "cuda", "hip", "vulkan", "metal" };

#ifdef _WIN32
constexpr const char * library_prefix    = "ggml-";
constexpr const char * library_extension = ".dll";
#else
constexpr const char * library_prefix    = "libggml-";
constexpr const char * library_extension = ".so";  // ggml's choice on macOS too
#endif

std::string utf8(const fs::path & p) {
#if defined(__cpp_lib_char8_t)
    const auto s = p.u8string();
    return std::string(s.begin(), s.end());
#else
    return p.u8string();
#endif
}

// The file that holds `address` (a function or static of a loaded library).
std::string module_of(const void * address) {
#ifdef _WIN32
    HMODULE module = nullptr;
    if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            static_cast<LPCWSTR>(address), &module)) {
        return {};
    }
    std::wstring buffer(32768, L'\0');
    const DWORD  n = GetModuleFileNameW(module, buffer.data(), static_cast<DWORD>(buffer.size()));
    if (n == 0) {
        return {};
    }
    buffer.resize(n);
    return utf8(fs::path(buffer));
#else
    Dl_info info{};
    if (dladdr(address, &info) == 0 || info.dli_fname == nullptr) {
        return {};
    }
    return info.dli_fname;
#endif
}

bool has_cpu_backend() {
    return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) != nullptr;
}

void try_gpu_backends(const fs::path & dir) {
    std::error_code ec;
    if (dir.empty() || !fs::is_directory(dir, ec)) {
        return;
    }
    for (const char * name : gpu_backend_names) {
        const fs::path file = dir / fs::u8path(std::string(library_prefix) + name + library_extension);
        if (!fs::exists(file, ec)) {
            continue;
        }
        backend_attempt attempt{ name, utf8(file), {} };
        log_capture_reset();
        ggml_backend_reg_t reg = nullptr;
        try {
            reg = ggml_backend_load(attempt.path.c_str());
        } catch (const std::exception & e) {  // a backend's initialisation that throws
            log_capture_append(e.what());
        } catch (...) {
            log_capture_append("unknown exception");
        }
        if (reg == nullptr) {
            attempt.error = log_capture_take();
            if (attempt.error.empty()) {
                attempt.error = "the library loaded but is not supported on this system (its score is 0)";
            }
        }
        state().attempts.push_back(std::move(attempt));
    }
}

void load_all(const std::vector<std::string> & extra_dirs) {
    backend_state & s = state();
    const fs::path  addon_path = fs::u8path(module_of(reinterpret_cast<const void *>(&backends_load)));
    s.addon_dir                = addon_path.empty() ? std::string() : utf8(addon_path.parent_path());

    // GPU backends first (explicit folders, then our own), then everything else in our
    // own folder: the CPU backend, best variant first. Loading an already registered
    // backend again is a no-op in ggml.
    for (const std::string & dir : extra_dirs) {
        try_gpu_backends(fs::u8path(dir));
    }
    if (!s.addon_dir.empty()) {
        try_gpu_backends(fs::u8path(s.addon_dir));
        try {
            ggml_backend_load_all_from_path(s.addon_dir.c_str());
        } catch (...) {
            // a broken library in our own folder: whatever did load stays usable
        }
    }
    s.have_cpu = has_cpu_backend();
}

}  // namespace

void backends_load(const std::vector<std::string> & extra_dirs) {
    static std::once_flag once;
    std::call_once(once, [&] {
        try {
            load_all(extra_dirs);
        } catch (...) {
            state().have_cpu = has_cpu_backend();
        }
    });
}

const std::string & backends_addon_dir() {
    return state().addon_dir;
}

const std::vector<backend_attempt> & backends_attempts() {
    return state().attempts;
}

bool backends_have_cpu() {
    return state().have_cpu;
}

std::string backend_module_path(ggml_backend_reg_t reg) {
    return reg != nullptr ? module_of(reg) : std::string();
}

}  // namespace llama_kv
