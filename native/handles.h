// RAII owners for llama.cpp / ggml handles.
#pragma once

#include "ggml-cpu.h"
#include "llama.h"

#include <memory>

struct llama_model_deleter {
    void operator()(llama_model * model) const { llama_model_free(model); }
};
struct llama_context_deleter {
    void operator()(llama_context * ctx) const { llama_free(ctx); }
};
struct llama_sampler_deleter {
    void operator()(llama_sampler * smpl) const { llama_sampler_free(smpl); }
};

using llama_model_ptr   = std::shared_ptr<llama_model>;
using llama_context_ptr = std::unique_ptr<llama_context, llama_context_deleter>;
using llama_sampler_ptr = std::unique_ptr<llama_sampler, llama_sampler_deleter>;

inline llama_model_ptr make_model_ptr(llama_model * model) {
    return llama_model_ptr(model, llama_model_deleter());
}

// A llama_batch of n tokens, one sequence id each (llama_batch_init / llama_batch_free).
struct batch_holder {
    llama_batch batch;
    explicit batch_holder(int32_t n) : batch(llama_batch_init(n, 0, 1)) {}
    ~batch_holder() { llama_batch_free(batch); }
    batch_holder(const batch_holder &)             = delete;
    batch_holder & operator=(const batch_holder &) = delete;
};

// ggml's CPU threadpool; functions resolved through the CPU backend registry so the
// same code works when ggml backends are loaded dynamically.
struct threadpool_deleter {
    void (*free_fn)(ggml_threadpool *) = nullptr;
    void operator()(ggml_threadpool * tp) const {
        if (tp && free_fn) {
            free_fn(tp);
        }
    }
};
using threadpool_ptr = std::unique_ptr<ggml_threadpool, threadpool_deleter>;

// Returns nullptr when the CPU backend does not export a threadpool.
threadpool_ptr make_threadpool(int n_threads);
