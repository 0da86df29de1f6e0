// The native layer is the second line behind TypeScript's validation: called directly
// with bad values it must return errors, never abort, allocate absurd amounts or hit UB.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binding, type NativeContext, type NativeGenerateRequest, type NativeModel } from '../../lib/binding.js';
import { fixtures } from '../helpers/fixtures.js';

describe('native argument checks', () => {
    let model: NativeModel;
    let ctx: NativeContext;
    const request: NativeGenerateRequest = {
        prompt: 'Once upon a time', addSpecial: true, parseSpecial: false, maxTokens: 2, temperature: 0,
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
        expect(() => ctx.generate({ ...request, [field]: value }, () => {})).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
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
        await expect(ctx.generate({ ...request, repeatLastN: 2_000_000_000 }, () => {})).rejects.toMatchObject({
            code: 'INVALID_ARGUMENT',
            message: expect.stringContaining('repeatLastN'),
        });
        // The context is free again afterwards.
        const r = await ctx.generate(request, () => {});
        expect(r.generatedTokens).toBe(2);
    });

    it('rejects token ids that are not 32-bit integers', async () => {
        expect(() => ctx.evaluate([1, 2 ** 40] as unknown as Int32Array)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
        expect(() => model.tokenToPiece(NaN, false)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
        expect(() => model.tokenToPiece(40000, false)).toThrow(/outside the vocabulary/);
        expect(model.tokenToPiece(1, true).toString()).toBe('<s>');
    });
});
