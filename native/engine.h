// The per-context batch loop: one worker thread decodes every active sequence of a
// context together. Each step puts the next token of every generating sequence and
// prompt chunks of new requests into one llama_batch, runs one llama_decode, samples
// each sequence with its own sampler and hands the tokens to JS through each request's
// thread-safe function. TypeScript picks the sequence of a request; the engine checks
// that it is free and in range, and runs it.
#pragma once

#include "errors.h"
#include "sampler.h"

#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace llama_kv {

struct context_state;

// A request as JS sent it, copied into plain C++ on the JS thread.
struct engine_request {
    enum class kind_t { generate, evaluate };
    kind_t                   kind = kind_t::generate;
    llama_seq_id             seq  = 0;
    bool                     has_text = false;
    std::string              text;
    std::vector<llama_token> tokens;
    bool                     add_special   = true;
    bool                     parse_special = false;
    sampler_params           sampling;
    grammar_params           grammar;
    // Special tokens whose text the output shows (a chat format's markers, e.g. <tool_call>), sorted.
    std::vector<llama_token> render_special;
    uint32_t                 max_tokens = 0;
    std::vector<std::string> stop;
    // Backpressure: at most this many delivered tokens unread by JS before the sequence
    // sits out of the batch (0: no limit).
    uint32_t unread_limit = 0;
    // A full sequence: shift (drop the oldest half after the first `keep` tokens) or end.
    bool     shift = false;
    uint32_t keep  = 0;
};

engine_request read_engine_request(Napi::Env env, Napi::Object obj);

// At most one call into JS per request and interval: a fast model's tokens reach JS in
// batches instead of waking the JS thread per token (which takes CPU from ggml's threads on a
// small machine). Far below what a reader notices.
constexpr int64_t delivery_interval_us = 4000;

struct token_event {
    llama_token token = 0;
    std::string piece;
};

// What a finished request resolves to.
struct engine_result {
    failure                  fail;
    std::string              finish_reason = "length";
    size_t                   prompt_tokens = 0;
    size_t                   reused_tokens = 0;
    double                   prompt_ms     = 0;
    uint32_t                 generated     = 0;
    double                   generation_ms = 0;
    int64_t                  stop_offset   = -1;
    uint32_t                 shifts        = 0;
    std::vector<float>       logits;  // evaluate: the last position's row
    std::vector<llama_token> cached;  // the sequence's cache when the request ended
};

// One request in flight. Shared by the JS thread (submit, abort, tokensRead, delivery)
// and the engine thread (everything between).
struct engine_job : std::enable_shared_from_this<engine_job> {
    engine_request req;

    std::atomic<bool>     abort{ false };
    std::atomic<uint32_t> tokens_read{ 0 };

    // Engine thread only.
    enum class phase_t { start, prompt, generating, done } phase = phase_t::start;
    std::vector<llama_token> prompt;
    size_t                   prompt_pos  = 0;  // prompt tokens already in the cache
    llama_token              next_token  = LLAMA_TOKEN_NULL;  // sampled, to decode in the next step
    int32_t                  output_row  = -1;  // its logits row in the current batch
    size_t                   chunk       = 0;   // prompt tokens it has in the current batch
    sequence_sampler         sampler;
    std::string              stop_text;  // generated text, kept only to look for stop strings
    int64_t                  t_start_us  = 0;
    int64_t                  t_gen_us    = 0;

    // Delivery to JS: guarded by out_mutex.
    std::mutex               out_mutex;
    std::vector<token_event> outbox;
    bool                     call_pending = false;
    bool                     probe        = false;  // a heartbeat: call onTokens even with no tokens
    int64_t                  last_call_us = 0;      // when the last call into JS was queued
    bool                     finished     = false;  // result is final
    bool                     settled      = false;  // JS side: the promise was settled
    engine_result            result;

    Napi::ThreadSafeFunction     tsfn;      // onTokens; released by the engine after the final call
    Napi::Promise::Deferred      deferred;  // JS thread only
    Napi::Reference<Napi::Value> callback_error;

    explicit engine_job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}

    // Engine thread: hands queued tokens (or, final, the result) to JS when a call is due
    // (`force`: now, whatever the interval).
    void post(bool final, bool force = false);
    // Engine thread: a call into JS with no tokens, made while a request produces none (a long
    // prompt, a stalled reader). A worker being terminated runs its event loop until our work
    // ends, without running JS: the failed call is how the engine learns it, and it aborts.
    void heartbeat();
    // JS thread: hands queued tokens to onTokens, and settles once the result is final.
    void drain(Napi::Env env, Napi::Function on_tokens);
};

// Cumulative figures of a context's engine (read from any thread).
struct engine_stats {
    std::atomic<uint64_t> steps{ 0 };
    std::atomic<uint64_t> tokens{ 0 };
    std::atomic<uint64_t> decode_ns{ 0 };
    std::atomic<uint64_t> step_ns{ 0 };
};

class sequence_engine {
  public:
    explicit sequence_engine(uint32_t n_seq) : claimed_(n_seq, false) {}
    ~sequence_engine();
    sequence_engine(const sequence_engine &)             = delete;
    sequence_engine & operator=(const sequence_engine &) = delete;

    // JS thread: queues the job on its sequence (BUSY if a request holds it) and starts
    // the worker if it is not running.
    void submit(Napi::Env env, const std::shared_ptr<context_state> & state, std::shared_ptr<engine_job> job);

    // Marks a sequence in use by work that is not a job (a score); false if it already is.
    bool claim(llama_seq_id seq);
    void release(llama_seq_id seq);
    bool claimed(llama_seq_id seq);
    bool any_claimed();

    // Wakes the loop (a reader took tokens, a job was aborted, the context is going away).
    void wake();

    engine_stats stats;

    // The worker: loops while there is work, then returns.
    void run(context_state & state);

  private:
    // Moves new requests into the active list; false (and not running) when there is no work.
    bool take_incoming();
    bool step(context_state & state);
    void start_job(context_state & state, engine_job & job);
    bool shift(context_state & state, engine_job & job);
    void sample(context_state & state, engine_job & job, int32_t row);
    // Ends a job with `reason`, or with the failure `f` when it is set; hands the result to JS.
    void end(context_state & state, engine_job & job, const char * reason, failure f = {});
    void fail_everything(context_state & state, failure f);

    std::mutex                               mutex_;  // incoming_, claimed_, running_
    std::condition_variable                  cv_;
    std::vector<std::shared_ptr<engine_job>> incoming_;
    std::vector<bool>                        claimed_;
    bool                                     running_ = false;
    bool                                     woken_   = false;

    std::vector<std::shared_ptr<engine_job>> active_;    // engine thread only
    std::vector<engine_job *>                in_batch_;  // this step's jobs (engine thread only)
    llama_batch                              batch_{};
    int32_t                                  batch_capacity_ = 0;
};

}  // namespace llama_kv
