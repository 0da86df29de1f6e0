#include "backends.h"

#include "errors.h"

#include <algorithm>
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
    static auto * s = new backend_state();  // never destroyed: worker threads may read it during exit
    return *s;
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

// Minimal dlopen/dlsym, to read a CPU variant's score before choosing which one to load.
void * open_library(const fs::path & path) {
#ifdef _WIN32
    const UINT old = SetErrorMode(SEM_FAILCRITICALERRORS);
    HMODULE    h   = LoadLibraryW(path.wstring().c_str());
    SetErrorMode(old);
    return reinterpret_cast<void *>(h);
#else
    return dlopen(path.string().c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
}

void * library_symbol(void * handle, const char * name) {
#ifdef _WIN32
    return reinterpret_cast<void *>(GetProcAddress(static_cast<HMODULE>(handle), name));
#else
    return dlsym(handle, name);
#endif
}

void close_library(void * handle) {
#ifdef _WIN32
    FreeLibrary(static_cast<HMODULE>(handle));
#else
    dlclose(handle);
#endif
}

bool has_cpu_backend() {
    return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) != nullptr;
}

// Loads one library through ggml, recording the attempt; returns whether it registered.
bool load_backend_file(const std::string & name, const fs::path & file) {
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
    return reg != nullptr;
}

// The GPU backends of a folder, each name at most once per process: a second copy of a
// backend (a source build with CUDA and a CUDA package) would register its devices twice.
void try_gpu_backends(const fs::path & dir, std::vector<std::string> & loaded) {
    std::error_code ec;
    if (dir.empty() || !fs::is_directory(dir, ec)) {
        return;
    }
    for (const char * name : gpu_backend_names) {
        if (std::find(loaded.begin(), loaded.end(), name) != loaded.end()) {
            continue;
        }
        const fs::path file = dir / fs::u8path(std::string(library_prefix) + name + library_extension);
        if (fs::exists(file, ec) && load_backend_file(name, file)) {
            loaded.emplace_back(name);
        }
    }
}

// The CPU backend from our own folder: the variant (libggml-cpu-<variant>) with the best
// score for this CPU, else the single library of a build from source (libggml-cpu). As
// ggml's loader does, but only for the CPU and only in this folder.
void load_cpu_backend(const fs::path & dir) {
    const std::string prefix = std::string(library_prefix) + "cpu";
    std::error_code   ec;
    fs::path          best;
    int               best_score = 0;
    for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
         it.increment(ec)) {
        const fs::path    path = it->path();
        const std::string file = utf8(path.filename());
        if (file.rfind(prefix + "-", 0) != 0 || path.extension() != library_extension) {
            continue;
        }
        void * handle = open_library(path);
        if (handle == nullptr) {
            continue;
        }
        auto * score = reinterpret_cast<int (*)()>(library_symbol(handle, "ggml_backend_score"));
        const int s  = score != nullptr ? score() : 0;
        close_library(handle);
        if (s > best_score) {
            best_score = s;
            best       = path;
        }
    }
    if (best.empty()) {
        best = dir / fs::u8path(prefix + library_extension);
    }
    if (fs::exists(best, ec)) {
        load_backend_file("cpu", best);
    }
}

void load_all(const std::vector<std::string> & extra_dirs) {
    backend_state & s = state();
    const fs::path  addon_path = fs::u8path(module_of(reinterpret_cast<const void *>(&backends_load)));
    s.addon_dir                = addon_path.empty() ? std::string() : utf8(addon_path.parent_path());

    // GPU backends from the folders we were given (first match of a name wins), then from
    // our own; then the CPU backend from our own folder only. Never the current directory
    // or node's folder, where ggml_backend_load_all() would also look.
    std::vector<std::string> loaded;
    for (const std::string & dir : extra_dirs) {
        try_gpu_backends(fs::u8path(dir), loaded);
    }
    if (!s.addon_dir.empty()) {
        const fs::path own = fs::u8path(s.addon_dir);
        try_gpu_backends(own, loaded);
        load_cpu_backend(own);
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
