#include "engine.h"

#include "context_state.h"
#include "model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

namespace llama_kv {

namespace {

int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint64_t now_ns() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

// Runs sequence_engine::run on a libuv threadpool thread, holding the context while it has work:
// process exit joins that pool, so no decode outlives the process's teardown.
class engine_worker : public Napi::AsyncWorker {
  public:
    engine_worker(Napi::Env env, std::shared_ptr<context_state> state) :
        Napi::AsyncWorker(env, "llama-kv:engine"),
        state_(std::move(state)) {}

  protected:
    void Execute() override { state_->engine->run(*state_); }
    void OnOK() override {}
    void OnError(const Napi::Error &) override {}

  private:
    std::shared_ptr<context_state> state_;
};

// Looks for a stop string that ends in the bytes appended after `before`.
int64_t find_stop(const std::vector<std::string> & stops, const std::string & text, size_t before) {
    for (const std::string & stop : stops) {
        if (stop.empty()) {
            continue;
        }
        const size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
        const size_t pos  = text.find(stop, from);
        if (pos != std::string::npos) {
            return static_cast<int64_t>(pos);
        }
    }
    return -1;
}

void batch_add(llama_batch & batch, llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
    const int32_t i    = batch.n_tokens++;
    batch.token[i]     = token;
    batch.pos[i]       = pos;
    batch.n_seq_id[i]  = 1;
    batch.seq_id[i][0] = seq;
    batch.logits[i]    = logits ? 1 : 0;
}

}  // namespace

// ---- delivery -------------------------------------------------------------------------

void engine_job::post(bool final, bool force) {
    const int64_t now  = now_us();
    bool          call = false;
    {
        std::lock_guard<std::mutex> lock(out_mutex);
        if (final) {
            finished = true;
        }
        // One call into JS per delivery interval at most: tokens that come sooner wait in the
        // outbox for the next call (flush() after each step sends them once it is due). The
        // first token goes at once.
        const bool due = final || force || last_call_us == 0 || now - last_call_us >= delivery_interval_us;
        if (due && !call_pending && (final || force || !outbox.empty())) {
            call         = true;
            call_pending = true;
            last_call_us = now;
        }
    }
    if (call) {
        // The call holds the job until it has run.
        const napi_status status = tsfn.NonBlockingCall(
            [self = shared_from_this()](Napi::Env env, Napi::Function on_tokens) { self->drain(env, on_tokens); });
        if (status != napi_ok) {
            abort.store(true);  // JS is going away: nobody will read these tokens
        }
    }
}

void engine_job::heartbeat() {
    {
        std::lock_guard<std::mutex> lock(out_mutex);
        probe = true;
    }
    post(false, true);
}

void engine_job::drain(Napi::Env env, Napi::Function on_tokens) {
    if (env == nullptr) {
        return;  // the environment is being torn down
    }
    std::vector<token_event> events;
    bool                     settle = false;
    bool                     probing = false;
    {
        std::lock_guard<std::mutex> lock(out_mutex);
        events.swap(outbox);
        call_pending = false;
        probing      = probe;
        probe        = false;
        if (finished && !settled) {
            settled = true;
            settle  = true;
        }
    }
    const bool called = outside_js([&] {
        if ((!events.empty() || probing) && callback_error.IsEmpty()) {
            auto        tokens = Napi::Int32Array::New(env, events.size());
            Napi::Array pieces = Napi::Array::New(env, events.size());
            for (size_t i = 0; i < events.size(); ++i) {
                tokens[i] = events[i].token;
                pieces.Set(static_cast<uint32_t>(i), Napi::Buffer<char>::Copy(env, events[i].piece.data(), events[i].piece.size()));
            }
            try {
                if (on_tokens.Call({ tokens, pieces }).IsEmpty()) {
                    abort.store(true);  // JS cannot run any more (the environment is stopping)
                }
            } catch (const Napi::Error & e) {
                // The callback threw: stop, and reject with its error rather than lose it.
                callback_error = Napi::Reference<Napi::Value>::New(e.Value(), 1);
                abort.store(true);
            }
        }
        if (!settle) {
            return;
        }
        if (!callback_error.IsEmpty()) {
            deferred.Reject(callback_error.Value());
            callback_error.Reset();  // here, on the JS thread: the job may be freed on the engine's
            return;
        }
        const engine_result & r      = result;
        auto                  cached = Napi::Int32Array::New(env, r.cached.size());
        if (!r.cached.empty()) {
            std::memcpy(cached.Data(), r.cached.data(), r.cached.size() * sizeof(llama_token));
        }
        if (r.fail) {
            Napi::Error error = make_error(env, r.fail);
            error.Value().Set("sequenceTokens", cached);  // what the sequence holds after the failure
            deferred.Reject(error.Value());
            return;
        }
        Napi::Object out = Napi::Object::New(env);
        out.Set("finishReason", r.finish_reason);
        out.Set("promptTokens", static_cast<double>(r.prompt_tokens));
        out.Set("reusedTokens", static_cast<double>(r.reused_tokens));
        out.Set("promptMs", r.prompt_ms);
        out.Set("generatedTokens", static_cast<double>(r.generated));
        out.Set("generationMs", r.generation_ms);
        out.Set("stopOffset", r.stop_offset >= 0 ? Napi::Number::New(env, static_cast<double>(r.stop_offset)) : env.Null());
        out.Set("shifts", static_cast<double>(r.shifts));
        out.Set("cached", cached);
        if (req.kind == engine_request::kind_t::evaluate) {
            auto logits = Napi::Float32Array::New(env, r.logits.size());
            if (!r.logits.empty()) {
                std::memcpy(logits.Data(), r.logits.data(), r.logits.size() * sizeof(float));
            }
            out.Set("logits", logits);
        }
        deferred.Resolve(out);
    });
    if (!called) {
        abort.store(true);
    }
}

// ---- submission (JS thread) -----------------------------------------------------------

void sequence_engine::submit(Napi::Env env, const std::shared_ptr<context_state> & state, std::shared_ptr<engine_job> job) {
    const llama_seq_id seq = job->req.seq;
    bool               start = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (seq < 0 || static_cast<size_t>(seq) >= claimed_.size()) {
            throw_error(env, code::invalid_argument,
                        "sequence " + std::to_string(seq) + " is outside [0, " + std::to_string(claimed_.size()) + ")");
        }
        if (claimed_[static_cast<size_t>(seq)]) {
            throw_error(env, code::busy, "sequence " + std::to_string(seq) + " is already running a request");
        }
        claimed_[static_cast<size_t>(seq)] = true;
        incoming_.push_back(std::move(job));
        start    = !running_;
        running_ = true;
        woken_   = true;
    }
    cv_.notify_all();
    if (start) {
        (new engine_worker(env, state))->Queue();  // freed by node-addon-api
    }
}

bool sequence_engine::claim(llama_seq_id seq) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (seq < 0 || static_cast<size_t>(seq) >= claimed_.size() || claimed_[static_cast<size_t>(seq)]) {
        return false;
    }
    claimed_[static_cast<size_t>(seq)] = true;
    return true;
}

void sequence_engine::release(llama_seq_id seq) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (seq >= 0 && static_cast<size_t>(seq) < claimed_.size()) {
        claimed_[static_cast<size_t>(seq)] = false;
    }
}

bool sequence_engine::claimed(llama_seq_id seq) {
    std::lock_guard<std::mutex> lock(mutex_);
    return seq >= 0 && static_cast<size_t>(seq) < claimed_.size() && claimed_[static_cast<size_t>(seq)];
}

bool sequence_engine::any_claimed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::find(claimed_.begin(), claimed_.end(), true) != claimed_.end();
}

void sequence_engine::wake() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        woken_ = true;
    }
    cv_.notify_all();
}

sequence_engine::~sequence_engine() {
    if (batch_capacity_ > 0) {
        llama_batch_free(batch_);
    }
}

// ---- the loop (engine thread) ---------------------------------------------------------

bool sequence_engine::take_incoming() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto & job : incoming_) {
        active_.push_back(std::move(job));
    }
    incoming_.clear();
    woken_ = false;
    if (active_.empty()) {
        running_ = false;  // with the queue empty, under its lock: the next submit starts a worker
        return false;
    }
    return true;
}

void sequence_engine::run(context_state & state) {
    try {
        if (batch_capacity_ == 0) {
            batch_capacity_ = static_cast<int32_t>(llama_n_batch(state.ctx.get()));
            batch_          = llama_batch_init(batch_capacity_, 0, 1);
        }
        while (take_incoming()) {
            if (!step(state)) {
                // Every sequence waits for its reader: sleep until one reads, aborts or a request
                // arrives. Each quarter second without any, a heartbeat checks that JS still runs.
                for (auto & job : active_) {
                    job->post(false, true);  // what the delivery interval held back, before sleeping
                }
                std::unique_lock<std::mutex> lock(mutex_);
                if (!cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return woken_ || !incoming_.empty(); })) {
                    lock.unlock();
                    for (auto & job : active_) {
                        job->heartbeat();
                    }
                }
            }
        }
    } catch (const context_broken &) {
        fail_everything(state, state.broken_failure());
    } catch (const std::exception & e) {
        // Out of llama.cpp mid-step (a logits read from an RPC server that failed) or out of
        // the step's own bookkeeping: what the cache holds is no longer known.
        const bool oom = dynamic_cast<const std::bad_alloc *>(&e) != nullptr;
        state.mark_broken(std::string(oom ? "a step ran out of memory: " : "a step threw: ") + e.what());
        failure f = state.broken_failure();
        if (oom) {
            f.code = code::insufficient_memory;
        }
        fail_everything(state, f);
    } catch (...) {
        state.mark_broken("a step threw an unknown exception");
        fail_everything(state, state.broken_failure());
    }
}

void sequence_engine::fail_everything(context_state & state, failure f) {
    // Every request ends with `f`, those that arrive meanwhile too; running_ goes false only
    // together with an empty queue, so that no request is left without a worker.
    while (take_incoming()) {
        std::lock_guard<std::mutex> lock(state.mutex);
        for (auto & job : active_) {
            end(state, *job, nullptr, f);
        }
        active_.clear();
    }
}

void sequence_engine::end(context_state & state, engine_job & job, const char * reason, failure f) {
    if (job.phase == engine_job::phase_t::done) {
        return;  // ended already (fail_everything after a step that ended it): release its function once
    }
    engine_result & r = job.result;
    if (f) {
        r.fail = std::move(f);
    } else {
        r.finish_reason = reason != nullptr ? reason : "abort";
    }
    if (job.t_gen_us > 0) {
        r.generation_ms = static_cast<double>(now_us() - job.t_gen_us) / 1000.0;
    }
    const size_t seq = static_cast<size_t>(job.req.seq);
    if (seq < state.cached.size()) {
        r.cached = state.cached[seq];
        state.cells[seq].store(static_cast<uint32_t>(r.cached.size()), std::memory_order_relaxed);  // before JS hears of the end
    }
    job.phase = engine_job::phase_t::done;
    release(job.req.seq);
    job.post(true);
    job.tsfn.Release();
}

void sequence_engine::start_job(context_state & state, engine_job & job) {
    llama_context *     ctx   = state.ctx.get();
    const llama_vocab * vocab = llama_model_get_vocab(state.model.get());
    const size_t        seq   = static_cast<size_t>(job.req.seq);
    job.t_start_us            = now_us();

    if (job.req.has_text) {
        std::string error;
        if (!tokenize_text(vocab, job.req.text, job.req.add_special, job.req.parse_special, job.prompt, error)) {
            end(state, job, nullptr, { code::tokenize_failed, error });
            return;
        }
    } else {
        job.prompt = std::move(job.req.tokens);
    }
    const std::vector<llama_token> & prompt = job.prompt;
    job.result.prompt_tokens                = prompt.size();
    const uint32_t n_ctx                    = llama_n_ctx_seq(ctx);
    if (prompt.empty()) {
        end(state, job, nullptr, { code::invalid_argument, "the prompt is empty: at least one token is needed" });
        return;
    }
    const int64_t bad = find_invalid_token(vocab, prompt.data(), prompt.size());
    if (bad >= 0) {
        end(state, job, nullptr,
            { code::invalid_argument, "token id " + std::to_string(prompt[static_cast<size_t>(bad)]) + " at index " +
                                          std::to_string(bad) + " is outside the vocabulary [0, " +
                                          std::to_string(llama_vocab_n_tokens(vocab)) + ")" });
        return;
    }
    if (prompt.size() > n_ctx) {
        end(state, job, nullptr,
            { code::context_full, "the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
                                      std::to_string(n_ctx) + ": use a larger contextSize or a shorter prompt" });
        return;
    }
    if (static_cast<uint32_t>(job.req.sampling.repeat_last_n) > n_ctx) {
        end(state, job, nullptr,
            { code::invalid_argument, "generate: repeatLastN (" + std::to_string(job.req.sampling.repeat_last_n) +
                                          ") is larger than the context of a sequence (" + std::to_string(n_ctx) + ")" });
        return;
    }

    // Longest common prefix with what the sequence holds; at least one token is decoded
    // so that the logits of the last position exist.
    std::vector<llama_token> & cached = state.cached[seq];
    size_t                     n_keep = 0;
    while (n_keep < cached.size() && n_keep < prompt.size() && cached[n_keep] == prompt[n_keep]) {
        ++n_keep;
    }
    if (n_keep == prompt.size()) {
        --n_keep;
    }
    llama_memory_t     mem = llama_get_memory(ctx);
    const llama_seq_id id  = job.req.seq;
    // A sliding-window cache forgets cells outside the window: rolling back to n_keep is
    // only sound if the cells the window needs at n_keep are still there.
    const int32_t n_swa = llama_model_n_swa(state.model.get());
    if (n_keep > 0 && n_swa > 0 &&
        llama_memory_seq_pos_min(mem, id) > std::max<int64_t>(0, static_cast<int64_t>(n_keep) - n_swa)) {
        n_keep = 0;
    }
    if (n_keep == 0 || !llama_memory_seq_rm(mem, id, static_cast<llama_pos>(n_keep), -1)) {
        llama_memory_seq_rm(mem, id, -1, -1);
        n_keep = 0;
    }
    cached.resize(n_keep);
    job.prompt_pos           = n_keep;
    job.result.reused_tokens = n_keep;
    if (job.req.kind == engine_request::kind_t::generate) {
        job.sampler = sequence_sampler(job.req.sampling, job.req.grammar, vocab);
        // The repetition penalty sees the tail of the prompt, as in llama.cpp's tools.
        job.sampler.accept_prompt(prompt.data(), prompt.size());
    }
    job.phase = engine_job::phase_t::prompt;
}

// The sequence is full: drop the oldest half of what follows the first `keep` tokens and
// move the rest down (llama.cpp server's context shift). False when nothing can go.
bool sequence_engine::shift(context_state & state, engine_job & job) {
    llama_memory_t             mem    = llama_get_memory(state.ctx.get());
    std::vector<llama_token> & cached = state.cached[static_cast<size_t>(job.req.seq)];
    const size_t               n_past = cached.size();
    // The BOS token is kept on top of `keep`, as llama.cpp's server keeps it.
    const llama_vocab * vocab  = llama_model_get_vocab(state.model.get());
    const size_t        bos    = !cached.empty() && cached[0] == llama_vocab_bos(vocab) ? 1 : 0;
    const size_t        n_keep = std::min<size_t>(static_cast<size_t>(job.req.keep) + bos, n_past);
    const size_t               n_discard = (n_past - n_keep) / 2;
    if (n_discard == 0 || !llama_memory_can_shift(mem)) {
        return false;
    }
    const llama_seq_id id = job.req.seq;
    const auto         p0 = static_cast<llama_pos>(n_keep);
    const auto         p1 = static_cast<llama_pos>(n_keep + n_discard);
    if (!llama_memory_seq_rm(mem, id, p0, p1)) {
        return false;
    }
    llama_memory_seq_add(mem, id, p1, static_cast<llama_pos>(n_past), -static_cast<llama_pos>(n_discard));
    cached.erase(cached.begin() + static_cast<std::ptrdiff_t>(n_keep), cached.begin() + static_cast<std::ptrdiff_t>(n_keep + n_discard));
    ++job.result.shifts;
    return true;
}

// Samples the job's next token from output row `row`, delivers it and decides whether the
// request goes on.
void sequence_engine::sample(context_state & state, engine_job & job, int32_t row) {
    const llama_vocab * vocab = llama_model_get_vocab(state.model.get());
    engine_result &     r     = job.result;
    const llama_token   token = job.sampler.sample(state.ctx.get(), row);
    if (token == LLAMA_TOKEN_NULL) {
        if (!job.sampler.error().empty()) {
            end(state, job, nullptr, { code::grammar_failed, job.sampler.error() });
        } else {
            end(state, job, nullptr, { code::decode_failed, with_log("llama.cpp returned no logits", log_capture_take()) });
        }
        return;
    }
    if (llama_vocab_is_eog(vocab, token)) {
        end(state, job, "eos");
        return;
    }
    const bool  special = std::binary_search(job.req.render_special.begin(), job.req.render_special.end(), token);
    token_event event{ token, token_piece(vocab, token, special) };
    ++r.generated;
    int64_t stop_at = -1;
    if (!job.req.stop.empty()) {
        const size_t before = job.stop_text.size();
        job.stop_text += event.piece;
        stop_at = find_stop(job.req.stop, job.stop_text, before);
    }
    {
        std::lock_guard<std::mutex> lock(job.out_mutex);
        job.outbox.push_back(std::move(event));
    }
    job.post(false);
    if (stop_at >= 0) {
        r.stop_offset = stop_at;
        end(state, job, "stop");
        return;
    }
    if (r.generated >= job.req.max_tokens) {
        end(state, job, "length");
        return;
    }
    job.next_token = token;
}

// One decode of every sequence that can go on. False when none could (all wait for their
// readers) and nothing was decoded.
bool sequence_engine::step(context_state & state) {
    // A thread waiting for the context between steps (memoryReport, fork, a score) goes first.
    while (state.waiters.load() > 0) {
        std::this_thread::yield();
    }
    std::unique_lock<std::mutex> lock(state.mutex);
    const uint64_t               t0 = now_ns();
    log_capture_reset();
    llama_context * ctx       = state.ctx.get();
    const size_t    n_ctx_seq = llama_n_ctx_seq(ctx);
    const auto      remove_done = [&] {
        active_.erase(std::remove_if(active_.begin(), active_.end(),
                                     [](const std::shared_ptr<engine_job> & j) { return j->phase == engine_job::phase_t::done; }),
                      active_.end());
    };

    if (state.abort.load()) {  // disposed, or the environment is going away
        for (auto & job : active_) {
            end(state, *job, "abort");
        }
        active_.clear();
        return true;
    }

    for (auto & job : active_) {
        if (job->abort.load()) {
            end(state, *job, "abort");
        } else if (job->phase == engine_job::phase_t::start) {
            start_job(state, *job);
        }
    }
    remove_done();

    // Generating sequences first, one token each; then prompt chunks in arrival order.
    llama_batch & batch = batch_;
    batch.n_tokens      = 0;
    std::vector<engine_job *> & in_batch = in_batch_;
    in_batch.clear();
    for (auto & job : active_) {
        job->output_row = -1;
        job->chunk      = 0;
        if (job->phase != engine_job::phase_t::generating) {
            continue;
        }
        const uint32_t read = std::min(job->tokens_read.load(), job->result.generated);  // a count beyond what was sent means all
        if (job->req.unread_limit > 0 && job->result.generated - read >= job->req.unread_limit) {
            continue;  // its reader is behind: it sits out until it reads on
        }
        std::vector<llama_token> & cached = state.cached[static_cast<size_t>(job->req.seq)];
        if (cached.size() >= n_ctx_seq && !(job->req.shift && shift(state, *job))) {
            end(state, *job, "contextFull");  // no room for the sampled token
            continue;
        }
        job->output_row = batch.n_tokens;
        batch_add(batch, job->next_token, static_cast<llama_pos>(cached.size()), job->req.seq, true);
        in_batch.push_back(job.get());
    }
    for (auto & job : active_) {
        if (job->phase != engine_job::phase_t::prompt || batch.n_tokens >= batch_capacity_) {
            continue;
        }
        const size_t left = job->prompt.size() - job->prompt_pos;
        const size_t n    = std::min(left, static_cast<size_t>(batch_capacity_ - batch.n_tokens));
        for (size_t i = 0; i < n; ++i) {
            const size_t at   = job->prompt_pos + i;
            const bool   last = at + 1 == job->prompt.size();
            if (last) {
                job->output_row = batch.n_tokens;
            }
            batch_add(batch, job->prompt[at], static_cast<llama_pos>(at), job->req.seq, last);
        }
        job->chunk = n;
        in_batch.push_back(job.get());
    }
    remove_done();
    if (batch.n_tokens == 0) {
        state.publish_cells();  // start_job may have rolled a sequence back
        return active_.empty();  // false: every sequence left waits for its reader
    }

    const uint64_t t_decode = now_ns();
    const int32_t  rc       = state.decode(batch);
    const uint64_t t_decoded = now_ns();
    // The step's time so far goes in before its decode time, and both before any result of this
    // step reaches JS: a reader that loads decode_ns first, then step_ns (engineStats) never sees
    // more decode than step time. The rest of the step is added when it ends.
    stats.step_ns += t_decoded - t0;
    stats.decode_ns += t_decoded - t_decode;
    stats.steps += 1;
    stats.tokens += static_cast<uint64_t>(batch.n_tokens);

    if (rc == 1) {
        // No KV slot for this batch: the sequences share one pool (kvUnified) and it is full.
        // llama.cpp changed nothing; the sequence holding the most cells shifts or ends, and
        // the others go on next step.
        engine_job * largest = nullptr;
        for (engine_job * job : in_batch) {
            if (largest == nullptr ||
                state.cached[static_cast<size_t>(job->req.seq)].size() > state.cached[static_cast<size_t>(largest->req.seq)].size()) {
                largest = job;
            }
        }
        if (largest->phase == engine_job::phase_t::generating && !(largest->req.shift && shift(state, *largest))) {
            end(state, *largest, "contextFull");
        } else if (largest->phase == engine_job::phase_t::prompt) {
            end(state, *largest, nullptr,
                { code::context_full, "the context's cells are all in use by its sequences (kvUnified): this prompt of " +
                                          std::to_string(largest->prompt.size()) + " tokens does not fit now" });
        }
        remove_done();
        state.publish_cells();
        stats.step_ns += now_ns() - t_decoded;
        return true;
    }
    if (rc != 0) {
        // Aborted (the context is going away) or a failure: the sequences of this batch may
        // hold half-decoded ubatches, so they start from an empty cache next time.
        const failure f = rc == 2 ? failure{} : decode_failure(rc, log_capture_take());
        llama_memory_t mem = llama_get_memory(ctx);
        for (engine_job * job : in_batch) {
            llama_memory_seq_rm(mem, job->req.seq, -1, -1);
            state.cached[static_cast<size_t>(job->req.seq)].clear();
            if (rc == 2) {
                end(state, *job, "abort");
            } else {
                end(state, *job, nullptr, f);
            }
        }
        remove_done();
        state.publish_cells();
        stats.step_ns += now_ns() - t_decoded;
        return true;
    }

    for (engine_job * job : in_batch) {
        std::vector<llama_token> & cached = state.cached[static_cast<size_t>(job->req.seq)];
        if (job->phase == engine_job::phase_t::generating) {
            cached.push_back(job->next_token);
            sample(state, *job, job->output_row);
            continue;
        }
        cached.insert(cached.end(), job->prompt.begin() + static_cast<std::ptrdiff_t>(job->prompt_pos),
                      job->prompt.begin() + static_cast<std::ptrdiff_t>(job->prompt_pos + job->chunk));
        job->prompt_pos += job->chunk;
        if (job->prompt_pos < job->prompt.size()) {
            job->heartbeat();
            continue;
        }
        job->result.prompt_ms = static_cast<double>(now_us() - job->t_start_us) / 1000.0;
        job->t_gen_us         = now_us();
        if (job->req.kind == engine_request::kind_t::evaluate) {
            const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(state.model.get()));
            const float * logits  = llama_get_logits_ith(ctx, job->output_row);
            if (logits == nullptr) {
                end(state, *job, nullptr, { code::decode_failed, with_log("llama.cpp returned no logits", log_capture_take()) });
                continue;
            }
            job->result.logits.assign(logits, logits + n_vocab);
            job->t_gen_us = 0;
            end(state, *job, "length");
            continue;
        }
        job->phase = engine_job::phase_t::generating;
        if (job->req.max_tokens == 0) {
            end(state, *job, "length");
            continue;
        }
        sample(state, *job, job->output_row);
    }
    remove_done();
    state.publish_cells();
    for (auto & job : active_) {
        job->post(false);  // tokens held back by the delivery interval, once it is due
    }
    stats.step_ns += now_ns() - t_decoded;
    return true;
}

}  // namespace llama_kv
