// What a service relies on from one request to the next (issue 16): fresh randomness per
// request, reproducible seeds, and why a generation ended.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaModel } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

const SAMPLED = { maxTokens: 16, temperature: 1, topK: 0, topP: 1, minP: 0 } as const;

// One CPU model for every test here (the warnings tests load their own, with gpu: 'auto').
let model: LlamaModel;
beforeAll(async () => {
    model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
});
afterAll(() => model.dispose());

describe('seeds', () => {

    it('without a seed, every request on one context samples with a fresh seed', async () => {
        const ctx = model.createContext({ contextSize: 256, threads: 2 });
        expect(ctx.config.seed).toBeNull();
        const results = [];
        for (let i = 0; i < 5; i++) results.push(await ctx.complete('Hello', SAMPLED));
        expect(new Set(results.map((r) => r.seed)).size).toBe(5);
        // 16 tokens sampled at temperature 1 from a 32000-token vocabulary: equal texts would mean equal seeds.
        expect(new Set(results.map((r) => r.text)).size).toBe(5);
        ctx.dispose();
    });

    it("a result's seed reproduces it, in another context", async () => {
        const a = model.createContext({ contextSize: 256, threads: 2 });
        const first = await a.complete('Hello', SAMPLED);
        const b = model.createContext({ contextSize: 256, threads: 2 });
        const again = await b.complete('Hello', { ...SAMPLED, seed: first.seed });
        expect(again.seed).toBe(first.seed);
        expect(again.tokens).toEqual(first.tokens);
        a.dispose();
        b.dispose();
    });

    it("a context's seed makes its requests reproducible in order: request n uses seed + n", async () => {
        const run = async () => {
            const ctx = model.createContext({ contextSize: 256, threads: 2, seed: 1234 });
            expect(ctx.config.seed).toBe(1234);
            const out = [];
            for (let i = 0; i < 3; i++) out.push(await ctx.complete('Hello', SAMPLED));
            ctx.dispose();
            return out;
        };
        const [x, y] = [await run(), await run()];
        expect(x.map((r) => r.seed)).toEqual([1234, 1235, 1236]);
        expect(y.map((r) => r.tokens)).toEqual(x.map((r) => r.tokens));
        expect(new Set(x.map((r) => r.text)).size).toBe(3);
        // A request's own seed wins, and still counts as a request of the context.
        const ctx = model.createContext({ contextSize: 256, threads: 2, seed: 1234 });
        expect((await ctx.complete('Hello', { ...SAMPLED, seed: 1235 })).tokens).toEqual(x[1].tokens);
        expect((await ctx.complete('Hello', SAMPLED)).seed).toBe(1235);
        ctx.dispose();
    });

    it("refuses 0xFFFFFFFF, which llama.cpp's sampler takes as 'random'", async () => {
        const ctx = model.createContext({ contextSize: 256, threads: 2 });
        await expect(ctx.complete('Hello', { ...SAMPLED, seed: 0xffffffff })).rejects.toThrow(
            'Expected an integer in [0, 4294967294] for seed but received 4294967295 (number)',
        );
        expect(() => model.createContext({ seed: 0xffffffff })).toThrow(/for seed but received 4294967295/);
        ctx.dispose();
    });
});

describe("finishReason 'contextFull'", () => {

    it('is what ends a generation that the context, not maxTokens, stopped', async () => {
        const ctx = model.createContext({ contextSize: 256, threads: 2 });
        const r = await ctx.complete('Hi', { maxTokens: 1e9, temperature: 0 });
        expect(r.finishReason).toBe('contextFull');
        // Every position is used; the last token is sampled from the last position and never decoded.
        expect(r.timings.promptTokens + r.tokens.length).toBe(ctx.config.contextSize + 1);
        // A prompt that fills the context: one token is sampled from its last position, then the context is full.
        const prompt = Array.from({ length: ctx.config.contextSize }, (_, i) => 100 + (i % 50));
        const full = await ctx.complete(prompt, { maxTokens: 4, temperature: 0 });
        expect(full.tokens).toHaveLength(1);
        expect(full.finishReason).toBe('contextFull');
        // maxTokens is still 'length'.
        expect((await ctx.complete('Hi', { maxTokens: 3, temperature: 0 })).finishReason).toBe('length');
        ctx.dispose();
    });
});

describe('one abort contract', () => {

    const tokens = (n: number) => Array.from({ length: n }, (_, i) => 100 + (i % 500));

    it('evaluate() takes a signal: aborted before, it rejects at once; during, it stops between batches', async () => {
        const ctx = model.createContext({ contextSize: 2048, batchSize: 64, ubatchSize: 64, threads: 2 });
        const before = new AbortController();
        before.abort();
        await expect(ctx.evaluate(tokens(16), { signal: before.signal })).rejects.toMatchObject({ code: 'ABORTED' });

        const t0 = performance.now();
        await ctx.evaluate(tokens(1900));
        const fullMs = performance.now() - t0;
        await ctx.evaluate([1]); // a different first token: nothing of the next evaluate is in the cache

        const during = new AbortController();
        const t1 = performance.now();
        const pending = ctx.evaluate(tokens(1900), { signal: during.signal });
        setTimeout(() => during.abort(), 5);
        await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
        // 30 batches of 64: an abort after the first few leaves most of the work undone.
        expect(performance.now() - t1).toBeLessThan(fullMs);
        // The context still works afterwards.
        expect((await ctx.evaluate(tokens(8))).length).toBe(model.metadata.vocabSize);
        await expect(ctx.evaluate([1], { sigal: during.signal } as never)).rejects.toThrow('Unknown option "sigal" for evaluate(); did you mean "signal"?');
        ctx.dispose();
    });

    it('every async call takes { signal }: aborted, it rejects with ABORTED; generation alone resolves with finishReason abort', async () => {
        const { calibrate, estimateMemory, inspectModel, planFit, quantizeModel } = await import('../../lib/index.js');
        const signal = AbortSignal.abort();
        const ctx = model.createContext({ contextSize: 256, threads: 2 });
        const calls: [string, () => Promise<unknown>][] = [
            ['LlamaModel.load', () => LlamaModel.load({ path: fixtures.f16, signal })],
            ['tokenizeAsync', () => model.tokenizeAsync('Hello', { signal })],
            ['loadLora', () => model.loadLora(fixtures.loraAttn, { signal })],
            ['evaluate', () => ctx.evaluate([1, 2], { signal })],
            ['scoreTokens', () => ctx.scoreTokens([1, 2, 3], { signal })],
            ['setLoras', () => ctx.setLoras([], { signal })],
            ['estimateMemory', () => estimateMemory({ model: fixtures.f16, signal })],
            ['planFit', () => planFit({ model: fixtures.f16, budgetBytes: 2 ** 30, signal })],
            ['quantizeModel', () => quantizeModel({ input: fixtures.f16, output: '/tmp/never.gguf', type: 'Q8_0', signal })],
            ['calibrate', () => calibrate({ model, configurations: ['balanced'], contextSize: 64, signal })],
            ['inspectModel', () => inspectModel(fixtures.f16, { signal })],
        ];
        for (const [name, call] of calls) {
            const error = await call().then(() => null, (e: unknown) => e);
            expect(error, name).toMatchObject({ code: 'ABORTED' });
        }
        expect((await ctx.complete('Hello', { maxTokens: 8, signal })).finishReason).toBe('abort');
        const stream = ctx.generate('Hello', { maxTokens: 8, signal });
        let next;
        while (!(next = await stream.next()).done);
        expect(next.value.finishReason).toBe('abort');
        // inspectModel aborted while its child runs: the child is killed.
        const during = new AbortController();
        const pending = inspectModel(fixtures.f16, { signal: during.signal });
        setTimeout(() => during.abort(), 20);
        await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
        ctx.dispose();
    });

    it('a throwing onProgress never changes the outcome: load, quantizeModel and calibrate all complete', async () => {
        const { calibrate, quantizeModel, setLogger } = await import('../../lib/index.js');
        const { mkdtemp, rm } = await import('node:fs/promises');
        const { join } = await import('node:path');
        const { tmpdir } = await import('node:os');
        const warnings: string[] = [];
        setLogger((level, message) => {
            if (level === 'warn') warnings.push(message);
        });
        const boom = () => {
            throw new Error('boom');
        };
        try {
            const loaded = await LlamaModel.load({ path: fixtures.f16, gpu: false, onProgress: boom });
            loaded.dispose();
            const dir = await mkdtemp(join(tmpdir(), 'llama-kv-callback-'));
            const q = await quantizeModel({ input: fixtures.f16, output: join(dir, 'q.gguf'), type: 'Q8_0', onProgress: boom });
            expect(q.outputBytes).toBeGreaterThan(0);
            await rm(dir, { recursive: true, force: true });
            const report = await calibrate({ model, configurations: ['balanced'], contextSize: 64, generationTokens: 0, prompts: [{ name: 'p', text: 'Once upon a time there was a llama.' }], onProgress: boom });
            expect(report.results).toHaveLength(1);
        } finally {
            setLogger(null);
        }
        for (const what of ['LlamaModel.load() onProgress', 'quantizeModel() onProgress', 'calibrate() onProgress']) {
            expect(warnings.filter((w) => w.includes(`${what} threw`)), what).toHaveLength(1);
        }
    });
});

describe('warnings reach the caller', () => {
    let auto: LlamaModel;
    beforeAll(async () => {
        auto = await LlamaModel.load({ path: fixtures.f16 });
    });
    afterAll(() => auto.dispose());

    it('ctx.config.warnings: a context above the trained one, a batch cut by a tiny contextSize; none for plain settings', () => {
        const above = auto.createContext({ contextSize: 8192, threads: 2 });
        expect(above.config.warnings.map((w) => w.code)).toEqual(['CONTEXT_ABOVE_TRAINED']);
        expect(above.config.warnings[0]).toMatchObject({ options: ['contextSize'], message: expect.stringContaining("contextSize 8192 is larger than the model's trained context (2048)") });
        above.dispose();
        const tiny = auto.createContext({ contextSize: 1, threads: 2 });
        expect(tiny.config).toMatchObject({ contextSize: 256, batchSize: 1 });
        expect(tiny.config.warnings.map((w) => w.code)).toEqual(['BATCH_CLAMPED']);
        expect(tiny.config.warnings[0].message).toContain('ask for contextSize 256');
        tiny.dispose();
        const plain = auto.createContext({ contextSize: 1024, threads: 2 });
        expect(plain.config.warnings).toEqual([]);
        plain.dispose();
    });

    it('estimates carry the same warnings as the context would', async () => {
        const { estimateMemory } = await import('../../lib/index.js');
        const e = await estimateMemory({ model: fixtures.f16, contextSize: 8192 });
        expect(e.warnings.map((w) => w.code)).toEqual(['CONTEXT_ABOVE_TRAINED']);
        expect((await estimateMemory({ model: fixtures.f16, contextSize: 1024 })).warnings).toEqual([]);
    });

    it("model.warnings: gpu 'auto' without a GPU says so (NO_GPU); gpu: false does not", async () => {
        const { getBackends } = await import('../../lib/index.js');
        const gpu = getBackends().some((b) => b.available && b.kind !== 'cpu' && b.kind !== 'blas' && b.kind !== 'rpc');
        expect(auto.warnings.map((w) => w.code)).toEqual(gpu ? [] : ['NO_GPU']);
        const cpu = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        expect(cpu.warnings).toEqual([]);
        cpu.dispose();
    });

    it('the CLI prints them with its own flag names', async () => {
        const { llamaKv } = await import('../support/cli.js');
        const r = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-n', '2', '-c', '4096', '--temp', '0');
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("-c 4096 is larger than the model's trained context (2048)");
        expect(r.stderr).not.toMatch(/contextSize|gpu: false/);
    });
});

describe('backpressure: a stream nobody reads neither runs on nor holds the context', () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

    it('an unread stream pauses: no CPU spent while nobody reads, and it goes on when read again', async () => {
        const { UNREAD_LIMIT } = await import('../../lib/context/context.js');
        expect(UNREAD_LIMIT).toBeGreaterThan(0);
        // One thread: ggml's worker threads spin-wait after every graph (for seconds in a VM, where
        // each PAUSE instruction may exit to the hypervisor), as after any generation; the
        // thread that runs the loop is what this measures.
        const ctx = model.createContext({ contextSize: 8192, threads: 1 });
        const it = ctx.generate('Once upon a time', { maxTokens: 8000, temperature: 0 })[Symbol.asyncIterator]();
        await it.next();
        // Unpaused, 8000 tokens would keep its thread busy for many seconds; paused, it goes quiet
        // once it has generated its unread allowance.
        let quietMs = Infinity;
        const t0 = performance.now();
        for (let i = 0; i < 12 && quietMs >= 30; i++) {
            const c0 = process.cpuUsage();
            await sleep(250);
            const c = process.cpuUsage(c0);
            quietMs = (c.user + c.system) / 1000;
        }
        expect(quietMs, `no quiet 250 ms window in ${(performance.now() - t0).toFixed(0)} ms`).toBeLessThan(30);
        expect(ctx.sequences[0].state).toBe('waiting'); // still its generation, sitting out of the batches
        expect(ctx.memoryReport().kv.cellsUsed[0]).toBeGreaterThan(UNREAD_LIMIT); // read between two steps, not refused
        // Read on: it goes on past its allowance.
        for (let n = 0; n < 2 * UNREAD_LIMIT; n++) expect((await it.next()).done).toBe(false);
        await it.return(undefined as never);
        ctx.dispose();
    });

    it('a stalled stream does not block the next call: it ends as preempted after at most UNREAD_LIMIT unread tokens', async () => {
        const { UNREAD_LIMIT } = await import('../../lib/context/context.js');
        const ctx = model.createContext({ contextSize: 4096, threads: 2 });
        const it = ctx.generate('x', { maxTokens: 2000, temperature: 0 })[Symbol.asyncIterator]();
        await it.next();
        const next = await ctx.complete('next', { maxTokens: 4, temperature: 0 });
        expect(next.tokens).toHaveLength(4);
        let n = 1;
        let last: IteratorResult<unknown, unknown>;
        while (!(last = await it.next()).done) n++;
        expect((last.value as { finishReason: string }).finishReason).toBe('preempted');
        expect(n).toBeLessThanOrEqual(UNREAD_LIMIT + 2);
        ctx.dispose();
    });

    it('a stream dropped without return() is stopped when the GC collects it', async () => {
        const v8 = await import('node:v8');
        const vm = await import('node:vm');
        v8.setFlagsFromString('--expose-gc');
        const gc = vm.runInNewContext('gc') as () => void;
        const ctx = model.createContext({ contextSize: 4096, threads: 2 });
        await (async () => {
            const it = ctx.generate('x', { maxTokens: 3000, temperature: 0 })[Symbol.asyncIterator]();
            await it.next();
        })();
        // Paused with its allowance unread: its sequence is held until the stream is collected.
        for (let i = 0; i < 500 && ctx.sequences[0].state !== 'waiting'; i++) await sleep(20);
        expect(ctx.sequences[0].state).toBe('waiting');
        for (let i = 0; i < 20 && ctx.sequences[0].state !== 'idle'; i++) {
            gc();
            await sleep(25);
        }
        expect(ctx.sequences[0].state).toBe('idle');
        ctx.dispose();
    });
});

describe('values refused in TypeScript before native code sees them', () => {

    it('repeatLastN beyond one sequence\'s context, and token ids outside the vocabulary, in the options wording', async () => {
        const ctx = model.createContext({ contextSize: 512, parallel: 2, threads: 2 });
        const per = 256;
        await expect(ctx.complete('Hi', { maxTokens: 2, repeatPenalty: 1.1, repeatLastN: per + 1 })).rejects.toMatchObject({
            code: 'INVALID_CONFIG',
            message: `Expected an integer up to ${per} (the context of one sequence) for repeatLastN but received ${per + 1} (number)`,
        });
        expect((await ctx.complete('Hi', { maxTokens: 2, repeatPenalty: 1.1, repeatLastN: per, temperature: 0 })).tokens).toHaveLength(2);
        const n = model.metadata.vocabSize;
        for (const call of [() => ctx.evaluate([1, n]), () => ctx.scoreTokens([1, 2, n + 5]), () => ctx.complete([1, -1], { maxTokens: 1 })]) {
            const error = await call().then(() => null, (e: unknown) => e);
            expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(new RegExp(`^token id -?\\d+ at index \\d is outside the vocabulary \\[0, ${n}\\)$`)) });
        }
        ctx.dispose();
    });
});
