#include "state_section.h"

#include "hash/xxhash/xxhash.h"

#include <cstring>
#include <memory>

namespace llama_kv {

namespace {

constexpr uint32_t llama_state_seq_magic = 0xaf143cd8;  // llama-context.cpp: io_magic
constexpr size_t   cell_ext_bytes        = 12;          // llama_kv_cell_ext: x, y, tok
constexpr uint32_t max_layers            = 1u << 16;
constexpr uint64_t max_row_bytes         = uint64_t{ 1 } << 32;

template <typename T> void put(uint8_t * out, size_t at, T v) {
    std::memcpy(out + at, &v, sizeof(T));
}
template <typename T> T get(const uint8_t * in, size_t at) {
    T v;
    std::memcpy(&v, in + at, sizeof(T));
    return v;
}

// Bounds-checked reads over the payload; the first failure sticks.
class reader {
  public:
    reader(const uint8_t * p, size_t n) : p_(p), n_(n) {}
    template <typename T> bool read(T & v, const char * what) {
        if (!error.empty()) {
            return false;
        }
        if (n_ - at_ < sizeof(T)) {
            error = std::string("it ends inside ") + what;
            return false;
        }
        std::memcpy(&v, p_ + at_, sizeof(T));
        at_ += sizeof(T);
        return true;
    }
    bool skip(uint64_t bytes, const char * what) {
        if (!error.empty()) {
            return false;
        }
        if (bytes > n_ - at_) {
            error = std::string(what) + " needs " + std::to_string(bytes) + " bytes and " + std::to_string(n_ - at_) + " are left";
            return false;
        }
        at_ += static_cast<size_t>(bytes);
        return true;
    }
    size_t      left() const { return n_ - at_; }
    size_t      at() const { return at_; }
    std::string error;

  private:
    const uint8_t * p_;
    size_t          n_;
    size_t          at_ = 0;
};

// One cache's part of the payload (llama_kv_cache::state_write). `first`: the full-attention
// cache, which holds every token; an SWA cache holds a suffix of them.
// Where one cache's parts lie in the payload: its stream count, and the one stream block that
// holds cells (from its cell count to the end of its data), if any.
struct cache_span {
    uint32_t n_stream    = 0;
    size_t   block_begin = 0;
    size_t   block_end   = 0;
};

void check_cache(reader & r, uint32_t n_tokens, const payload_layout & layout, bool first, cache_span & span) {
    uint32_t & n_stream = span.n_stream;
    if (!r.read(n_stream, "the stream count")) {
        return;
    }
    const auto max_streams = static_cast<uint32_t>(llama_max_parallel_sequences());
    if (n_stream == 0 || n_stream > max_streams) {
        r.error = "its stream count is " + std::to_string(n_stream) + ", outside [1, " + std::to_string(max_streams) + "]";
        return;
    }
    bool seen = false;
    for (uint32_t s = 0; s < n_stream; ++s) {
        uint32_t     cells = 0;
        const size_t begin = r.at();
        if (!r.read(cells, "a cell count")) {
            return;
        }
        if (cells == 0) {
            continue;
        }
        if (seen) {
            r.error = "more than one stream holds cells (a sequence lives in one)";
            return;
        }
        seen             = true;
        span.block_begin = begin;
        if (first ? cells != n_tokens : cells > n_tokens) {
            r.error = "it holds " + std::to_string(cells) + " cells for " + std::to_string(n_tokens) + " tokens";
            return;
        }
        // Cells are written in cell order, not position order (after a shift, or with kvUnified,
        // later positions can sit in lower cells). The full-attention cache holds each position
        // 0..n-1 once; a sliding-window cache the last `cells` of them.
        const uint32_t    lowest = first ? 0 : n_tokens - cells;
        std::vector<bool> seen_pos(cells, false);
        for (uint32_t i = 0; i < cells; ++i) {
            int32_t  pos      = 0;
            uint32_t n_seq_id = 0;
            int32_t  seq_id   = 0;
            if (!r.read(pos, "a cell") || !r.read(n_seq_id, "a cell")) {
                return;
            }
            if (n_seq_id != 1) {
                r.error = "cell " + std::to_string(i) + " belongs to " + std::to_string(n_seq_id) + " sequences, not 1";
                return;
            }
            if (layout.cell_ext && !r.skip(cell_ext_bytes, "a cell's extension")) {
                return;
            }
            if (!r.read(seq_id, "a cell")) {
                return;
            }
            if (pos < static_cast<int64_t>(lowest) || pos >= static_cast<int64_t>(n_tokens) || seen_pos[static_cast<size_t>(pos - lowest)]) {
                r.error = "cell " + std::to_string(i) + " is at position " + std::to_string(pos) + ", outside [" + std::to_string(lowest) +
                          ", " + std::to_string(n_tokens) + ") or twice";
                return;
            }
            seen_pos[static_cast<size_t>(pos - lowest)] = true;
        }
        uint32_t v_trans = 0;
        uint32_t n_layer = 0;
        if (!r.read(v_trans, "the V layout") || !r.read(n_layer, "the layer count")) {
            return;
        }
        if (v_trans > 1 || n_layer > max_layers) {  // 0 layers: a cache whose layers all went to the other one (iSWA)
            r.error = "its V layout (" + std::to_string(v_trans) + ") or layer count (" + std::to_string(n_layer) + ") is invalid";
            return;
        }
        const auto rows = [&](const char * what) {
            int32_t  type = 0;
            uint64_t row  = 0;
            if (!r.read(type, what) || !r.read(row, what)) {
                return;
            }
            if (type < 0 || type >= GGML_TYPE_COUNT || row == 0 || row > max_row_bytes) {
                r.error = std::string(what) + " has type " + std::to_string(type) + " and row size " + std::to_string(row);
                return;
            }
            r.skip(row * cells, what);  // row <= 2^32, cells < 2^32: no overflow
        };
        for (uint32_t il = 0; il < n_layer && r.error.empty(); ++il) {
            rows("a layer's K rows");
        }
        if (!layout.has_v) {
            span.block_end = r.at();
            continue;
        }
        for (uint32_t il = 0; il < n_layer && r.error.empty(); ++il) {
            if (v_trans == 0) {
                rows("a layer's V rows");
                continue;
            }
            int32_t  type   = 0;
            uint32_t el     = 0;
            uint32_t n_embd = 0;
            if (!r.read(type, "a layer's V") || !r.read(el, "a layer's V") || !r.read(n_embd, "a layer's V")) {
                return;
            }
            if (type < 0 || type >= GGML_TYPE_COUNT || el == 0 || el > 64 || n_embd == 0 || n_embd > (1u << 20)) {
                r.error = "a layer's V has type " + std::to_string(type) + ", element size " + std::to_string(el) + ", width " +
                          std::to_string(n_embd);
                return;
            }
            r.skip(uint64_t{ el } * n_embd * cells, "a layer's V elements");  // < 2^6 * 2^20 * 2^32
        }
        span.block_end = r.at();
    }
    if (!seen && first && n_tokens > 0) {
        r.error = "it holds no cells for " + std::to_string(n_tokens) + " tokens";
    }
}

}  // namespace

void write_section_header(uint8_t * out, const state_section_header & h) {
    put<uint32_t>(out, 0, state_section_magic);
    put<int32_t>(out, 4, h.seq);
    put<uint32_t>(out, 8, h.n_tokens);
    put<uint32_t>(out, 12, 0);
    put<uint64_t>(out, 16, h.payload_size);
    put<uint64_t>(out, 24, h.checksum);
}

bool read_section_header(const uint8_t * in, state_section_header & h) {
    if (get<uint32_t>(in, 0) != state_section_magic || get<uint32_t>(in, 12) != 0) {
        return false;
    }
    h.seq          = get<int32_t>(in, 4);
    h.n_tokens     = get<uint32_t>(in, 8);
    h.payload_size = get<uint64_t>(in, 16);
    h.checksum     = get<uint64_t>(in, 24);
    return true;
}

uint64_t section_checksum(const llama_token * tokens, size_t n_tokens, const uint8_t * payload, size_t payload_size) {
    std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)> state(XXH64_createState(), &XXH64_freeState);
    if (!state) {
        throw std::bad_alloc();
    }
    XXH64_reset(state.get(), 0);
    XXH64_update(state.get(), tokens, n_tokens * sizeof(llama_token));
    XXH64_update(state.get(), payload, payload_size);
    return XXH64_digest(state.get());
}

std::string check_sequence_payload(const uint8_t * payload, size_t size, uint32_t n_tokens, const payload_layout & layout,
                                   std::vector<uint8_t> & rewritten) {
    rewritten.clear();
    reader   r(payload, size);
    std::vector<cache_span> spans(layout.caches);
    uint32_t magic = 0;
    int32_t  seq   = 0;
    if (r.read(magic, "the magic") && magic != llama_state_seq_magic) {
        return "it does not start with llama.cpp's sequence state magic";
    }
    r.read(seq, "the sequence id");
    for (uint32_t c = 0; c < layout.caches && r.error.empty(); ++c) {
        check_cache(r, n_tokens, layout, c == 0, spans[c]);
    }
    if (r.error.empty() && r.left() != 0) {
        return std::to_string(r.left()) + " bytes follow the end of llama.cpp's payload";
    }
    if (!r.error.empty()) {
        return r.error;
    }
    bool same = true;
    for (const cache_span & span : spans) {
        same = same && span.n_stream == layout.n_stream;
    }
    if (same) {
        return {};
    }
    // llama.cpp reads a sequence's cells into its own stream whichever stream they were saved
    // from: the block goes first, the other streams say 0 cells.
    rewritten.reserve(size + sizeof(uint32_t) * layout.caches * layout.n_stream);
    rewritten.insert(rewritten.end(), payload, payload + sizeof(uint32_t) + sizeof(int32_t));
    const auto append_u32 = [&](uint32_t v) {
        const auto * b = reinterpret_cast<const uint8_t *>(&v);
        rewritten.insert(rewritten.end(), b, b + sizeof(v));
    };
    for (const cache_span & span : spans) {
        append_u32(layout.n_stream);
        uint32_t empty = layout.n_stream;
        if (span.block_end > span.block_begin) {
            rewritten.insert(rewritten.end(), payload + span.block_begin, payload + span.block_end);
            --empty;
        }
        for (uint32_t s = 0; s < empty; ++s) {
            append_u32(0);
        }
    }
    return {};
}

}  // namespace llama_kv
