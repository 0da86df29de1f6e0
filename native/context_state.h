// The state behind a LlamaContext, shared between the JS wrapper and the worker
// running on it, so that dispose() during work defers the free until the work ends.
#pragma once

#include "errors.h"
#include "handles.h"
#include "lora.h"

#include <atomic>
#include <functional>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace llama_kv {

struct context_state {
    // Declaration order is destruction order reversed: the context goes first, then
    // its threadpools, then its LoRA adapters, then the model reference.
    llama_model_ptr   model;
    // The active LoRA adapters and their scales (changed on the JS thread, only while no
    // worker runs: the context holds raw pointers to them).
    std::vector<std::pair<lora_ptr, float>> loras;
    threadpool_ptr    threadpool;
    threadpool_ptr    threadpool_batch;
    llama_context_ptr ctx;

    std::mutex        mutex;          // one thread inside llama.cpp at a time
    std::atomic<bool> abort{ false };  // read by llama.cpp's abort callback and our loops
    std::atomic<bool> busy{ false };   // a worker owns the context (set on the JS thread)
    bool              dry_run = false;  // created on a no_alloc model: report memory only
    // The adapters changed: the next decode reserves the compute graph, which reads the
    // model's adapter set (see adapter_set_mutex). Guarded by mutex.
    bool              reserve_pending = false;

    // Backpressure of a generation: tokens its JS reader has taken (set from the JS thread
    // by consumed(), reset when an operation starts). The generate loop waits on read_cv
    // while too many delivered tokens are unread; abort also ends that wait (it is polled
    // as well, so a setter of `abort` that does not notify costs at most one poll).
    std::atomic<uint32_t>   tokens_read{ 0 };
    std::mutex              read_mutex;
    std::condition_variable read_cv;
    // After changing tokens_read or abort: taking the mutex orders the change before the
    // waiter's next check, so that the notification cannot fall between its check and its wait.
    void wake_reader_wait() {
        { std::lock_guard<std::mutex> lock(read_mutex); }
        read_cv.notify_all();
    }

    // Tokens of sequence 0 now in the KV cache (guarded by mutex), for prefix reuse.
    std::vector<llama_token> cached;

    // Decodes `tokens` as sequence 0, reusing the longest prefix already cached.
    // Leaves the logits of the last token available. Returns the number of tokens
    // reused, or -1 with `fail` set (fail.code == ABORTED when aborted).
    // `after_batch` runs after each decoded batch (used as a heartbeat towards JS).
    int64_t decode_prompt(const std::vector<llama_token> & tokens, failure & fail,
                          const std::function<void()> & after_batch = {});
    // llama_decode, under the adapter-set lock when it will reserve the graph.
    int32_t decode(llama_batch batch);
    // Decodes one generated token.
    bool decode_one(llama_token token, failure & fail);
    void clear_memory();
};

}  // namespace llama_kv
