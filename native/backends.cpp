#include "backends.h"
#include "errors.h"
#include "ggml.h"
#include "library_file.h"
#include "llama.h"
#include "logger.h"
#include "rpc_client.h"

#include <algorithm>
#include <cmath>
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
    std::mutex                   attempts_mutex;  // a library loaded after start-up (rpc) appends from a worker
    std::vector<backend_attempt> attempts;
    bool                         have_cpu = false;
};

backend_state & state() {
    static auto * s = new backend_state();  // never destroyed: worker threads may read it during exit
    return *s;
}

void record_attempt(backend_attempt attempt) {
    std::lock_guard<std::mutex> lock(state().attempts_mutex);
    state().attempts.push_back(std::move(attempt));
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

// Loads one library through ggml, recording the attempt; returns whether it registered, and
// why not in `error` when given.
bool load_backend_file(const std::string & name, const fs::path & file, std::string * error = nullptr) {
    backend_attempt attempt{ name, utf8(file), {} };
    // A truncated ELF file would raise SIGBUS inside dlopen: refused here, with the reason.
    if (std::string problem = library_file_problem(file); !problem.empty()) {
        attempt.error = problem;
        if (error) *error = attempt.error;
        record_attempt(std::move(attempt));
        return false;
    }
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
    if (error) *error = attempt.error;
    record_attempt(std::move(attempt));
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
        if (std::string problem = library_file_problem(path); !problem.empty()) {
            // A truncated variant: the next best one is taken, and getBackends() can say why.
            record_attempt(backend_attempt{ "cpu", utf8(path), std::move(problem) });
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

bool backends_load_library(const std::string & name, std::string & error) {
    backends_load({});
    const std::string & dir = state().addon_dir;
    if (dir.empty()) {
        error = "the addon's folder is not known, so " + std::string(library_prefix) + name + " cannot be found";
        return false;
    }
    const fs::path  file = fs::u8path(dir) / fs::u8path(std::string(library_prefix) + name + library_extension);
    std::error_code ec;
    if (!fs::exists(file, ec)) {
        error = utf8(file) + " is missing (rebuild, or reinstall the platform package)";
        return false;
    }
    return load_backend_file(name, file, &error);
}

const std::string & backends_addon_dir() {
    return state().addon_dir;
}

std::vector<backend_attempt> backends_attempts() {
    std::lock_guard<std::mutex> lock(state().attempts_mutex);
    return state().attempts;
}

bool backends_have_cpu() {
    return state().have_cpu;
}

std::string backend_module_path(ggml_backend_reg_t reg) {
    return reg != nullptr ? module_of(reg) : std::string();
}

namespace {

const char * device_type_name(enum ggml_backend_dev_type type) {
    switch (type) {
        case GGML_BACKEND_DEVICE_TYPE_CPU:
            return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU:
            return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU:
            return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL:
            return "accel";
        default:
            return "other";
    }
}

}  // namespace

Napi::Value system_info(const Napi::CallbackInfo & info) {
    Napi::Env    env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    backends_load({});
    {
        // llama_print_system_info() rebuilds a static string: serialize callers from all environments.
        static std::mutex           mutex;
        std::lock_guard<std::mutex> lock(mutex);
        out.Set("llamaSystemInfo", std::string(llama_print_system_info()));
    }
    out.Set("supportsMmap", llama_supports_mmap());
    out.Set("supportsMlock", llama_supports_mlock());
    // llama_supports_gpu_offload() would load backends from the current directory when
    // none is registered: ours are loaded above; do not ask when none loaded.
    out.Set("supportsGpuOffload", ggml_backend_reg_count() > 0 && llama_supports_gpu_offload());
    out.Set("maxParallelSequences", static_cast<double>(llama_max_parallel_sequences()));
    return out;
}

// loadBackends(extraDirs: string[]): loads ggml's backends, once per process (see
// backends.h). Later calls, from any environment, change nothing.
Napi::Value load_backends(const Napi::CallbackInfo & info) {
    std::vector<std::string> dirs;
    if (info.Length() >= 1 && info[0].IsArray()) {
        Napi::Array list = info[0].As<Napi::Array>();
        for (uint32_t i = 0; i < list.Length(); ++i) {
            Napi::Value v = list.Get(i);
            if (v.IsString()) {
                dirs.push_back(v.As<Napi::String>().Utf8Value());
            }
        }
    }
    backends_load(dirs);
    return info.Env().Undefined();
}

// backendInfo(withMemory: boolean) -> { addonDir, hasCpu,
//   registries: [{ name, path, features: {k: v}, devices: [{ name, description, type, freeBytes, totalBytes, extraBufferTypes }] }],
//   attempts: [{ name, path, error }] }
Napi::Value backend_info(const Napi::CallbackInfo & info) {
    Napi::Env  env         = info.Env();
    const bool with_memory = info.Length() >= 1 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
    backends_load({});
    Napi::Array registries = Napi::Array::New(env);
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        Napi::Object       r   = Napi::Object::New(env);
        Napi::Object       f   = Napi::Object::New(env);
        r.Set("name", ggml_backend_reg_name(reg));
        r.Set("path", backend_module_path(reg));
        auto * get_features = reinterpret_cast<ggml_backend_get_features_t>(
            ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features"));
        if (get_features != nullptr) {
            for (ggml_backend_feature * feat = get_features(reg); feat != nullptr && feat->name != nullptr; ++feat) {
                f.Set(feat->name, feat->value != nullptr ? feat->value : "");
            }
        }
        r.Set("features", f);
        // ggml's RPC registry lists no devices: the servers' own registries (never registered,
        // see rpc_client.h) hold those connected so far in this process.
        std::vector<ggml_backend_dev_t> list;
        if (std::string(ggml_backend_reg_name(reg)) == "RPC") {
            list = rpc_connected_devices();
        } else {
            for (size_t j = 0; j < ggml_backend_reg_dev_count(reg); ++j) {
                list.push_back(ggml_backend_reg_dev_get(reg, j));
            }
        }
        Napi::Array devices = Napi::Array::New(env);
        for (size_t j = 0; j < list.size(); ++j) {
            ggml_backend_dev_t dev = list[j];
            Napi::Object       d   = Napi::Object::New(env);
            size_t             free_bytes = 0, total_bytes = 0;
            if (with_memory) {  // a GPU backend may create a driver context on the device to answer; a remote one asks its server
                device_memory(dev, free_bytes, total_bytes);
            }
            d.Set("name", ggml_backend_dev_name(dev));
            d.Set("description", ggml_backend_dev_description(dev));
            d.Set("type", device_type_name(ggml_backend_dev_type(dev)));
            d.Set("freeBytes", static_cast<double>(free_bytes));
            d.Set("totalBytes", static_cast<double>(total_bytes));
            // The CPU backend's extra buffer types (repacked weight layouts, AMX): where
            // llama.cpp puts a copy of the weights they support, unless use_extra_bufts is off.
            Napi::Array extra = Napi::Array::New(env);
            auto *      get_extra = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(
                ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts"));
            if (get_extra != nullptr && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) {
                for (ggml_backend_buffer_type_t * t = get_extra(dev); t != nullptr && *t != nullptr; ++t) {
                    extra.Set(extra.Length(), ggml_backend_buft_name(*t));
                }
            }
            d.Set("extraBufferTypes", extra);
            devices.Set(static_cast<uint32_t>(j), d);
        }
        r.Set("devices", devices);
        registries.Set(static_cast<uint32_t>(i), r);
    }
    Napi::Array attempts = Napi::Array::New(env);
    for (const backend_attempt & a : backends_attempts()) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", a.name);
        o.Set("path", a.path);
        o.Set("error", a.error.empty() ? env.Null() : Napi::String::New(env, a.error));
        attempts.Set(attempts.Length(), o);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("addonDir", backends_addon_dir());
    out.Set("hasCpu", backends_have_cpu());
#ifdef LLAMA_KV_CPU_VARIANT_NAME
    out.Set("cpuVariantBuilt", LLAMA_KV_CPU_VARIANT_NAME);  // the ggml variant a single libggml-cpu was compiled as
#else
    out.Set("cpuVariantBuilt", env.Null());
#endif
    out.Set("registries", registries);
    out.Set("attempts", attempts);
    return out;
}

// flashAttentionSupported(device, typeK, typeV, headDimK, headDimV, heads, headsKv, kvCells):
// whether the device's backend says it runs GGML_OP_FLASH_ATTN_EXT with these K/V types and
// shapes, as the scheduler asks it (ggml_backend_dev_supports_op) before placing llama.cpp's
// attention: for one token and for a batch of 512. A device that says no gets the op on
// another device (the CPU). null when there is no device of that name. The tensors are
// described only (no_alloc): nothing is allocated on the device.
Napi::Value flash_attn_supported(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 8 || !info[0].IsString()) {
        throw_error(env, code::invalid_argument, "flashAttentionSupported(device, typeK, typeV, headDimK, headDimV, heads, headsKv, kvCells)");
    }
    int64_t n[7];
    for (int i = 0; i < 7; ++i) {
        if (!info[i + 1].IsNumber()) {
            throw_error(env, code::invalid_argument, "flashAttentionSupported: arguments 2 to 8 must be numbers");
        }
        const double d = info[i + 1].As<Napi::Number>().DoubleValue();
        if (!(d >= 0 && d <= (i < 2 ? GGML_TYPE_COUNT - 1 : 1 << 20)) || d != static_cast<double>(static_cast<int64_t>(d))) {
            throw_error(env, code::invalid_argument, "flashAttentionSupported: argument out of range");
        }
        n[i] = static_cast<int64_t>(d);
    }
    const auto type_k = static_cast<ggml_type>(n[0]);
    const auto type_v = static_cast<ggml_type>(n[1]);
    const int64_t hsk = n[2], hsv = n[3], heads = n[4], heads_kv = n[5], cells = n[6];
    if (ggml_get_type_traits(type_k)->blck_size <= 0 || ggml_get_type_traits(type_v)->blck_size <= 0 || hsk == 0 || hsv == 0 ||
        heads == 0 || heads_kv == 0 || cells == 0 || heads % heads_kv != 0 || hsk % ggml_blck_size(type_k) != 0 ||
        hsv % ggml_blck_size(type_v) != 0) {
        throw_error(env, code::invalid_argument, "flashAttentionSupported: types or shapes that no attention can have");
    }
    backends_load({});
    ggml_backend_dev_t dev = ggml_backend_dev_by_name(info[0].As<Napi::String>().Utf8Value().c_str());
    if (dev == nullptr) {
        return env.Null();
    }
    ggml_init_params params{ 16 * ggml_tensor_overhead(), nullptr, /*no_alloc=*/true };
    ggml_context *   ctx = ggml_init(params);
    if (ctx == nullptr) {
        throw_error(env, code::internal, "flashAttentionSupported: ggml_init failed");
    }
    bool supported = true;
    for (const int64_t tokens : { int64_t(1), int64_t(512) }) {
        // The shapes of llama.cpp's build_attn_mha: q [hsk, tokens, heads], k [hsk, cells, heads_kv],
        // v [hsv, cells, heads_kv] (views of the cache, here plain tensors), an F16 mask, F32 precision.
        ggml_tensor * q    = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, hsk, tokens, heads, 1);
        ggml_tensor * k    = ggml_new_tensor_4d(ctx, type_k, hsk, cells, heads_kv, 1);
        ggml_tensor * v    = ggml_new_tensor_4d(ctx, type_v, hsv, cells, heads_kv, 1);
        ggml_tensor * mask = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, cells, tokens, 1, 1);
        ggml_tensor * fa   = ggml_flash_attn_ext(ctx, q, k, v, mask, 1.0f / std::sqrt(static_cast<float>(hsk)), 0.0f, 0.0f);
        ggml_flash_attn_ext_set_prec(fa, GGML_PREC_F32);
        supported = supported && ggml_backend_dev_supports_op(dev, fa);
    }
    ggml_free(ctx);
    return Napi::Boolean::New(env, supported);
}

void backends_init_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        logger_install();  // before anything can log
        // llama_backend_init() without its last step: with no backend registered yet it
        // would call ggml_backend_load_all(), which loads libggml-*.so from node's folder
        // and the current directory. Backends come from backends_load() only.
        ggml_time_init();
        ggml_free(ggml_init({ 0, nullptr, false }));  // fills ggml's f16 tables
    });
}

}  // namespace llama_kv
