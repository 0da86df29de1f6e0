// Test-only reference for embeddings and reranking: the logic of llama.cpp's
// examples/embedding/embedding.cpp without its argument parser (arg.cpp is not linked):
// the same defaults, tokenization, batch packing and decoding, on texts read from a file.
//
//   llama-kv-embedding-reference MODEL.gguf INPUTS.json
//
// INPUTS.json: { texts: string[], pooling?: -1..4 (llama_pooling_type; -1 the model's),
// normalize?: int (--embd-normalize; default 2), contextSize?: int (-c; default 0, the
// model's), batchSize?: int (-b; default 2048), parallel?: int (-np; default 1),
// threads?: int (-t; default: the math cores), clsSep?: string (--cls-separator; default "\t") }.
// Each text is one of the example's prompt lines (it splits --prompt on --embd-separator).
//
// Prints one JSON object on stdout: { pooling: llama_pooling_type(ctx), nEmbdOut, nClsOut,
// tokens: [[id, ...] per text], embeddings: [[float, ...] per text, or per token with
// pooling NONE, in the example's order] }, every float as %.9g (null for a non-finite one);
// or { error } and exit status 1 where the example refuses (a text longer than the batch,
// a model that does not load).
//
// Where the example would crash, this program reports an error instead: GGML_ASSERT on a
// missing embedding becomes { error }, and so does a failed llama_decode (the example
// logs it and goes on to that assert). With RANK pooling the example normalizes
// n_embd_out floats of a sequence's result, which holds n_cls_out (a heap over-read; its
// printed score is the first float): here the n_cls_out scores are normalized among
// themselves and each row holds those n_cls_out floats (as its raw output prints).
#include "common.h"
#include "llama.h"
#include "log.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using json = nlohmann::json;

static std::vector<std::string> split_lines(const std::string & s, const std::string & separator = "\n") {
    std::vector<std::string> lines;
    size_t start = 0;
    size_t end = s.find(separator);

    while (end != std::string::npos) {
        lines.push_back(s.substr(start, end - start));
        start = end + separator.length();
        end = s.find(separator, start);
    }

    lines.push_back(s.substr(start)); // Add the last part

    return lines;
}

static void batch_add_seq(llama_batch & batch, const std::vector<int32_t> & tokens, llama_seq_id seq_id) {
    size_t n_tokens = tokens.size();
    for (size_t i = 0; i < n_tokens; i++) {
        common_batch_add(batch, tokens[i], i, { seq_id }, true);
    }
}

// The example's batch_decode; n_out is the number of floats taken from each result
// (n_embd_out, or n_cls_out with RANK pooling). Throws where the example aborts.
static void batch_decode(llama_context * ctx, llama_batch & batch, float * output, int n_seq, int n_embd_out, int n_out, int embd_norm) {
    const enum llama_pooling_type pooling_type = llama_pooling_type(ctx);

    // clear previous kv_cache values (irrelevant for embeddings)
    llama_memory_clear(llama_get_memory(ctx), true);

    // run model
    const int32_t ret = llama_decode(ctx, batch);
    if (ret != 0) {
        throw std::runtime_error("llama_decode returned " + std::to_string(ret) + " (n_tokens = " + std::to_string(batch.n_tokens) +
                                 ", n_seq = " + std::to_string(n_seq) + ")");
    }

    for (int i = 0; i < batch.n_tokens; i++) {
        if (!batch.logits[i]) {
            continue;
        }

        const float * embd = nullptr;
        int embd_pos = 0;

        if (pooling_type == LLAMA_POOLING_TYPE_NONE) {
            // try to get token embeddings
            embd = llama_get_embeddings_ith(ctx, i);
            embd_pos = i;
            if (embd == nullptr) {
                throw std::runtime_error("failed to get token embeddings");
            }
        } else {
            // try to get sequence embeddings - supported only when pooling_type is not NONE
            embd = llama_get_embeddings_seq(ctx, batch.seq_id[i][0]);
            embd_pos = batch.seq_id[i][0];
            if (embd == nullptr) {
                throw std::runtime_error("failed to get sequence embeddings");
            }
        }

        float * out = output + embd_pos * n_embd_out;
        common_embd_normalize(embd, out, n_out, embd_norm);
    }
}

static std::string read_file(const char * path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        throw std::runtime_error(std::string("cannot read ") + path);
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

static int fail(const std::string & message) {
    json out = json::object();
    out["error"] = message;
    printf("%s\n", out.dump().c_str());
    return 1;
}

static void append_float(std::string & s, float v) {
    if (!std::isfinite(v)) {
        s += "null";
        return;
    }
    char buf[32];
    snprintf(buf, sizeof(buf), "%.9g", v);
    s += buf;
}

int main(int argc, char ** argv) {
    std::setlocale(LC_NUMERIC, "C");

    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.gguf INPUTS.json\n", argv[0]);
        return 2;
    }
    // stdout carries the JSON result only
    common_log_set_verbosity_thold(-1);
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);

    common_params params;
    std::vector<std::string> prompts;
    try {
        const json in = json::parse(read_file(argv[2]));
        prompts                   = in.at("texts").get<std::vector<std::string>>();
        params.model.path         = argv[1];
        params.pooling_type       = (enum llama_pooling_type) in.value("pooling", (int) LLAMA_POOLING_TYPE_UNSPECIFIED);
        params.embd_normalize     = in.value("normalize", params.embd_normalize);
        params.n_ctx              = in.value("contextSize", params.n_ctx);
        params.n_batch            = in.value("batchSize", params.n_batch);
        params.n_parallel         = in.value("parallel", params.n_parallel);
        params.cpuparams.n_threads = in.value("threads", params.cpuparams.n_threads);
        params.cls_sep            = in.value("clsSep", params.cls_sep);
    } catch (const std::exception & e) {
        return fail(std::string("bad inputs: ") + e.what());
    }
    if (prompts.empty()) {
        return fail("texts is empty");
    }
    // what common_params_parse does after parsing
    postprocess_cpu_params(params.cpuparams, nullptr);
    postprocess_cpu_params(params.cpuparams_batch, &params.cpuparams);
    while (params.tensor_buft_overrides.size() < llama_max_tensor_buft_overrides()) {
        params.tensor_buft_overrides.push_back({ nullptr, nullptr });
    }

    params.embedding = true;

    // get max number of sequences per batch
    const int n_seq_max = llama_max_parallel_sequences();

    // if the number of prompts that would be encoded is known in advance, it's more efficient to specify the
    //   --parallel argument accordingly. for convenience, if not specified, we fallback to unified KV cache
    //   in order to support any number of prompts
    if (params.n_parallel == 1) {
        params.kv_unified = true;
        params.n_parallel = n_seq_max;
    }

    // utilize the full context
    if (params.n_batch < params.n_ctx) {
        params.n_batch = params.n_ctx;
    }

    // for non-causal models, batch size must be equal to ubatch size
    if (params.attention_type != LLAMA_ATTENTION_TYPE_CAUSAL) {
        params.n_ubatch = params.n_batch;
    }

    llama_backend_init();
    llama_numa_init(params.numa);

    // load the model
    auto llama_init = common_init_from_params(params);

    auto * model = llama_init->model();
    auto * ctx = llama_init->context();

    if (model == NULL) {
        return fail("unable to load model");
    }
    if (ctx == NULL) {
        return fail("unable to create context");
    }

    const llama_vocab * vocab = llama_model_get_vocab(model);

    const enum llama_pooling_type pooling_type = llama_pooling_type(ctx);

    if (llama_model_has_encoder(model) && llama_model_has_decoder(model)) {
        return fail("computing embeddings in encoder-decoder models is not supported");
    }

    // max batch size
    const uint64_t n_batch = params.n_batch;

    // get added sep and eos token, if any
    const std::string added_sep_token = llama_vocab_get_add_sep(vocab) ? llama_vocab_get_text(vocab, llama_vocab_sep(vocab)) : "";
    const std::string added_eos_token = llama_vocab_get_add_eos(vocab) ? llama_vocab_get_text(vocab, llama_vocab_eos(vocab)) : "";
    const char * rerank_prompt = llama_model_chat_template(model, "rerank");

    // tokenize the prompts and trim
    std::vector<std::vector<int32_t>> inputs;
    for (const auto & prompt : prompts) {
        std::vector<llama_token> inp;

        // split classification pairs and insert expected separator tokens
        if (pooling_type == LLAMA_POOLING_TYPE_RANK && prompt.find(params.cls_sep) != std::string::npos) {
            std::vector<std::string> pairs = split_lines(prompt, params.cls_sep);
            if (rerank_prompt != nullptr) {
                const std::string query = pairs[0];
                const std::string doc = pairs[1];
                std::string final_prompt = rerank_prompt;
                string_replace_all(final_prompt, "{query}"   , query);
                string_replace_all(final_prompt, "{document}", doc  );
                inp = common_tokenize(vocab, final_prompt, true, true);
            } else {
                std::string final_prompt;
                for (size_t i = 0; i < pairs.size(); i++) {
                    final_prompt += pairs[i];
                    if (i != pairs.size() - 1) {
                        if (!added_eos_token.empty()) {
                            final_prompt += added_eos_token;
                        }
                        if (!added_sep_token.empty()) {
                            final_prompt += added_sep_token;
                        }
                    }
                }
                inp = common_tokenize(ctx, final_prompt, true, true);
            }
        } else {
            inp = common_tokenize(ctx, prompt, true, true);
        }
        if (inp.size() > n_batch) {
            return fail("number of tokens in input line (" + std::to_string(inp.size()) + ") exceeds batch size (" +
                        std::to_string(n_batch) + "), increase batch size and re-run");
        }
        inputs.push_back(inp);
    }

    // initialize batch
    const int n_prompts = prompts.size();
    struct llama_batch batch = llama_batch_init(n_batch, 0, 1);

    // count number of embeddings
    int n_embd_count = 0;
    if (pooling_type == LLAMA_POOLING_TYPE_NONE) {
        for (int k = 0; k < n_prompts; k++) {
            n_embd_count += inputs[k].size();
        }
    } else {
        n_embd_count = n_prompts;
    }

    // allocate output
    const int n_embd_out = llama_model_n_embd_out(model);
    const int n_cls_out  = (int) llama_model_n_cls_out(model);
    const int n_out      = pooling_type == LLAMA_POOLING_TYPE_RANK ? std::min(n_embd_out, n_cls_out) : n_embd_out;
    std::vector<float> embeddings(n_embd_count * n_embd_out, 0);
    float * emb = embeddings.data();

    try {
        // break into batches
        int e = 0; // number of embeddings already stored
        int s = 0; // number of prompts in current batch
        for (int k = 0; k < n_prompts; k++) {
            // clamp to n_batch tokens
            auto & inp = inputs[k];

            const uint64_t n_toks = inp.size();

            // encode if at capacity
            if (batch.n_tokens + n_toks > n_batch || s >= n_seq_max) {
                float * out = emb + e * n_embd_out;
                batch_decode(ctx, batch, out, s, n_embd_out, n_out, params.embd_normalize);
                e += pooling_type == LLAMA_POOLING_TYPE_NONE ? batch.n_tokens : s;
                s = 0;
                common_batch_clear(batch);
            }

            // add to batch
            batch_add_seq(batch, inp, s);
            s += 1;
        }

        // final batch
        float * out = emb + e * n_embd_out;
        batch_decode(ctx, batch, out, s, n_embd_out, n_out, params.embd_normalize);
    } catch (const std::exception & ex) {
        llama_batch_free(batch);
        return fail(ex.what());
    }
    llama_batch_free(batch);

    std::string text = "{\"pooling\":" + std::to_string((int) pooling_type) + ",\"nEmbdOut\":" + std::to_string(n_embd_out) +
                       ",\"nClsOut\":" + std::to_string(n_cls_out) + ",\"tokens\":" + json(inputs).dump() + ",\"embeddings\":[";
    for (int j = 0; j < n_embd_count; j++) {
        text += j == 0 ? "[" : ",[";
        for (int i = 0; i < n_out; i++) {
            if (i > 0) {
                text += ",";
            }
            append_float(text, emb[j * n_embd_out + i]);
        }
        text += "]";
    }
    text += "]}";
    printf("%s\n", text.c_str());

    llama_init.reset();
    llama_backend_free();
    return 0;
}
