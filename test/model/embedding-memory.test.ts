// Memory of embedding contexts: the live report against estimateMemory({ embeddings: true }).
import { describe, expect, it } from 'vitest';
import { estimateMemory, LlamaModel } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

/** Texts that fill `batchSize` tokens exactly in one decode (one text of batchSize tokens). */
function fullBatch(model: LlamaModel, batchSize: number): Int32Array {
    const tokens = model.tokenize('memory '.repeat(batchSize * 2), { addSpecial: true, parseSpecial: true });
    const out = tokens.slice(0, batchSize);
    out[batchSize - 1] = tokens[tokens.length - 1];
    return out;
}

describe.each([
    { name: 'BERT encoder (no KV cache)', path: () => fixtures.embed.bert, kv: false },
    { name: 'decoder embedding model (a KV cache for one decode)', path: () => fixtures.embed.llamaLast, kv: true },
])('$name', ({ path, kv }) => {
    it('memoryReport after a full decode equals estimateMemory({ embeddings: true }): KV and output exact at both levels, everything with simulate', async () => {
        const model = await LlamaModel.load({ path: path() });
        const settings = { contextSize: 256, batchSize: 256, parallel: 8 };
        const ctx = model.createEmbeddingContext({ ...settings, threads: 2 });
        const atStart = ctx.memoryReport();
        // One row per sequence until a decode outputs more tokens.
        expect(atStart.output.bytes).toBe(model.metadata.embeddingOutputSize * 4 * 8);
        await ctx.embed(fullBatch(model, ctx.config.maxTokens));
        const live = ctx.memoryReport();
        const header = await estimateMemory({ model: path(), embeddings: true, ...settings });
        const simulated = await estimateMemory({ model: path(), embeddings: true, simulate: true, ...settings });

        // No logits (vendor/patches/0008): one embedding per token of the largest decode.
        expect(live.output.bytes).toBe(model.metadata.embeddingOutputSize * 4 * 256);
        expect(live.output.bytes).toBeLessThan(model.metadata.vocabSize * 4 * 8);
        expect(kv ? live.kv.bytes > 0 : live.kv.bytes === 0).toBe(true);
        for (const e of [header, simulated]) {
            expect(e.kv.bytes).toBe(live.kv.bytes);
            expect(e.output.bytes).toBe(live.output.bytes);
            expect(e.weights.bytes).toBe(live.weights.bytes);
            expect(e.exact.kv && e.exact.output).toBe(true);
        }
        expect(simulated.compute.bytes).toBe(live.compute.bytes);
        expect(simulated.total.bytes).toBe(live.total.bytes);
        // The header level's compute is approximate: within 25% here.
        expect(Math.abs(header.compute.bytes - live.compute.bytes) / live.compute.bytes).toBeLessThan(0.25);
        expect(header.exact.compute).toBe(false);
        ctx.dispose();
        model.dispose();
    });
});

describe('estimateMemory options for embeddings', () => {
    it('refuses K/V options with embeddings and pooling without it', async () => {
        await expect(estimateMemory({ model: fixtures.embed.bert, embeddings: true, cacheTypeK: 'q8_0' })).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringMatching(/cacheTypeK does not apply/) });
        await expect(estimateMemory({ model: fixtures.embed.bert, pooling: 'mean' })).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringMatching(/pooling needs embeddings: true/) });
    });

    it('an embedding context of a decoder needs far less than a generation context of the same size', async () => {
        const gen = await estimateMemory({ model: fixtures.embed.llamaLast, contextSize: 256, batchSize: 256, parallel: 8 });
        const emb = await estimateMemory({ model: fixtures.embed.llamaLast, embeddings: true, contextSize: 256, batchSize: 256, parallel: 8 });
        expect(emb.output.bytes).toBeLessThan(gen.output.bytes);
    });
});
