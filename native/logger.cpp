#include "logger.h"
#include "addon_data.h"

#include "errors.h"
#include "llama.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

namespace llama_kv {

namespace {

// Never destroyed: llama.cpp may still log from a libuv or ggml thread while static
// destructors run after process.exit().
struct sink_registry {
    std::mutex                             mutex;
    std::vector<std::shared_ptr<log_sink>> sinks;
};
sink_registry & registry() {
    static auto * r = new sink_registry();
    return *r;
}

struct log_message {
    int         level;
    std::string text;
};

// ggml logs a line in pieces (GGML_LOG_LEVEL_CONT continues the previous one):
// assemble whole lines per thread before dispatching.
thread_local std::string t_line;
thread_local int         t_line_level = GGML_LOG_LEVEL_INFO;

void dispatch_line(int level, const std::string & line) {
    if (level >= GGML_LOG_LEVEL_WARN) {
        log_capture_append(line.c_str());
        log_capture_append("\n");
    }
    std::lock_guard<std::mutex> lock(registry().mutex);
    for (const auto & sink : registry().sinks) {
        if (level >= sink->level()) {
            sink->post(level, line);
        }
    }
}

void log_callback_impl(ggml_log_level level, const char * text) {
    if (level != GGML_LOG_LEVEL_CONT) {
        if (!t_line.empty()) {
            dispatch_line(t_line_level, t_line);
            t_line.clear();
        }
        t_line_level = level;
    }
    t_line += text;
    size_t nl;
    while ((nl = t_line.find('\n')) != std::string::npos) {
        std::string line = t_line.substr(0, nl);
        t_line.erase(0, nl + 1);
        if (!line.empty()) {
            dispatch_line(t_line_level, line);
        }
    }
}

thread_local log_observer * t_observer = nullptr;

// Called by llama.cpp / ggml from any thread, through C frames: nothing may escape,
// except log_stop, which only an observer asks for (see logger.h).
void log_callback(ggml_log_level level, const char * text, void * /*user_data*/) {
    if (text == nullptr) {
        return;
    }
    bool stop = false;
    try {
        stop = t_observer != nullptr && !t_observer->observe(text);
    } catch (...) {
        // an observer that fails (out of memory) sees nothing more of this line
    }
    if (stop) {
        throw log_stop();
    }
    try {
        log_callback_impl(level, text);
    } catch (...) {
        // out of memory while logging: drop the line
    }
}

}  // namespace

log_sink::log_sink(Napi::Env env, Napi::Function fn, int min_level) : min_level_(min_level) {
    tsfn_ = Napi::ThreadSafeFunction::New(env, fn, "llama-kv-log", 0, 1);
    tsfn_.Unref(env);  // a logger must not keep the process alive
}

log_sink::~log_sink() {
    release();
}

void log_sink::post(int level, const std::string & text) {
    if (released_) {
        return;
    }
    auto * msg = new log_message{ level, text };
    napi_status status = tsfn_.NonBlockingCall(msg, [](Napi::Env env, Napi::Function fn, log_message * m) {
        std::unique_ptr<log_message> owned(m);
        if (env == nullptr || fn == nullptr) {
            return;
        }
        try {
            fn.Call({ Napi::Number::New(env, owned->level), Napi::String::New(env, owned->text) });
        } catch (const Napi::Error &) {
            // a throwing logger must not take the process down; lib/logger.ts guards too
        }
    });
    if (status != napi_ok) {
        delete msg;
    }
    if (status == napi_closing) {
        released_ = true;  // the environment is going away: never call the function again
    }
}

void log_sink::release() {
    if (!released_) {
        released_ = true;
        tsfn_.Release();
    }
}

void log_observer_set(log_observer * observer) {
    t_observer = observer;
}

void logger_install() {
    static std::once_flag once;
    std::call_once(once, [] { llama_log_set(log_callback, nullptr); });
}

void logger_add(const std::shared_ptr<log_sink> & sink) {
    std::lock_guard<std::mutex> lock(registry().mutex);
    registry().sinks.push_back(sink);
}

void logger_remove(const std::shared_ptr<log_sink> & sink) {
    std::lock_guard<std::mutex> lock(registry().mutex);
    auto & sinks = registry().sinks;
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
    sink->release();
}

namespace {

// Node finalizes a thread-safe function in its own env cleanup hook. Hooks run newest
// first, so one registered after the function is created runs before it, while the
// function is still valid: take the sink out of the process-wide registry there.
void release_sink(void * arg) {
    auto * data = static_cast<addon_data *>(arg);
    data->sink_hook = false;
    if (data->sink) {
        logger_remove(data->sink);
        data->sink.reset();
    }
}

}  // namespace

// setLogger(fn: (level, message) => void, minLevel: number) | setLogger(null)
Napi::Value set_logger(const Napi::CallbackInfo & info) {
    Napi::Env    env  = info.Env();
    addon_data * data = addon_data::of(env);
    if (data->sink_hook) {
        napi_remove_env_cleanup_hook(env, release_sink, data);
    }
    release_sink(data);
    if (info.Length() >= 2 && info[0].IsFunction() && info[1].IsNumber()) {
        data->sink = std::make_shared<log_sink>(env, info[0].As<Napi::Function>(), info[1].As<Napi::Number>().Int32Value());
        logger_add(data->sink);
        if (napi_add_env_cleanup_hook(env, release_sink, data) == napi_ok) {
            data->sink_hook = true;
        }
    }
    return env.Undefined();
}

Napi::Value set_log_level(const Napi::CallbackInfo & info) {
    addon_data * data = addon_data::of(info.Env());
    if (data->sink && info.Length() >= 1 && info[0].IsNumber()) {
        data->sink->set_level(info[0].As<Napi::Number>().Int32Value());
    }
    return info.Env().Undefined();
}

}  // namespace llama_kv
