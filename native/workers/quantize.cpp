#include "quantize.h"

#include "../errors.h"
#include "abortable.h"
#include "../logger.h"
#include "llama.h"

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <memory>
#include <string>

namespace llama_kv {

namespace {

struct quantize_params {
    std::string input;
    std::string output;
    int32_t     ftype            = LLAMA_FTYPE_MOSTLY_Q8_0;
    int32_t     threads          = 0;
    bool        allow_requantize = false;
};

// Follows llama_model_quantize's "[   i/   N] tensor - ..." lines: progress, and the
// point between two tensors where an abort stops it (its worker threads are joined there).
class quantize_observer : public log_observer {
  public:
    using progress_t = Napi::AsyncProgressWorker<float>::ExecutionProgress;
    quantize_observer(const progress_t & progress, const std::atomic<bool> & abort) : progress_(progress), abort_(abort) {}

    bool observe(const char * text) override {
        int i = 0, n = 0;
        if (std::sscanf(text, "[%d/%d]", &i, &n) != 2 || n <= 0) {
            return true;
        }
        if (abort_.load()) {
            return false;
        }
        const float p = static_cast<float>(i - 1) / static_cast<float>(n);
        progress_.Send(&p, 1);
        return true;
    }

  private:
    const progress_t &        progress_;
    const std::atomic<bool> & abort_;
};

class quantize_worker : public abortable_progress_worker {
  public:
    quantize_worker(Napi::Function on_progress, quantize_params params, std::shared_ptr<std::atomic<bool>> abort) :
        abortable_progress_worker(on_progress, "llama-kv:quantize", std::move(abort)),
        params_(std::move(params)) {}

  protected:
    void Execute(const ExecutionProgress & progress) override {
        llama_model_quantize_params qp = llama_model_quantize_default_params();
        qp.ftype                       = static_cast<llama_ftype>(params_.ftype);
        qp.nthread                     = params_.threads;
        qp.allow_requantize            = params_.allow_requantize;

        quantize_observer observer(progress, *abort_);
        log_capture_reset();
        uint32_t rc = 1;
        try {
            log_observer_scope scope(&observer);
            rc = llama_model_quantize(params_.input.c_str(), params_.output.c_str(), &qp);
        } catch (const std::exception & e) {
            log_capture_append(e.what());
        } catch (...) {
            log_capture_append("unknown exception");
        }
        const std::string log_tail = log_capture_take();
        if (abort_->load()) {
            fail_ = { code::aborted, "quantization was aborted" };
        } else if (rc != 0) {
            fail_ = { code::quantize_failed, with_log("llama.cpp could not quantize " + params_.input, log_tail) };
        } else {
            const float done = 1.0f;
            progress.Send(&done, 1);
        }
    }

    void OnOK() override {
        outside_js([&] {
            if (reject_with_callback_error()) {
                // The output may be complete: the caller's error wins all the same.
            } else if (fail_) {
                deferred_.Reject(make_error(Env(), fail_).Value());
            } else {
                deferred_.Resolve(Env().Undefined());
            }
        });
    }

  private:
    quantize_params params_;
};

}  // namespace

Napi::Value quantize_model(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsObject()) {
        throw_error(env, code::invalid_argument, "quantize(input: string, output: string, params: object, onProgress?: function)");
    }
    quantize_params params;
    params.input        = info[0].As<Napi::String>().Utf8Value();
    params.output       = info[1].As<Napi::String>().Utf8Value();
    Napi::Object obj    = info[2].As<Napi::Object>();
    Napi::Value  ftype  = obj.Get("ftype");
    Napi::Value  thread = obj.Get("threads");
    if (!ftype.IsNumber()) {
        throw_error(env, code::invalid_argument, "quantize: params.ftype must be a llama_ftype number");
    }
    params.ftype            = static_cast<int32_t>(checked_integer(env, ftype.As<Napi::Number>().DoubleValue(), 0, 1023, "ftype"));
    params.threads          = thread.IsNumber() ? static_cast<int32_t>(checked_integer(env, thread.As<Napi::Number>().DoubleValue(), 0, 1024, "threads")) : 0;
    params.allow_requantize = obj.Get("allowRequantize").IsBoolean() && obj.Get("allowRequantize").As<Napi::Boolean>().Value();
    for (const std::string * p : { &params.input, &params.output }) {
        if (p->empty() || p->find('\0') != std::string::npos) {
            throw_error(env, code::invalid_argument, "quantize: paths must be non-empty strings without NUL bytes");
        }
    }
    // llama.cpp truncates the output while it reads the memory-mapped input: the same file
    // under two names (or a hard link) would fault (SIGBUS) as it is read.
    std::error_code same_error;
    if (std::filesystem::equivalent(std::filesystem::u8path(params.input), std::filesystem::u8path(params.output), same_error)) {
        throw_error(env, code::invalid_argument, "quantize: the output is the input file; write the output to another path");
    }
    Napi::Function on_progress = progress_callback_or_noop(info, 3);
    auto   abort  = std::make_shared<std::atomic<bool>>(false);
    auto * worker = new quantize_worker(on_progress, std::move(params), abort);  // freed by node-addon-api
    Napi::Object result = promise_with_abort(env, worker->promise(), abort);
    worker->Queue();
    return result;
}

}  // namespace llama_kv
