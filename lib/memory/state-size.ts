/**
 * The size of a saved sequence state (seq.saveState) from a KV cache's figures: llama.cpp's
 * payload is every layer's K and V rows of each cell plus 12 bytes of cell metadata, and
 * llama-kv adds the token id (4 bytes) and fixed headers.
 */

/** A saved state of n tokens takes fixedBytes + n * bytesPerToken, plus its JSON header (about 1 KB; longer with LoRA names). */
export interface StateSize {
    bytesPerToken: number;
    fixedBytes: number;
}

/** Cell metadata (position, sequence count, sequence id) and the token id, per token. */
const PER_TOKEN_OVERHEAD = 12 + 4;
/** The M-RoPE / PLE cell extension (llama_kv_cell_ext), per token. */
export const CELL_EXT_BYTES = 12;

/** The state size of one sequence of a cache with these figures (a dense KV cache; `cellExt` for M-RoPE models). */
export function stateSizeOf(kv: { k: { bytes: number }; v: { bytes: number }; cells: number; layers: number; sequences: number }, cellExt = false): StateSize {
    const perCell = kv.cells > 0 ? (kv.k.bytes + kv.v.bytes) / kv.cells : 0;
    const payloadFixed = 4 + 4 + 4 + 4 * kv.sequences + 4 + 4 + kv.layers * (4 + 8) * 2; // magic, seq, n_stream, cell counts, v_trans, n_layer, per-layer K and V records
    return { bytesPerToken: Math.round(perCell) + PER_TOKEN_OVERHEAD + (cellExt ? CELL_EXT_BYTES : 0), fixedBytes: 32 + payloadFixed };
}
