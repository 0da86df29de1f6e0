// Routes llama.cpp / ggml log output to the JS logger of each Node environment
// (main thread, worker threads) that set one. Nothing is ever written to stderr.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>
#include <stdexcept>

namespace llama_kv {

class log_sink {
  public:
    log_sink(Napi::Env env, Napi::Function fn, int min_level);
    ~log_sink();
    log_sink(const log_sink &)             = delete;
    log_sink & operator=(const log_sink &) = delete;

    void set_level(int level) { min_level_.store(level); }
    int  level() const { return min_level_.load(); }
    // Called with the registry lock held; never blocks.
    void post(int level, const std::string & text);
    void release();

  private:
    Napi::ThreadSafeFunction tsfn_;
    std::atomic<int>         min_level_;
    bool                     released_ = false;
};

// Sees each piece of llama.cpp log text written on the thread that set it (used to follow
// llama_model_quantize, which reports progress only in its log). When observe() returns
// false the log callback throws log_stop: set one only around a llama.cpp C++ call that
// catches std::exception at a point where unwinding is safe (llama_model_quantize).
class log_observer {
  public:
    virtual ~log_observer()                   = default;
    virtual bool observe(const char * text) = 0;
};
struct log_stop : std::runtime_error {
    log_stop() : std::runtime_error("stopped by llama-kv") {}
};
void log_observer_set(log_observer * observer);  // this thread only; nullptr to clear

// Sets an observer for a scope.
class log_observer_scope {
  public:
    explicit log_observer_scope(log_observer * observer) { log_observer_set(observer); }
    ~log_observer_scope() { log_observer_set(nullptr); }
    log_observer_scope(const log_observer_scope &)             = delete;
    log_observer_scope & operator=(const log_observer_scope &) = delete;
};

// Installs the process-wide llama.cpp log callback (idempotent).
void logger_install();

// JS: setLogger(fn: (level, message) => void, minLevel: number) | setLogger(null), and
// setLogLevel(minLevel): this environment's sink (one per environment, in its instance data).
Napi::Value set_logger(const Napi::CallbackInfo & info);
Napi::Value set_log_level(const Napi::CallbackInfo & info);
// Registers / unregisters an environment's sink. The sink is released on removal.
void logger_add(const std::shared_ptr<log_sink> & sink);
void logger_remove(const std::shared_ptr<log_sink> & sink);

}  // namespace llama_kv
