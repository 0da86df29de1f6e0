// Saving and loading sequences' KV state off the JS thread, between two of the engine's
// steps (each sequence is claimed by the caller, so no request runs on it meanwhile; the
// worker releases it). A save writes TypeScript's JSON header (`prefix`), then one section
// per sequence (state_section.h), to memory or to a temporary file renamed when complete.
// A load checks each section (size, checksum, llama.cpp's payload structure) before
// llama.cpp reads it.
#pragma once

#include "../context_state.h"

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llama_kv {

struct state_save_request {
    std::shared_ptr<context_state> state;
    std::vector<llama_seq_id>      seqs;
    std::vector<uint8_t>           prefix;
    std::vector<uint32_t>          n_tokens;  // each sequence's token count as the header says it
    std::string                    path;      // empty: resolve with a Buffer
    std::string                    tmp_path;  // written first, renamed to path
};

struct state_load_request {
    std::shared_ptr<context_state> state;
    std::vector<llama_seq_id>      seqs;      // the sequence each section goes to
    std::vector<uint32_t>          n_tokens;  // each section's token count, from the JSON header
    std::string                    path;      // a file, or else `data`
    const uint8_t *                data = nullptr;
    size_t                         size = 0;
    Napi::Reference<Napi::Value>   keep;      // holds `data`'s Buffer
    uint64_t                       offset = 0;  // where the first section starts
};

Napi::Promise queue_state_save(Napi::Env env, state_save_request request, std::shared_ptr<std::atomic<bool>> abort);
Napi::Promise queue_state_load(Napi::Env env, state_load_request request, std::shared_ptr<std::atomic<bool>> abort);

}  // namespace llama_kv
