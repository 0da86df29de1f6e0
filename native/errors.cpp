#include "errors.h"

namespace llama_kv {

namespace {
thread_local std::string t_captured;
constexpr size_t         max_captured = 4096;
}  // namespace

Napi::Error make_error(Napi::Env env, const std::string & code, const std::string & message) {
    Napi::Error error = Napi::Error::New(env, message);
    error.Value().Set("code", Napi::String::New(env, code));
    return error;
}

Napi::Error make_error(Napi::Env env, const failure & f) {
    Napi::Error error = make_error(env, f.code, f.message);
    if (f.has_status) {
        error.Value().Set("status", Napi::Number::New(env, f.status));
    }
    return error;
}

void throw_error(Napi::Env env, const std::string & code, const std::string & message) {
    throw make_error(env, code, message);
}

int64_t checked_integer(Napi::Env env, double value, int64_t min, int64_t max, const std::string & what) {
    if (!(value >= static_cast<double>(min) && value <= static_cast<double>(max)) || value != static_cast<double>(static_cast<int64_t>(value))) {
        throw_error(env, code::invalid_argument,
                    what + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    }
    return static_cast<int64_t>(value);
}

std::string with_log(const std::string & message, const std::string & log_tail) {
    if (log_tail.empty()) {
        return message;
    }
    return message + " (llama.cpp: " + log_tail + ")";
}

std::string failure_code(const char * fallback, const std::string & log_tail) {
    // The phrases of llama.cpp's and ggml's allocation failures (ggml-backend, ggml-alloc,
    // llama-model "unable to allocate <buft> buffer", llama-kv-cache, llama-context), of
    // ENOMEM through strerror (mmap) and of std::bad_alloc.
    static const char * const phrases[] = { "failed to allocate", "unable to allocate", "Cannot allocate memory",
                                            "bad_alloc", "out of memory" };
    for (const char * p : phrases) {
        if (log_tail.find(p) != std::string::npos) {
            return code::insufficient_memory;
        }
    }
    return fallback;
}

Napi::Error escaped_error(Napi::Env env, const Napi::Error & e) {
    const std::string what = e.Message();
    return make_error(env, failure_code(code::internal, what), "native operation failed: " + what);
}

failure decode_failure(int32_t rc, const std::string & log_tail) {
    failure f;
    f.status     = rc;
    f.has_status = true;
    if (rc == 1) {
        f.code    = code::context_full;
        f.message = "llama_decode found no free KV cache slot for the batch (return code 1): the context is full; "
                    "use a larger contextSize or a shorter prompt";
    } else if (rc == 2) {
        f.code    = code::aborted;
        f.message = "llama_decode was aborted (return code 2)";
    } else if (rc == -1) {
        f.code    = code::invalid_batch;
        f.message = "llama_decode rejected the batch as invalid (return code -1)";
    } else {
        f.code    = failure_code(code::decode_failed, log_tail);
        f.message = "llama_decode failed with fatal return code " + std::to_string(rc);
    }
    f.message = with_log(f.message, log_tail);
    return f;
}

void log_capture_reset() {
    t_captured.clear();
}

std::string log_capture_take() {
    std::string out;
    out.swap(t_captured);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
        out.pop_back();
    }
    for (char & c : out) {
        if (c == '\n') {
            c = ';';
        }
    }
    return out;
}

void log_capture_append(const char * text) {
    if (t_captured.size() < max_captured) {
        t_captured.append(text, 0, max_captured - t_captured.size());
    }
}

}  // namespace llama_kv
