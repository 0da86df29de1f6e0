// ggml's backends are loadable libraries (GGML_BACKEND_DL): the CPU backend (one native
// build, or the best of several instruction-set variants) and GPU backends (CUDA, ROCm,
// Vulkan, Metal). They are loaded once per process, before llama.cpp is used, from the
// addon's own folder and from the extra folders given by the first caller (the GPU
// packages, LLAMA_KV_BACKEND_PATH); never from the current directory. A library that
// fails to load (dlopen error, missing symbol, NULL or wrong-version init, score 0) is
// recorded with ggml's reason and skipped. A backend that aborts inside its own
// initialisation (a GGML_ASSERT in a driver call) cannot be contained in-process.
#pragma once

#include "ggml-backend.h"

#include <napi.h>

#include <string>
#include <vector>

namespace llama_kv {

// A GPU backend library that was found and tried.
struct backend_attempt {
    std::string name;   // "cuda", "hip", "vulkan", "metal"
    std::string path;
    std::string error;  // empty when it loaded
};

// Loads the backends the first time it is called in the process; later calls (any
// thread, any environment) wait for that and do nothing. Never throws.
void backends_load(const std::vector<std::string> & extra_dirs);

// After backends_load: the folder the addon was loaded from, the attempts, and whether
// a CPU backend is there (without one llama.cpp can do nothing).
const std::string &                  backends_addon_dir();
std::vector<backend_attempt> backends_attempts();  // a copy: the list may grow on a worker (rpc)
bool                                 backends_have_cpu();

// Loads <lib>ggml-<name> from the addon's folder, as the GPU backends are loaded (the
// truncation check, the attempt recorded): for libraries that backends_load() leaves out
// (ggml-rpc). Returns whether it registered; the reason in `error` when not. Not
// thread-safe: call it once, under the caller's own once_flag.
bool backends_load_library(const std::string & name, std::string & error);

// The file a loaded backend registry came from ("" when it is not known).
std::string backend_module_path(ggml_backend_reg_t reg);

// Once per process, before any backend or model: installs the log hook and does
// llama_backend_init()'s work except loading backends (that is backends_load()'s).
void backends_init_once();

// JS: loadBackends(extraDirs), backendInfo(withMemory) and systemInfo() (see lib/native/types.ts).
Napi::Value load_backends(const Napi::CallbackInfo & info);
Napi::Value backend_info(const Napi::CallbackInfo & info);
Napi::Value system_info(const Napi::CallbackInfo & info);
// JS: flashAttentionSupported(device, typeK, typeV, headDimK, headDimV, heads, headsKv, kvCells).
Napi::Value flash_attn_supported(const Napi::CallbackInfo & info);

}  // namespace llama_kv
