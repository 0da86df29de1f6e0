// Test-only reproduction, llama.cpp alone (no llama-kv code): generate on the GPU, change a
// setting that makes llama.cpp re-reserve its compute graph (sched_reserve), generate again.
// On Mesa's llvmpipe Vulkan device at the pinned llama.cpp this corrupts the heap in most runs
// (glibc: "double free or corruption", "corrupted size vs. prev_size"; or SIGSEGV), in a
// thread of libvulkan_lvp.so; without the change (`none`) it never does. test/gpu/
// reserve-after-decode.test.ts runs it; docs/reliability.md tells the story.
//
//   llama-kv-reserve-after-decode MODEL LORA none|lora|causal [N_GPU_LAYERS]
//
// The GPU backend comes from GGML_BACKEND_PATH (ggml_backend_load_all reads it), the CPU
// backend from beside this executable.
#include "ggml-backend.h"
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static void quiet(ggml_log_level, const char *, void *) {}

// Greedy: the prompt, then n tokens one at a time. Prints the tokens.
static bool generate(llama_context * ctx, std::vector<llama_token> prompt, int n) {
    llama_sampler * smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
    llama_batch batch = llama_batch_get_one(prompt.data(), static_cast<int32_t>(prompt.size()));
    llama_token next  = 0;
    for (int i = 0; i < n; ++i) {
        if (llama_decode(ctx, batch) != 0) {
            fprintf(stderr, "llama_decode failed\n");
            llama_sampler_free(smpl);
            return false;
        }
        next = llama_sampler_sample(smpl, ctx, -1);
        printf(i == 0 ? "%d" : " %d", next);
        batch = llama_batch_get_one(&next, 1);
    }
    printf("\n");
    fflush(stdout);
    llama_sampler_free(smpl);
    return true;
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL LORA none|lora|causal [N_GPU_LAYERS]\n", argv[0]);
        return 2;
    }
    const char * change = argv[3];
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    ggml_backend_load_all();
    bool gpu = false;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        gpu = gpu || ggml_backend_dev_type(ggml_backend_dev_get(i)) == GGML_BACKEND_DEVICE_TYPE_GPU;
    }
    if (!gpu) {
        fprintf(stderr, "no GPU device: set GGML_BACKEND_PATH to the GPU backend library\n");
        return 3;
    }

    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers       = argc > 4 ? std::atoi(argv[4]) : 99;
    llama_model * model        = llama_model_load_from_file(argv[1], mparams);
    if (model == nullptr) {
        fprintf(stderr, "failed to load %s\n", argv[1]);
        return 1;
    }
    llama_adapter_lora * lora = llama_adapter_lora_init(model, argv[2]);
    if (lora == nullptr) {
        fprintf(stderr, "failed to load the adapter %s\n", argv[2]);
        return 1;
    }
    const llama_vocab *      vocab = llama_model_get_vocab(model);
    const char *             text  = "Once upon a time";
    std::vector<llama_token> prompt(64);
    prompt.resize(llama_tokenize(vocab, text, static_cast<int32_t>(strlen(text)), prompt.data(), 64, true, false));

    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx                = 256;
    llama_context * ctx          = llama_init_from_model(model, cparams);
    if (ctx == nullptr || !generate(ctx, prompt, 24)) {
        return 1;
    }
    // Each sets llama_context::sched_need_reserve: the next decode re-reserves the graph.
    if (strcmp(change, "lora") == 0) {
        float scale = 0.5f;
        llama_set_adapters_lora(ctx, &lora, 1, &scale);
    } else if (strcmp(change, "causal") == 0) {
        llama_set_causal_attn(ctx, false);
        llama_set_causal_attn(ctx, true);
    } else if (strcmp(change, "none") != 0) {
        fprintf(stderr, "unknown change %s\n", change);
        return 2;
    }
    llama_memory_clear(llama_get_memory(ctx), true);
    if (!generate(ctx, prompt, 24)) {
        return 1;
    }
    llama_free(ctx);
    llama_adapter_lora_free(lora);
    llama_model_free(model);
    llama_backend_free();
    fprintf(stderr, "end\n");
    return 0;
}
