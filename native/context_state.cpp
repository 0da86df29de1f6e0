#include "context_state.h"

#include "model.h"

namespace llama_kv {

int32_t context_state::decode(const llama_batch & batch) {
    if (!reserve_pending) {
        return llama_decode(ctx.get(), batch);
    }
    std::shared_lock<std::shared_mutex> adapters(adapter_set_mutex());
    reserve_pending = false;
    return llama_decode(ctx.get(), batch);
}

void context_state::clear_memory() {
    llama_memory_clear(llama_get_memory(ctx.get()), true);
    for (auto & tokens : cached) {
        tokens.clear();
    }
    publish_cells();
}

void context_state::clear_sequence(llama_seq_id seq) {
    llama_memory_seq_rm(llama_get_memory(ctx.get()), seq, -1, -1);
    cached[static_cast<size_t>(seq)].clear();
    publish_cells();
}

}  // namespace llama_kv
