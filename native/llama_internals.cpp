#include "llama_internals.h"

#include "llama-adapter.h"
#include "llama-context.h"
#include "llama-kv-cache-iswa.h"
#include "llama-kv-cache.h"
#include "llama-memory-hybrid.h"
#include "llama-model.h"

#include <algorithm>
#include <map>

namespace llama_kv {

namespace {

// Reads private members of llama.cpp's classes without changing them. An explicit
// template instantiation may name private members ([temp.explicit]: access checks do
// not apply there), which hands out a pointer-to-member through a friend function.
// Used for figures llama.cpp computes and logs but does not export: the K and V
// tensor sizes of a KV cache and the size of the context's output buffer.
template <typename Tag, typename Tag::type Member> struct member_access {
    friend typename Tag::type get(Tag) { return Member; }
};

struct kv_size_k_tag {
    using type = size_t (llama_kv_cache::*)() const;
    friend type get(kv_size_k_tag);
};
struct kv_size_v_tag {
    using type = size_t (llama_kv_cache::*)() const;
    friend type get(kv_size_v_tag);
};
struct ctx_buf_output_tag {
    using type = ggml_backend_buffer_ptr llama_context::*;
    friend type get(ctx_buf_output_tag);
};

struct kv_v_trans_tag {
    using type = bool llama_kv_cache::*;
    friend type get(kv_v_trans_tag);
};
struct kv_rot_k_tag {
    using type = bool llama_kv_cache::*;
    friend type get(kv_rot_k_tag);
};
struct kv_rot_v_tag {
    using type = bool llama_kv_cache::*;
    friend type get(kv_rot_v_tag);
};

template struct member_access<kv_v_trans_tag, &llama_kv_cache::v_trans>;
template struct member_access<kv_rot_k_tag, &llama_kv_cache::attn_rot_k>;
template struct member_access<kv_rot_v_tag, &llama_kv_cache::attn_rot_v>;
template struct member_access<kv_size_k_tag, &llama_kv_cache::size_k_bytes>;
template struct member_access<kv_size_v_tag, &llama_kv_cache::size_v_bytes>;
template struct member_access<ctx_buf_output_tag, &llama_context::buf_output>;

}  // namespace

layer_head_dims model_layer_head_dims(const llama_model * model) {
    layer_head_dims dims;
    const uint32_t  n_layer = model->hparams.n_layer();
    for (uint32_t il = 0; il < n_layer; ++il) {
        dims.k.push_back(model->hparams.n_embd_head_k(il));
        dims.v.push_back(model->hparams.n_embd_head_v(il));
    }
    return dims;
}

bool model_is_dry_run(const llama_model * model) {
    return model->hparams.no_alloc;
}

std::string model_generation_blocker(const llama_model * model) {
    if (!model->hparams.causal_attn) {
        return "it uses non-causal attention (an embedding model)";
    }
    if (llama_model_has_encoder(model)) {
        return "it is an encoder-decoder model";
    }
    return {};
}

model_embedding_facts model_embedding_facts_of(const llama_model * model) {
    model_embedding_facts out;
    out.pooling_type = static_cast<int32_t>(model->hparams.pooling_type);
    out.causal_attn  = model->hparams.causal_attn;
    out.classifier   = model->cls != nullptr || model->cls_out != nullptr;
    return out;
}

bool model_needs_equal_kv_types(const llama_model * model) {
    // Mirrors llama_init_from_model's own check.
    return model->hparams.n_layer() > 0 && (model->hparams.is_mla() || model->arch == LLM_ARCH_DEEPSEEK4);
}

namespace {

const llama_kv_cache * attention_cache(const llama_memory_i * mem) {
    if (const auto * kv = dynamic_cast<const llama_kv_cache *>(mem)) {
        return kv;
    }
    if (const auto * iswa = dynamic_cast<const llama_kv_cache_iswa *>(mem)) {
        return iswa->get_base();
    }
    if (const auto * hybrid = dynamic_cast<const llama_memory_hybrid *>(mem)) {
        return hybrid->get_mem_attn();
    }
    return nullptr;
}

}  // namespace

namespace {

size_t sum_sizes(const std::map<ggml_backend_buffer_type_t, size_t> & sizes) {
    size_t total = 0;
    for (const auto & entry : sizes) {
        total += entry.second;
    }
    return total;
}

void add_attention_cache(context_memory & out, const llama_kv_cache * kv) {
    if (kv == nullptr) {
        return;
    }
    out.has_kv = true;
    out.type_k = kv->type_k();
    out.type_v = kv->type_v();
    out.k_bytes += (kv->*get(kv_size_k_tag{}))();
    out.v_bytes += (kv->*get(kv_size_v_tag{}))();
    out.kv_buffer_bytes += sum_sizes(kv->memory_breakdown());
    out.cells += kv->get_size();
    out.layers += static_cast<uint32_t>(kv->get_layer_ids().size());  // iSWA: full-attention plus window layers
    out.streams = kv->get_n_stream();
}

// Bytes of MoE expert tensors (ffn_{up,down,gate,gate_up}_exps) per buffer type: where
// cpuMoeLayers / tensor overrides put them. In a dry run (no_alloc) the tensors hang on
// llama.cpp's placeholder buffers, whose types are the keys of memory_breakdown() too.
std::map<ggml_backend_buffer_type_t, size_t> expert_bytes(const llama_model & model) {
    std::map<ggml_backend_buffer_type_t, size_t> out;
    for (const auto & [name, t] : model.tensors_by_name) {
        if (t == nullptr || t->buffer == nullptr || name.find("_exps") == std::string::npos ||
            name.find(".ffn_") == std::string::npos) {
            continue;
        }
        out[ggml_backend_buffer_get_type(t->buffer)] += ggml_nbytes(t);
    }
    return out;
}

}  // namespace

context_memory context_memory_report(const llama_context * ctx) {
    context_memory out;
    const auto experts = expert_bytes(ctx->get_model());
    for (const auto & [buft, data] : ctx->memory_breakdown()) {
        const auto e = experts.find(buft);
        out.buffers.push_back({ buft, data.model, data.context, data.compute, e != experts.end() ? e->second : 0 });
    }
    const llama_memory_i * mem = ctx->get_memory();
    if (const auto * kv = dynamic_cast<const llama_kv_cache *>(mem)) {
        add_attention_cache(out, kv);
    } else if (const auto * iswa = dynamic_cast<const llama_kv_cache_iswa *>(mem)) {
        add_attention_cache(out, iswa->get_base());
        add_attention_cache(out, iswa->get_swa());
    } else if (const auto * hybrid = dynamic_cast<const llama_memory_hybrid *>(mem)) {
        add_attention_cache(out, hybrid->get_mem_attn());
    }
    if (mem != nullptr) {
        const size_t all = sum_sizes(mem->memory_breakdown());
        out.recurrent_bytes = all > out.kv_buffer_bytes ? all - out.kv_buffer_bytes : 0;
    }
    const ggml_backend_buffer_ptr & output = ctx->*get(ctx_buf_output_tag{});
    if (output) {
        out.output_buft  = ggml_backend_buffer_get_type(output.get());
        out.output_bytes = ggml_backend_buffer_get_size(output.get());
    }
    return out;
}

context_kv_facts context_facts(const llama_context * ctx) {
    context_kv_facts facts;
    const llama_cparams & cparams = ctx->get_cparams();
    facts.flash_attn              = cparams.flash_attn;
    facts.kv_unified              = cparams.kv_unified;
    facts.embeddings              = cparams.embeddings;
    facts.causal                  = cparams.causal_attn;
    if (const llama_kv_cache * kv = attention_cache(ctx->get_memory())) {
        facts.has_kv = true;
        facts.type_k = kv->type_k();
        facts.type_v = kv->type_v();
    }
    return facts;
}

context_state_layout context_state_layout_of(const llama_context * ctx) {
    context_state_layout out;
    const llama_memory_i * mem = ctx->get_memory();
    const llama_kv_cache * kv  = nullptr;
    if (const auto * plain = dynamic_cast<const llama_kv_cache *>(mem)) {
        kv = plain;
    } else if (const auto * iswa = dynamic_cast<const llama_kv_cache_iswa *>(mem)) {
        kv         = iswa->get_base();
        out.caches = 2;
    } else {
        out.unsupported = mem == nullptr ? "the model has no KV cache" : "its memory is recurrent or hybrid, not a KV cache";
        return out;
    }
    out.cell_ext = kv->has_cell_ext();
    out.has_v    = !ctx->get_model().hparams.is_mla();
    out.v_trans  = kv->*get(kv_v_trans_tag{});
    out.rot_k    = kv->*get(kv_rot_k_tag{});
    out.rot_v    = kv->*get(kv_rot_v_tag{});
    const llama_cparams & cparams = ctx->get_cparams();
    out.n_stream                  = cparams.kv_unified ? 1 : cparams.n_seq_max;
    return out;
}

std::vector<tensor_place> model_tensor_placement(const llama_model * model) {
    std::vector<tensor_place> out;
    out.reserve(model->tensors_by_name.size());
    for (const auto & [name, t] : model->tensors_by_name) {
        if (t == nullptr) {
            continue;
        }
        out.push_back({ name, t->buffer != nullptr ? ggml_backend_buffer_get_type(t->buffer) : nullptr, ggml_nbytes(t) });
    }
    return out;
}

std::vector<std::pair<ggml_backend_buffer_type_t, size_t>> lora_buffers(const llama_adapter_lora * adapter) {
    std::vector<std::pair<ggml_backend_buffer_type_t, size_t>> out;
    for (const auto & buf : adapter->bufs) {
        out.emplace_back(ggml_backend_buffer_get_type(buf.get()), ggml_backend_buffer_get_size(buf.get()));
    }
    return out;
}

lora_counts lora_counts_of(const llama_adapter_lora * adapter) {
    return { adapter->alpha, adapter->ab_map.size() };
}

}  // namespace llama_kv
