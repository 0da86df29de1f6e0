// A saved state's binary sections (docs/api.md, "State files"): one per sequence, each a
// 32-byte header, the cached tokens and llama.cpp's sequence payload
// (llama_state_seq_get_data). TypeScript writes and checks the JSON header before them;
// this file checks what llama.cpp's reader would trust: every count and size, before it
// reads a byte.
#pragma once

#include "llama.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace llama_kv {

constexpr uint32_t state_section_magic = 0x51534B4C;  // "LKSQ"
constexpr size_t   state_section_header_bytes = 32;

struct state_section_header {
    int32_t  seq          = 0;  // the sequence it was saved from (information only)
    uint32_t n_tokens     = 0;
    uint64_t payload_size = 0;
    uint64_t checksum     = 0;  // XXH64 (seed 0) of the token bytes, then the payload
};

void write_section_header(uint8_t * out, const state_section_header & h);
// False when the bytes are not a section header (magic, reserved field).
bool read_section_header(const uint8_t * in, state_section_header & h);

// XXH64 of the tokens' bytes followed by the payload.
uint64_t section_checksum(const llama_token * tokens, size_t n_tokens, const uint8_t * payload, size_t payload_size);

// How this context's memory writes a sequence's state (llama_kv_cache::state_write).
struct payload_layout {
    uint32_t caches   = 1;     // 2 for an iSWA cache: the full-attention cache, then the SWA one
    bool     cell_ext = false;  // each cell carries llama_kv_cell_ext (M-RoPE, PLE)
    bool     has_v    = true;   // false for MLA: no V tensors, no V records
    uint32_t n_stream = 1;      // this context's streams per cache: 1 with kvUnified, else parallel
};

// Empty when `payload` is a well-formed sequence payload of `n_tokens` cells at positions
// 0..n_tokens-1 (what llama-kv saves), every length inside the buffer; otherwise what is
// wrong. Types and row sizes are left to llama.cpp, which compares them with its own.
// A state saved on a context with another stream count (parallel, kvUnified) holds the same
// cells: when the counts differ, `rewritten` receives the payload with this context's stream
// count (the sequence's stream first, the others empty), which llama.cpp then reads.
std::string check_sequence_payload(const uint8_t * payload, size_t size, uint32_t n_tokens, const payload_layout & layout,
                                   std::vector<uint8_t> & rewritten);

}  // namespace llama_kv
