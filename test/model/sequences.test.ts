// Concurrent sequences on one context: the native engine batches every active sequence into
// one llama_decode per step. Greedy output is compared token for token with the same prompt
// run alone; scheduling (FIFO, prefix choice, fork, abort) is observed through results.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, LlamaContext, LlamaModel, planFit, type CompletionResult, type KvCacheType } from '../../lib/index.js';
import { ensureFixtureModel } from '../../lib/demo/models.js';
import { fixtures } from '../support/fixtures.js';

const PROMPTS = ['Once upon a time', 'The quick brown fox jumps', 'In a galaxy far, far away there', 'She opened the door and'];

describe('concurrent sequences', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.q8_0, gpu: false });
    });
    afterAll(() => model.dispose());

    const greedy = { temperature: 0, maxTokens: 32 } as const;
    const alone = new Map<string, number[]>();
    /** The tokens each prompt gives on a context of its own, one request at a time. */
    async function aloneTokens(kv: [KvCacheType, KvCacheType], prompt: string, maxTokens = 32): Promise<number[]> {
        const key = `${kv.join('/')}:${prompt}:${maxTokens}`;
        if (!alone.has(key)) {
            const ctx = new LlamaContext({ model, contextSize: 512, threads: 2, cacheTypeK: kv[0], cacheTypeV: kv[1], flashAttention: 'on' });
            alone.set(key, (await ctx.complete(prompt, { ...greedy, maxTokens })).tokens);
            ctx.dispose();
        }
        return alone.get(key)!;
    }

    for (const kv of [['f16', 'f16'], ['q8_0', 'q4_0']] as [KvCacheType, KvCacheType][]) {
        it(`four greedy generations at once give exactly what each prompt gives alone (${kv.join('/')})`, async () => {
            const ctx = new LlamaContext({ model, contextSize: 2048, parallel: 4, threads: 2, cacheTypeK: kv[0], cacheTypeV: kv[1], flashAttention: 'on' });
            const before = ctx.engineStats;
            const results = await Promise.all(PROMPTS.map((p) => ctx.complete(p, greedy)));
            const stats = ctx.engineStats;
            for (const [i, r] of results.entries()) expect(r.tokens, PROMPTS[i]).toEqual(await aloneTokens(kv, PROMPTS[i]));
            // They ran on four different sequences, batched: far fewer decodes than 4 x 32 tokens.
            expect(new Set(results.map((r) => r.sequence)).size).toBe(4);
            expect(stats.steps - before.steps).toBeLessThan(2 * 33);
            expect(stats.tokens - before.tokens).toBe(results.reduce((n, r) => n + r.timings.promptTokens + r.tokens.length - 1, 0));
            ctx.dispose();
        });
    }

    it('engineStats read as each result arrives: the step counted with its decode (stepMs >= decodeMs)', async () => {
        const ctx = new LlamaContext({ model, contextSize: 512, parallel: 2, threads: 2 });
        let last = ctx.engineStats;
        for (let i = 0; i < 40; i++) {
            const r = await ctx.complete(PROMPTS[i % PROMPTS.length], { temperature: 0, maxTokens: 1 + (i % 3) });
            const s = ctx.engineStats; // read in the callback's turn, while the engine may still end its step
            expect(s.stepMs, `request ${i}`).toBeGreaterThanOrEqual(s.decodeMs);
            // A repeated prompt reuses its cached prefix: at least its last token is decoded again.
            expect(s.tokens - last.tokens).toBeGreaterThanOrEqual(r.tokens.length);
            expect(s.tokens - last.tokens).toBeLessThanOrEqual(r.timings.promptTokens + r.tokens.length - 1);
            last = s;
        }
        ctx.dispose();
    });

    it('aborting one of four leaves the other three bit-identical', async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, parallel: 4, threads: 2, flashAttention: 'on' });
        const abort = new AbortController();
        const stream = ctx.generate(PROMPTS[1], { ...greedy, signal: abort.signal });
        const others = [0, 2, 3].map((i) => ctx.complete(PROMPTS[i], greedy));
        let seen = 0;
        for await (const _ of stream) if (++seen === 3) abort.abort();
        const results = await Promise.all(others);
        for (const [j, i] of [0, 2, 3].entries()) expect(results[j].tokens).toEqual(await aloneTokens(['f16', 'f16'], PROMPTS[i]));
        expect(seen).toBeLessThan(32);
        ctx.dispose();
    });

    it('serves more requests than sequences in FIFO order', async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, parallel: 4, threads: 2 });
        // Four long-running requests of different lengths, then two that must wait.
        const lengths = [40, 8, 30, 20];
        const first = lengths.map((n, i) => ctx.complete(PROMPTS[i], { ...greedy, maxTokens: n, stop: [] }));
        const fifth = ctx.complete('A fifth request', { ...greedy, maxTokens: 60 });
        const sixth = ctx.complete('A sixth request', { ...greedy, maxTokens: 60 });
        expect(ctx.sequences.every((s) => s.state !== 'idle')).toBe(true);
        const done: CompletionResult[] = await Promise.all(first);
        const [r5, r6] = await Promise.all([fifth, sixth]);
        // Requests end in length order (2nd, 4th, 3rd, 1st) unless the model ends one early.
        const order = done.map((r, i) => ({ i, n: r.tokens.length })).sort((a, b) => a.n - b.n);
        expect(r5.sequence).toBe(done[order[0].i].sequence); // the first sequence freed went to the first waiter
        expect(r6.sequence).toBe(done[order[1].i].sequence);
        for (const r of [r5, r6]) expect(r.tokens).toEqual(await aloneTokens(['f16', 'f16'], r === r5 ? 'A fifth request' : 'A sixth request', 60));
        ctx.dispose();
    });

    it('a returning conversation goes back to the sequence that holds its prefix', async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, parallel: 4, threads: 2 });
        const firsts = await Promise.all(PROMPTS.map((p) => ctx.complete(p, { ...greedy, maxTokens: 8 })));
        const follow = PROMPTS[2] + firsts[2].text + ' and then';
        const r = await ctx.complete(follow, { ...greedy, maxTokens: 4 });
        expect(r.sequence).toBe(firsts[2].sequence);
        expect(r.timings.reusedTokens).toBeGreaterThanOrEqual(firsts[2].timings.promptTokens);
        ctx.dispose();
    });

    it('a forked sequence generates what a fresh sequence with the full prompt does, evaluating only the new tokens', async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, parallel: 4, threads: 2 });
        const system = model.tokenize('You are a helpful assistant. Answer briefly and kindly.');
        const questions = [' What is the sky?', ' Why is grass green?', ' Where do birds go?'];
        const root = await ctx.acquireSequence();
        await root.evaluate(system);
        expect(root.tokens).toEqual(system);
        const forks = await Promise.all(questions.map(() => root.fork()));
        expect(new Set([root.id, ...forks.map((f) => f.id)]).size).toBe(4);
        for (const f of forks) expect(f.tokens).toEqual(system);
        const prompts = questions.map((q) => Int32Array.from([...system, ...model.tokenize(q, { addSpecial: false })]));
        const results = await Promise.all(forks.map((f, i) => f.complete(prompts[i], greedy)));
        for (const [i, r] of results.entries()) {
            expect(r.timings.reusedTokens).toBe(system.length);
            const fresh = new LlamaContext({ model, contextSize: 512, threads: 2 });
            expect(r.tokens).toEqual((await fresh.complete(prompts[i], greedy)).tokens);
            fresh.dispose();
        }
        for (const f of forks) f.release();
        root.release();
        ctx.dispose();
    });

    it('acquireSequence waits for a free sequence, honours its signal, and release() gives it back', async () => {
        const ctx = new LlamaContext({ model, contextSize: 512, parallel: 2, threads: 2 });
        const a = await ctx.acquireSequence();
        const b = await ctx.acquireSequence();
        expect(ctx.sequences.map((s) => s.acquired)).toEqual([true, true]);
        const abort = new AbortController();
        const c = ctx.acquireSequence({ signal: abort.signal });
        abort.abort();
        await expect(c).rejects.toMatchObject({ code: 'ABORTED' });
        const d = ctx.acquireSequence();
        const pooled = ctx.complete('waits for a sequence', { ...greedy, maxTokens: 2 });
        a.release();
        const seqD = await d; // FIFO: the acquire was first
        expect(seqD.id).toBe(a.id);
        b.release();
        expect((await pooled).sequence).toBe(b.id);
        await expect(a.complete('released')).rejects.toMatchObject({ code: 'DISPOSED' });
        seqD.release();
        ctx.dispose();
        await expect(ctx.acquireSequence()).rejects.toMatchObject({ code: 'DISPOSED' });
    });

    it('clear() empties a sequence; requests on one sequence run in call order', async () => {
        const ctx = new LlamaContext({ model, contextSize: 512, parallel: 2, threads: 2 });
        using seq = await ctx.acquireSequence();
        const [x, y] = await Promise.all([seq.complete(PROMPTS[0], { ...greedy, maxTokens: 4 }), seq.complete(PROMPTS[0] + ' again', { ...greedy, maxTokens: 4 })]);
        expect(x.sequence).toBe(seq.id);
        expect(y.timings.reusedTokens).toBeGreaterThan(0); // the second ran after the first, on its cache
        expect(ctx.sequences[seq.id].cells).toBe(seq.tokens.length);
        await seq.clear();
        expect(seq.tokens.length).toBe(0);
        expect(ctx.sequences[seq.id].cells).toBe(0);
        expect(ctx.memoryReport().kv.cellsUsed[seq.id]).toBe(0);
        ctx.dispose();
    });

    it('a stream on a sequence takes its turn when called; return() before reading it ends it and frees the turn', async () => {
        const ctx = new LlamaContext({ model, contextSize: 512, parallel: 2, threads: 2 });
        const seq = await ctx.acquireSequence();
        const first = seq.generate(PROMPTS[0], { ...greedy, maxTokens: 400 });
        const after = seq.complete(PROMPTS[1], { ...greedy, maxTokens: 4 }); // queued behind the stream
        await new Promise((resolve) => setImmediate(resolve));
        expect(ctx.sequences[seq.id].state).not.toBe('idle'); // the stream runs though nobody read it yet
        const ended = await first.return(undefined as never);
        expect(ended.done).toBe(true);
        expect((await after).tokens).toEqual(await aloneTokens(['f16', 'f16'], PROMPTS[1], 4));
        // A generator never iterated and never returned does not hold the pool's sequences: it never started.
        void ctx.generate(PROMPTS[2], greedy);
        expect((await ctx.complete(PROMPTS[3], { ...greedy, maxTokens: 4 })).tokens).toHaveLength(4);
        seq.release();
        ctx.dispose();
    });

    it('reports the cells each sequence holds', async () => {
        for (const kvUnified of [false, true]) {
            const ctx = new LlamaContext({ model, contextSize: 1024, parallel: 4, threads: 2, kvUnified });
            const results = await Promise.all(PROMPTS.map((p, i) => ctx.complete(p, { ...greedy, maxTokens: 4 + i })));
            const report = ctx.memoryReport();
            expect(report.kv.cellsPerSequence).toBe(kvUnified ? 1024 : 256);
            for (const r of results) expect(report.kv.cellsUsed[r.sequence]).toBe(r.timings.promptTokens + r.tokens.length - 1);
            ctx.dispose();
        }
    });

    it('setLoras waits for running requests and applies to every sequence', async () => {
        const ctx = new LlamaContext({ model, contextSize: 1024, parallel: 2, threads: 2 });
        const lora = await model.loadLora(fixtures.loraAttn); // made for tiny-f16; its q8_0 twin has the same shapes
        const running = ctx.complete(PROMPTS[0], { ...greedy, maxTokens: 16 });
        const swapped = ctx.setLoras([{ lora, scale: 1 }]);
        const after = ctx.complete(PROMPTS[0], { ...greedy, maxTokens: 16 });
        const first = await running;
        await swapped;
        const second = await after;
        expect(first.finishReason).not.toBe('abort');
        expect(second.timings.reusedTokens).toBe(0); // the cache was cleared for the new adapters
        ctx.dispose();
        lora.dispose();
    });
});

describe('a full sequence', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
    });
    afterAll(() => model.dispose());

    it("'error' ends with finishReason contextFull and keeps the tokens so far", async () => {
        const ctx = new LlamaContext({ model, contextSize: 256, threads: 2 });
        const prompt = model.tokenize('Once upon a time');
        const r = await ctx.complete(prompt, { temperature: 0, maxTokens: 1000 });
        expect(r.finishReason).toBe('contextFull');
        // Every cell holds a token; the last sampled token had no room and is returned undecoded.
        expect(prompt.length + r.tokens.length - 1).toBe(ctx.config.contextSizePerSequence);
        expect(r.timings.contextShifts).toBe(0);
        ctx.dispose();
    });

    for (const [k, v] of [['f16', 'f16'], ['q8_0', 'q8_0'], ['q4_0', 'q4_0']] as const) {
        it(`'shift' goes on past contextSize and keeps the first tokens (K ${k})`, async () => {
            const ctx = new LlamaContext({ model, contextSize: 256, parallel: 2, threads: 2, cacheTypeK: k, cacheTypeV: v, flashAttention: 'on', onContextFull: 'shift' });
            expect(ctx.config.canShift).toBe(true);
            using seq = await ctx.acquireSequence();
            const prompt = model.tokenize('Once upon a time, in a land far away,');
            const keep = 6;
            const perSequence = ctx.config.contextSizePerSequence;
            const r = await seq.complete(prompt, { temperature: 0, maxTokens: 3 * perSequence, keep });
            expect(r.finishReason).toBe('length');
            expect(r.tokens.length).toBe(3 * perSequence);
            expect(r.timings.contextShifts).toBeGreaterThanOrEqual(3);
            // The BOS token and `keep` more stay at the start of the cache.
            expect([...seq.tokens.slice(0, keep + 1)]).toEqual([...prompt.slice(0, keep + 1)]);
            expect(seq.tokens.length).toBeLessThanOrEqual(perSequence);
            // The other sequence is untouched by the shifts: same greedy output as on a fresh context.
            const other = await ctx.complete('The quick brown fox', { temperature: 0, maxTokens: 16 });
            const fresh = new LlamaContext({ model, contextSize: 256, threads: 2, cacheTypeK: k, cacheTypeV: v, flashAttention: 'on' });
            expect(other.tokens).toEqual((await fresh.complete('The quick brown fox', { temperature: 0, maxTokens: 16 })).tokens);
            fresh.dispose();
            ctx.dispose();
        });
    }

    it("'shift' is refused where llama.cpp cannot shift the cache (M-RoPE), at creation and per request", async () => {
        const mrope = await LlamaModel.load({ path: await ensureFixtureModel('tiny-mrope-f16', { dir: fixtures.cacheDir }), gpu: false });
        const message = expect.stringContaining("onContextFull 'shift' needs a KV cache that llama.cpp can shift");
        expect(() => new LlamaContext({ model: mrope, contextSize: 256, onContextFull: 'shift' })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message }));
        const ctx = new LlamaContext({ model: mrope, contextSize: 256, threads: 2 });
        expect(ctx.config.canShift).toBe(false);
        await expect(ctx.complete('Once', { onContextFull: 'shift' })).rejects.toMatchObject({ code: 'INVALID_CONFIG', message });
        // 'error' still ends a full sequence cleanly.
        expect((await ctx.complete('Once', { temperature: 0, maxTokens: 1000 })).finishReason).toBe('contextFull');
        ctx.dispose();
        mrope.dispose();
    });

    it('with kvUnified the sequences share one pool: a full pool ends the sequence holding the most cells, and the others go on', async () => {
        const ctx = new LlamaContext({ model, contextSize: 256, parallel: 2, threads: 2, kvUnified: true });
        expect(ctx.config.contextSizePerSequence).toBe(256);
        const [long, short] = await Promise.all([
            ctx.complete('Once upon a time', { temperature: 0, maxTokens: 1000 }),
            ctx.complete('The quick brown fox', { temperature: 0, maxTokens: 60 }),
        ]);
        expect(short.finishReason).toBe('length');
        expect(short.tokens).toHaveLength(60);
        expect(long.finishReason).toBe('contextFull');
        // The pool is full: both sequences' cells together are all of it.
        const used = ctx.memoryReport().kv.cellsUsed;
        expect(used[0] + used[1]).toBe(256);
        expect(used[long.sequence]).toBe(long.timings.promptTokens + long.tokens.length - 1);
        ctx.dispose();
    });

    it('a request may choose its own policy', async () => {
        const ctx = new LlamaContext({ model, contextSize: 256, threads: 2 });
        const r = await ctx.complete('Once', { temperature: 0, maxTokens: 400, onContextFull: 'shift' });
        expect(r.finishReason).toBe('length');
        expect(r.timings.contextShifts).toBeGreaterThan(0);
        await expect(ctx.complete('Once', { onContextFull: 'wrap' as never })).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining("'error', 'shift'") });
        ctx.dispose();
    });
});

describe("planFit({ prefer: 'parallel' })", () => {
    it('plans a context that serves that many concurrent requests, each at the planned size', async () => {
        // A budget for 4 f16 sequences of 256 tokens: the planner may quantize to fit more.
        const budget = (await estimateMemory({ model: fixtures.f16, contextSize: 1024, parallel: 4 })).total.bytes;
        const plan = await planFit({ model: fixtures.f16, budgetBytes: budget, prefer: 'parallel', minContextSize: 256 });
        const n = plan.settings.parallel;
        expect(n).toBeGreaterThanOrEqual(4);
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        const ctx = new LlamaContext({ model, ...plan.settings, threads: 2 });
        expect(ctx.config.contextSizePerSequence).toBe(256);
        // Every sequence fills its 256 cells at the same time.
        const results = await Promise.all(Array.from({ length: n }, (_, i) => ctx.complete(`Request ${i} begins`, { temperature: 0, maxTokens: 1000 })));
        expect(new Set(results.map((r) => r.sequence)).size).toBe(n);
        for (const r of results) {
            expect(r.finishReason).toBe('contextFull');
            expect(r.timings.promptTokens + r.tokens.length - 1).toBe(256);
        }
        expect(ctx.memoryReport().kv.cellsUsed).toEqual(new Array(n).fill(256));
        ctx.dispose();
        model.dispose();
    });
});
