// Test-only reference: greedy generation straight against libllama, following
// llama.cpp's examples/simple, with none of llama-kv's code. Prints the generated
// token ids, space separated, on one line, and on stderr the generation time per
// token (the baseline for llama-kv's token loop, see scripts/bench-token-loop.mjs), and
// before it the time llama_model_load_from_file took (`load: X ms`, for scripts/bench.mjs).
// Like llama-bench it attaches one persistent ggml threadpool.
//
//   llama-kv-reference MODEL PROMPT N_PREDICT [THREADS [LORA SCALE]]
//
// With LORA, the adapter is applied at SCALE (llama_adapter_lora_init +
// llama_set_adapters_lora, as llama.cpp's common code does for --lora-scaled).
#include "ggml-cpu.h"
#include "ggml-backend.h"
#include "llama.h"

#include <chrono>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static void quiet(ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT N_PREDICT [THREADS [LORA SCALE]]\n", argv[0]);
        return 2;
    }
    const std::string path      = argv[1];
    const std::string prompt    = argv[2];
    const int         n_predict = std::atoi(argv[3]);
    const int         n_threads = argc > 4 ? std::atoi(argv[4]) : 1;

    llama_log_set(quiet, nullptr);
    llama_backend_init();
    ggml_backend_load_all();  // the backend libraries beside this executable (GGML_BACKEND_DL)

    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers       = 0;
    const auto    t_load       = std::chrono::steady_clock::now();
    llama_model * model        = llama_model_load_from_file(path.c_str(), mparams);
    if (model == nullptr) {
        fprintf(stderr, "failed to load %s\n", path.c_str());
        return 1;
    }
    fprintf(stderr, "load: %.3f ms\n",
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count());
    const llama_vocab * vocab = llama_model_get_vocab(model);

    const int n_prompt = -llama_tokenize(vocab, prompt.c_str(), prompt.size(), nullptr, 0, true, false);
    std::vector<llama_token> tokens(n_prompt);
    if (llama_tokenize(vocab, prompt.c_str(), prompt.size(), tokens.data(), tokens.size(), true, false) < 0) {
        fprintf(stderr, "failed to tokenize\n");
        return 1;
    }

    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx                = n_prompt + n_predict;
    cparams.n_batch              = n_prompt;
    cparams.n_threads            = n_threads;
    cparams.n_threads_batch      = n_threads;
    llama_context * ctx          = llama_init_from_model(model, cparams);
    if (ctx == nullptr) {
        fprintf(stderr, "failed to create the context\n");
        return 1;
    }

    llama_adapter_lora * lora = nullptr;
    if (argc > 6) {
        lora = llama_adapter_lora_init(model, argv[5]);
        if (lora == nullptr) {
            fprintf(stderr, "failed to load the adapter %s\n", argv[5]);
            return 1;
        }
        float scale = static_cast<float>(std::atof(argv[6]));
        llama_set_adapters_lora(ctx, &lora, 1, &scale);
    }

    ggml_threadpool_params tpp = ggml_threadpool_params_default(n_threads);
    // ggml-cpu is a loaded module (GGML_BACKEND_DL): its threadpool functions come from
    // the registry, as in llama-bench.
    ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU));
    auto * threadpool_new  = reinterpret_cast<decltype(ggml_threadpool_new) *>(ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_new"));
    auto * threadpool_free = reinterpret_cast<decltype(ggml_threadpool_free) *>(ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_free"));
    ggml_threadpool *      tp  = threadpool_new(&tpp);
    llama_attach_threadpool(ctx, tp, tp);

    llama_sampler * smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    llama_batch batch = llama_batch_get_one(tokens.data(), tokens.size());
    llama_token next;
    auto        t_first = std::chrono::steady_clock::now();
    int         n_gen   = 0;
    for (int n = 0; n < n_predict; ++n) {
        if (llama_decode(ctx, batch) != 0) {
            fprintf(stderr, "llama_decode failed\n");
            return 1;
        }
        next = llama_sampler_sample(smpl, ctx, -1);
        if (llama_vocab_is_eog(vocab, next)) {
            break;
        }
        printf(n == 0 ? "%d" : " %d", next);
        if (n == 0) {
            t_first = std::chrono::steady_clock::now();  // prompt done: time the token loop only
        } else {
            ++n_gen;
        }
        batch = llama_batch_get_one(&next, 1);
    }
    printf("\n");
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_first).count();
    fprintf(stderr, "generation: %d tokens in %.3f ms\n", n_gen, ms);

    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_adapter_lora_free(lora);
    threadpool_free(tp);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
