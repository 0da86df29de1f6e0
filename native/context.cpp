#include "context.h"
#include "context_create.h"
#include "rpc_client.h"
#include "lora.h"

#include "addon_data.h"
#include "llama-ext.h"
#include "llama_internals.h"
#include "model.h"
#include "workers/abortable.h"
#include "workers/create_context.h"
#include "workers/score.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace llama_kv {

Napi::Function context_wrap::define(Napi::Env env) {
    return DefineClass(env, "NativeContext",
                       {
                           InstanceMethod<&context_wrap::config>("config"),
                           InstanceMethod<&context_wrap::memory_report>("memoryReport"),
                           InstanceMethod<&context_wrap::submit>("submit"),
                           InstanceMethod<&context_wrap::clear_sequence>("clearSequence"),
                           InstanceMethod<&context_wrap::copy_sequence>("copySequence"),
                           InstanceMethod<&context_wrap::engine_stats>("engineStats"),
                           InstanceMethod<&context_wrap::sequence_cells>("sequenceCells"),
                           InstanceMethod<&context_wrap::score>("score"),
                           InstanceMethod<&context_wrap::state_layout>("stateLayout"),
                           InstanceMethod<&context_wrap::save_state>("saveState"),
                           InstanceMethod<&context_wrap::load_state>("loadState"),
                           InstanceMethod<&context_wrap::abort>("abort"),
                           InstanceMethod<&context_wrap::set_loras>("setLoras"),
                           InstanceMethod<&context_wrap::embed>("embed"),
                           InstanceMethod<&context_wrap::dispose>("dispose"),
                           InstanceAccessor<&context_wrap::disposed>("disposed"),
                       });
}

namespace {

// Marks the JS objects that a context_wrap constructor completed on: unwrap trusts this
// tag, not the prototype chain.
const napi_type_tag context_instance_tag = { 0x6c6c616d614b5601ULL, 0x636f6e7465780002ULL };

}  // namespace

context_wrap::context_wrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<context_wrap>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    std::shared_ptr<context_state> state;
    if (info.Length() >= 3 && !info[2].IsUndefined()) {
        state = take_prepared_context(env, info[2]);  // created on a worker (prepareContext)
        if (model_wrap::unwrap(env, info[0])->model(env) != state->model) {  // DISPOSED when the model went meanwhile
            throw_error(env, code::invalid_argument, "NativeContext(model, params, prepared): prepared was made for another model");
        }
    } else {
        if (info.Length() < 2) {
            throw_error(env, code::invalid_argument, "NativeContext(model, params)");
        }
        context_request request = read_context_request(env, info[0], info[1]);
        if (failure f = create_llama_context(request)) {
            throw make_error(env, f);
        }
        state = std::move(request.state);
    }

    if (!state->dry_run) {  // a dry run's figures were never allocated
        for (const auto & entry : llama_get_memory_breakdown(state->ctx.get())) {
            external_bytes_ += static_cast<int64_t>(entry.second.context + entry.second.compute);
        }
        Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
    }

    addon_data::of(env)->track(state);
    state_ = std::move(state);
    napi_type_tag_object(env, info.This(), &context_instance_tag);
}

context_wrap * context_wrap::unwrap(Napi::Env env, Napi::Value value) {
    bool tagged = false;
    if (value.IsObject()) {
        napi_check_object_type_tag(env, value, &context_instance_tag, &tagged);
    }
    if (!tagged) {
        throw_error(env, code::invalid_argument, "expected a native context");
    }
    return context_wrap::Unwrap(value.As<Napi::Object>());
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

std::shared_ptr<context_state> context_wrap::live(Napi::Env env) {
    if (!state_) {
        throw_error(env, code::disposed, "the context has been disposed");
    }
    if (state_->dry_run) {
        throw_error(env, code::invalid_argument, "this context is a memory dry run (its model has no weights loaded): it can only report memory");
    }
    if (state_->embeddings) {
        throw_error(env, code::invalid_argument, "this is an embedding context: it computes embeddings (embed), not text, scores or states");
    }
    if (state_->broken.load()) {
        throw make_error(env, state_->broken_failure());
    }
    return state_;
}

std::shared_ptr<context_state> context_wrap::live_embedding(Napi::Env env) {
    if (!state_) {
        throw_error(env, code::disposed, "the context has been disposed");
    }
    if (state_->dry_run) {
        throw_error(env, code::invalid_argument, "this context is a memory dry run (its model has no weights loaded): it can only report memory");
    }
    if (!state_->embeddings) {
        throw_error(env, code::invalid_argument, "embed() needs an embedding context (model.createEmbeddingContext())");
    }
    if (state_->broken.load()) {
        throw make_error(env, state_->broken_failure());
    }
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
    const context_kv_facts facts = context_facts(ctx);
    out.Set("flashAttention", facts.flash_attn);
    out.Set("kvUnified", facts.kv_unified);
    out.Set("canShift", llama_memory_can_shift(llama_get_memory(ctx)));
    out.Set("cacheTypeK", facts.has_kv ? Napi::Value(Napi::String::New(env, ggml_type_name(facts.type_k))) : env.Null());
    out.Set("cacheTypeV", facts.has_kv ? Napi::Value(Napi::String::New(env, ggml_type_name(facts.type_v))) : env.Null());
    out.Set("embeddings", facts.embeddings);
    out.Set("pooling", static_cast<int32_t>(llama_pooling_type(ctx)));
    out.Set("causal", facts.causal);
    return out;
}

namespace {

const char * device_kind(ggml_backend_dev_t dev) {
    if (dev == nullptr) {
        return "cpu";  // host buffers without a device
    }
    switch (ggml_backend_dev_type(dev)) {
        case GGML_BACKEND_DEVICE_TYPE_CPU:
            return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU:
        case GGML_BACKEND_DEVICE_TYPE_IGPU:
            return "gpu";
        default:
            return "other";
    }
}

Napi::Object describe_buffer_type(Napi::Env env, ggml_backend_buffer_type_t buft) {
    Napi::Object       out = Napi::Object::New(env);
    ggml_backend_dev_t dev = buft != nullptr ? ggml_backend_buft_get_device(buft) : nullptr;
    // Host memory, including a GPU backend's pinned host buffers (CUDA_Host, Vulkan_Host), which
    // ggml files under the GPU device but which take the host's RAM, not the device's.
    if (buft == nullptr || ggml_backend_buft_is_host(buft) || dev == nullptr) {
        dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    }
    out.Set("buffer", buft != nullptr ? ggml_backend_buft_name(buft) : "unknown");
    out.Set("device", dev != nullptr ? ggml_backend_dev_name(dev) : "CPU");
    out.Set("kind", device_kind(dev));
    if (dev != nullptr) {
        size_t free_bytes = 0, total_bytes = 0;
        if (device_memory(dev, free_bytes, total_bytes)) {  // a remote device asks its server
            out.Set("freeBytes", static_cast<double>(free_bytes));
            out.Set("totalBytes", static_cast<double>(total_bytes));
        }
        if (rpc_is_remote(dev)) {
            out.Set("endpoint", ggml_backend_dev_description(dev));  // ggml's RPC device description is its host:port
        }
    }
    return out;
}

}  // namespace

Napi::Value context_wrap::memory_report(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) {
        throw_error(env, code::disposed, "the context has been disposed");
    }
    // A decode may reallocate the output buffer: read between two steps of the engine.
    const std::shared_ptr<context_state> state = state_;
    std::unique_lock<std::mutex>         lock  = state->lock_between_steps();
    const context_memory                 mem   = context_memory_report(state->ctx.get());
    Napi::Object                         out   = Napi::Object::New(env);

    Napi::Object kv = Napi::Object::New(env);
    kv.Set("present", mem.has_kv);
    kv.Set("typeK", mem.has_kv ? Napi::Value(Napi::String::New(env, ggml_type_name(mem.type_k))) : env.Null());
    kv.Set("typeV", mem.has_kv ? Napi::Value(Napi::String::New(env, ggml_type_name(mem.type_v))) : env.Null());
    kv.Set("kBytes", static_cast<double>(mem.k_bytes));
    kv.Set("vBytes", static_cast<double>(mem.v_bytes));
    kv.Set("bufferBytes", static_cast<double>(mem.kv_buffer_bytes));
    kv.Set("recurrentBytes", static_cast<double>(mem.recurrent_bytes));
    kv.Set("cells", mem.cells);
    kv.Set("layers", mem.layers);
    kv.Set("streams", mem.streams);
    Napi::Array per_sequence = Napi::Array::New(env, state->cached.size());
    for (size_t i = 0; i < state->cached.size(); ++i) {
        per_sequence.Set(static_cast<uint32_t>(i), static_cast<double>(state->cached[i].size()));
    }
    kv.Set("sequenceCells", per_sequence);
    out.Set("kv", kv);

    Napi::Array buffers = Napi::Array::New(env, mem.buffers.size());
    for (size_t i = 0; i < mem.buffers.size(); ++i) {
        Napi::Object b = describe_buffer_type(env, mem.buffers[i].buft);
        b.Set("model", static_cast<double>(mem.buffers[i].model));
        b.Set("context", static_cast<double>(mem.buffers[i].context));
        b.Set("compute", static_cast<double>(mem.buffers[i].compute));
        b.Set("experts", static_cast<double>(mem.buffers[i].experts));
        buffers.Set(static_cast<uint32_t>(i), b);
    }
    out.Set("buffers", buffers);

    Napi::Object output = describe_buffer_type(env, mem.output_buft);
    output.Set("bytes", static_cast<double>(mem.output_bytes));
    out.Set("output", output);

    // The active LoRA adapters' buffers (the same adapter counts once per context).
    Napi::Array loras = Napi::Array::New(env);
    for (const auto & [lora, scale] : state->loras) {
        for (const auto & [buft, bytes] : lora->buffers) {
            Napi::Object b = describe_buffer_type(env, buft);
            b.Set("bytes", static_cast<double>(bytes));
            loras.Set(loras.Length(), b);
        }
    }
    out.Set("loras", loras);
    return out;
}

namespace {

// What llama.cpp would assert on or index out of bounds with, for one of the contexts of a score.
void check_score_tokens(Napi::Env env, const context_state & s, const std::vector<llama_token> & tokens, const char * which) {
    const llama_vocab * vocab = llama_model_get_vocab(s.model.get());
    const int64_t       bad   = find_invalid_token(vocab, tokens.data(), tokens.size());
    if (bad >= 0) {
        throw_error(env, code::invalid_argument,
                    "token id " + std::to_string(tokens[static_cast<size_t>(bad)]) + " at index " + std::to_string(bad) +
                        " is outside the vocabulary of the " + which + " [0, " + std::to_string(llama_vocab_n_tokens(vocab)) + ")");
    }
    const uint32_t n_ctx = llama_n_ctx_seq(s.ctx.get());
    if (tokens.size() > n_ctx) {
        throw_error(env, code::context_full,
                    "the sequence has " + std::to_string(tokens.size()) + " tokens but the " + which + " holds " +
                        std::to_string(n_ctx) + ": use a larger contextSize or a shorter sequence");
    }
}

}  // namespace

// score(tokens, sequence, reference?: NativeContext, referenceSequence?) -> { promise, abort() }
Napi::Value context_wrap::score(const Napi::CallbackInfo & info) {
    Napi::Env                env    = info.Env();
    std::vector<llama_token> tokens = read_tokens(env, info.Length() > 0 ? info[0] : env.Undefined(), "tokens");
    if (tokens.size() < 2) {
        throw_error(env, code::invalid_argument, "score() needs at least 2 tokens: position i is scored on token i + 1");
    }
    const auto read_seq = [&](size_t index, const char * what) {
        if (info.Length() <= index || !info[index].IsNumber()) {
            throw_error(env, code::invalid_argument, std::string("score(): ") + what + " must be a sequence id");
        }
        return static_cast<llama_seq_id>(
            checked_integer(env, info[index].As<Napi::Number>().DoubleValue(), 0, static_cast<int64_t>(llama_max_parallel_sequences()) - 1, std::string("score(): ") + what));
    };
    const llama_seq_id seq   = read_seq(1, "sequence");
    context_wrap *     other = nullptr;
    llama_seq_id       other_seq = 0;
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
        other = unwrap(env, info[2]);
        if (other == this) {
            throw_error(env, code::invalid_argument, "the reference must be another context, not this one");
        }
        other_seq = read_seq(3, "referenceSequence");
    }
    const std::shared_ptr<context_state> state = live(env);
    check_score_tokens(env, *state, tokens, "context");
    std::shared_ptr<context_state> reference;
    if (other != nullptr) {
        if (!other->state_) {
            throw_error(env, code::disposed, "the reference context has been disposed");
        }
        reference = other->live(env);
        const int32_t n_vocab     = llama_vocab_n_tokens(llama_model_get_vocab(state->model.get()));
        const int32_t n_vocab_ref = llama_vocab_n_tokens(llama_model_get_vocab(reference->model.get()));
        if (n_vocab != n_vocab_ref) {
            throw_error(env, code::invalid_argument,
                        "the reference context's model has " + std::to_string(n_vocab_ref) + " tokens in its vocabulary and this one " +
                            std::to_string(n_vocab) + ": distributions over different vocabularies cannot be compared");
        }
        check_score_tokens(env, *reference, tokens, "reference context");
    }
    const auto check_seq = [&](const context_state & s, llama_seq_id id, const char * which) {
        if (static_cast<size_t>(id) >= s.cached.size()) {
            throw_error(env, code::invalid_argument, std::string("score(): sequence ") + std::to_string(id) + " is outside the " +
                                                         which + "'s [0, " + std::to_string(s.cached.size()) + ")");
        }
    };
    check_seq(*state, seq, "context");
    if (reference) {
        check_seq(*reference, other_seq, "reference context");
    }
    if (!state->engine->claim(seq)) {
        throw_error(env, code::busy, "sequence " + std::to_string(seq) + " is already running a request");
    }
    if (reference && !reference->engine->claim(other_seq)) {
        state->engine->release(seq);
        throw_error(env, code::busy, "sequence " + std::to_string(other_seq) + " of the reference context is already running a request");
    }
    auto abort = std::make_shared<std::atomic<bool>>(false);
    try {
        Napi::Promise promise = queue_score(env, { state, seq }, { reference, other_seq }, std::move(tokens), abort);
        return promise_with_abort(env, promise, abort);
    } catch (...) {
        state->engine->release(seq);  // no worker took the sequences over
        if (reference) {
            reference->engine->release(other_seq);
        }
        throw;
    }
}

Napi::Value context_wrap::abort(const Napi::CallbackInfo & info) {
    if (state_) {
        state_->abort.store(true);
        state_->engine->wake();
    }
    return info.Env().Undefined();
}

Napi::Value context_wrap::dispose(const Napi::CallbackInfo & info) {
    if (state_) {
        // A worker still running holds its own reference: it sees the abort flag and
        // the context is freed when it finishes.
        state_->abort.store(true);
        state_->engine->wake();
        state_.reset();
        release_external_memory(info.Env());
    }
    return info.Env().Undefined();
}

Napi::Value context_wrap::disposed(const Napi::CallbackInfo & info) {
    return Napi::Boolean::New(info.Env(), !state_);
}

}  // namespace llama_kv
