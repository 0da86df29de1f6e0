import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaModel } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

const text = 'The quick brown fox jumps over the lazy dog. A stitch in time saves nine. '.repeat(6);

function logSoftmaxAt(logits: Float32Array, token: number): number {
    let max = -Infinity;
    for (const v of logits) if (v > max) max = v;
    let sum = 0;
    for (const v of logits) sum += Math.exp(v - max);
    return logits[token] - max - Math.log(sum);
}

describe('LlamaContext.scoreTokens', () => {
    let model: LlamaModel;
    let tokens: Int32Array;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16 });
        tokens = model.tokenize(text);
    });
    afterAll(() => model?.dispose());

    it('gives each position the log-probability of the next token, as evaluate() of the prefix does', async () => {
        const ctx = new LlamaContext({ model, contextSize: 512, threads: 2, batchSize: 64 });
        const scores = await ctx.scoreTokens(tokens);
        expect(scores.logProbs.length).toBe(tokens.length - 1);
        expect(scores.topTokens.length).toBe(tokens.length - 1);
        expect(scores.reference).toBeUndefined();
        // Positions inside the first chunk, at its edge and in later chunks (batchSize 64).
        for (const i of [0, 5, 63, 64, 100, tokens.length - 2]) {
            const logits = await ctx.evaluate(tokens.slice(0, i + 1));
            // Not bit-identical: a 64-position batch and a prefix decode take different matmul paths.
            const expected = logSoftmaxAt(logits, tokens[i + 1]);
            expect(Math.abs(scores.logProbs[i] - expected), `position ${i}`).toBeLessThan(1e-3 * Math.abs(expected) + 1e-3);
            let best = 0;
            for (let k = 1; k < logits.length; k++) if (logits[k] > logits[best]) best = k;
            expect(scores.topTokens[i], `position ${i}`).toBe(best);
            expect(scores.logProbs[i]).toBeLessThan(0);
        }
        ctx.dispose();
    });

    it('against an identical context: KL exactly 0 and the same scores; against a q4_0 V cache: KL > 0', async () => {
        const reference = new LlamaContext({ model, contextSize: 512, threads: 2 });
        const same = new LlamaContext({ model, contextSize: 512, threads: 2 });
        const quantized = new LlamaContext({ model, contextSize: 512, threads: 2, cacheTypeK: 'q8_0', cacheTypeV: 'q4_0' });
        const s = await same.scoreTokens(tokens, { reference });
        expect(Array.from(s.reference!.kl).every((v) => v === 0)).toBe(true);
        expect(Array.from(s.topTokens)).toEqual(Array.from(s.reference!.topTokens));
        expect(Array.from(s.logProbs)).toEqual(Array.from(s.reference!.logProbs));

        const q = await quantized.scoreTokens(tokens, { reference });
        const kl = Array.from(q.reference!.kl);
        expect(kl.every((v) => v >= 0 && Number.isFinite(v))).toBe(true);
        expect(kl.reduce((a, b) => a + b, 0) / kl.length).toBeGreaterThan(0);
        // The reference's own scores do not depend on what it is compared with.
        expect(Array.from(q.reference!.logProbs)).toEqual(Array.from(s.reference!.logProbs));
        // The sequence stays cached: evaluate() of it reuses every token but the last.
        const logits = await quantized.evaluate(tokens);
        expect(logits.length).toBe(model.metadata.vocabSize);
        for (const c of [reference, same, quantized]) c.dispose();
    });

    it('refuses bad input with typed errors, and the contexts stay usable', async () => {
        const a = new LlamaContext({ model, contextSize: 64, threads: 1 });
        const b = new LlamaContext({ model, contextSize: 64, threads: 1 });
        await expect(a.scoreTokens([1])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('at least 2 tokens') });
        await expect(a.scoreTokens([1, 2], { reference: a })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('another context') });
        await expect(a.scoreTokens([1, model.metadata.vocabSize])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('outside the vocabulary') });
        const tooLong = Int32Array.from({ length: a.config.contextSize + 1 }, (_, i) => tokens[i % tokens.length]);
        await expect(a.scoreTokens(tooLong)).rejects.toMatchObject({ code: 'CONTEXT_FULL' });
        await expect(a.scoreTokens([1, 2], { reference: {} as LlamaContext })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        const aborted = new AbortController();
        aborted.abort();
        await expect(a.scoreTokens([1, 2, 3], { signal: aborted.signal })).rejects.toMatchObject({ code: 'ABORTED' });
        b.dispose();
        await expect(a.scoreTokens([1, 2], { reference: b })).rejects.toMatchObject({ code: 'DISPOSED' });
        expect((await a.scoreTokens(tokens.slice(0, 10))).logProbs.length).toBe(9);
        a.dispose();
    });

    it('aborts through the signal while scoring, and the context works afterwards', async () => {
        const reference = new LlamaContext({ model, contextSize: 2048, threads: 1, batchSize: 16 });
        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 1, batchSize: 16 });
        const long = model.tokenize(text.repeat(4)).slice(0, 2048);
        const controller = new AbortController();
        const pending = ctx.scoreTokens(long, { reference, signal: controller.signal });
        setTimeout(() => controller.abort(), 30);
        await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
        expect((await ctx.scoreTokens(long.slice(0, 20), { reference })).reference!.kl.length).toBe(19);
        reference.dispose();
        ctx.dispose();
    });

    it('disposing the reference while it scores rejects with DISPOSED, and the candidate works afterwards', async () => {
        const reference = new LlamaContext({ model, contextSize: 2048, threads: 1, batchSize: 16 });
        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 1, batchSize: 16 });
        const long = model.tokenize(text.repeat(4)).slice(0, 2048);
        const pending = ctx.scoreTokens(long, { reference });
        setTimeout(() => reference.dispose(), 30);
        await expect(pending).rejects.toMatchObject({ code: 'DISPOSED', message: expect.stringContaining('reference context') });
        expect((await ctx.scoreTokens(long.slice(0, 20))).logProbs.length).toBe(19);
        ctx.dispose();
    });

    it('compares two models with the same vocabulary: q8_0 weights against f16', async () => {
        const q8 = await LlamaModel.load({ path: fixtures.q8_0 });
        const reference = new LlamaContext({ model, contextSize: 512, threads: 2 });
        const ctx = new LlamaContext({ model: q8, contextSize: 512, threads: 2 });
        const s = await ctx.scoreTokens(tokens, { reference });
        const kl = Array.from(s.reference!.kl);
        const mean = kl.reduce((a, b) => a + b, 0) / kl.length;
        expect(mean).toBeGreaterThan(0);
        expect(kl.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
        q8.dispose();
        await expect(ctx.scoreTokens(tokens, { reference })).rejects.toMatchObject({ code: 'DISPOSED' });
        reference.dispose();
    });

    it('runs after the work queued on either context, whichever order two scores name them in', async () => {
        const a = new LlamaContext({ model, contextSize: 512, threads: 1 });
        const b = new LlamaContext({ model, contextSize: 512, threads: 1 });
        const seq = tokens.slice(0, 100);
        const results = await Promise.all([
            b.complete('Hello', { maxTokens: 8, temperature: 0 }),
            a.scoreTokens(seq, { reference: b }),
            b.scoreTokens(seq, { reference: a }),
            a.evaluate(seq.slice(0, 5)),
        ]);
        expect((results[1] as { reference: { kl: Float64Array } }).reference.kl.every((v) => v === 0)).toBe(true);
        expect((results[2] as { reference: { kl: Float64Array } }).reference.kl.every((v) => v === 0)).toBe(true);
        a.dispose();
        b.dispose();
    });
});
