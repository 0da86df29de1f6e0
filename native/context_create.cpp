#include "context_create.h"

#include "handles.h"
#include "llama-ext.h"
#include "llama_internals.h"
#include "lora.h"
#include "model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <shared_mutex>
#include <string>

namespace llama_kv {

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

bool read_bool(Napi::Env env, Napi::Object params, const char * key) {
    Napi::Value v = params.Get(key);
    if (!v.IsBoolean()) {
        throw_error(env, code::invalid_argument, std::string("context parameter ") + key + " must be a boolean");
    }
    return v.As<Napi::Boolean>().Value();
}

// The KV cache types llama.cpp accepts (common/arg.cpp, kv_cache_types). Any other
// value, in particular one outside the ggml_type enum, is refused here: ggml would
// index its type table with it.
ggml_type read_cache_type(Napi::Env env, Napi::Object params, const char * key) {
    static const ggml_type allowed[] = { GGML_TYPE_F32,  GGML_TYPE_F16,    GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
                                         GGML_TYPE_Q4_1, GGML_TYPE_IQ4_NL, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1 };
    const uint32_t         id        = read_uint(env, params, key, 0, GGML_TYPE_COUNT - 1);
    for (ggml_type t : allowed) {
        if (static_cast<uint32_t>(t) == id) {
            return t;
        }
    }
    throw_error(env, code::invalid_config, std::string(key) + ": ggml type " + std::to_string(id) +
                                               " (" + ggml_type_name(static_cast<ggml_type>(id)) +
                                               ") is not a KV cache type llama.cpp supports");
}

// The rules llama.cpp would otherwise enforce with an abort (a quantized K whose
// block does not divide the head dimension asserts in a tensor view when flash
// attention is off) or a bare nullptr. TypeScript checks them first with friendlier
// messages; this is the second line.
void check_kv_rules(Napi::Env env, const llama_model * model, ggml_type type_k, ggml_type type_v, int flash_attn) {
    if (ggml_is_quantized(type_v) && flash_attn == LLAMA_FLASH_ATTN_TYPE_DISABLED) {
        throw_error(env, code::invalid_config,
                    std::string("cacheTypeV ") + ggml_type_name(type_v) +
                        " is quantized, which needs flash attention, but flashAttention is 'off': set flashAttention "
                        "to 'on' or 'auto', or use an unquantized cacheTypeV");
    }
    if (model_needs_equal_kv_types(model) && type_k != type_v) {
        throw_error(env, code::invalid_config,
                    std::string("this model (MLA attention) needs cacheTypeK and cacheTypeV of the same type, received ") +
                        ggml_type_name(type_k) + " and " + ggml_type_name(type_v));
    }
    const layer_head_dims dims = model_layer_head_dims(model);
    const struct {
        const char *                  option;
        ggml_type                     type;
        const std::vector<uint32_t> & dims;
    } checks[] = { { "cacheTypeK", type_k, dims.k }, { "cacheTypeV", type_v, dims.v } };
    for (const auto & c : checks) {
        if (!ggml_is_quantized(c.type)) {
            continue;
        }
        const int64_t block = ggml_blck_size(c.type);
        for (size_t il = 0; il < c.dims.size(); ++il) {
            if (block <= 0 || c.dims[il] % block != 0) {
                throw_error(env, code::invalid_config,
                            std::string(c.option) + " " + ggml_type_name(c.type) + " has a block size of " +
                                std::to_string(block) + " values, which does not divide the model's head dimension " +
                                std::to_string(c.dims[il]) + " (layer " + std::to_string(il) + ")");
            }
        }
    }
}

int read_flash_attn(Napi::Env env, Napi::Object params) {
    Napi::Value v = params.Get("flashAttention");
    if (!v.IsNumber()) {
        throw_error(env, code::invalid_argument, "context parameter flashAttention must be -1 (auto), 0 (off) or 1 (on)");
    }
    return static_cast<int>(checked_integer(env, v.As<Napi::Number>().DoubleValue(), LLAMA_FLASH_ATTN_TYPE_AUTO,
                                            LLAMA_FLASH_ATTN_TYPE_ENABLED, "context parameter flashAttention"));
}

}  // namespace

context_request read_context_request(Napi::Env env, Napi::Value model_value, Napi::Value params_value) {
    if (!params_value.IsObject()) {
        throw_error(env, code::invalid_argument, "NativeContext(model, params)");
    }
    llama_model_ptr model  = model_wrap::unwrap(env, model_value)->model(env);
    Napi::Object    params = params_value.As<Napi::Object>();
    if (!model_has_weights(model.get())) {
        throw_error(env, code::context_create_failed,
                    "the model was loaded with vocabOnly and has no weights: load it without vocabOnly to create a context");
    }
    // An embedding context runs any model llama.cpp computes embeddings for (encoders
    // included); a generation context only causal decoders.
    const bool embeddings = !params.Get("embeddings").IsUndefined() && read_bool(env, params, "embeddings");
    if (embeddings) {
        if (llama_model_has_encoder(model.get()) && llama_model_has_decoder(model.get())) {
            throw_error(env, code::context_create_failed,
                        "llama.cpp computes no embeddings for encoder-decoder models (it is one: T5-style)");
        }
    } else if (const std::string why = model_generation_blocker(model.get()); !why.empty()) {
        throw_error(env, code::context_create_failed,
                    "this model cannot generate text: " + why + "; use model.createEmbeddingContext() for its embeddings");
    }
    Napi::Value pooling_value = params.Get("pooling");
    if (!pooling_value.IsUndefined() && !pooling_value.IsNumber()) {
        throw_error(env, code::invalid_argument, "context parameter pooling must be a llama_pooling_type (-1 to 4)");
    }
    const int pooling = pooling_value.IsUndefined()
                            ? LLAMA_POOLING_TYPE_UNSPECIFIED
                            : static_cast<int>(checked_integer(env, pooling_value.As<Napi::Number>().DoubleValue(), LLAMA_POOLING_TYPE_UNSPECIFIED,
                                                               LLAMA_POOLING_TYPE_RANK, "context parameter pooling"));
    const model_embedding_facts embedding_facts = model_embedding_facts_of(model.get());
    // llama.cpp takes <arch>.pooling_type as the file says and aborts building the graph of an
    // embedding context on a value outside its enum.
    if (embeddings && pooling == LLAMA_POOLING_TYPE_UNSPECIFIED &&
        (embedding_facts.pooling_type < LLAMA_POOLING_TYPE_UNSPECIFIED || embedding_facts.pooling_type > LLAMA_POOLING_TYPE_RANK)) {
        throw_error(env, code::context_create_failed,
                    "the model's pooling_type " + std::to_string(embedding_facts.pooling_type) + " is not one llama.cpp knows: pass a pooling");
    }
    const int effective_pooling = pooling == LLAMA_POOLING_TYPE_UNSPECIFIED ? embedding_facts.pooling_type : pooling;
    if (embeddings && effective_pooling == LLAMA_POOLING_TYPE_RANK && !embedding_facts.classifier) {
        throw_error(env, code::invalid_config, "pooling 'rank' needs a reranker model (a classification head, cls.output.weight): this model has none");
    }

    const uint32_t n_ctx     = read_uint(env, params, "contextSize", 1, 1u << 24);
    const uint32_t n_batch   = read_uint(env, params, "batchSize", 1, 1u << 20);
    const uint32_t n_ubatch  = read_uint(env, params, "ubatchSize", 1, n_batch);
    const uint32_t n_seq_max = read_uint(env, params, "sequences", 1, static_cast<uint32_t>(llama_max_parallel_sequences()));
    const uint32_t n_threads = read_uint(env, params, "threads", 1, GGML_MAX_N_THREADS);
    const uint32_t n_threads_batch = read_uint(env, params, "threadsBatch", 1, GGML_MAX_N_THREADS);
    const ggml_type type_k         = read_cache_type(env, params, "cacheTypeK");
    const ggml_type type_v         = read_cache_type(env, params, "cacheTypeV");
    const int       flash_attn     = read_flash_attn(env, params);
    const bool      kv_unified     = read_bool(env, params, "kvUnified");
    const bool      offload_kqv    = read_bool(env, params, "offloadKqv");
    const bool      swa_full       = read_bool(env, params, "swaFull");
    check_kv_rules(env, model.get(), type_k, type_v, flash_attn);
    // llama.cpp reserves an output row per sequence in a batch of min(n_ctx, n_batch) and
    // asserts when there are more sequences (llama_context::output_reserve).
    if (n_seq_max > std::min(n_ctx, n_batch)) {
        throw_error(env, code::invalid_config,
                    "parallel (" + std::to_string(n_seq_max) + ") must not exceed batchSize (" + std::to_string(n_batch) +
                        ") or contextSize (" + std::to_string(n_ctx) + ")");
    }

    auto state   = std::make_shared<context_state>();
    state->model = model;

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx                = n_ctx;
    cp.n_batch              = n_batch;
    cp.n_ubatch             = n_ubatch;
    cp.n_seq_max            = n_seq_max;
    cp.n_threads            = static_cast<int32_t>(n_threads);
    cp.n_threads_batch      = static_cast<int32_t>(n_threads_batch);
    cp.type_k               = type_k;
    cp.type_v               = type_v;
    cp.flash_attn_type      = static_cast<llama_flash_attn_type>(flash_attn);
    cp.kv_unified           = kv_unified;
    cp.offload_kqv          = offload_kqv;
    cp.swa_full             = swa_full;
    cp.no_perf              = true;
    cp.embeddings           = embeddings;
    cp.pooling_type         = static_cast<enum llama_pooling_type>(pooling);
    cp.abort_callback       = [](void * data) -> bool { return static_cast<std::atomic<bool> *>(data)->load(); };
    cp.abort_callback_data  = &state->abort;

    context_request request;
    request.state      = std::move(state);
    request.cp         = cp;
    request.embeddings = embeddings;
    return request;
}

failure create_llama_context(context_request & request) {
    context_state * state = request.state.get();
    log_capture_reset();
    llama_context * ctx = nullptr;
    try {
        std::shared_lock<std::shared_mutex> adapters(adapter_set_mutex());  // it reserves the graph
        ctx = llama_init_from_model(state->model.get(), request.cp);
    } catch (const std::exception & e) {
        log_capture_append(e.what());
    } catch (...) {
        log_capture_append("unknown C++ exception");
    }
    if (ctx == nullptr) {
        const std::string log_tail = log_capture_take();
        return { failure_code(code::context_create_failed, log_tail), with_log("llama.cpp could not create the context", log_tail) };
    }
    state->ctx.reset(ctx);
    if (llama_get_memory(ctx) == nullptr && !request.embeddings) {
        return { code::context_create_failed, "llama-kv cannot run this model yet: llama.cpp gives it no KV cache or state" };
    }

    state->dry_run    = model_is_dry_run(state->model.get());
    state->embeddings = request.embeddings;
    const uint32_t n_seq = llama_n_seq_max(ctx);
    state->cached.resize(n_seq);
    state->cells.reset(new std::atomic<uint32_t>[n_seq]);
    state->publish_cells();
    state->engine = std::make_unique<sequence_engine>(n_seq);

    // One persistent threadpool per context (a second one when batch processing uses a
    // different thread count): no thread creation per decode, workers sleep when idle.
    if (!state->dry_run) {
        state->threadpool = make_threadpool(request.cp.n_threads);
    }
    if (!state->dry_run && request.cp.n_threads_batch != request.cp.n_threads) {
        state->threadpool_batch = make_threadpool(request.cp.n_threads_batch);
    }
    if (state->threadpool) {
        llama_attach_threadpool(ctx, state->threadpool.get(),
                                state->threadpool_batch ? state->threadpool_batch.get() : state->threadpool.get());
    }
    return {};
}

}  // namespace llama_kv
