// Test-only reference: greedy generation straight against libllama with the model's layers
// on RPC servers (llama.cpp's own client: ggml_backend_rpc_add_server, as common's --rpc
// does), for a K/V cache type pair, with flash attention on or auto. Prints the token ids on
// one line. None of llama-kv's code. What the K/V matrix over RPC (issue 23) is measured with,
// each pair in its own process, since ggml's RPC client aborts on what it cannot handle.
//
//   llama-kv-rpc-greedy MODEL PROMPT N_PREDICT TYPE_K TYPE_V FA(on|off|auto) ENDPOINT [ENDPOINT...]
#include "ggml-backend.h"
#include "ggml-rpc.h"
#include "llama.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static void quiet(ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_WARN) {
        fputs(text, stderr);
    }
}

static ggml_type type_of(const char * name) {
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char * n = ggml_type_name(static_cast<ggml_type>(t));
        if (n != nullptr && std::strcmp(n, name) == 0) {
            return static_cast<ggml_type>(t);
        }
    }
    fprintf(stderr, "unknown type %s\n", name);
    std::exit(2);
}

int main(int argc, char ** argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s MODEL PROMPT N_PREDICT TYPE_K TYPE_V FA ENDPOINT [ENDPOINT...]\n", argv[0]);
        return 2;
    }
    const std::string prompt    = argv[2];
    const int         n_predict = std::atoi(argv[3]);
#ifdef SIGPIPE
    // As in Node.js (and so in llama-kv's host processes): a write to a connection the server
    // closed is an error (EPIPE), not the end of the process.
    std::signal(SIGPIPE, SIG_IGN);
#endif
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    ggml_backend_load_all();  // the CPU and RPC backend libraries beside this executable

    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    auto * add_server = rpc != nullptr ? reinterpret_cast<decltype(ggml_backend_rpc_add_server) *>(
                                             ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server"))
                                       : nullptr;
    if (add_server == nullptr) {
        fprintf(stderr, "no RPC backend\n");
        return 1;
    }
    // RPC_GREEDY_TIMEOUT_MS: the client sockets' timeout (vendor patch 0010; none by default)
    if (const char * timeout = std::getenv("RPC_GREEDY_TIMEOUT_MS")) {
        auto * set_timeout = reinterpret_cast<void (*)(unsigned)>(ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_set_timeout_ms"));
        if (set_timeout == nullptr) {
            fprintf(stderr, "this ggml-rpc has no ggml_backend_rpc_set_timeout_ms\n");
            return 1;
        }
        set_timeout(static_cast<unsigned>(std::atoi(timeout)));
    }
    std::vector<ggml_backend_dev_t> devices;
    try {
        for (int i = 7; i < argc; i++) {
            ggml_backend_reg_t reg = add_server(argv[i]);
            for (size_t d = 0; d < ggml_backend_reg_dev_count(reg); d++) {
                devices.push_back(ggml_backend_reg_dev_get(reg, d));
            }
        }
    } catch (const std::exception & e) {  // with vendor patch 0010; before it, ggml aborted
        fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    devices.push_back(nullptr);

    llama_model_params mparams = llama_model_default_params();
    mparams.devices            = devices.data();
    mparams.n_gpu_layers       = 999;
    llama_model * model        = llama_model_load_from_file(argv[1], mparams);
    if (model == nullptr) {
        fprintf(stderr, "failed to load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab * vocab    = llama_model_get_vocab(model);
    const int           n_prompt = -llama_tokenize(vocab, prompt.c_str(), prompt.size(), nullptr, 0, true, false);
    std::vector<llama_token> tokens(n_prompt);
    llama_tokenize(vocab, prompt.c_str(), prompt.size(), tokens.data(), tokens.size(), true, false);

    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx                = 256;
    cparams.n_batch              = n_prompt;
    cparams.type_k               = type_of(argv[4]);
    cparams.type_v               = type_of(argv[5]);
    const std::string fa         = argv[6];
    cparams.flash_attn_type      = fa == "on" ? LLAMA_FLASH_ATTN_TYPE_ENABLED : fa == "off" ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
    llama_context * ctx          = llama_init_from_model(model, cparams);
    if (ctx == nullptr) {
        fprintf(stderr, "failed to create the context\n");
        return 1;
    }
    llama_sampler * smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
    llama_batch batch = llama_batch_get_one(tokens.data(), tokens.size());
    llama_token next;
    for (int n = 0; n < n_predict; ++n) {
        int ret = 0;
        try {
            ret = llama_decode(ctx, batch);
            if (ret == 0) {
                next = llama_sampler_sample(smpl, ctx, -1);  // reads the logits: waits for the servers
            }
        } catch (const std::exception & e) {  // a server that died (vendor patch 0010)
            fprintf(stderr, "error: a decode threw: %s\n", e.what());
            llama_sampler_free(smpl);
            llama_free(ctx);
            llama_model_free(model);
            fprintf(stderr, "freed the context and the model\n");
            return 1;
        }
        if (ret != 0) {
            fprintf(stderr, "llama_decode failed\n");
            return 1;
        }
        printf(n == 0 ? "%d" : " %d", next);
        fflush(stdout);  // each token as it comes: a test kills a server mid-run
        batch = llama_batch_get_one(&next, 1);
    }
    printf("\n");
    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
