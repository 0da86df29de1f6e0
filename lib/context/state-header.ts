/**
 * The self-describing header of a saved state (docs/api.md, "State files"): a magic, the
 * format version and a JSON document saying which model, cache layout, adapters and
 * sequences the state belongs to. The binary sections that follow (one per sequence: its
 * tokens and llama.cpp's payload, with a checksum) are written and checked by native code.
 */
import { LlamaError } from '../errors.js';
import type { ModelIdentity } from '../model/identity.js';

/** "LKVSTATE": the first 8 bytes of every saved state. */
export const STATE_MAGIC = Buffer.from('LKVSTATE', 'latin1');
/** The format this version writes and reads. */
export const STATE_FORMAT_VERSION = 1;
/** A header's JSON is at most this long (a bound for untrusted files). */
export const STATE_MAX_JSON_BYTES = 1 << 20;
/** Bytes before the JSON: magic, version, JSON length. */
const FIXED_BYTES = 16;

/** The JSON document of a state's header. */
export interface StateHeader {
    /** 'sequence' (one sequence, saveState) or 'context' (every sequence, ctx.saveStateFile). */
    kind: 'sequence' | 'context';
    /** `llama-kv <version>` that wrote it (information). */
    writer: string;
    /** The llama.cpp commit it was written with (information: the payload layout is checked byte by byte on load). */
    llamaCpp: string;
    model: ModelIdentity & { file: string };
    cache: {
        typeK: string;
        typeV: string;
        /** V stored transposed: the context ran without flash attention. */
        vTransposed: boolean;
        /** K / V stored Hadamard-rotated (llama.cpp rotates quantized caches unless LLAMA_ATTN_ROT_DISABLE is set). */
        rotateK: boolean;
        rotateV: boolean;
        /** Cells carry llama.cpp's cell extension (M-RoPE positions). */
        cellExt: boolean;
        /** 2 for an iSWA model (full and sliding-window caches). */
        caches: number;
    };
    /** The active LoRA adapters, by identity, with their scales (sorted by identity). */
    loras: { name: string; identity: string; scale: number }[];
    /** The saving context's cells per sequence (information: a state loads wherever its tokens fit). */
    cellsPerSequence: number;
    /** One per section, in order: the sequence id it was saved from and its token count. */
    sequences: { id: number; tokens: number }[];
}

/** The bytes before the first section: magic, version, JSON length, JSON, zeros to a multiple of 8. */
export function encodeStateHeader(header: StateHeader): Buffer {
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const total = Math.ceil((FIXED_BYTES + json.length) / 8) * 8;
    const out = Buffer.alloc(total);
    STATE_MAGIC.copy(out, 0);
    out.writeUInt32LE(STATE_FORMAT_VERSION, 8);
    out.writeUInt32LE(json.length, 12);
    json.copy(out, FIXED_BYTES);
    return out;
}

function invalid(source: string, why: string): LlamaError {
    return new LlamaError('INVALID_STATE_FILE', `${source} is not a llama-kv state: ${why}`);
}

/**
 * How many bytes the header takes, from its first 16 bytes (null: not enough bytes yet), or an
 * INVALID_STATE_FILE error for bytes that are not a state of this format.
 */
export function stateHeaderLength(fixed: Uint8Array, source: string): number | null {
    if (fixed.length < FIXED_BYTES) return null;
    const bytes = Buffer.from(fixed.buffer, fixed.byteOffset, fixed.byteLength);
    if (!bytes.subarray(0, 8).equals(STATE_MAGIC)) throw invalid(source, 'it does not start with "LKVSTATE"');
    const version = bytes.readUInt32LE(8);
    if (version !== STATE_FORMAT_VERSION) {
        throw new LlamaError('STATE_MISMATCH', `${source} is a llama-kv state of format version ${version}; this version of llama-kv reads version ${STATE_FORMAT_VERSION}`);
    }
    const jsonLength = bytes.readUInt32LE(12);
    if (jsonLength === 0 || jsonLength > STATE_MAX_JSON_BYTES) throw invalid(source, `its header claims ${jsonLength} bytes of JSON (at most ${STATE_MAX_JSON_BYTES})`);
    return Math.ceil((FIXED_BYTES + jsonLength) / 8) * 8;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/**
 * The header in `bytes` (at least stateHeaderLength() of them): every field present and of its
 * type, or INVALID_STATE_FILE naming the first that is not.
 */
export function decodeStateHeader(bytes: Uint8Array, source: string): { header: StateHeader; length: number } {
    const length = stateHeaderLength(bytes, source);
    if (length === null || bytes.length < length) throw invalid(source, `it ends inside its header (${bytes.length} bytes)`);
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const jsonLength = buf.readUInt32LE(12);
    let doc: unknown;
    try {
        doc = JSON.parse(buf.toString('utf8', FIXED_BYTES, FIXED_BYTES + jsonLength));
    } catch (error) {
        throw invalid(source, `its header is not JSON (${(error as Error).message})`);
    }
    for (let i = FIXED_BYTES + jsonLength; i < length; i++) if (buf[i] !== 0) throw invalid(source, 'the padding after its header is not zero');
    const fail = (field: string) => invalid(source, `its header's ${field} is missing or of the wrong type`);
    if (!isObject(doc)) throw fail('document');
    if (doc.kind !== 'sequence' && doc.kind !== 'context') throw fail('kind');
    for (const key of ['writer', 'llamaCpp'] as const) if (typeof doc[key] !== 'string') throw fail(key);
    const model = doc.model;
    if (!isObject(model)) throw fail('model');
    for (const key of ['architecture', 'tensorTable', 'tokenizer', 'file'] as const) if (typeof model[key] !== 'string') throw fail(`model.${key}`);
    const cache = doc.cache;
    if (!isObject(cache)) throw fail('cache');
    for (const key of ['typeK', 'typeV'] as const) if (typeof cache[key] !== 'string') throw fail(`cache.${key}`);
    for (const key of ['vTransposed', 'rotateK', 'rotateV', 'cellExt'] as const) if (typeof cache[key] !== 'boolean') throw fail(`cache.${key}`);
    if (cache.caches !== 1 && cache.caches !== 2) throw fail('cache.caches');
    if (!Array.isArray(doc.loras)) throw fail('loras');
    for (const [i, l] of (doc.loras as unknown[]).entries()) {
        if (!isObject(l) || typeof l.name !== 'string' || typeof l.identity !== 'string' || typeof l.scale !== 'number' || !Number.isFinite(l.scale)) throw fail(`loras[${i}]`);
    }
    if (!isCount(doc.cellsPerSequence)) throw fail('cellsPerSequence');
    if (!Array.isArray(doc.sequences) || doc.sequences.length === 0 || doc.sequences.length > 4096) throw fail('sequences');
    const ids = new Set<number>();
    for (const [i, s] of (doc.sequences as unknown[]).entries()) {
        if (!isObject(s) || !isCount(s.id) || !isCount(s.tokens) || ids.has(s.id)) throw fail(`sequences[${i}]`);
        ids.add(s.id);
    }
    if (doc.kind === 'sequence' && doc.sequences.length !== 1) throw fail('sequences (a sequence state has one)');
    return { header: doc as unknown as StateHeader, length };
}
