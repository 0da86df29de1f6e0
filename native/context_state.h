// The state behind a LlamaContext, shared between the JS wrapper and the work running on
// it (the engine's worker, a score), so that dispose() during work defers the free until
// the work ends.
#pragma once

#include "engine.h"
#include "errors.h"
#include "handles.h"
#include "lora.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace llama_kv {

struct context_state {
    // Declaration order is destruction order reversed: the context goes first, then
    // its threadpools, then its LoRA adapters, then the model reference.
    llama_model_ptr   model;
    // The active LoRA adapters and their scales (changed on the JS thread, only while no
    // request runs: the context holds raw pointers to them).
    std::vector<std::pair<lora_ptr, float>> loras;
    threadpool_ptr    threadpool;
    threadpool_ptr    threadpool_batch;
    llama_context_ptr ctx;

    // One thread inside llama.cpp at a time: the engine holds it for one step (a decode and
    // its sampling), a score for one chunk, the JS thread for a memory report or a sequence
    // copy. Take it from outside the engine with lock_between_steps().
    std::mutex        mutex;
    std::atomic<int>  waiters{ 0 };
    // Set by dispose() and by the environment's teardown: read by llama.cpp's abort callback
    // (a decode in flight stops) and by every loop. It is never cleared: the context is done.
    std::atomic<bool> abort{ false };
    bool              dry_run = false;  // created on a no_alloc model: report memory only
    bool              embeddings = false;  // an embedding context: embed() only, no requests or state
    std::atomic<bool> embedding_busy{ false };  // an embed() runs (TypeScript queues them; this is the second line)
    // The adapters changed: the next decode reserves the compute graph, which reads the
    // model's adapter set (see adapter_set_mutex). Guarded by mutex.
    bool              reserve_pending = false;

    // Tokens each sequence holds in the KV cache, by sequence id (guarded by mutex), for
    // prefix reuse and positions.
    std::vector<std::vector<llama_token>> cached;
    // cached[i].size(), readable without the mutex (ctx.sequences); updated with it held.
    std::unique_ptr<std::atomic<uint32_t>[]> cells;
    void publish_cells() {
        for (size_t i = 0; i < cached.size(); ++i) {
            cells[i].store(static_cast<uint32_t>(cached[i].size()), std::memory_order_relaxed);
        }
    }

    std::unique_ptr<sequence_engine> engine;

    // The mutex, taken ahead of the engine's next step (it yields to waiters).
    std::unique_lock<std::mutex> lock_between_steps() {
        waiters.fetch_add(1);
        std::unique_lock<std::mutex> lock(mutex);
        waiters.fetch_sub(1);
        return lock;
    }

    // llama_decode, under the adapter-set lock when it will reserve the graph.
    int32_t decode(const llama_batch & batch);
    // Empties every sequence (mutex held).
    void clear_memory();
    // Empties one sequence (mutex held).
    void clear_sequence(llama_seq_id seq);
};

}  // namespace llama_kv
