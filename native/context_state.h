// The state behind a LlamaContext, shared between the JS wrapper and the work running on
// it (the engine's worker, a score), so that dispose() during work defers the free until
// the work ends.
#pragma once

#include "engine.h"
#include "errors.h"
#include "handles.h"
#include "lora.h"

#include <atomic>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace llama_kv {

// What context_state::decode throws once llama.cpp threw: the context is unusable.
struct context_broken : std::runtime_error {
    using std::runtime_error::runtime_error;
};

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

  private:
    std::mutex  broken_mutex_;
    std::string broken_why_;

  public:

    // The mutex, taken ahead of the engine's next step (it yields to waiters).
    std::unique_lock<std::mutex> lock_between_steps() {
        waiters.fetch_add(1);
        std::unique_lock<std::mutex> lock(mutex);
        waiters.fetch_sub(1);
        return lock;
    }

    // Set once llama.cpp threw out of a call on this context (with an RPC server that failed,
    // vendor patch 0010: a decode or a logits read lets the exception out, skipping its
    // rollback), or once a step failed half-way: its cache, outputs and graph are in a state
    // nothing knows. Every later call fails with the reason; dispose stays safe. Never cleared.
    std::atomic<bool> broken{ false };
    // Records the first reason (any thread).
    void mark_broken(const std::string & why);
    // The reason, "" while the context is usable.
    std::string broken_reason();
    // The failure every call on a broken context ends with.
    failure broken_failure();

    // llama_decode, under the adapter-set lock when it will reserve the graph. An exception
    // out of llama.cpp marks the context broken and is rethrown as context_broken.
    int32_t decode(const llama_batch & batch);
    // Empties every sequence (mutex held).
    void clear_memory();
    // Empties one sequence (mutex held).
    void clear_sequence(llama_seq_id seq);
};

// Runs `body`, which calls llama.cpp on `states` (a worker's Execute): an exception out of it
// marks them broken and ends the call with the context's failure instead of a bare error.
template <typename F>
void contain_exceptions(std::initializer_list<context_state *> states, failure & fail, F && body) {
    std::string why;
    try {
        body();
        return;
    } catch (const context_broken &) {
    } catch (const std::exception & e) {
        why = std::string("llama.cpp threw: ") + e.what();
    } catch (...) {
        why = "llama.cpp threw an unknown exception";
    }
    for (context_state * s : states) {
        if (s != nullptr) {
            s->mark_broken(why);
        }
    }
    fail = (*states.begin())->broken_failure();
}

}  // namespace llama_kv
