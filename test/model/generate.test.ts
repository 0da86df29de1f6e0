import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaModel } from '../../lib/index.js';
import { fixtures, referenceGreedy, ticksDuring } from '../support/fixtures.js';

const PROMPT = 'Once upon a time';

describe.each([
    ['f16', () => fixtures.f16],
    ['q8_0', () => fixtures.q8_0],
    ['q4_0', () => fixtures.q4_0],
])('generation on the %s fixture', (_name, path) => {
    let model: LlamaModel;
    let ctx: LlamaContext;
    beforeAll(async () => {
        // checkTensors: llama.cpp validates every block the fixture generator wrote.
        model = await LlamaModel.load({ path: path(), checkTensors: true });
        ctx = new LlamaContext({ model, contextSize: 1024, threads: 2 });
    });
    afterAll(() => model.dispose());

    it('greedy output equals llama.cpp token for token', async () => {
        const expected = referenceGreedy(path(), PROMPT, 48, 2);
        expect(expected.length).toBeGreaterThan(10);
        const result = await ctx.complete(PROMPT, { maxTokens: 48, temperature: 0 });
        expect(result.tokens).toEqual(expected);
        expect(result.text).toBe(model.detokenize([model.metadata.bosToken, ...expected])); // pieces as generated, space prefix kept
        expect(new Set(result.tokens).size).toBeGreaterThan(5); // the fixture does not loop on one token
    });

    it('greedy generation is deterministic across runs and with token prompts', async () => {
        const a = await ctx.complete(PROMPT, { maxTokens: 24, temperature: 0 });
        const b = await ctx.complete(PROMPT, { maxTokens: 24, temperature: 0 });
        const c = await ctx.complete(model.tokenize(PROMPT), { maxTokens: 24, temperature: 0 });
        expect(b.tokens).toEqual(a.tokens);
        expect(c.tokens).toEqual(a.tokens);
        expect(b.timings.reusedTokens).toBeGreaterThan(0); // the prompt prefix came from the cache
        expect(a.finishReason).toBe('length');
        expect(a.timings.generatedTokens).toBe(24);
        expect(a.timings.promptTokens).toBe(5);
    });

    it('seeded sampling is reproducible and differs between seeds', async () => {
        const s1 = await ctx.complete(PROMPT, { maxTokens: 24, temperature: 1.2, topK: 0, topP: 1, minP: 0, seed: 7 });
        const s2 = await ctx.complete(PROMPT, { maxTokens: 24, temperature: 1.2, topK: 0, topP: 1, minP: 0, seed: 7 });
        const s3 = await ctx.complete(PROMPT, { maxTokens: 24, temperature: 1.2, topK: 0, topP: 1, minP: 0, seed: 8 });
        expect(s2.tokens).toEqual(s1.tokens);
        expect(s3.tokens).not.toEqual(s1.tokens);
    });

    it('streams the same text that complete() returns', async () => {
        const full = await ctx.complete(PROMPT, { maxTokens: 32, temperature: 0 });
        const events = [];
        for await (const event of ctx.generate(PROMPT, { maxTokens: 32, temperature: 0 })) events.push(event);
        expect(events.map((e) => e.token)).toEqual(full.tokens);
        expect(events.map((e) => e.text).join('')).toBe(full.text);
    });

    it('returns the last-position logits from evaluate()', async () => {
        const tokens = model.tokenize(PROMPT);
        const logits = await ctx.evaluate(tokens);
        expect(logits).toBeInstanceOf(Float32Array);
        expect(logits.length).toBe(model.metadata.vocabSize);
        let best = 0;
        for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        const greedy = await ctx.complete(tokens, { maxTokens: 1, temperature: 0 });
        expect(greedy.tokens[0]).toBe(best);
        const again = await ctx.evaluate(tokens);
        expect([...again.subarray(0, 16)]).toEqual([...logits.subarray(0, 16)]);
    });
});

describe('generation control', () => {
    let model: LlamaModel;
    let ctx: LlamaContext;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16 });
        ctx = new LlamaContext({ model, contextSize: 2048, threads: 2 });
    });
    afterAll(() => model.dispose());

    it('stops at a stop string and leaves it out of the text', async () => {
        const full = await ctx.complete(PROMPT, { maxTokens: 48, temperature: 0 });
        // A stop string taken from the middle of the greedy output, across a token boundary.
        const start = Math.floor(full.text.length / 2);
        const stop = full.text.slice(start, start + 4);
        const cut = full.text.indexOf(stop);
        const stopped = await ctx.complete(PROMPT, { maxTokens: 48, temperature: 0, stop: [stop] });
        expect(stopped.finishReason).toBe('stop');
        expect(stopped.text).toBe(full.text.slice(0, cut));
        const streamed: string[] = [];
        for await (const e of ctx.generate(PROMPT, { maxTokens: 48, temperature: 0, stop })) streamed.push(e.text);
        expect(streamed.join('')).toBe(full.text.slice(0, cut));
    });

    it('aborts through an AbortSignal: generation ends with finishReason "abort"', async () => {
        const controller = new AbortController();
        let seen = 0;
        let atAbort = 0;
        const run = ctx.generate(PROMPT, { maxTokens: 1000, temperature: 0, signal: controller.signal });
        let step = await run.next();
        while (!step.done) {
            if (++seen === 5) {
                atAbort = seen;
                controller.abort();
            }
            step = await run.next();
        }
        expect(step.value.finishReason).toBe('abort');
        // The engine ends the request at its next step, so at most one more token is sampled
        // after abort(); tokens sampled before it may still be on their way to JS (they arrive at
        // most every 4 ms, in batches: about 13 tokens of this model here), hence the margin.
        expect(seen).toBeLessThanOrEqual(atAbort + 32);
        expect(step.value.tokens.length).toBe(seen);

        const pre = await ctx.complete(PROMPT, { maxTokens: 1000, temperature: 0, signal: AbortSignal.abort() });
        expect(pre.finishReason).toBe('abort');
        expect(pre.tokens).toEqual([]);
    });

    it('aborts during prompt processing, between two chunks of batchSize tokens', async () => {
        const big = new LlamaContext({ model, contextSize: 2048, batchSize: 64, threads: 1 });
        const prompt = Array.from({ length: 1900 }, (_, i) => 100 + (i % 1000));
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 3);
        const t0 = performance.now();
        const result = await big.complete(prompt, { maxTokens: 10, temperature: 0, signal: controller.signal });
        const abortedMs = performance.now() - t0;
        expect(result.finishReason).toBe('abort');
        expect(result.tokens).toEqual([]);
        const full = await big.complete(prompt, { maxTokens: 4, temperature: 0 });
        // The engine stops a request between two steps: the chunks it decoded stay in the cache,
        // whole, and the next request reuses them.
        expect(full.timings.reusedTokens % 64).toBe(0);
        expect(full.timings.reusedTokens).toBeLessThan(prompt.length);
        const fresh = new LlamaContext({ model, contextSize: 2048, batchSize: 64, threads: 1 });
        const whole = await fresh.complete(prompt, { maxTokens: 4, temperature: 0 });
        expect(full.tokens).toEqual(whole.tokens);
        expect(abortedMs).toBeLessThan(whole.timings.promptMs); // it did not decode the whole prompt first
        fresh.dispose();
        big.dispose();
    });

    it('breaking out of the loop stops generation and frees the context for the next call', async () => {
        let n = 0;
        for await (const _ of ctx.generate(PROMPT, { maxTokens: 1000, temperature: 0 })) {
            if (++n === 3) break;
        }
        const next = await ctx.complete(PROMPT, { maxTokens: 4, temperature: 0 });
        expect(next.tokens.length).toBe(4);
    });

    it('keeps the event loop ticking during generation', async () => {
        const { ticks, ms, result } = await ticksDuring(() => ctx.complete(PROMPT, { maxTokens: 600, temperature: 0 }));
        expect(result.tokens.length).toBe(600);
        // setInterval(5 ms) must keep running; allow for a noisy shared machine.
        expect(ticks).toBeGreaterThanOrEqual(Math.floor(ms / 5 / 4));
        expect(ticks).toBeGreaterThan(2);
    });

    it('runs calls on one context in order', async () => {
        const [a, b] = await Promise.all([
            ctx.complete(PROMPT, { maxTokens: 8, temperature: 0 }),
            ctx.complete(PROMPT, { maxTokens: 8, temperature: 0 }),
        ]);
        expect(b.tokens).toEqual(a.tokens);
    });

    it('ends with "contextFull" when the context fills (not "length", which is maxTokens), and rejects a prompt that does not fit', async () => {
        // contextSize 32 is padded to llama.cpp's 256: maxTokens must exceed that for the context to fill.
        const small = new LlamaContext({ model, contextSize: 32, threads: 2 });
        const r = await small.complete(PROMPT, { maxTokens: 1000, temperature: 0 });
        expect(r.finishReason).toBe('contextFull');
        expect(r.tokens.length).toBeLessThanOrEqual(small.config.contextSize - 4);
        const longPrompt = Array.from({ length: small.config.contextSize + 1 }, () => 100);
        await expect(small.complete(longPrompt, { maxTokens: 1 })).rejects.toMatchObject({ code: 'CONTEXT_FULL' });
        await expect(small.complete([1, 99999], { maxTokens: 1 })).rejects.toMatchObject({
            code: 'INVALID_ARGUMENT',
            message: expect.stringContaining('outside the vocabulary'),
        });
        await expect(small.complete([], { maxTokens: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        small.dispose();
    });

    it('validates options with messages that say what to change', async () => {
        expect(() => new LlamaContext({ model, contextSize: -1 })).toThrow(
            'Expected a positive integer for contextSize but received -1 (number)',
        );
        expect(() => new LlamaContext({ model, contextSize: 64, batchSize: 16, ubatchSize: 32 })).toThrow(/ubatchSize <= batchSize/);
        expect(() => new LlamaContext({ model, contextsize: 64 } as never)).toThrow(/did you mean "contextSize"/);
        await expect(ctx.complete(PROMPT, { temperature: -1 })).rejects.toThrow('Expected a number >= 0 for temperature but received -1 (number)');
        await expect(ctx.complete(PROMPT, { maxTokens: 1.5 })).rejects.toThrow(/maxTokens/);
    });

    it('byte-fallback tokens make one character only together', async () => {
        // <0xE4> <0xB8> <0x96> = "世": each token's piece is one byte of it (see the TextStream unit test for streaming).
        const vocab = model.metadata.gguf['tokenizer.ggml.tokens'] as string[];
        const ids = ['<0xE4>', '<0xB8>', '<0x96>'].map((t) => vocab.indexOf(t));
        expect(ids.every((id) => id > 0)).toBe(true);
        expect(model.detokenize(ids)).toBe('世');
        expect(model.tokenize('世', { addSpecial: false }).length).toBeGreaterThan(0);
    });
});
