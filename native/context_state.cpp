#include "context_state.h"

#include "model.h"

namespace llama_kv {

void context_state::mark_broken(const std::string & why) {
    std::lock_guard<std::mutex> lock(broken_mutex_);
    if (broken_why_.empty()) {
        broken_why_ = why.empty() ? std::string("an unknown failure") : why;
    }
    broken.store(true);
}

std::string context_state::broken_reason() {
    if (!broken.load()) {
        return "";
    }
    std::lock_guard<std::mutex> lock(broken_mutex_);
    return broken_why_;
}

failure context_state::broken_failure() {
    return { code::decode_failed, "this context is unusable since " + broken_reason() + "; dispose it and create a new one" };
}

int32_t context_state::decode(const llama_batch & batch) {
    if (broken.load()) {
        throw context_broken(broken_failure().message);
    }
    try {
        if (!reserve_pending) {
            return llama_decode(ctx.get(), batch);
        }
        std::shared_lock<std::shared_mutex> adapters(adapter_set_mutex());
        reserve_pending = false;
        return llama_decode(ctx.get(), batch);
    } catch (const std::exception & e) {
        mark_broken(std::string("llama_decode threw: ") + e.what());
    } catch (...) {
        mark_broken("llama_decode threw an unknown exception");
    }
    throw context_broken(broken_failure().message);
}

void context_state::clear_memory() {
    try {
        llama_memory_clear(llama_get_memory(ctx.get()), true);  // clears the cache's buffers, remote ones included
    } catch (const std::exception & e) {
        mark_broken(std::string("clearing the KV cache threw: ") + e.what());
        throw context_broken(broken_failure().message);
    }
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
