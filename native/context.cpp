#include "context.h"

#include "addon_data.h"
#include "llama-ext.h"
#include "model.h"
#include "workers/evaluate.h"
#include "workers/generate.h"

#include <cmath>
#include <string>

namespace llama_kv {

Napi::Function context_wrap::define(Napi::Env env) {
    return DefineClass(env, "NativeContext",
                       {
                           InstanceMethod<&context_wrap::config>("config"),
                           InstanceMethod<&context_wrap::evaluate>("evaluate"),
                           InstanceMethod<&context_wrap::generate>("generate"),
                           InstanceMethod<&context_wrap::abort>("abort"),
                           InstanceMethod<&context_wrap::dispose>("dispose"),
                           InstanceAccessor<&context_wrap::disposed>("disposed"),
                       });
}

namespace {

// Reads a required integer parameter in [min, max]; TypeScript has already applied
// defaults and validated, this is the second line.
uint32_t read_uint(Napi::Env env, Napi::Object params, const char * key, uint32_t min, uint32_t max) {
    Napi::Value v = params.Get(key);
    if (!v.IsNumber()) {
        throw_error(env, code::invalid_argument, std::string("context parameter ") + key + " must be a number");
    }
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < min || d > max) {
        throw_error(env, code::invalid_argument,
                    std::string("context parameter ") + key + " must be an integer in [" + std::to_string(min) + ", " +
                        std::to_string(max) + "], received " + std::to_string(d));
    }
    return static_cast<uint32_t>(d);
}

}  // namespace

context_wrap::context_wrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<context_wrap>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsObject()) {
        throw_error(env, code::invalid_argument, "NativeContext(model, params)");
    }
    llama_model_ptr model  = model_wrap::unwrap(env, info[0])->model(env);
    Napi::Object    params = info[1].As<Napi::Object>();
    if (!model_has_weights(model.get())) {
        throw_error(env, code::context_create_failed,
                    "the model was loaded with vocabOnly and has no weights: load it without vocabOnly to create a context");
    }

    const uint32_t n_ctx     = read_uint(env, params, "contextSize", 1, 1u << 24);
    const uint32_t n_batch   = read_uint(env, params, "batchSize", 1, 1u << 20);
    const uint32_t n_ubatch  = read_uint(env, params, "ubatchSize", 1, n_batch);
    const uint32_t n_seq_max = read_uint(env, params, "sequences", 1, static_cast<uint32_t>(llama_max_parallel_sequences()));
    const uint32_t n_threads = read_uint(env, params, "threads", 1, GGML_MAX_N_THREADS);
    const uint32_t n_threads_batch = read_uint(env, params, "threadsBatch", 1, GGML_MAX_N_THREADS);

    auto state   = std::make_shared<context_state>();
    state->model = model;

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx                = n_ctx;
    cp.n_batch              = n_batch;
    cp.n_ubatch             = n_ubatch;
    cp.n_seq_max            = n_seq_max;
    cp.n_threads            = static_cast<int32_t>(n_threads);
    cp.n_threads_batch      = static_cast<int32_t>(n_threads_batch);
    cp.no_perf              = true;
    cp.abort_callback       = [](void * data) -> bool { return static_cast<std::atomic<bool> *>(data)->load(); };
    cp.abort_callback_data  = &state->abort;

    log_capture_reset();
    llama_context * ctx = nullptr;
    try {
        ctx = llama_init_from_model(model.get(), cp);
    } catch (const std::exception & e) {
        log_capture_append(e.what());
    }
    if (ctx == nullptr) {
        throw_error(env, code::context_create_failed,
                    with_log("llama.cpp could not create the context", log_capture_take()));
    }
    state->ctx.reset(ctx);

    // One persistent threadpool per context (a second one when batch processing uses a
    // different thread count): no thread creation per decode, workers sleep when idle.
    state->threadpool = make_threadpool(static_cast<int>(n_threads));
    if (n_threads_batch != n_threads) {
        state->threadpool_batch = make_threadpool(static_cast<int>(n_threads_batch));
    }
    if (state->threadpool) {
        llama_attach_threadpool(ctx, state->threadpool.get(),
                                state->threadpool_batch ? state->threadpool_batch.get() : state->threadpool.get());
    }

    for (const auto & entry : llama_get_memory_breakdown(ctx)) {
        external_bytes_ += static_cast<int64_t>(entry.second.context + entry.second.compute);
    }
    Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);

    addon_data::of(env)->track(state);
    state_ = std::move(state);
}

context_wrap::~context_wrap() {
    release_external_memory(env_);
}

void context_wrap::release_external_memory(napi_env env) {
    if (external_bytes_ != 0 && env != nullptr) {
        napi_adjust_external_memory(env, -external_bytes_, nullptr);
        external_bytes_ = 0;
    }
}

std::shared_ptr<context_state> context_wrap::acquire(Napi::Env env) {
    if (!state_) {
        throw_error(env, code::disposed, "the context has been disposed");
    }
    if (state_->busy.exchange(true)) {
        throw_error(env, code::busy, "the context is already running an operation; wait for it to finish");
    }
    state_->abort.store(false);
    return state_;
}

Napi::Value context_wrap::config(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) {
        throw_error(env, code::disposed, "the context has been disposed");
    }
    llama_context * ctx = state_->ctx.get();
    Napi::Object    out = Napi::Object::New(env);
    out.Set("contextSize", llama_n_ctx(ctx));
    out.Set("contextSizePerSequence", llama_n_ctx_seq(ctx));
    out.Set("batchSize", llama_n_batch(ctx));
    out.Set("ubatchSize", llama_n_ubatch(ctx));
    out.Set("sequences", llama_n_seq_max(ctx));
    out.Set("threads", llama_n_threads(ctx));
    out.Set("threadsBatch", llama_n_threads_batch(ctx));
    out.Set("threadpool", static_cast<bool>(state_->threadpool));
    return out;
}

Napi::Value context_wrap::evaluate(const Napi::CallbackInfo & info) {
    Napi::Env                env    = info.Env();
    std::vector<llama_token> tokens = read_tokens(env, info.Length() > 0 ? info[0] : env.Undefined(), "tokens");
    return queue_evaluate(env, acquire(env), std::move(tokens));
}

Napi::Value context_wrap::generate(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
        throw_error(env, code::invalid_argument, "generate(request: object, onTokens: function)");
    }
    generate_request request = read_generate_request(env, info[0].As<Napi::Object>());
    return queue_generate(env, acquire(env), std::move(request), info[1].As<Napi::Function>());
}

Napi::Value context_wrap::abort(const Napi::CallbackInfo & info) {
    if (state_) {
        state_->abort.store(true);
    }
    return info.Env().Undefined();
}

Napi::Value context_wrap::dispose(const Napi::CallbackInfo & info) {
    if (state_) {
        // A worker still running holds its own reference: it sees the abort flag and
        // the context is freed when it finishes.
        state_->abort.store(true);
        state_.reset();
        release_external_memory(info.Env());
    }
    return info.Env().Undefined();
}

Napi::Value context_wrap::disposed(const Napi::CallbackInfo & info) {
    return Napi::Boolean::New(info.Env(), !state_);
}

}  // namespace llama_kv
