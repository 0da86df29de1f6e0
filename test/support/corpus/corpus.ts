// A deterministic corpus of corrupted GGUF files made from one fixture model: header
// counts and lengths set to extremes, type ids out of range, alignment values, byte
// flips in the metadata and tensor tables, duplicate vocabulary strings, bad special
// token ids, truncations. Each case is a name and a function that builds the bytes, so
// the files can be written a batch at a time.
import { GGUF_VALUE_TYPE as T, type GgufMetadata } from '../../../lib/gguf/types.js';
import { parseGguf } from '../../../lib/gguf/reader.js';
import { writeGguf, type GgufKvEntry, type GgufTensorEntry } from '../../../lib/gguf/writer.js';

export interface CorpusCase {
    name: string;
    /** Writes the case to `path`. */
    write(path: string): Promise<void>;
}

interface KvLayout {
    key: string;
    keyLenAt: number;
    typeAt: number;
    type: number;
    /** String value: its length field. Array: element type and count fields. */
    strLenAt?: number;
    arrayTypeAt?: number;
    arrayCountAt?: number;
    /** First element's length field, for arrays of strings. */
    firstElemLenAt?: number;
    /** The middle element's length field, for arrays of strings. */
    midElemLenAt?: number;
    /** Element type, count and where the elements end, for arrays. */
    arrayElemType?: number;
    arrayCount?: number;
    arrayEnd?: number;
}

interface TensorLayout {
    name: string;
    nameLenAt: number;
    nDimsAt: number;
    dimsAt: number[];
    typeAt: number;
    offsetAt: number;
}

const SCALAR_SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Where each field of the header is (GGUF v3 layout). */
function layout(bytes: Buffer): { kvs: KvLayout[]; tensors: TensorLayout[]; tableEnd: number } {
    let at = 24;
    const u64 = () => {
        const v = Number(bytes.readBigUInt64LE(at));
        at += 8;
        return v;
    };
    const u32 = () => {
        const v = bytes.readUInt32LE(at);
        at += 4;
        return v;
    };
    const str = () => {
        const len = u64();
        const s = bytes.toString('utf8', at, at + len);
        at += len;
        return s;
    };
    const nTensors = Number(bytes.readBigUInt64LE(8));
    const nKv = Number(bytes.readBigUInt64LE(16));
    const kvs: KvLayout[] = [];
    for (let i = 0; i < nKv; i++) {
        const keyLenAt = at;
        const key = str();
        const typeAt = at;
        const type = u32();
        const entry: KvLayout = { key, keyLenAt, typeAt, type };
        if (type === T.STRING) {
            entry.strLenAt = at;
            str();
        } else if (type === T.ARRAY) {
            entry.arrayTypeAt = at;
            const elem = u32();
            entry.arrayCountAt = at;
            const count = u64();
            if (elem === T.STRING) {
                entry.firstElemLenAt = at;
                for (let j = 0; j < count; j++) {
                    if (j === Math.floor(count / 2)) entry.midElemLenAt = at;
                    str();
                }
            } else {
                at += count * SCALAR_SIZES[elem];
            }
            Object.assign(entry, { arrayElemType: elem, arrayCount: count, arrayEnd: at });
        } else {
            at += SCALAR_SIZES[type];
        }
        kvs.push(entry);
    }
    const tensors: TensorLayout[] = [];
    for (let i = 0; i < nTensors; i++) {
        const nameLenAt = at;
        const name = str();
        const nDimsAt = at;
        const nDims = u32();
        const dimsAt: number[] = [];
        for (let d = 0; d < nDims; d++) {
            dimsAt.push(at);
            u64();
        }
        const typeAt = at;
        u32();
        const offsetAt = at;
        u64();
        tensors.push({ name, nameLenAt, nDimsAt, dimsAt, typeAt, offsetAt });
    }
    return { kvs, tensors, tableEnd: at };
}

/** mulberry32: the same sequence everywhere. */
function prng(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = Math.imul(state ^ (state >>> 15), state | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

const U64_EXTREMES: bigint[] = [0n, 1n, 0x7fffffffn, 0xffffffffn, 0x100000000n, 0x7fffffffffffffffn, 0xffffffffffffffffn, 0x8000000000000000n];
const U32_EXTREMES: number[] = [0, 1, 13, 40, 255, 0x7fffffff, 0xffffffff];

/** Every corrupted case derived from `original` (a valid GGUF model file). */
export function corpusCases(original: Buffer): CorpusCase[] {
    const meta = parseGguf(original);
    const { kvs, tensors, tableEnd } = layout(original);
    const cases: CorpusCase[] = [];
    const patched = (name: string, edit: (b: Buffer) => void) =>
        cases.push({
            name,
            async write(path) {
                const b = Buffer.from(original);
                edit(b);
                await import('node:fs/promises').then((fs) => fs.writeFile(path, b));
            },
        });
    const u64At = (at: number, v: bigint) => (b: Buffer) => b.writeBigUInt64LE(v, at);
    const u32At = (at: number, v: number) => (b: Buffer) => b.writeUInt32LE(v >>> 0, at);

    // Header counts.
    for (const v of U64_EXTREMES) {
        patched(`n_tensors=${v}`, u64At(8, v));
        patched(`n_kv=${v}`, u64At(16, v));
    }
    patched('version=1', u32At(4, 1));
    patched('version=0xffffffff', u32At(4, 0xffffffff));
    patched('magic', (b) => b.write('GGUX', 0, 'latin1'));

    // Metadata: key lengths, value types, string lengths, array types and counts.
    for (const kv of kvs) {
        for (const v of [0n, 0xffffn, 0x7fffffffffffffffn, 0xffffffffffffffffn]) patched(`kv ${kv.key} key length=${v}`, u64At(kv.keyLenAt, v));
        for (const v of [13, 255, 0xffffffff]) patched(`kv ${kv.key} type=${v}`, u32At(kv.typeAt, v));
        if (kv.strLenAt !== undefined) {
            for (const v of [0n, 0xffffffffn, 0xffffffffffffffffn]) patched(`kv ${kv.key} string length=${v}`, u64At(kv.strLenAt, v));
        }
        if (kv.arrayCountAt !== undefined) {
            for (const v of [0n, 1n, 0x100000000n, 0x3fffffffffffffffn, 0xffffffffffffffffn]) patched(`kv ${kv.key} array count=${v}`, u64At(kv.arrayCountAt, v));
            for (const v of [9, 13, 0xffffffff]) patched(`kv ${kv.key} array type=${v}`, u32At(kv.arrayTypeAt!, v));
        }
        if (kv.firstElemLenAt !== undefined) {
            for (const v of [0xffffffffn, 0xffffffffffffffffn]) patched(`kv ${kv.key} first element length=${v}`, u64At(kv.firstElemLenAt, v));
        }
    }

    // Large arrays (the tokenizer's), which the reader steps over at parse time and decodes on
    // first access: counts that pass the count check but point past the end, lengths inside them.
    for (const kv of kvs.filter((k) => (k.arrayCount ?? 0) >= 1024)) {
        const elemSize = kv.arrayElemType === T.STRING ? 8 : SCALAR_SIZES[kv.arrayElemType!];
        const most = BigInt(Math.floor((original.length - kv.arrayCountAt! - 8) / elemSize));
        for (const v of [BigInt(kv.arrayCount!) + 1n, BigInt(kv.arrayCount!) * 2n, most, most + 1n]) patched(`lazy kv ${kv.key} array count=${v} (of ${kv.arrayCount})`, u64At(kv.arrayCountAt!, v));
        if (kv.midElemLenAt !== undefined) {
            for (const v of [0n, 0x10000n, BigInt(original.length), 0x8000000000000000n]) patched(`lazy kv ${kv.key} middle element length=${v}`, u64At(kv.midElemLenAt, v));
        }
        const elements = kv.arrayCountAt! + 8;
        for (const cut of [elements + 1, Math.floor((elements + kv.arrayEnd!) / 2), kv.arrayEnd! - 1]) {
            cases.push({ name: `lazy kv ${kv.key} truncated at ${cut}`, write: (path) => import('node:fs/promises').then((fs) => fs.writeFile(path, original.subarray(0, cut))) });
        }
    }

    // Tensor table: name lengths, dimension counts, dimensions, types, offsets.
    for (const t of tensors) {
        for (const v of [0n, 64n, 0xffffffffffffffffn]) patched(`tensor ${t.name} name length=${v}`, u64At(t.nameLenAt, v));
        for (const v of [0, 5, 0xffffffff]) patched(`tensor ${t.name} n_dims=${v}`, u32At(t.nDimsAt, v));
        for (const v of [0n, 3n, 0x100000000n, 0x7fffffffffffffffn, 0xffffffffffffffffn]) patched(`tensor ${t.name} ne0=${v}`, u64At(t.dimsAt[0], v));
        for (const v of U32_EXTREMES.concat([12 /* Q4_K: 256-value blocks */, 8 /* Q8_0 */])) patched(`tensor ${t.name} type=${v}`, u32At(t.typeAt, v));
        for (const v of [1n, 0xffffffffn, 0x7fffffffffffffffn, 0xffffffffffffffffn]) patched(`tensor ${t.name} offset=${v}`, u64At(t.offsetAt, v));
    }

    // Byte flips in the metadata and tensor tables (seeded).
    const random = prng(0x5eed);
    for (let i = 0; i < 150; i++) {
        const at = 24 + Math.floor(random() * (tableEnd - 24));
        const bit = Math.floor(random() * 8);
        patched(`flip byte ${at} bit ${bit}`, (b) => {
            b[at] ^= 1 << bit;
        });
    }
    for (let i = 0; i < 40; i++) {
        const at = 24 + Math.floor(random() * (tableEnd - 32));
        const value = Math.floor(random() * 256);
        patched(`smash 8 bytes at ${at} with ${value}`, (b) => b.fill(value, at, at + 8));
    }

    // Truncations: in the header, the metadata, the tensor table and the data.
    const cuts = [0, 4, 8, 23, 24, ...kvs.slice(0, 8).map((k) => k.typeAt + 2), ...tensors.slice(0, 6).map((t) => t.typeAt + 1), tableEnd, meta.dataOffset + 1, original.length - 1];
    for (let i = 0; i < 10; i++) cuts.push(meta.dataOffset + Math.floor(random() * (original.length - meta.dataOffset)));
    for (const cut of cuts) {
        cases.push({ name: `truncated at ${cut}`, write: (path) => import('node:fs/promises').then((fs) => fs.writeFile(path, original.subarray(0, cut))) });
    }

    // Rewritten through the writer: alignment values, vocabulary faults, special token ids.
    const rewrite = (name: string, edit: (kv: GgufKvEntry[]) => GgufKvEntry[], alignment?: number) =>
        cases.push({ name, write: (path) => writeGguf(path, { kv: edit(entries(meta)), tensors: tensorEntries(meta, original), ...(alignment ? { alignment } : {}) }) });
    // Alignment: written valid (32) by the writer, then the value is replaced in the bytes.
    for (const a of [0, 1, 3, 7, 8, 4096, 65536, 0x80000001, 0xffffffff]) {
        cases.push({
            name: `general.alignment=${a}`,
            async write(path) {
                const fs = await import('node:fs/promises');
                await writeGguf(path, { kv: [...entries(meta).filter((e) => e.key !== 'general.alignment'), { key: 'general.alignment', type: T.UINT32, value: 32 }], tensors: tensorEntries(meta, original) });
                const b = await fs.readFile(path);
                const entry = layout(b).kvs.find((k) => k.key === 'general.alignment')!;
                b.writeUInt32LE(a >>> 0, entry.typeAt + 4);
                await fs.writeFile(path, b);
            },
        });
    }
    const setArray = (key: string, change: (values: unknown[]) => unknown[]) => (kv: GgufKvEntry[]) =>
        kv.map((e) => (e.key === key ? { ...e, value: change([...(e.value as ArrayLike<unknown> & Iterable<unknown>)]) as never } : e));
    for (const [a, b] of [[5, 6], [1, 2], [0, 31999], [300, 301], [31998, 31999]]) {
        rewrite(`duplicate vocabulary string: token ${b} = token ${a}`, setArray('tokenizer.ggml.tokens', (v) => ((v[b] = v[a]), v)));
    }
    rewrite('vocabulary: empty token string', setArray('tokenizer.ggml.tokens', (v) => ((v[100] = ''), v)));
    rewrite('vocabulary: scores shorter than tokens', setArray('tokenizer.ggml.scores', (v) => v.slice(0, 100)));
    rewrite('vocabulary: token types shorter than tokens', setArray('tokenizer.ggml.token_type', (v) => v.slice(0, 100)));
    rewrite('vocabulary: token type out of range', setArray('tokenizer.ggml.token_type', (v) => ((v[10] = 99), v)));
    rewrite('vocabulary: a single token', setArray('tokenizer.ggml.tokens', (v) => v.slice(0, 1)));
    for (const key of ['tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id', 'tokenizer.ggml.unknown_token_id', 'tokenizer.ggml.padding_token_id']) {
        for (const v of [32000, 0x7fffffff, 0xffffffff]) {
            rewrite(`${key}=${v}`, (kv) => [...kv.filter((e) => e.key !== key), { key, type: T.UINT32, value: v }]);
        }
    }
    for (const [key, v] of [['llama.block_count', 0], ['llama.block_count', 1000], ['llama.embedding_length', 0], ['llama.attention.head_count', 0], ['llama.attention.head_count', 3],
        ['llama.attention.head_count_kv', 0], ['llama.attention.head_count_kv', 7], ['llama.context_length', 0], ['llama.rope.dimension_count', 1000000], ['llama.vocab_size', 1]] as const) {
        rewrite(`${key}=${v}`, (kv) => kv.map((e) => (e.key === key ? { ...e, value: v } : e)));
    }
    rewrite('general.architecture=unknown', (kv) => kv.map((e) => (e.key === 'general.architecture' ? { ...e, value: 'no-such-architecture' } : e)));
    rewrite('tokenizer.ggml.model=unknown', (kv) => kv.map((e) => (e.key === 'tokenizer.ggml.model' ? { ...e, value: 'no-such-tokenizer' } : e)));
    // No tokenizer: it loads, and llama.cpp's tokenize and token-to-piece GGML_ASSERT on it.
    const noTokenizer = (keep: (key: string) => boolean) => (kv: GgufKvEntry[]) => [
        ...kv.filter((e) => keep(e.key) && e.key !== 'tokenizer.ggml.model' && e.key !== 'llama.vocab_size'),
        { key: 'tokenizer.ggml.model', type: T.STRING, value: 'none' },
        { key: 'llama.vocab_size', type: T.UINT32, value: 32000 },
    ] as GgufKvEntry[];
    rewrite('tokenizer.ggml.model=none, no vocabulary', noTokenizer((key) => !key.startsWith('tokenizer.')));
    rewrite('tokenizer.ggml.model=none, vocabulary kept', noTokenizer(() => true));
    return cases;
}

function entries(meta: GgufMetadata): GgufKvEntry[] {
    return Object.keys(meta.kv).map((key) => ({ key, type: meta.kvTypes[key].type, arrayType: meta.kvTypes[key].arrayType, value: meta.kv[key] } as GgufKvEntry));
}

function tensorEntries(meta: GgufMetadata, bytes: Buffer): GgufTensorEntry[] {
    return meta.tensors.map((t) => ({
        name: t.name,
        type: t.typeName,
        shape: t.shape,
        data: bytes.subarray(meta.dataOffset + t.offset, meta.dataOffset + t.offset + t.byteSize),
    }));
}
