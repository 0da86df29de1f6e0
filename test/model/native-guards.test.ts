// The native layer is the second line behind TypeScript's validation: called directly
// with bad values it must return errors, never abort, allocate absurd amounts or hit UB.
import { linkSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binding, type NativeContext, type NativeContextParams, type NativeModel, type NativeRequest } from '../../lib/native/binding.js';
import { ensureFixtureModel } from '../../lib/demo/models.js';
import { corpusCases } from '../support/corpus/corpus.js';
import { fixtures } from '../support/fixtures.js';

/** The engine's request calls, as the old one-call-per-kind surface. */
const gen = (c: NativeContext, r: NativeRequest, onTokens: (t: Int32Array, p: Buffer[]) => void) => c.submit(r, onTokens).promise;
const evaluate = (c: NativeContext, tokens: Int32Array) => c.submit({ kind: 'evaluate', sequence: 0, prompt: tokens }, () => {}).promise.then((r) => r.logits!);

describe('native argument checks', () => {
    let model: NativeModel;
    let ctx: NativeContext;
    const request: NativeRequest = {
        kind: 'generate', sequence: 0, prompt: 'Once upon a time', addSpecial: true, parseSpecial: false, maxTokens: 2, temperature: 0,
        topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1.1, repeatLastN: 64, seed: 1, stop: [],
    };
    beforeAll(async () => {
        const native = binding();
        model = await native.loadModel(fixtures.f16, { gpuLayers: 0, useMmap: true, useMlock: false, vocabOnly: false, checkTensors: false }).promise;
        ctx = new native.NativeContext(model, {
            contextSize: 256, batchSize: 64, ubatchSize: 64, sequences: 1, threads: 1, threadsBatch: 1,
            cacheTypeK: 1, cacheTypeV: 1, flashAttention: -1, kvUnified: false, offloadKqv: true, swaFull: true,
        });
    });
    afterAll(() => {
        ctx.dispose();
        model.dispose();
    });

    it.each([
        ['topK', NaN], ['topK', 1e20], ['topK', -1], ['topK', 2.5],
        ['repeatLastN', NaN], ['repeatLastN', 1e12], ['seed', -5], ['seed', 2 ** 33], ['maxTokens', Infinity], ['maxTokens', -1],
        ['temperature', NaN],
    ] as const)('generate rejects %s = %s', (field, value) => {
        expect(() => gen(ctx, { ...request, [field]: value }, () => {})).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    });

    it('refuses more sequences than batch rows (llama.cpp asserts in output_reserve); found by the property tests', async () => {
        const native = binding();
        const params = {
            contextSize: 256, batchSize: 4, ubatchSize: 4, sequences: 8, threads: 1, threadsBatch: 1,
            cacheTypeK: 1, cacheTypeV: 1, flashAttention: -1, kvUnified: false, offloadKqv: true, swaFull: true,
        };
        expect(() => new native.NativeContext(model, params)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('parallel (8) must not exceed batchSize (4)') }));
        expect(() => new native.NativeContext(model, { ...params, contextSize: 4, batchSize: 64 })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
        const { LlamaModel } = await import('../../lib/index.js');
        const m = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        expect(() => m.createContext({ parallel: 8, batchSize: 4, ubatchSize: 4 })).toThrow(/Expected parallel <= batchSize and <= contextSize but received parallel 8, batchSize 4/);
        m.dispose();
    });

    it('refuses a repetition window larger than the context instead of allocating it', async () => {
        await expect(gen(ctx, { ...request, repeatLastN: 2_000_000_000 }, () => {})).rejects.toMatchObject({
            code: 'INVALID_ARGUMENT',
            message: expect.stringContaining('repeatLastN'),
        });
        // The context is free again afterwards.
        const r = await gen(ctx, request, () => {});
        expect(r.generatedTokens).toBe(2);
    });

    it('the engine takes one request per sequence, in range, and sequence copies only between idle ones', async () => {
        const native = binding();
        const two = new native.NativeContext(model, { ...contextParams, contextSize: 512, sequences: 2 });
        const ids = Int32Array.of(1, 2, 3);
        for (const sequence of [2, -1, 1.5, NaN, 2 ** 40]) {
            expect(() => two.submit({ kind: 'evaluate', sequence, prompt: ids }, () => {}), String(sequence)).toThrow(code('INVALID_ARGUMENT'));
        }
        expect(() => two.submit({ kind: 'other' as never, sequence: 0, prompt: ids }, () => {})).toThrow(code('INVALID_ARGUMENT'));
        expect(() => two.submit({ ...request, onContextFull: 'wrap' as never }, () => {})).toThrow(code('INVALID_ARGUMENT'));
        const running = two.submit({ ...request, maxTokens: 64 }, () => {});
        expect(() => two.submit({ kind: 'evaluate', sequence: 0, prompt: ids }, () => {})).toThrow(code('BUSY'));
        expect(() => two.copySequence(0, 1)).toThrow(code('BUSY'));
        expect(() => two.copySequence(1, 0)).toThrow(code('BUSY'));
        expect(() => two.clearSequence(0)).toThrow(code('BUSY'));
        expect(() => two.copySequence(1, 1)).toThrow(code('INVALID_ARGUMENT'));
        expect(() => two.copySequence(1, 5)).toThrow(code('INVALID_ARGUMENT'));
        const other = await two.submit({ kind: 'evaluate', sequence: 1, prompt: ids }, () => {}).promise; // the other sequence runs meanwhile
        expect(other.cached).toEqual(ids);
        const done = await running.promise;
        expect(done.cached.length).toBe(done.promptTokens + done.generatedTokens - 1);
        two.copySequence(0, 1);
        expect(two.sequenceCells()).toEqual(Uint32Array.of(done.cached.length, done.cached.length));
        running.tokensRead(Number.NaN); // ignored, as is a call after the end
        running.abort();
        two.dispose();
        expect(() => two.submit(request, () => {})).toThrow(code('DISPOSED'));
        expect(() => two.sequenceCells()).toThrow(code('DISPOSED'));
    });

    it('rejects token ids that are not 32-bit integers', async () => {
        expect(() => ctx.submit({ kind: 'evaluate', sequence: 0, prompt: [1, 2 ** 40] as unknown as Int32Array }, () => {})).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
        expect(() => model.tokenToPiece(NaN, false)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
        expect(() => model.tokenToPiece(40000, false)).toThrow(/outside the vocabulary/);
        expect(model.tokenToPiece(1, true).toString()).toBe('<s>');
    });

    const loadParams = { gpuLayers: 0, useMmap: true, useMlock: false, vocabOnly: false, checkTensors: false };
    const contextParams: NativeContextParams = {
        contextSize: 256, batchSize: 64, ubatchSize: 64, sequences: 1, threads: 1, threadsBatch: 1,
        cacheTypeK: 1, cacheTypeV: 1, flashAttention: -1, kvUnified: false, offloadKqv: true, swaFull: true,
    };
    const code = (c: string) => expect.objectContaining({ code: c });

    it('unwraps only objects its own constructor made, whatever their prototype (found in review: type confusion)', () => {
        const native = binding();
        const impostor = Object.setPrototypeOf(new native.NativeContext(model, contextParams), native.NativeModel.prototype) as NativeModel;
        expect(() => new native.NativeContext(impostor, contextParams)).toThrow(code('INVALID_ARGUMENT'));
        expect(() => new native.NativeContext(Object.create(native.NativeModel.prototype) as NativeModel, contextParams)).toThrow(/expected a native model/);
        expect(() => ctx.setLoras([{ lora: Object.setPrototypeOf({}, Object.getPrototypeOf(model)) as never, scale: 1 }])).toThrow(/expected a LoRA adapter/);
        native.NativeContext.prototype.dispose.call(impostor);
    });

    it('score takes only a context of its own as the reference, and two tokens at least', async () => {
        const native = binding();
        const ids = Int32Array.from([1, 2, 3]);
        expect(() => ctx.score(ids, 0, model as unknown as NativeContext, 0)).toThrow(/expected a native context/);
        expect(() => ctx.score(ids, 0, Object.create(native.NativeContext.prototype) as NativeContext, 0)).toThrow(/expected a native context/);
        expect(() => ctx.score(ids, 0, ctx, 0)).toThrow(/another context/);
        expect(() => ctx.score(Int32Array.from([1]), 0)).toThrow(code('INVALID_ARGUMENT'));
        expect(() => ctx.score([1.5, 2] as unknown as Int32Array, 0)).toThrow(code('INVALID_ARGUMENT'));
        expect(() => ctx.score(ids, 1)).toThrow(code('INVALID_ARGUMENT')); // the context has one sequence
        expect(() => ctx.score(ids, -1)).toThrow(code('INVALID_ARGUMENT'));
        const other = new native.NativeContext(model, contextParams);
        expect(() => ctx.score(ids, 0, other, 3)).toThrow(code('INVALID_ARGUMENT'));
        const pending = ctx.score(ids, 0, other, 0).promise;
        // Both sequences are held while the score runs.
        expect(() => other.submit({ kind: 'evaluate', sequence: 0, prompt: ids }, () => {})).toThrow(code('BUSY'));
        expect(() => ctx.submit({ kind: 'evaluate', sequence: 0, prompt: ids }, () => {})).toThrow(code('BUSY'));
        expect(() => ctx.clearSequence(0)).toThrow(code('BUSY'));
        expect((await pending).reference!.kl).toEqual(new Float64Array([0, 0]));
        other.dispose();
        expect(() => ctx.score(ids, 0, other, 0)).toThrow(code('DISPOSED'));
    });

    it('setLoras survives getters that dispose the context while the list is read (found in review: a null dereference)', async () => {
        const native = binding();
        const lora = await native.loadLora(model, fixtures.loraAttn);
        for (const key of ['scale', 'lora'] as const) {
            const victim = new native.NativeContext(model, contextParams);
            const entry = { lora, scale: 1 };
            Object.defineProperty(entry, key, { get: () => (victim.dispose(), key === 'scale' ? 1 : lora) });
            expect(() => victim.setLoras([entry])).toThrow(code('DISPOSED'));
        }
        expect(() => ctx.setLoras([{ lora, scale: 1e300 }])).toThrow(code('INVALID_ARGUMENT')); // not a float: UB to convert
        lora.dispose();
    });

    it('reads numbers exactly: no wrapped, truncated or defaulted values (found in review)', async () => {
        const native = binding();
        for (const flashAttention of [1.5, 2 ** 32 + 1, NaN]) {
            expect(() => new native.NativeContext(model, { ...contextParams, flashAttention })).toThrow(code('INVALID_ARGUMENT'));
        }
        for (const bad of [{ gpuLayers: 1e12 }, { gpuLayers: 2.7 }, { gpuLayers: NaN }, { useMmap: 'no' }]) {
            expect(() => native.loadModel(fixtures.f16, { ...loadParams, ...bad } as never)).toThrow(code('INVALID_ARGUMENT'));
        }
        for (const field of ['temperature', 'topP', 'minP', 'repeatPenalty'] as const) {
            expect(() => gen(ctx, { ...request, [field]: 1e300 }, () => {})).toThrow(code('INVALID_ARGUMENT'));
        }
    });

    it('refuses tensorOverrides patterns that std::regex could match for ever (found in review: a load that never ends)', async () => {
        const native = binding();
        for (const pattern of ['(?:.*)*(?:.*)*Z$', '(a+)+b', '(a|aa)*c', '.*.*.*.*Z', 'a?a?a?a?a?a?a?a?a?aaaaaaaaa', 'ffn\0exps']) {
            expect(() => native.loadModel(fixtures.f16, { ...loadParams, tensorOverrides: [{ pattern, bufferType: 'CPU' }] }), pattern).toThrow(code('INVALID_CONFIG'));
        }
        // What people write still loads: cpuMoeLayers' own pattern, classes, one or two wildcards.
        for (const pattern of ['^blk\\.(0|1|2)\\.ffn_(up|down|gate|gate_up)_(ch|)exps', 'blk\\.[0-9]+\\.ffn_.*_exps', '(?:attn_q|attn_k)\\.weight$', 'blk\\.\\d{1,2}\\.']) {
            const m = await native.loadModel(fixtures.f16, { ...loadParams, tensorOverrides: [{ pattern, bufferType: 'CPU' }] }).promise;
            m.dispose();
        }
    });

    it("refuses a tensor override into one of the CPU's extra buffer types for a weight it has no kernel for (found in review: a GGML_ASSERT in the scheduler at context creation, vendor/patches/0003)", async () => {
        const extra = binding().backendInfo(false).registries.flatMap((r) => r.devices).flatMap((d) => d.extraBufferTypes);
        for (const bufferType of extra) {
            // A norm (used by MUL) or the token embedding (GET_ROWS): no extra buffer type has a kernel for those.
            for (const pattern of ['attn_norm', 'token_embd']) {
                const error = await binding().loadModel(fixtures.f16, { ...loadParams, tensorOverrides: [{ pattern, bufferType }] }).promise.catch((e: unknown) => e);
                expect(error, `${pattern} -> ${bufferType}`).toMatchObject({ code: 'MODEL_LOAD_FAILED', message: expect.stringContaining(`cannot be placed in buffer type ${bufferType}`) });
            }
        }
        // What the CPU backend takes still loads and runs (AMX or CPU_REPACK for the Q4_0 fixture's matrices).
        const native = binding();
        for (const bufferType of extra) {
            const m = await native.loadModel(fixtures.q4_0, { ...loadParams, tensorOverrides: [{ pattern: 'ffn_(up|down|gate)', bufferType }] }).promise;
            const c = new native.NativeContext(m, contextParams);
            expect((await evaluate(c, new Int32Array([1, 2, 3]))).length).toBeGreaterThan(0);
            c.dispose();
            m.dispose();
        }
    });

    it('rejects with the error a JS callback threw instead of losing it (found in review)', async () => {
        const native = binding();
        const thrown = new Error('from onTokens');
        await expect(gen(ctx, { ...request, maxTokens: 8 }, () => { throw thrown; })).rejects.toBe(thrown);
        const fromProgress = new Error('from onProgress');
        await expect(native.loadModel(fixtures.f16, loadParams, () => { throw fromProgress; }).promise).rejects.toBe(fromProgress);
        expect((await gen(ctx, request, () => {})).generatedTokens).toBe(2); // the context is free again
    });

    it('detokenize sizes its text from the pieces (llama.cpp sums the length in an int32)', () => {
        const tokens = Int32Array.from({ length: 20_000 }, (_, i) => 3 + (i % 5000));
        const pieces = [...tokens].reduce((n, t) => n + model.tokenToPiece(t, false).length, 0);
        const text = model.detokenize(tokens, false, false);
        expect(text.length).toBeGreaterThan(20_000);
        expect(text.length).toBeLessThanOrEqual(pieces);
    });

    it('refuses to quantize a file onto itself under another name (a hard link: SIGBUS while it is read)', () => {
        const dir = mkdtempSync(join(tmpdir(), 'llama-kv-guard-'));
        try {
            const input = join(dir, 'in.gguf');
            linkSync(fixtures.f16, input);
            const link = join(dir, 'out.gguf');
            linkSync(fixtures.f16, link);
            expect(() => binding().quantize(input, link, { ftype: 7, threads: 1, allowRequantize: true })).toThrow(code('INVALID_ARGUMENT'));
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it('a model without a tokenizer evaluates token ids, and refuses text instead of asserting (found in review: SIGABRT)', async () => {
        const native = binding();
        const dir = mkdtempSync(join(tmpdir(), 'llama-kv-guard-'));
        try {
            const original = readFileSync(await ensureFixtureModel('micro-f16', { dir: fixtures.cacheDir }));
            const path = join(dir, 'none.gguf');
            await corpusCases(original).find((c) => c.name === 'tokenizer.ggml.model=none, vocabulary kept')!.write(path);
            const m = await native.loadModel(path, loadParams).promise;
            const c = new native.NativeContext(m, contextParams);
            expect((await evaluate(c, Int32Array.of(5, 6))).length).toBe(32000);
            expect(() => m.tokenize('hi', true, false)).toThrow(code('TOKENIZE_FAILED'));
            await expect(m.tokenizeAsync('hi', true, false)).rejects.toMatchObject({ code: 'TOKENIZE_FAILED', message: expect.stringContaining("tokenizer.ggml.model is 'none'") });
            expect(() => m.detokenize(Int32Array.of(5), false, false)).toThrow(code('TOKENIZE_FAILED'));
            expect(() => m.tokenToPiece(5, false)).toThrow(code('TOKENIZE_FAILED'));
            expect(() => gen(c, { ...request, prompt: Int32Array.of(5, 6) }, () => {})).toThrow(code('TOKENIZE_FAILED'));
            expect(() => gen(c, request, () => {})).toThrow(code('TOKENIZE_FAILED'));
            c.dispose();
            m.dispose();
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
