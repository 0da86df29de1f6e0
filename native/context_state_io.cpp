// Saved state of a context's sequences: the layout facts TypeScript writes into a state's
// header, and the save and load calls (workers/state.cpp), each on sequences that run no
// request (claimed here, released by the worker).
#include "context.h"
#include "context_state.h"
#include "llama_internals.h"
#include "workers/abortable.h"
#include "workers/state.h"

#include <string>

namespace llama_kv {

namespace {

std::vector<llama_seq_id> read_sequences(Napi::Env env, const context_state & state, Napi::Value value) {
    if (!value.IsArray()) {
        throw_error(env, code::invalid_argument, "sequences must be an array of sequence ids");
    }
    Napi::Array               arr = value.As<Napi::Array>();
    std::vector<llama_seq_id> out;
    const auto                n = static_cast<int64_t>(state.cached.size());
    for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Value v = arr.Get(i);
        if (!v.IsNumber()) {
            throw_error(env, code::invalid_argument, "sequences[" + std::to_string(i) + "] must be a sequence id");
        }
        const auto seq = static_cast<llama_seq_id>(checked_integer(env, v.As<Napi::Number>().DoubleValue(), 0, n - 1, "sequence"));
        for (llama_seq_id seen : out) {
            if (seen == seq) {
                throw_error(env, code::invalid_argument, "sequence " + std::to_string(seq) + " is listed twice");
            }
        }
        out.push_back(seq);
    }
    return out;
}

// Claims every sequence (BUSY, none claimed, if one runs a request).
void claim_all(Napi::Env env, context_state & state, const std::vector<llama_seq_id> & seqs) {
    for (size_t i = 0; i < seqs.size(); ++i) {
        if (!state.engine->claim(seqs[i])) {
            for (size_t j = 0; j < i; ++j) {
                state.engine->release(seqs[j]);
            }
            throw_error(env, code::busy, "sequence " + std::to_string(seqs[i]) + " is running a request");
        }
    }
}

void require_supported(Napi::Env env, const context_state & state) {
    const context_state_layout layout = context_state_layout_of(state.ctx.get());
    if (!layout.unsupported.empty()) {
        throw_error(env, code::invalid_argument, "this context's state cannot be saved or loaded: " + layout.unsupported);
    }
}

std::string read_string(Napi::Env env, Napi::Value value, const char * what) {
    if (!value.IsString()) {
        throw_error(env, code::invalid_argument, std::string(what) + " must be a string");
    }
    std::string s = value.As<Napi::String>().Utf8Value();
    if (s.empty() || s.find('\0') != std::string::npos) {
        throw_error(env, code::invalid_argument, std::string(what) + " must be a non-empty path without NUL characters");
    }
    return s;
}

// One token count per sequence (the header's), from info[index].
std::vector<uint32_t> read_counts(Napi::Env env, const Napi::CallbackInfo & info, size_t index, size_t n, const char * call) {
    if (info.Length() <= index || !info[index].IsArray() || info[index].As<Napi::Array>().Length() != n) {
        throw_error(env, code::invalid_argument, std::string(call) + ": tokenCounts must be an array with one count per sequence");
    }
    Napi::Array           counts = info[index].As<Napi::Array>();
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i < counts.Length(); ++i) {
        Napi::Value v = counts.Get(i);
        if (!v.IsNumber()) {
            throw_error(env, code::invalid_argument, std::string(call) + ": tokenCounts[" + std::to_string(i) + "] must be a number");
        }
        out.push_back(static_cast<uint32_t>(checked_integer(env, v.As<Napi::Number>().DoubleValue(), 0, UINT32_MAX, "tokenCounts")));
    }
    return out;
}

// Queues a claimed worker; the claims go back if queueing throws.
template <typename Queue>
Napi::Value queue_claimed(Napi::Env env, const std::shared_ptr<context_state> & state, const std::vector<llama_seq_id> & seqs, Queue queue) {
    claim_all(env, *state, seqs);
    auto abort = std::make_shared<std::atomic<bool>>(false);
    try {
        return promise_with_abort(env, queue(abort), abort);
    } catch (...) {
        for (llama_seq_id seq : seqs) {
            state->engine->release(seq);
        }
        throw;
    }
}

}  // namespace

// stateLayout() -> how this context's memory saves a sequence, for the state header.
Napi::Value context_wrap::state_layout(const Napi::CallbackInfo & info) {
    Napi::Env                            env    = info.Env();
    const std::shared_ptr<context_state> state  = live(env);
    const context_state_layout           layout = context_state_layout_of(state->ctx.get());
    Napi::Object                         out    = Napi::Object::New(env);
    out.Set("unsupported", layout.unsupported.empty() ? env.Null() : Napi::String::New(env, layout.unsupported));
    out.Set("caches", layout.caches);
    out.Set("cellExt", layout.cell_ext);
    out.Set("hasV", layout.has_v);
    out.Set("vTransposed", layout.v_trans);
    out.Set("rotateK", layout.rot_k);
    out.Set("rotateV", layout.rot_v);
    return out;
}

// saveState(sequences, prefix: Buffer, tokenCounts (the header's), path?, tmpPath?) -> { promise: Buffer | bytes written, abort() }
Napi::Value context_wrap::save_state(const Napi::CallbackInfo & info) {
    Napi::Env                            env   = info.Env();
    const std::shared_ptr<context_state> state = live(env);
    state_save_request                   req;
    req.seqs = read_sequences(env, *state, info.Length() > 0 ? info[0] : env.Undefined());
    if (info.Length() < 2 || !info[1].IsBuffer()) {
        throw_error(env, code::invalid_argument, "saveState(): prefix must be a Buffer");
    }
    auto prefix = info[1].As<Napi::Buffer<uint8_t>>();
    req.prefix.assign(prefix.Data(), prefix.Data() + prefix.Length());
    req.n_tokens = read_counts(env, info, 2, req.seqs.size(), "saveState()");
    if (info.Length() > 3 && !info[3].IsUndefined()) {
        req.path     = read_string(env, info[3], "path");
        req.tmp_path = read_string(env, info.Length() > 4 ? info[4] : env.Undefined(), "tmpPath");
    }
    require_supported(env, *state);
    req.state = state;
    const std::vector<llama_seq_id> seqs = req.seqs;
    return queue_claimed(env, state, seqs, [&](std::shared_ptr<std::atomic<bool>> abort) { return queue_state_save(env, std::move(req), std::move(abort)); });
}

// loadState(source: Buffer | path, offset, sequences, tokenCounts) -> { promise: Int32Array[], abort() }
Napi::Value context_wrap::load_state(const Napi::CallbackInfo & info) {
    Napi::Env                            env   = info.Env();
    const std::shared_ptr<context_state> state = live(env);
    state_load_request                   req;
    Napi::Value                          source = info.Length() > 0 ? info[0] : env.Undefined();
    if (source.IsBuffer()) {
        auto buf = source.As<Napi::Buffer<uint8_t>>();
        req.data = buf.Data();
        req.size = buf.Length();
    } else {
        req.path = read_string(env, source, "loadState(): source");
    }
    if (info.Length() < 2 || !info[1].IsNumber()) {
        throw_error(env, code::invalid_argument, "loadState(): offset must be a number");
    }
    req.offset = static_cast<uint64_t>(checked_integer(env, info[1].As<Napi::Number>().DoubleValue(), 0, int64_t{ 1 } << 53, "offset"));
    req.seqs   = read_sequences(env, *state, info.Length() > 2 ? info[2] : env.Undefined());
    req.n_tokens = read_counts(env, info, 3, req.seqs.size(), "loadState()");
    require_supported(env, *state);
    if (source.IsBuffer()) {
        req.keep = Napi::Reference<Napi::Value>::New(source, 1);
    }
    req.state = state;
    const std::vector<llama_seq_id> seqs = req.seqs;
    return queue_claimed(env, state, seqs, [&](std::shared_ptr<std::atomic<bool>> abort) { return queue_state_load(env, std::move(req), std::move(abort)); });
}

}  // namespace llama_kv
