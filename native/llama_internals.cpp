#include "llama_internals.h"

#include "llama-context.h"
#include "llama-kv-cache-iswa.h"
#include "llama-kv-cache.h"
#include "llama-memory-hybrid.h"
#include "llama-model.h"

namespace llama_kv {

layer_head_dims model_layer_head_dims(const llama_model * model) {
    layer_head_dims dims;
    const uint32_t  n_layer = model->hparams.n_layer();
    for (uint32_t il = 0; il < n_layer; ++il) {
        dims.k.push_back(model->hparams.n_embd_head_k(il));
        dims.v.push_back(model->hparams.n_embd_head_v(il));
    }
    return dims;
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

context_kv_facts context_facts(const llama_context * ctx) {
    context_kv_facts facts;
    const llama_cparams & cparams = ctx->get_cparams();
    facts.flash_attn              = cparams.flash_attn;
    facts.kv_unified              = cparams.kv_unified;
    if (const llama_kv_cache * kv = attention_cache(ctx->get_memory())) {
        facts.has_kv = true;
        facts.type_k = kv->type_k();
        facts.type_v = kv->type_v();
    }
    return facts;
}

}  // namespace llama_kv
