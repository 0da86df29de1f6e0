import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaError, LlamaModel } from '../../lib/index.js';
import { fixtures, ticksDuring } from '../support/fixtures.js';

describe('LlamaModel', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16 });
    });
    afterAll(() => model.dispose());

    it('reads the metadata of the generated model', () => {
        const m = model.metadata;
        expect(m.architecture).toBe('llama');
        expect(m.layerCount).toBe(2);
        expect(m.embeddingSize).toBe(256);
        expect(m.headCount).toBe(4);
        expect(m.headCountKv).toBe(2);
        expect(m.headDimK).toBe(64);
        expect(m.headDimV).toBe(64);
        expect(m.vocabSize).toBe(32000);
        expect(m.trainedContextSize).toBe(2048);
        expect(m.bosToken).toBe(1);
        expect(m.eosToken).toBe(2);
        expect(m.parameterCount).toBeGreaterThan(16_000_000);
        expect(m.sizeBytes).toBeGreaterThan(2 * 16_000_000 - 1);
        expect(m.gguf['general.architecture']).toBe('llama');
        expect(m.gguf['llama.attention.head_count_kv']).toBe(2);
    });

    it('tokenizes with the real SPM vocabulary and round-trips', () => {
        const tokens = model.tokenize('Once upon a time');
        expect([...tokens]).toEqual([1, 9038, 2501, 263, 931]);
        expect([...model.tokenize('Once upon a time', { addSpecial: false })]).toEqual([9038, 2501, 263, 931]);
        // As llama_detokenize: without BOS the SPM space prefix is stripped, after BOS it is kept.
        expect(model.detokenize(tokens.subarray(1))).toBe('Once upon a time');
        expect(model.detokenize(tokens)).toBe(' Once upon a time');
        expect(model.detokenize(tokens, { renderSpecial: true })).toBe('<s> Once upon a time');
        const text = 'Grüße, 世界! Emoji 🦙 and tabs\tend.';
        expect(model.detokenize(model.tokenize(text, { addSpecial: false }))).toBe(text);
    });

    it('tokenizes large text off the JS thread with the same result', async () => {
        const text = 'The quick brown fox jumps over the lazy dog. '.repeat(20_000);
        const { ticks, result } = await ticksDuring(() => model.tokenizeAsync(text), 1);
        const t0 = performance.now();
        const sync = model.tokenize(text);
        const syncMs = performance.now() - t0;
        expect([...result]).toEqual([...sync]);
        expect(result.length).toBeGreaterThan(200_000);
        // When the work takes visible time, timers must have fired while it ran elsewhere.
        if (syncMs > 20) expect(ticks).toBeGreaterThan(0);
    });

    it('rejects token ids outside the vocabulary without crashing', () => {
        expect(() => model.detokenize([5, 32000])).toThrow(/outside the vocabulary/);
        expect(() => model.detokenize([-1])).toThrow(LlamaError);
        expect(() => model.detokenize([1.5])).toThrow(/integer token id/);
    });

    it('rejects misspelled options by name', async () => {
        await expect(LlamaModel.load({ path: fixtures.f16, useMap: true } as never)).rejects.toThrow(
            'Unknown option "useMap" for LlamaModel.load(); did you mean "useMmap"?',
        );
        expect(() => model.tokenize('x', { addspecial: true } as never)).toThrow(/did you mean "addSpecial"/);
    });

    it('keeps the event loop ticking while a model loads', async () => {
        // Without mmap llama.cpp reads every byte of the file on the worker thread.
        const { ticks, ms, result } = await ticksDuring(() => LlamaModel.load({ path: fixtures.f16, useMmap: false }), 2);
        result.dispose();
        // setInterval(2 ms) keeps firing (allowing for timer coarseness on a noisy machine).
        expect(ticks).toBeGreaterThanOrEqual(Math.floor(ms / 2 / 4));
        if (ms > 20) expect(ticks).toBeGreaterThan(0);
    });

    it('reports load progress and can be aborted', async () => {
        const seen: number[] = [];
        const m = await LlamaModel.load({ path: fixtures.f16, onProgress: (p) => seen.push(p) });
        m.dispose();
        expect(seen.length).toBeGreaterThan(0);
        expect(seen.at(-1)).toBe(1);

        const controller = new AbortController();
        controller.abort();
        await expect(LlamaModel.load({ path: fixtures.f16, signal: controller.signal })).rejects.toMatchObject({ code: 'ABORTED' });

        const c2 = new AbortController();
        const loading = LlamaModel.load({ path: fixtures.f16, useMmap: false, signal: c2.signal, onProgress: () => c2.abort() });
        await expect(loading).rejects.toMatchObject({ code: 'ABORTED' });
    });
});

describe('vocabOnly', () => {
    it('tokenizes, reports no weights, and refuses a context with a clear error', async () => {
        const model = await LlamaModel.load({ path: fixtures.f16, vocabOnly: true });
        expect(model.metadata.hasWeights).toBe(false);
        expect(model.metadata.layerCount).toBe(0);
        expect(model.metadata.vocabSize).toBe(32000);
        expect([...model.tokenize('Once upon a time')]).toEqual([1, 9038, 2501, 263, 931]);
        expect(() => model.createContext()).toThrow(
            expect.objectContaining({ code: 'CONTEXT_CREATE_FAILED', message: expect.stringContaining('vocabOnly') }),
        );
        model.dispose();
    });
});

describe('model file errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llama-kv-bad-'));

    it('missing file', async () => {
        await expect(LlamaModel.load({ path: join(dir, 'nope.gguf') })).rejects.toMatchObject({
            code: 'MODEL_NOT_FOUND',
            message: expect.stringContaining('not found'),
        });
    });

    it('a directory', async () => {
        await expect(LlamaModel.load({ path: dir })).rejects.toMatchObject({
            code: 'INVALID_MODEL_FILE',
            message: expect.stringContaining('is a directory'),
        });
    });

    it('a file that is not GGUF', async () => {
        const file = join(dir, 'text.gguf');
        writeFileSync(file, 'this is not a model\n'.repeat(100));
        await expect(LlamaModel.load({ path: file })).rejects.toMatchObject({
            code: 'INVALID_MODEL_FILE',
            message: expect.stringMatching(/not a valid GGUF model.*magic/i),
        });
    });

    it('a truncated GGUF (header cut, and data cut)', async () => {
        const bytes = readFileSync(fixtures.f16);
        const headerCut = join(dir, 'header-cut.gguf');
        writeFileSync(headerCut, bytes.subarray(0, 2000));
        await expect(LlamaModel.load({ path: headerCut })).rejects.toMatchObject({ code: 'INVALID_MODEL_FILE' });
        const dataCut = join(dir, 'data-cut.gguf');
        writeFileSync(dataCut, bytes.subarray(0, bytes.length - 4096));
        await expect(LlamaModel.load({ path: dataCut })).rejects.toMatchObject({
            code: 'INVALID_MODEL_FILE',
            message: expect.stringContaining('truncated'),
        });
    });
});

describe('disposal', () => {
    it('is idempotent, and a disposed model or context says so', async () => {
        const model = await LlamaModel.load({ path: fixtures.f16 });
        const ctx = model.createContext({ contextSize: 256 });
        ctx.dispose();
        ctx.dispose();
        await expect(ctx.complete('hi', { maxTokens: 1 })).rejects.toMatchObject({ code: 'DISPOSED' });
        model.dispose();
        model.dispose();
        expect(model.disposed).toBe(true);
        expect(() => model.tokenize('x')).toThrow(expect.objectContaining({ code: 'DISPOSED' }));
        expect(() => new LlamaContext({ model })).toThrow(expect.objectContaining({ code: 'DISPOSED' }));
    });

    it('disposing the model disposes its contexts first, even mid-generation', async () => {
        const model = await LlamaModel.load({ path: fixtures.f16 });
        const ctx = new LlamaContext({ model, contextSize: 512 });
        const running = ctx.complete('Once upon a time', { maxTokens: 400, temperature: 0 });
        await new Promise((r) => setTimeout(r, 5));
        model.dispose();
        expect(ctx.disposed).toBe(true);
        // Stopped in flight or not started: either way the pending call rejects with DISPOSED.
        await expect(running).rejects.toMatchObject({ code: 'DISPOSED' });
    });

    it('implements Symbol.dispose and Symbol.asyncDispose (for `using`)', async () => {
        const model = await LlamaModel.load({ path: fixtures.f16 });
        const ctx = model.createContext({ contextSize: 128 });
        expect(ctx.config.contextSize).toBeGreaterThanOrEqual(128);
        ctx[Symbol.dispose]();
        expect(ctx.disposed).toBe(true);
        await model[Symbol.asyncDispose]();
        expect(model.disposed).toBe(true);
    });
});
