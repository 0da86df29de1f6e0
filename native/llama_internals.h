// The one place that reads llama.cpp's internal C++ objects (src/*.h), for facts the
// C API does not expose: per-layer head dimensions, whether K and V must share a
// type, and what a context really put in force (flash attention after 'auto', the KV
// cache types). Re-check this file when the llama.cpp pin moves.
#pragma once

#include "ggml-backend.h"
#include "llama.h"

#include <string>
#include <utility>
#include <vector>

namespace llama_kv {

struct layer_head_dims {
    std::vector<uint32_t> k;  // n_embd_head_k per layer
    std::vector<uint32_t> v;  // n_embd_head_v per layer
};

// Empty for a model without layers (vocab_only).
layer_head_dims model_layer_head_dims(const llama_model * model);

// True for a model loaded with no_alloc (a memory dry run): it has no weights in
// memory, so nothing may be decoded with it.
bool model_is_dry_run(const llama_model * model);

// Why llama-kv cannot run generation on this model (empty when it can): non-causal
// attention (embedding models) would need every batch to fit one micro-batch and has
// no KV cache to continue from; encoder-decoder models need an encoder pass first.
std::string model_generation_blocker(const llama_model * model);

// What an embedding context of this model does by default: the model's pooling type
// (llama_pooling_type, as the file says), causal attention, and whether it is a reranker.
struct model_embedding_facts {
    int32_t pooling_type = -1;
    bool    causal_attn  = true;
    bool    classifier   = false;  // a classification head (cls / cls.output): a reranker
};

model_embedding_facts model_embedding_facts_of(const llama_model * model);

// MLA models (DeepSeek 2/3 and 4) need K and V caches of the same type.
bool model_needs_equal_kv_types(const llama_model * model);

struct context_kv_facts {
    bool      flash_attn = false;  // resolved: 'auto' has become on or off
    bool      kv_unified = false;
    bool      has_kv     = false;  // false for models without a KV cache (recurrent)
    ggml_type type_k     = GGML_TYPE_COUNT;
    ggml_type type_v     = GGML_TYPE_COUNT;
    bool      embeddings = false;  // created for embeddings (cparams.embeddings)
    bool      causal     = true;   // causal attention (false for BERT-style encoders)
};

context_kv_facts context_facts(const llama_context * ctx);

// How a context's memory writes a sequence's state (llama_state_seq_get_data), for a saved
// state's header and the payload check (state_section.h).
struct context_state_layout {
    std::string unsupported;  // why its state cannot be saved or loaded; empty when it can
    uint32_t    caches   = 1;      // 2 for iSWA (full-attention cache, then the SWA one)
    bool        cell_ext = false;  // cells carry llama_kv_cell_ext
    bool        has_v    = true;   // false for MLA
    bool        v_trans  = true;   // V stored transposed (no flash attention)
    bool        rot_k    = false;  // K stored Hadamard-rotated (quantized K, LLAMA_ATTN_ROT_DISABLE unset)
    bool        rot_v    = false;
    uint32_t    n_stream = 1;      // streams per cache: 1 with kv_unified, else n_seq_max
};

context_state_layout context_state_layout_of(const llama_context * ctx);

// Memory actually allocated by a context, read from its buffers and tensors.
struct context_memory {
    struct buffer {
        ggml_backend_buffer_type_t buft;
        size_t                     model   = 0;  // weights
        size_t                     context = 0;  // KV cache / recurrent state
        size_t                     compute = 0;  // scheduler compute buffers
        size_t                     experts = 0;  // MoE expert weights, part of `model`
    };
    std::vector<buffer> buffers;

    bool      has_kv          = false;
    ggml_type type_k          = GGML_TYPE_COUNT;
    ggml_type type_v          = GGML_TYPE_COUNT;
    size_t    k_bytes         = 0;  // sum of the K tensors (what llama.cpp logs)
    size_t    v_bytes         = 0;  // sum of the V tensors
    size_t    kv_buffer_bytes = 0;  // the attention caches' buffers
    size_t    recurrent_bytes = 0;  // recurrent state (Mamba, RWKV, hybrid models)
    uint32_t  cells           = 0;  // cells per stream, summed over caches (iSWA: base + window)
    uint32_t  layers          = 0;  // layers with a KV cache
    uint32_t  streams         = 0;  // KV streams (1 when unified, else one per sequence)

    ggml_backend_buffer_type_t output_buft  = nullptr;
    size_t                     output_bytes = 0;  // host buffer for logits / embeddings
};

context_memory context_memory_report(const llama_context * ctx);

// Where each weight of a model was placed: its name, the buffer type of its buffer (in a
// dry run, llama.cpp's zero-size placeholder buffer of the chosen type) and its bytes.
struct tensor_place {
    std::string                name;
    ggml_backend_buffer_type_t buft  = nullptr;
    size_t                     bytes = 0;
};
std::vector<tensor_place> model_tensor_placement(const llama_model * model);

// LoRA adapters: the tensor buffers (type and bytes), and what llama.cpp read from the file.
std::vector<std::pair<ggml_backend_buffer_type_t, size_t>> lora_buffers(const llama_adapter_lora * adapter);
struct lora_counts {
    float  alpha = 0.0f;
    size_t pairs = 0;  // lora_a/lora_b tensor pairs, one per adapted base tensor
};
lora_counts lora_counts_of(const llama_adapter_lora * adapter);

}  // namespace llama_kv
