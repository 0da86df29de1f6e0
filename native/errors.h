// Turning llama.cpp failures into JS errors with stable codes, and capturing the
// log lines llama.cpp writes when it refuses something.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace llama_kv {

// Error codes shared with lib/errors.ts.
namespace code {
constexpr const char * invalid_argument      = "INVALID_ARGUMENT";
constexpr const char * invalid_config        = "INVALID_CONFIG";
constexpr const char * model_load_failed     = "MODEL_LOAD_FAILED";
constexpr const char * context_create_failed = "CONTEXT_CREATE_FAILED";
constexpr const char * disposed              = "DISPOSED";
constexpr const char * aborted               = "ABORTED";
constexpr const char * context_full          = "CONTEXT_FULL";
constexpr const char * invalid_batch         = "INVALID_BATCH";
constexpr const char * decode_failed         = "DECODE_FAILED";
constexpr const char * busy                  = "BUSY";
constexpr const char * tokenize_failed       = "TOKENIZE_FAILED";
constexpr const char * backend_unavailable   = "BACKEND_UNAVAILABLE";
constexpr const char * lora_load_failed      = "LORA_LOAD_FAILED";
constexpr const char * quantize_failed       = "QUANTIZE_FAILED";
constexpr const char * insufficient_memory   = "INSUFFICIENT_MEMORY";
constexpr const char * state_mismatch        = "STATE_MISMATCH";
constexpr const char * invalid_state_file    = "INVALID_STATE_FILE";
constexpr const char * state_io_failed       = "STATE_IO_FAILED";
constexpr const char * template_failed       = "TEMPLATE_FAILED";
constexpr const char * invalid_grammar       = "INVALID_GRAMMAR";
constexpr const char * grammar_failed        = "GRAMMAR_FAILED";
constexpr const char * internal              = "INTERNAL";
}  // namespace code

// A failure computed off the JS thread, turned into a JS error on it.
struct failure {
    std::string code;
    std::string message;
    int32_t     status = 0;  // llama.cpp's return code where there is one
    bool        has_status = false;

    explicit operator bool() const { return !code.empty(); }
};

Napi::Error make_error(Napi::Env env, const failure & f);
Napi::Error make_error(Napi::Env env, const std::string & code, const std::string & message);
[[noreturn]] void throw_error(Napi::Env env, const std::string & code, const std::string & message);

// An integer in [min, max] from a JS number; throws INVALID_ARGUMENT naming `what`
// otherwise (NaN, infinities, fractions, out of range). Casting such doubles directly
// would be undefined behaviour.
int64_t checked_integer(Napi::Env env, double value, int64_t min, int64_t max, const std::string & what);

// llama_decode's return codes (llama.h): 1 no KV slot, 2 aborted, -1 invalid batch,
// < -1 fatal. Never collapsed into one message.
failure decode_failure(int32_t rc, const std::string & log_tail);

// Warning and error lines llama.cpp logged on the calling thread since the last
// log_capture_reset(); used to explain a refusal.
void        log_capture_reset();
std::string log_capture_take();
void        log_capture_append(const char * text);

// Runs `fn` (which settles a promise or calls into JS) from a libuv callback, where no
// JS call is on the stack: an exception escaping there, e.g. while the environment
// is being torn down, would terminate the process. Returns false if it threw.
template <typename F> bool outside_js(F && fn) noexcept {
    try {
        fn();
        return true;
    } catch (...) {
        return false;
    }
}

// `fallback`, or INSUFFICIENT_MEMORY when the log lines say that an allocation failed
// (llama.cpp and ggml return such failures as errors: a NULL buffer, an exception).
std::string failure_code(const char * fallback, const std::string & log_tail);

// A C++ exception that escaped a worker's Execute(), which node-addon-api turned into `e`
// (a plain Error): the same message with a code, INSUFFICIENT_MEMORY for std::bad_alloc and
// INTERNAL otherwise, so that no rejection reaches JS without one.
Napi::Error escaped_error(Napi::Env env, const Napi::Error & e);

// Appends ": <log lines>" to a message when llama.cpp said something.
std::string with_log(const std::string & message, const std::string & log_tail);

}  // namespace llama_kv
