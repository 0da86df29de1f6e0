// A deterministic corpus of damaged state files made from real saved states: truncations,
// byte flips in the header, the section header and llama.cpp's payload, every count and size
// of the payload at extremes (with the checksum recomputed, so that the bytes reach the
// payload check and llama.cpp's reader), token ids outside the vocabulary, edited JSON
// headers, and valid headers on foreign payloads.
import { xxh64 } from './xxh64.js';

/** Which context a case is loaded into: 'fa' (the base state's: flash attention, quantized K/V) or 'plain' (f16 without flash attention: V transposed). */
export type CorpusConfig = 'fa' | 'plain';

export interface StateCase {
    name: string;
    config: CorpusConfig;
    bytes: Buffer;
}

interface Parsed {
    /** Bytes before the section. */
    prefix: Buffer;
    json: Record<string, unknown>;
    seq: number;
    tokens: Buffer;
    payload: Buffer;
}

const SECTION = 32;

export function parseState(state: Buffer): Parsed {
    const jsonLength = state.readUInt32LE(12);
    const start = Math.ceil((16 + jsonLength) / 8) * 8;
    const nTokens = state.readUInt32LE(start + 8);
    const payloadSize = Number(state.readBigUInt64LE(start + 16));
    const tokensAt = start + SECTION;
    return {
        prefix: state.subarray(0, start),
        json: JSON.parse(state.toString('utf8', 16, 16 + jsonLength)) as Record<string, unknown>,
        seq: state.readInt32LE(start + 4),
        tokens: state.subarray(tokensAt, tokensAt + 4 * nTokens),
        payload: state.subarray(tokensAt + 4 * nTokens, tokensAt + 4 * nTokens + payloadSize),
    };
}

/** A header with this JSON document (magic, version 1, length, padding). */
function prefixOf(json: unknown): Buffer {
    const body = Buffer.from(JSON.stringify(json), 'utf8');
    const out = Buffer.alloc(Math.ceil((16 + body.length) / 8) * 8);
    out.write('LKVSTATE', 0, 'latin1');
    out.writeUInt32LE(1, 8);
    out.writeUInt32LE(body.length, 12);
    body.copy(out, 16);
    return out;
}

/** A whole state from its parts, the section's checksum computed over `tokens` and `payload`. */
export function buildState(prefix: Buffer, tokens: Buffer, payload: Buffer, options: { nTokens?: number; payloadSize?: bigint; checksum?: bigint; seq?: number } = {}): Buffer {
    const head = Buffer.alloc(SECTION);
    head.writeUInt32LE(0x51534b4c, 0);
    head.writeInt32LE(options.seq ?? 0, 4);
    head.writeUInt32LE(options.nTokens ?? tokens.length / 4, 8);
    head.writeBigUInt64LE(options.payloadSize ?? BigInt(payload.length), 16);
    head.writeBigUInt64LE(options.checksum ?? xxh64(Buffer.concat([tokens, payload])), 24);
    return Buffer.concat([prefix, head, tokens, payload]);
}

interface Field {
    name: string;
    at: number;
    size: 4 | 8;
}

/** The payload's fields (llama_kv_cache::state_write, one cache, plain cells). */
function payloadFields(p: Buffer): Field[] {
    const fields: Field[] = [{ name: 'magic', at: 0, size: 4 }, { name: 'seq id', at: 4, size: 4 }, { name: 'n_stream', at: 8, size: 4 }];
    const nStream = p.readUInt32LE(8);
    let at = 12;
    for (let s = 0; s < nStream; s++) {
        const cells = p.readUInt32LE(at);
        fields.push({ name: `stream ${s} cell count`, at, size: 4 });
        at += 4;
        if (cells === 0) continue;
        for (let i = 0; i < cells; i++) {
            if (i === 0 || i === cells - 1) {
                fields.push({ name: `cell ${i} pos`, at, size: 4 }, { name: `cell ${i} n_seq_id`, at: at + 4, size: 4 }, { name: `cell ${i} seq`, at: at + 8, size: 4 });
            }
            at += 12;
        }
        const vTrans = p.readUInt32LE(at);
        const nLayer = p.readUInt32LE(at + 4);
        fields.push({ name: 'v_trans', at, size: 4 }, { name: 'n_layer', at: at + 4, size: 4 });
        at += 8;
        for (let il = 0; il < nLayer; il++) {
            const row = Number(p.readBigUInt64LE(at + 4));
            if (il === 0 || il === nLayer - 1) fields.push({ name: `layer ${il} K type`, at, size: 4 }, { name: `layer ${il} K row size`, at: at + 4, size: 8 });
            at += 12 + row * cells;
        }
        for (let il = 0; il < nLayer; il++) {
            if (vTrans === 0) {
                const row = Number(p.readBigUInt64LE(at + 4));
                if (il === 0 || il === nLayer - 1) fields.push({ name: `layer ${il} V type`, at, size: 4 }, { name: `layer ${il} V row size`, at: at + 4, size: 8 });
                at += 12 + row * cells;
            } else {
                const el = p.readUInt32LE(at + 4);
                const nEmbd = p.readUInt32LE(at + 8);
                if (il === 0 || il === nLayer - 1) {
                    fields.push({ name: `layer ${il} V type`, at, size: 4 }, { name: `layer ${il} V element size`, at: at + 4, size: 4 }, { name: `layer ${il} V width`, at: at + 8, size: 4 });
                }
                at += 12 + el * nEmbd * cells;
            }
        }
    }
    if (at !== p.length) throw new Error(`corpus: the payload parse ends at ${at} of ${p.length}`);
    return fields;
}

const U32 = [0, 1, 2, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const U64 = [0n, 1n, 1n << 32n, 1n << 63n, (1n << 64n) - 1n];

/** Deterministic pseudo-random positions (xorshift32). */
function positions(seed: number, count: number, below: number): number[] {
    let x = seed >>> 0 || 1;
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
        x ^= x << 13;
        x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        out.push(x % below);
    }
    return out;
}

function casesOf(state: Buffer, config: CorpusConfig, nVocab: number): StateCase[] {
    const cases: StateCase[] = [];
    const add = (name: string, bytes: Buffer) => cases.push({ name: `${config}: ${name}`, config, bytes });
    const { prefix, json, tokens, payload, seq } = parseState(state);

    // Truncations: inside the header, the section header, the tokens, and across the payload.
    const cuts = new Set<number>([0, 1, 7, 8, 12, 15, 16, 17, prefix.length - 1, prefix.length, prefix.length + 4, prefix.length + 31, prefix.length + 32, prefix.length + 33, state.length - 1]);
    for (let k = 1; k < 40; k++) cuts.add(prefix.length + SECTION + Math.floor(((tokens.length + payload.length) * k) / 40));
    for (const cut of cuts) if (cut < state.length) add(`truncated at ${cut}`, state.subarray(0, cut));
    add('extra bytes after the section', Buffer.concat([state, Buffer.alloc(9, 0xab)]));

    // Byte flips anywhere in the header and the section header.
    for (const at of positions(0x1234 + config.length, 30, prefix.length + SECTION)) {
        const b = Buffer.from(state);
        b[at] ^= 0x5a;
        add(`header byte ${at} flipped`, b);
    }
    // Byte flips in the tokens and the payload without fixing the checksum.
    for (const at of positions(0x4321 + config.length, 10, tokens.length + payload.length)) {
        const b = Buffer.from(state);
        b[prefix.length + SECTION + at] ^= 0x01;
        add(`payload byte ${at} flipped`, b);
    }
    // The same with the checksum recomputed: llama.cpp's values change, its structure may not.
    for (const at of positions(0x9999 + config.length, 20, payload.length)) {
        const p = Buffer.from(payload);
        p[at] ^= 0xff;
        add(`payload byte ${at} flipped, checksum fixed`, buildState(prefix, tokens, p, { seq }));
    }
    // Every payload count and size at extremes, checksum fixed.
    for (const field of payloadFields(payload)) {
        const values = field.size === 4 ? U32.map(BigInt) : U64;
        const original = field.size === 4 ? BigInt(payload.readUInt32LE(field.at)) : payload.readBigUInt64LE(field.at);
        for (const v of [...values, original + 1n, original > 0n ? original - 1n : 3n]) {
            if (v === original) continue;
            const p = Buffer.from(payload);
            if (field.size === 4) p.writeUInt32LE(Number(v & 0xffffffffn), field.at);
            else p.writeBigUInt64LE(v & ((1n << 64n) - 1n), field.at);
            add(`${field.name} = ${v}`, buildState(prefix, tokens, p, { seq }));
        }
    }
    // Section header fields at extremes.
    const n = tokens.length / 4;
    for (const nTokens of [0, n - 1, n + 1, 0xffffffff]) add(`section token count ${nTokens}`, buildState(prefix, tokens, payload, { nTokens }));
    for (const size of [0n, BigInt(payload.length - 1), BigInt(payload.length + 1), 1n << 62n, (1n << 64n) - 1n]) add(`section payload size ${size}`, buildState(prefix, tokens, payload, { payloadSize: size }));
    add('section checksum 0', buildState(prefix, tokens, payload, { checksum: 0n }));
    // Token ids outside the vocabulary, checksum fixed.
    for (const id of [-1, nVocab, 0x7fffffff]) {
        const t = Buffer.from(tokens);
        t.writeInt32LE(id, t.length - 4);
        add(`token id ${id}`, buildState(prefix, t, payload, { seq }));
    }
    // A different number of tokens than cells, both counts consistent with each other.
    add('one token fewer than cells', buildState(prefixOf({ ...json, sequences: [{ id: 0, tokens: n - 1 }] }), tokens.subarray(4), payload));
    add('one token more than cells', buildState(prefixOf({ ...json, sequences: [{ id: 0, tokens: n + 1 }] }), Buffer.concat([tokens, tokens.subarray(0, 4)]), payload));

    // The fixed header: magic, version, JSON length.
    for (const version of [0, 2, 0xffffffff]) {
        const b = Buffer.from(state);
        b.writeUInt32LE(version, 8);
        add(`format version ${version}`, b);
    }
    for (const length of [0, 1, 0xffff, 1 << 20, (1 << 20) + 1, 0xffffffff, state.readUInt32LE(12) - 1, state.readUInt32LE(12) + 1]) {
        const b = Buffer.from(state);
        b.writeUInt32LE(length >>> 0, 12);
        add(`JSON length ${length}`, b);
    }
    // Edited JSON documents (valid JSON, wrong fields).
    const edits: [string, Record<string, unknown>][] = [
        ['kind context', { kind: 'context' }],
        ['kind missing', { kind: undefined }],
        ['no sequences', { sequences: [] }],
        ['two sequences', { sequences: [{ id: 0, tokens: n }, { id: 1, tokens: n }] }],
        ['token count negative', { sequences: [{ id: 0, tokens: -1 }] }],
        ['token count huge', { sequences: [{ id: 0, tokens: 2 ** 40 }] }],
        ['token count a string', { sequences: [{ id: 0, tokens: String(n) }] }],
        ['another architecture', { model: { ...(json.model as object), architecture: 'mamba' } }],
        ['another tensor table', { model: { ...(json.model as object), tensorTable: '0'.repeat(64) } }],
        ['another tokenizer', { model: { ...(json.model as object), tokenizer: 'f'.repeat(64) } }],
        ['model missing', { model: undefined }],
        ['typeK q4_0', { cache: { ...(json.cache as object), typeK: 'q4_0' } }],
        ['typeV bogus', { cache: { ...(json.cache as object), typeV: 'bogus' } }],
        ['vTransposed flipped', { cache: { ...(json.cache as object), vTransposed: !(json.cache as { vTransposed: boolean }).vTransposed } }],
        ['rotateK flipped', { cache: { ...(json.cache as object), rotateK: !(json.cache as { rotateK: boolean }).rotateK } }],
        ['caches 2', { cache: { ...(json.cache as object), caches: 2 } }],
        ['caches 0', { cache: { ...(json.cache as object), caches: 0 } }],
        ['a LoRA adapter', { loras: [{ name: 'x.gguf', identity: 'ab', scale: 1 }] }],
        ['a LoRA with a NaN-like scale', { loras: [{ name: 'x.gguf', identity: 'ab', scale: null }] }],
        ['cellsPerSequence negative', { cellsPerSequence: -5 }],
    ];
    for (const [name, change] of edits) add(`JSON: ${name}`, buildState(prefixOf({ ...json, ...change }), tokens, payload));
    add('JSON: not JSON', (() => {
        const b = Buffer.from(state);
        b[16] = 0x7b;
        b[17] = 0x7b;
        return b;
    })());
    add('JSON: an array', buildState(prefixOf([1, 2, 3]), tokens, payload));
    return cases;
}

/**
 * The corpus: cases of `base` (loaded into the 'fa' context) and of `plain` (into the 'plain'
 * one), plus each state's header on the other's payload and on `foreign` payloads (another
 * model's, a state of other K/V types).
 */
export function stateCorpus(states: { base: Buffer; plain: Buffer; foreign: Buffer[] }, nVocab: number): StateCase[] {
    const cases = [...casesOf(states.base, 'fa', nVocab), ...casesOf(states.plain, 'plain', nVocab)];
    const base = parseState(states.base);
    const plain = parseState(states.plain);
    const crossed: [string, Parsed, CorpusConfig, Parsed][] = [
        ['fa header, plain payload', base, 'fa', plain],
        ['plain header, fa payload', plain, 'plain', base],
        ...states.foreign.map((f, i): [string, Parsed, CorpusConfig, Parsed] => [`fa header, foreign payload ${i}`, base, 'fa', parseState(f)]),
        ...states.foreign.map((f, i): [string, Parsed, CorpusConfig, Parsed] => [`plain header, foreign payload ${i}`, plain, 'plain', parseState(f)]),
    ];
    for (const [name, header, config, body] of crossed) {
        const json = { ...header.json, sequences: [{ id: 0, tokens: body.tokens.length / 4 }] };
        cases.push({ name: `${config}: ${name}`, config, bytes: buildState(prefixOf(json), body.tokens, body.payload) });
    }
    return cases;
}
