// Arrays of the GGUF header decoded on first access (lib/gguf/lazy-array.ts): the same
// values as decoding them while parsing, element for element, and the same errors for a
// corrupt array, found while parsing (before anything is decoded).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { serializeGguf, type GgufKvEntry } from '../../lib/gguf/writer.js';
import { GGUF_VALUE_TYPE as T, type GgufMetadata } from '../../lib/gguf/types.js';
import { ggufArrayLength, parseGguf, readGgufMetadata } from '../../lib/gguf/reader.js';
import { isGgufArrayPending } from '../../lib/gguf/lazy-array.js';
import { LlamaConfigError } from '../../lib/errors.js';

const EAGER = { lazyArrayMinLength: Infinity };
const N = 3000;

/** A vocabulary-like header: big arrays of every element type, and small ones. */
function vocabKv(): GgufKvEntry[] {
    const tokens = Array.from({ length: N }, (_, i) =>
        i === 0 ? '' : i === 1 ? '\uFEFF' : i === 2 ? '▁wörld🦙' : i === 3 ? 'x'.repeat(65) : i === 4 ? 'é'.repeat(40) : i % 7 === 0 ? `<0x${(i % 256).toString(16)}>` : `tok${i}`,
    );
    return [
        { key: 'general.architecture', type: T.STRING, value: 'llama' },
        { key: 'tokenizer.ggml.tokens', type: T.ARRAY, arrayType: T.STRING, value: tokens },
        { key: 'tokenizer.ggml.scores', type: T.ARRAY, arrayType: T.FLOAT32, value: Float32Array.from({ length: N }, (_, i) => -i / 3) },
        { key: 'tokenizer.ggml.token_type', type: T.ARRAY, arrayType: T.INT32, value: Array.from({ length: N }, (_, i) => (i % 5) - 1) },
        { key: 'tokenizer.ggml.merges', type: T.ARRAY, arrayType: T.STRING, value: Array.from({ length: N }, (_, i) => `a${i} b${i}`) },
        { key: 'big.u8', type: T.ARRAY, arrayType: T.UINT8, value: Array.from({ length: N }, (_, i) => i % 256) },
        { key: 'big.bool', type: T.ARRAY, arrayType: T.BOOL, value: Array.from({ length: N }, (_, i) => i % 3 === 0) },
        { key: 'big.u64', type: T.ARRAY, arrayType: T.UINT64, value: Array.from({ length: N }, (_, i) => (i % 2 ? (BigInt(i % 255) + 1n) << 56n : i)) },
        { key: 'big.i16', type: T.ARRAY, arrayType: T.INT16, value: Array.from({ length: N }, (_, i) => -i) },
        { key: 'big.f64', type: T.ARRAY, arrayType: T.FLOAT64, value: Array.from({ length: N }, (_, i) => i / 7) },
        { key: 'small.i32', type: T.ARRAY, arrayType: T.INT32, value: [1, 2, 3] },
        { key: 'after', type: T.STRING, value: 'the key after the arrays' },
    ];
}

const LAZY_KEYS = ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type', 'tokenizer.ggml.merges', 'big.u8', 'big.bool', 'big.u64', 'big.i16', 'big.f64'];

/** Where a key's entry is: its array count field and its first element. */
function arrayAt(bytes: Uint8Array, key: string): { countAt: number; firstAt: number } {
    const at = Buffer.from(bytes).indexOf(Buffer.from(key)) + key.length + 4 + 4;
    return { countAt: at, firstAt: at + 8 };
}

/** The error message of `fn`, or null when it does not throw. */
function messageOf(fn: () => unknown): string | null {
    try {
        fn();
        return null;
    } catch (error) {
        return (error as Error).message;
    }
}

/** Every value of a header, each read (decoding the lazy ones). */
function values(meta: GgufMetadata): Record<string, unknown> {
    return Object.fromEntries(Object.keys(meta.kv).map((k) => [k, meta.kv[k]]));
}

let tmp: string;
beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'llama-kv-gguf-lazy-'));
});
afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
});

describe('lazy GGUF arrays', () => {
    const bytes = serializeGguf({ kv: vocabKv(), tensors: [] });

    it('are not decoded by the parse; their counts are known without decoding', () => {
        const meta = parseGguf(bytes);
        for (const key of LAZY_KEYS) {
            expect(isGgufArrayPending(meta.kv, key), key).toBe(true);
            expect(ggufArrayLength(meta.kv, key), key).toBe(N);
            expect(meta.kvTypes[key].type).toBe(T.ARRAY);
        }
        expect(isGgufArrayPending(meta.kv, 'small.i32')).toBe(false);
        expect(ggufArrayLength(meta.kv, 'small.i32')).toBe(3);
        expect(ggufArrayLength(meta.kv, 'after')).toBeUndefined();
        expect(ggufArrayLength(meta.kv, 'absent')).toBeUndefined();
        expect(Object.keys(meta.kv)).toEqual(vocabKv().map((e) => e.key));
        expect(meta.kv.after).toBe('the key after the arrays');
        expect(isGgufArrayPending(meta.kv, 'tokenizer.ggml.tokens')).toBe(true); // reading another key decodes nothing
    });

    it('decode to what an eager parse gives, element for element, and become plain values', () => {
        const lazy = parseGguf(bytes);
        const eager = parseGguf(bytes, EAGER);
        for (const key of LAZY_KEYS) expect(isGgufArrayPending(eager.kv, key)).toBe(false);
        const expected = vocabKv();
        for (const key of LAZY_KEYS) {
            const a = lazy.kv[key] as unknown[];
            const b = eager.kv[key] as unknown[];
            expect(a, key).toHaveLength(N);
            for (let i = 0; i < N; i++) if (!Object.is(a[i], b[i])) expect.fail(`${key}[${i}]: ${String(a[i])} !== ${String(b[i])}`);
            expect(isGgufArrayPending(lazy.kv, key)).toBe(false);
            expect(Object.getOwnPropertyDescriptor(lazy.kv, key)).toMatchObject({ writable: true, enumerable: true, configurable: true });
            expect(lazy.kv[key]).toBe(a); // decoded once
        }
        expect((lazy.kv['tokenizer.ggml.tokens'] as string[]).slice(0, 5)).toEqual((expected[1].value as string[]).slice(0, 5));
        expect(lazy).toEqual(eager);
    });

    it('every array lazy (lazyArrayMinLength 0) reads back every type as the eager parse does', () => {
        const all = serializeGguf({ kv: [...vocabKv(), { key: 'arr.empty', type: T.ARRAY, arrayType: T.INT8, value: [] }], tensors: [] });
        const lazy = parseGguf(all, { lazyArrayMinLength: 0 });
        expect(isGgufArrayPending(lazy.kv, 'small.i32')).toBe(true);
        expect(values(lazy)).toEqual(values(parseGguf(all, EAGER)));
        expect(lazy.kv['arr.empty']).toEqual([]);
    });

    it('keep their bytes: a caller changing its buffer after the parse changes no value', () => {
        const copy = bytes.slice();
        const meta = parseGguf(copy);
        copy.fill(0x41, arrayAt(copy, 'tokenizer.ggml.tokens').firstAt);
        expect(values(meta)).toEqual(values(parseGguf(bytes, EAGER)));
    });

    it('decode invalid UTF-8 with the same replacement characters as the eager parse', () => {
        const bad = bytes.slice();
        const { firstAt } = arrayAt(bad, 'tokenizer.ggml.merges');
        bad.set([0xff, 0xc3, 0x28], firstAt + 8); // "a0 b0" -> bytes that are not UTF-8
        const lazy = parseGguf(bad).kv['tokenizer.ggml.merges'] as string[];
        expect(lazy[0]).toBe((parseGguf(bad, EAGER).kv['tokenizer.ggml.merges'] as string[])[0]);
        expect(lazy[0]).toBe('\uFFFD\uFFFD(b0');
    });

    it('can be replaced before and after they are decoded; a frozen map still decodes them', () => {
        const meta = parseGguf(bytes);
        meta.kv['tokenizer.ggml.tokens'] = ['only'];
        expect(meta.kv['tokenizer.ggml.tokens']).toEqual(['only']);
        expect(ggufArrayLength(meta.kv, 'tokenizer.ggml.tokens')).toBe(1);
        expect(meta.kv['tokenizer.ggml.scores']).toHaveLength(N);
        meta.kv['tokenizer.ggml.scores'] = [];
        expect(meta.kv['tokenizer.ggml.scores']).toEqual([]);

        const frozen = parseGguf(bytes);
        Object.freeze(frozen.kv);
        expect(frozen.kv['big.u8']).toEqual(parseGguf(bytes, EAGER).kv['big.u8']);
        expect(frozen.kv['big.u8']).toBe(frozen.kv['big.u8']);
        expect(() => {
            frozen.kv['big.i16'] = [];
        }).toThrow(TypeError);
    });

    it('readGgufMetadata gives the same values lazily, over reads that grow the buffer', async () => {
        const path = join(tmp, 'vocab.gguf');
        await writeFile(path, bytes);
        let reads = 0;
        const lazy = await readGgufMetadata(path, { initialChunkSize: 1024, onRead: () => reads++ });
        expect(reads).toBeGreaterThan(3);
        expect(isGgufArrayPending(lazy.kv, 'tokenizer.ggml.tokens')).toBe(true);
        expect(values(lazy)).toEqual(values(await readGgufMetadata(path, EAGER)));
    });

    it('refuses a lazyArrayMinLength that is not a number >= 0', () => {
        for (const v of [-1, NaN, '10']) {
            expect(() => parseGguf(bytes, { lazyArrayMinLength: v as number })).toThrow(LlamaConfigError);
        }
    });
});

describe('corrupt lazy arrays are errors of the parse, as eager ones are', () => {
    const bytes = serializeGguf({ kv: vocabKv(), tensors: [] });
    const patched = (edit: (b: Uint8Array, view: DataView) => void) => {
        const b = bytes.slice();
        edit(b, new DataView(b.buffer));
        return b;
    };
    const tokens = arrayAt(bytes, 'tokenizer.ggml.tokens');
    const scores = arrayAt(bytes, 'tokenizer.ggml.scores');
    const cases: [string, Uint8Array, RegExp][] = [
        // More strings than there are: the walk over their lengths reaches the end of the file.
        ['string count past the end', patched((_, v) => v.setBigUint64(tokens.countAt, BigInt(Math.floor(bytes.length / 8) - 100), true)), /^truncated GGUF: .*'tokenizer\.ggml\.tokens'/],
        ['string count above the file size', patched((_, v) => v.setBigUint64(tokens.countAt, 1n << 40n, true)), /^truncated GGUF: element count of array 'tokenizer\.ggml\.tokens'/],
        ['float count one past the end', patched((_, v) => v.setBigUint64(scores.countAt, BigInt(Math.floor((bytes.length - scores.firstAt) / 4) + 1), true)), /^truncated GGUF: element count of array 'tokenizer\.ggml\.scores'/],
        ['float count up to the end', patched((_, v) => v.setBigUint64(scores.countAt, BigInt(Math.floor((bytes.length - scores.firstAt) / 4)), true)), /^truncated GGUF: /],
        ['a string length past the end', patched((_, v) => v.setBigUint64(tokens.firstAt + 8 + 0 + 8 + 3, 0xffffffffn, true)), /^truncated GGUF: length of element 2 of 'tokenizer\.ggml\.tokens'/],
        ['a string length of 2^63', patched((_, v) => v.setBigUint64(tokens.firstAt, 1n << 63n, true)), /^truncated GGUF: length of element 0 of 'tokenizer\.ggml\.tokens' at offset \d+ is 9223372036854775808 bytes/],
        // Enough bytes for the count (8 per string at least), too few for the strings.
        ['cut inside the tokens', bytes.subarray(0, tokens.firstAt + 30000), /^truncated GGUF: (length of )?element \d+ of 'tokenizer\.ggml\.tokens' at offset \d+ needs \d+ bytes/],
        ['cut inside the scores', bytes.subarray(0, scores.firstAt + 101), /^truncated GGUF: /],
    ];

    it.each(cases)('%s', (_name, corrupt, error) => {
        const lazy = messageOf(() => parseGguf(corrupt));
        expect(lazy).toMatch(error);
        expect(lazy).toBe(messageOf(() => parseGguf(corrupt, EAGER)));
    });

    it('a prefix that ends inside a lazy array asks for more bytes (readGgufMetadata reads them)', async () => {
        expect(messageOf(() => parseGguf(bytes.subarray(0, tokens.firstAt + 100), { fileSize: bytes.length }))).toMatch(/^truncated GGUF: header needs at least \d+ bytes but only \d+ were given/);
        const path = join(tmp, 'count-past-end.gguf');
        await writeFile(path, cases[0][1]);
        await expect(readGgufMetadata(path, { initialChunkSize: 512 })).rejects.toThrow(/^truncated GGUF: .*'tokenizer\.ggml\.tokens'/);
    });
});
