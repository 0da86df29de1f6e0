// LlamaContext.create() / model.createContextAsync(): the context of `new LlamaContext`, with
// its checks and errors, allocated on a worker. Over RPC the creation's round trips then
// leave the event loop free: a proxy on this very thread can serve them, which would
// deadlock a `new LlamaContext` until the socket timeout.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaError, LlamaModel } from '../../lib/index.js';
import { binding, type NativeContextParams } from '../../lib/native/binding.js';
import { nativeModel } from '../../lib/model/model.js';
import { fixtures } from '../support/fixtures.js';
import { proxyTo, startRpcServer } from '../support/rpc-wire.js';

const PROMPT = 'Once upon a time';

async function failure(p: Promise<unknown>): Promise<LlamaError> {
    const e = await p.then(() => null, (error: unknown) => error);
    expect(e).toBeInstanceOf(LlamaError);
    return e as LlamaError;
}

/** A proxy on this thread in front of `upstream` that holds each server answer for `delayMs`. */
function slowProxy(upstream: number, delayMs: number): Promise<{ port: number; close: () => void }> {
    return proxyTo(upstream, (client, server) => {
        client.on('data', (d) => server.write(d));
        server.on('data', (d) => setTimeout(() => client.write(d), delayMs));
    });
}

describe('LlamaContext.create()', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
    });
    afterAll(() => model?.dispose());

    it('gives the context new LlamaContext gives: the same configuration, memory and greedy tokens', async () => {
        const options = { contextSize: 512, parallel: 2, cacheTypeK: 'q8_0', cacheTypeV: 'q4_0', flashAttention: 'on', threads: 1 } as const;
        const made = await LlamaContext.create({ model, ...options });
        const sugar = await model.createContextAsync(options);
        const sync = new LlamaContext({ model, ...options });
        try {
            expect(made.config).toEqual(sync.config);
            expect(sugar.config).toEqual(sync.config);
            expect(made.memoryReport()).toEqual(sync.memoryReport());
            const greedy = (c: LlamaContext) => c.complete(PROMPT, { maxTokens: 12, temperature: 0 }).then((r) => r.tokens);
            expect(await greedy(made)).toEqual(await greedy(sync));
        } finally {
            for (const c of [made, sugar, sync]) c.dispose();
        }
    });

    it('rejects with the errors of the constructor: bad options, a KV pair the rules refuse, a context llama.cpp cannot make, a disposed model', async () => {
        const bad = await failure(LlamaContext.create({ model, contextSize: -1 }));
        expect(bad.code).toBe('INVALID_CONFIG');
        const pair = await failure(LlamaContext.create({ model, cacheTypeV: 'q4_0', flashAttention: 'off' }));
        expect(pair.code).toBe('INVALID_CONFIG');
        expect(() => new LlamaContext({ model, cacheTypeV: 'q4_0', flashAttention: 'off' })).toThrow(pair.message);
        // Past the memory of this machine: llama.cpp's allocation fails on the worker (the guard is off).
        const huge = await failure(LlamaContext.create({ model, contextSize: 16_777_216, cacheTypeK: 'f32', cacheTypeV: 'f32', parallel: 256, batchSize: 256, checkMemory: false }).then((c) => c.dispose()));
        expect(['CONTEXT_CREATE_FAILED', 'INSUFFICIENT_MEMORY']).toContain(huge.code);
        const other = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        const pending = LlamaContext.create({ model: other, contextSize: 256 });
        other.dispose();
        const gone = await failure(pending);
        expect(gone.code).toBe('DISPOSED');
    });

    it('signal: an abort before the start or during the creation rejects with ABORTED, and the context made meanwhile is freed', async () => {
        const before = new AbortController();
        before.abort();
        expect((await failure(LlamaContext.create({ model, signal: before.signal }))).code).toBe('ABORTED');
        const during = new AbortController();
        const pending = LlamaContext.create({ model, contextSize: 256, signal: during.signal });
        during.abort();
        expect((await failure(pending)).code).toBe('ABORTED');
        // The model is still usable and nothing holds it: disposing it with a context never adopted is safe.
        const ctx = await LlamaContext.create({ model, contextSize: 256 });
        ctx.dispose();
    });

    it('NativeContext adopts only what prepareContext made, once, for its own model', async () => {
        const native = binding();
        // f16 K and V (ggml type 1), flash attention auto.
        const params: NativeContextParams = {
            contextSize: 256, batchSize: 256, ubatchSize: 256, sequences: 1, threads: 1, threadsBatch: 1,
            cacheTypeK: 1, cacheTypeV: 1, flashAttention: -1, kvUnified: false, offloadKqv: true, swaFull: false,
        };
        const m = nativeModel(model);
        const handle = await native.prepareContext(m, params);
        for (const fake of [{}, 42, 'x', null]) {
            expect(() => new native.NativeContext(m, params, fake)).toThrow(/prepared must come from prepareContext/);
        }
        const other = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        expect(() => new native.NativeContext(nativeModel(other), params, handle)).toThrow(/made for another model/);
        other.dispose();
        // The check above took it: a second adoption is refused too.
        expect(() => new native.NativeContext(m, params, handle)).toThrow(/already taken/);
        const again = await native.prepareContext(m, params);
        const ctx = new native.NativeContext(m, params, again);
        expect(ctx.config().contextSize).toBe(256);
        ctx.dispose();
        expect(() => native.prepareContext(m, { ...params, contextSize: 0 })).toThrow(/contextSize/);
    });
});

describe('model.createEmbeddingContextAsync() and model.createRankingContextAsync()', () => {
    it('give the contexts of their synchronous forms, with the same errors; signal aborts the wait', async () => {
        const bert = await LlamaModel.load({ path: fixtures.embed.bert, gpu: false });
        const reranker = await LlamaModel.load({ path: fixtures.embed.rerank, gpu: false });
        try {
            const made = await bert.createEmbeddingContextAsync({ contextSize: 512, threads: 1 });
            const sync = bert.createEmbeddingContext({ contextSize: 512, threads: 1 });
            expect(made.config).toEqual(sync.config);
            expect(await made.embed('The llama said hello')).toEqual(await sync.embed('The llama said hello'));
            made.dispose();
            sync.dispose();

            const ranker = await reranker.createRankingContextAsync({ threads: 1 });
            const rankerSync = reranker.createRankingContext({ threads: 1 });
            const docs = ['a llama', 'the weather'];
            expect(await ranker.rank('llamas', docs)).toEqual(await rankerSync.rank('llamas', docs));
            ranker.dispose();
            rankerSync.dispose();

            const notReranker = await failure(bert.createRankingContextAsync());
            expect(notReranker.code).toBe('INVALID_CONFIG');
            expect(() => bert.createRankingContext()).toThrow(notReranker.message);
            const bad = await failure(bert.createEmbeddingContextAsync({ contextSize: 0 }));
            expect(bad.code).toBe('INVALID_CONFIG');
            const controller = new AbortController();
            const pending = bert.createEmbeddingContextAsync({ signal: controller.signal });
            controller.abort();
            expect((await failure(pending)).code).toBe('ABORTED');
        } finally {
            bert.dispose();
            reranker.dispose();
        }
    });
});

describe('LlamaContext.create() over RPC', () => {
    const servers: ChildProcess[] = [];
    let upstream = 0;
    beforeAll(async () => {
        const s = await startRpcServer();
        servers.push(s.child);
        upstream = s.port;
    });
    afterAll(() => {
        for (const s of servers) s.kill('SIGKILL');
    });

    it("keeps the event loop running through the creation's round trips: a proxy on the JS thread that holds each answer 20 ms serves them", async () => {
        const proxy = await slowProxy(upstream, 20);
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: false, rpcServers: [`127.0.0.1:${proxy.port}`], rpcTimeoutMs: 10_000 });
        try {
            let last = performance.now();
            let longest = 0;
            const timer = setInterval(() => {
                const now = performance.now();
                longest = Math.max(longest, now - last);
                last = now;
            }, 5);
            const started = performance.now();
            const ctx = await model.createContextAsync({ contextSize: 256, threads: 1 });
            const took = performance.now() - started;
            clearInterval(timer);
            console.log(`LlamaContext.create() over RPC, each answer held 20 ms: ${took.toFixed(0)} ms, longest event-loop gap ${longest.toFixed(1)} ms`);
            try {
                // Each of the creation's round trips waits 20 ms here, and the timer kept firing meanwhile.
                expect(took).toBeGreaterThan(100);
                expect(longest).toBeLessThan(took / 2);
                // (Not memoryReport(): it asks the servers for their free memory on this thread.)
                expect(ctx.config.contextSize).toBe(256);
                expect((await ctx.complete(PROMPT, { maxTokens: 4, temperature: 0 })).tokens).toHaveLength(4);
            } finally {
                ctx.dispose();
            }
        } finally {
            model.dispose();
            proxy.close();
        }
    });
});
