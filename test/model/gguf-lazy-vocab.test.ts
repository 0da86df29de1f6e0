// The lazy tokenizer arrays on llama.cpp's real vocabularies (vendor/llama.cpp/models/, the
// model project: the unit project runs without the vendor tree): every array decoded on first
// access is the eager parse's, element for element, over SPM, BPE, WPM and UGM vocabularies
// with byte tokens, non-ASCII text and merges; and the header of each reads without decoding one.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ggufArrayLength, parseGguf, readGgufMetadata } from '../../lib/gguf/reader.js';
import { isGgufArrayPending } from '../../lib/gguf/lazy-array.js';
import { LlamaModel } from '../../lib/model/model.js';
import { fixtures } from '../support/fixtures.js';

/** Fixed sizes of the GGUF scalar types (type id to bytes); 8 is STRING, 9 ARRAY. */
const SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Every string array of a GGUF file, decoded by a walker of its own with a plain TextDecoder (the reader's ASCII path aside). */
function stringArrays(bytes: Buffer): Map<string, string[]> {
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    let at = 24;
    const u64 = () => ((at += 8), Number(bytes.readBigUInt64LE(at - 8)));
    const u32 = () => ((at += 4), bytes.readUInt32LE(at - 4));
    const str = () => {
        const len = u64();
        at += len;
        return decoder.decode(bytes.subarray(at - len, at));
    };
    const out = new Map<string, string[]>();
    const nKv = Number(bytes.readBigUInt64LE(16));
    for (let i = 0; i < nKv; i++) {
        const key = str();
        const type = u32();
        if (type === 8) str();
        else if (type === 9) {
            const elem = u32();
            const n = u64();
            if (elem === 8) out.set(key, Array.from({ length: n }, str));
            else at += n * SIZES[elem];
        } else at += SIZES[type];
    }
    return out;
}

const MODELS = fileURLToPath(new URL('../../vendor/llama.cpp/models/', import.meta.url));
const VOCABS = readdirSync(MODELS).filter((f) => /^ggml-vocab-.*\.gguf$/.test(f)).sort();

describe('lazy tokenizer arrays of real vocabularies', () => {
    it('there are vocabularies to read', () => {
        expect(VOCABS.length).toBeGreaterThanOrEqual(10);
    });

    it.each(VOCABS)('%s: lazy equals eager, element for element', async (name) => {
        const path = join(MODELS, name);
        const lazy = await readGgufMetadata(path);
        const eager = parseGguf(readFileSync(path), { lazyArrayMinLength: Infinity });
        const pending = Object.keys(lazy.kv).filter((k) => isGgufArrayPending(lazy.kv, k));
        expect(pending).toContain('tokenizer.ggml.tokens');
        for (const key of pending) expect(ggufArrayLength(lazy.kv, key), key).toBe((eager.kv[key] as unknown[]).length);
        expect(Object.keys(lazy.kv)).toEqual(Object.keys(eager.kv));
        for (const key of Object.keys(eager.kv)) {
            const a = lazy.kv[key];
            const b = eager.kv[key];
            if (!Array.isArray(b)) {
                expect(a, key).toBe(b);
                continue;
            }
            expect((a as unknown[]).length, key).toBe(b.length);
            for (let i = 0; i < b.length; i++) if (!Object.is((a as unknown[])[i], b[i])) expect.fail(`${name} ${key}[${i}]: ${String((a as unknown[])[i])} !== ${String(b[i])}`);
        }
        expect(lazy.kvTypes).toEqual(eager.kvTypes);
        const strings = stringArrays(readFileSync(path));
        expect(strings.has('tokenizer.ggml.tokens')).toBe(true);
        for (const [key, expected] of strings) expect(lazy.kv[key], key).toEqual(expected);
        expect(lazy.dataOffset).toBe(eager.dataOffset);
    });
});

describe('LlamaModel.load', () => {
    it("decodes none of the tokenizer's arrays (llama.cpp reads them); metadata.gguf still has them", async () => {
        const model = await LlamaModel.load({ path: fixtures.f16 });
        try {
            const kv = model.metadata.gguf;
            const arrays = ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type'];
            for (const key of arrays) expect(isGgufArrayPending(kv, key), key).toBe(true);
            expect(model.metadata.vocabSize).toBe(ggufArrayLength(kv, 'tokenizer.ggml.tokens'));
            const eager = parseGguf(readFileSync(fixtures.f16), { lazyArrayMinLength: Infinity });
            for (const key of arrays) expect(kv[key], key).toEqual(eager.kv[key]);
            expect(model.detokenize([(kv['tokenizer.ggml.tokens'] as string[]).indexOf('▁the')]).trim()).toBe('the');
        } finally {
            model.dispose();
        }
    });
});
