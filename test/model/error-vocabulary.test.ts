// One error vocabulary (issue 16, finding 7): every value checked once, in TypeScript, with
// the same rules and words for LlamaContext, estimateMemory and planFit; the native checks
// are a second line the public API does not reach.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, LlamaConfigError, LlamaContext, LlamaError, LlamaModel, LlamaModelLoadError, planFit, quantizeModel, readGgufMetadata } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

/** The error of a call that must fail (sync or async). */
async function failure(call: () => unknown): Promise<Error & { code?: string; path?: readonly string[] }> {
    try {
        await call();
    } catch (error) {
        return error as Error;
    }
    throw new Error('did not fail');
}

describe('range checks in TypeScript, the same for LlamaContext, estimateMemory and planFit', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
    });
    afterAll(() => model.dispose());

    it('refuses what llama.cpp cannot take as INVALID_CONFIG naming the option, never a native INVALID_ARGUMENT', async () => {
        // threads: 1000 was "context parameter threads must be an integer in [1, 512], received 1000.000000";
        // parallel: 300 (within batchSize and the trained 2048) "context parameter sequences must be ...".
        const cases: [object, string][] = [
            [{ threads: 1000 }, 'Expected a positive integer up to 512 for threads but received 1000 (number)'],
            [{ threadsBatch: 1000 }, 'Expected a positive integer up to 512 for threadsBatch but received 1000 (number)'],
            [{ parallel: 300 }, 'Expected a positive integer up to 256 for parallel but received 300 (number)'],
            [{ contextSize: 1e12, checkMemory: false }, 'Expected a positive integer up to 16777216 for contextSize but received 1000000000000 (number)'],
            [{ batchSize: 2 ** 21, checkMemory: false }, 'Expected a positive integer up to 1048576 for batchSize but received 2097152 (number)'],
        ];
        for (const [options, message] of cases) {
            const error = await failure(() => new LlamaContext({ model, ...options }));
            expect(error, JSON.stringify(options)).toBeInstanceOf(LlamaConfigError);
            expect([error.code, error.message]).toEqual(['INVALID_CONFIG', message]);
            if ('threads' in options || 'threadsBatch' in options) continue; // not options of an estimate
            const { checkMemory: _, ...estimateOptions } = options as { checkMemory?: boolean };
            const estimate = await failure(() => estimateMemory({ model: fixtures.f16, ...estimateOptions }));
            expect([estimate.code, estimate.message], `estimateMemory ${JSON.stringify(options)}`).toEqual(['INVALID_CONFIG', message]);
        }
        const ctx = new LlamaContext({ model, contextSize: 256, threads: 1 });
        // maxTokens: 2**32 passed the TypeScript check and failed in native code.
        const tooMany = await failure(() => ctx.complete('Hi', { maxTokens: 2 ** 32 }));
        expect([tooMany.code, tooMany.message]).toEqual(['INVALID_CONFIG', 'Expected a non-negative integer up to 4294967295 for maxTokens but received 4294967296 (number)']);
        const hot = await failure(() => ctx.complete('Hi', { maxTokens: 1, temperature: 1e300 }));
        expect([hot.code, hot.message]).toEqual(['INVALID_CONFIG', 'Expected a number in [0, 3.4e38] for temperature but received 1e+300 (number)']);
        ctx.dispose();
    });

    it('estimateMemory refuses the contexts LlamaContext refuses, with the same message', async () => {
        // Both were accepted by estimateMemory.
        for (const options of [{ parallel: 300 }, { contextSize: 1e12 }, { parallel: 16, batchSize: 8 }, { ubatchSize: 1024, batchSize: 512 }]) {
            const context = await failure(() => new LlamaContext({ model, checkMemory: false, ...options }));
            const estimate = await failure(() => estimateMemory({ model: fixtures.f16, ...options }));
            expect([estimate.code, estimate.message], JSON.stringify(options)).toEqual([context.code, context.message]);
            const simulated = await failure(() => estimateMemory({ model: fixtures.f16, simulate: true, ...options }));
            expect([simulated.code, simulated.message]).toEqual([context.code, context.message]);
        }
    });

    it("planFit names its own options and never hands llama.cpp a context it refuses", async () => {
        // minContextSize: 1e9 was "context parameter contextSize must be an integer in [1, 16777216], received 500000000.000000".
        const huge = await failure(() => planFit({ model: fixtures.f16, budgetBytes: 2 ** 50, minContextSize: 1e9 }));
        expect([huge.code, huge.message]).toEqual(['INVALID_CONFIG', 'Expected a positive integer up to 16777216 for minContextSize but received 1000000000 (number)']);
        const product = await failure(() => planFit({ model: fixtures.f16, budgetBytes: 2 ** 50, minContextSize: 2 ** 23, parallel: 4 }));
        expect([product.code, product.path]).toEqual(['INVALID_CONFIG', ['minContextSize', 'parallel']]);
        expect(product.message).toBe(
            'Expected minContextSize x parallel <= 16777216 (the largest contextSize) but received minContextSize 8388608 and parallel 4; lower minContextSize or parallel',
        );
        const batch = await failure(() => planFit({ model: fixtures.f16, budgetBytes: 2 ** 40, parallel: 16, batchSize: 8 }));
        expect([batch.code, batch.message]).toEqual(['INVALID_CONFIG', 'Expected parallel <= batchSize but received parallel 16 and batchSize 8; raise batchSize or lower parallel']);
        const ubatch = await failure(() => planFit({ model: fixtures.f16, budgetBytes: 2 ** 40, batchSize: 8, ubatchSize: 16 }));
        const contextUbatch = await failure(() => new LlamaContext({ model, batchSize: 8, ubatchSize: 16 }));
        expect([ubatch.code, ubatch.message]).toEqual([contextUbatch.code, contextUbatch.message]);
        // prefer 'parallel' with a small batch: at most batchSize sequences (it searched up to 256, and
        // refused its own candidate with LlamaContext's "parallel <= batchSize" error).
        const plan = await planFit({ model: fixtures.f16, budgetBytes: 2 ** 40, prefer: 'parallel', batchSize: 8, minContextSize: 256 });
        expect(plan.settings.parallel).toBe(8);
        // A trained context x parallel above the largest contextSize is planned at the largest one (it planned 2^25).
        const gguf = await readGgufMetadata(fixtures.f16);
        const longTrained = { ...gguf, kv: { ...gguf.kv, 'llama.context_length': 2 ** 17 } };
        const capped = await planFit({ model: longTrained, budgetBytes: 2 ** 50, prefer: 'context', parallel: 256 });
        expect(capped.settings.contextSize).toBe(2 ** 24);
    }, 120_000);
});

describe('every error is a LlamaError with a documented code', () => {
    it('estimateMemory and planFit: the codes of load() and loadLora() for the same files', async () => {
        // loras: ['/missing.gguf'] threw a plain ENOENT Error.
        const lora = await failure(() => estimateMemory({ model: fixtures.f16, loras: ['/missing.gguf'] }));
        expect(lora).toBeInstanceOf(LlamaError);
        expect([lora.code, lora.message]).toEqual(['LORA_LOAD_FAILED', 'LoRA adapter file not found: /missing.gguf']);
        const notGguf = await failure(() => estimateMemory({ model: fixtures.f16, loras: [import.meta.filename] }));
        expect(notGguf.code).toBe('LORA_LOAD_FAILED');
        expect(notGguf.message).toMatch(/is not a valid GGUF LoRA adapter: not a GGUF file/);
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        try {
            const loaded = await failure(() => model.loadLora('/missing.gguf'));
            expect([loaded.code, loaded.message]).toEqual([lora.code, lora.message]);
        } finally {
            model.dispose();
        }
        for (const call of [() => estimateMemory({ model: '/missing.gguf' }), () => planFit({ model: '/missing.gguf', budgetBytes: 2 ** 30 }), () => readGgufMetadata('/missing.gguf')]) {
            const missing = await failure(call);
            expect(missing).toBeInstanceOf(LlamaModelLoadError);
            expect(missing.code).toBe('MODEL_NOT_FOUND');
        }
        const truncated = join(tmpdir(), `llama-kv-truncated-${process.pid}.gguf`);
        await writeFile(truncated, (await readFile(fixtures.f16)).subarray(0, 100_000));
        try {
            const codes = await Promise.all([LlamaModel.load({ path: truncated }), readGgufMetadata(truncated), estimateMemory({ model: truncated })].map((p) => p.then(() => 'resolved', (e: LlamaError) => e.code)));
            expect(codes).toEqual(['INVALID_MODEL_FILE', 'INVALID_MODEL_FILE', 'INVALID_MODEL_FILE']);
        } finally {
            await rm(truncated, { force: true });
        }
    });

    it('new LlamaModel() points to LlamaModel.load() (it threw "native.metadata is not a function")', async () => {
        const Model = LlamaModel as unknown as new (options: object) => LlamaModel;
        const error = await failure(() => new Model({ path: fixtures.f16 }));
        expect(error).toBeInstanceOf(LlamaConfigError);
        expect([error.code, error.message]).toEqual(['INVALID_ARGUMENT', 'LlamaModel cannot be constructed with new: use `await LlamaModel.load({ path })`']);
    });

    it('quantizeModel to a directory fails before the quantization, not with INTERNAL EISDIR after it', async () => {
        const started = performance.now();
        const error = await failure(() => quantizeModel({ input: fixtures.f16, output: tmpdir(), type: 'Q8_0' }));
        expect([error.code, (error as LlamaConfigError).path]).toEqual(['INVALID_CONFIG', ['output']]);
        expect(performance.now() - started).toBeLessThan(1000);
    });
});

describe('type names in any case', () => {
    it("a context takes cacheTypeK 'Q8_0' and quantizeModel type 'q8_0'", async () => {
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        try {
            const ctx = new LlamaContext({ model, contextSize: 256, threads: 1, cacheTypeK: 'Q8_0', cacheTypeV: 'Q8_0', flashAttention: 'on' });
            expect([ctx.config.cacheTypeK, ctx.config.cacheTypeV]).toEqual(['q8_0', 'q8_0']);
            ctx.dispose();
            const e = await estimateMemory({ model: fixtures.f16, contextSize: 256, cacheTypeK: 'Q4_0', flashAttention: 'on' });
            expect(e.config.cacheTypeK).toBe('q4_0');
        } finally {
            model.dispose();
        }
        const output = join(tmpdir(), `llama-kv-case-${process.pid}.gguf`);
        try {
            const r = await quantizeModel({ input: fixtures.f16, output, type: 'q8_0', threads: 1 });
            expect(r.type).toBe('Q8_0');
            expect((await readGgufMetadata(output)).kv['general.file_type']).toBe(7);
        } finally {
            await rm(output, { force: true });
        }
    });
});
