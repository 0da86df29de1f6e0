#include "handles.h"

#include "ggml-backend.h"

threadpool_ptr make_threadpool(int n_threads) {
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == nullptr) {
        return threadpool_ptr(nullptr, threadpool_deleter{});
    }
    ggml_backend_reg_t reg      = ggml_backend_dev_backend_reg(cpu);
    auto *             new_fn   = reinterpret_cast<decltype(ggml_threadpool_new) *>(
        ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new"));
    auto *             free_fn  = reinterpret_cast<decltype(ggml_threadpool_free) *>(
        ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free"));
    if (new_fn == nullptr || free_fn == nullptr) {
        return threadpool_ptr(nullptr, threadpool_deleter{});
    }
    ggml_threadpool_params params = ggml_threadpool_params_default(n_threads);
    return threadpool_ptr(new_fn(&params), threadpool_deleter{ free_fn });
}
