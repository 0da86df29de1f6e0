import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LlamaConfigError } from '../../lib/errors.js';
import { calibrate, estimateMemory, LlamaModel, planFit, quantizeModel } from '../../lib/index.js';
import { contextOptionsSchema, loraListSchema } from '../../lib/context/options.js';
import { generateOptionsSchema } from '../../lib/options/generate-options.js';
import { estimateOptionsSchema } from '../../lib/options/estimate-options.js';
import { modelLoadOptionsSchema } from '../../lib/options/model-options.js';
import { quantizeSchema } from '../../lib/options/quantize-options.js';
import { parseArgument, parseOptions, suggest } from '../../lib/options/validate.js';

function message(fn: () => unknown): string {
    try {
        fn();
    } catch (error) {
        expect(error).toBeInstanceOf(LlamaConfigError);
        expect((error as LlamaConfigError).code).toBe('INVALID_CONFIG');
        return (error as Error).message;
    }
    throw new Error('did not throw');
}

describe('option validation', () => {
    it('names the option, the expected value and what was received', () => {
        expect(message(() => parseOptions(contextOptionsSchema, { model: {}, contextSize: -1 }, 'LlamaContext'))).toBe(
            'Expected a positive integer for contextSize but received -1 (number)',
        );
        expect(message(() => parseOptions(contextOptionsSchema, { model: {}, threads: '2' }, 'LlamaContext'))).toBe(
            'Expected a positive integer for threads but received "2" (string)',
        );
        expect(message(() => parseOptions(generateOptionsSchema, { topP: 2 }, 'generate()'))).toBe(
            'Expected a number in [0, 1] for topP but received 2 (number)',
        );
        expect(message(() => parseOptions(generateOptionsSchema, { stop: 5 }, 'generate()'))).toBe(
            'Expected a string or an array of strings for stop but received 5 (number)',
        );
        expect(message(() => parseOptions(modelLoadOptionsSchema, { path: '' }, 'LlamaModel.load()'))).toBe(
            'Expected a non-empty file path for path but received "" (string)',
        );
    });

    it('rejects unknown options and suggests the right name', () => {
        expect(message(() => parseOptions(contextOptionsSchema, { model: {}, ctxSize: 5 }, 'LlamaContext'))).toBe(
            'Unknown option "ctxSize" for LlamaContext; did you mean "contextSize"?',
        );
        expect(message(() => parseOptions(contextOptionsSchema, { model: {}, contextsize: 5 }, 'LlamaContext'))).toBe(
            'Unknown option "contextsize" for LlamaContext; did you mean "contextSize"?',
        );
        expect(message(() => parseOptions(generateOptionsSchema, { temprature: 0 }, 'generate()'))).toContain('did you mean "temperature"?');
    });

    it('reports every problem at once', () => {
        const m = message(() => parseOptions(generateOptionsSchema, { maxTokens: -1, topK: 1.5 }, 'generate()'));
        expect(m).toContain('maxTokens');
        expect(m).toContain('topK');
    });

    it('rejects a non-object', () => {
        expect(message(() => parseOptions(z.strictObject({}), 5, 'thing'))).toBe('Expected an options object for thing but received 5 (number)');
    });

    it("maps llama.cpp's own names to ours, before the edit distance", () => {
        const known = Object.keys(contextOptionsSchema.shape);
        const gen = Object.keys(generateOptionsSchema.shape);
        const load = Object.keys(modelLoadOptionsSchema.shape);
        // temp was 2 edits from topP, which the edit distance suggested
        expect(suggest('temp', gen)).toBe('temperature');
        for (const name of ['n_ctx', 'ctx_size', 'ctx-size', 'ctxSize', 'nCtx', 'num_ctx', 'c']) expect(suggest(name, known)).toBe('contextSize');
        for (const [name, option] of [
            ['n_batch', 'batchSize'], ['batch_size', 'batchSize'], ['n_ubatch', 'ubatchSize'], ['n_parallel', 'parallel'], ['np', 'parallel'],
            ['n_threads', 'threads'], ['n_threads_batch', 'threadsBatch'], ['ctk', 'cacheTypeK'], ['cache_type_k', 'cacheTypeK'], ['ctv', 'cacheTypeV'],
            ['cache_type_v', 'cacheTypeV'], ['fa', 'flashAttention'], ['flash_attn', 'flashAttention'], ['kv_unified', 'kvUnified'], ['nkvo', 'offloadKqv'],
            ['swa_full', 'swaFull'],
        ] as const) expect(suggest(name, known), name).toBe(option);
        for (const [name, option] of [
            ['top_k', 'topK'], ['top_p', 'topP'], ['min_p', 'minP'], ['repeat_penalty', 'repeatPenalty'], ['repeat_last_n', 'repeatLastN'],
            ['n_predict', 'maxTokens'], ['max_tokens', 'maxTokens'], ['penalty_repeat', 'repeatPenalty'], ['penalty_last_n', 'repeatLastN'],
        ] as const) expect(suggest(name, gen), name).toBe(option);
        for (const [name, option] of [
            ['ngl', 'gpuLayers'], ['n_gpu_layers', 'gpuLayers'], ['use_mmap', 'useMmap'], ['no_mmap', 'useMmap'], ['mlock', 'useMlock'],
            ['n_cpu_moe', 'cpuMoeLayers'], ['tensor_split', 'tensorSplit'], ['model', 'path'], ['override_tensor', 'tensorOverrides'],
        ] as const) expect(suggest(name, load), name).toBe(option);
        // Only names that exist in the schema: planFit has minContextSize, not contextSize; estimateMemory no threads.
        expect(suggest('n_ctx', ['model', 'budgetBytes', 'minContextSize', 'parallel'])).toBe('minContextSize');
        expect(suggest('n_threads', ['model', 'contextSize', 'parallel'])).toBeUndefined();
    });

    it('suggests llama.cpp names through every entry point', async () => {
        expect(message(() => parseOptions(generateOptionsSchema, { temp: 0 }, 'generate()'))).toBe('Unknown option "temp" for generate(); did you mean "temperature"?');
        expect(message(() => parseOptions(contextOptionsSchema, { model: {}, n_ctx: 5 }, 'LlamaContext'))).toBe('Unknown option "n_ctx" for LlamaContext; did you mean "contextSize"?');
        const plan = await planFit({ model: 'm.gguf', budgetBytes: 1, n_ctx: 512 } as never).catch((e: Error) => e.message);
        expect(plan).toBe('Unknown option "n_ctx" for planFit(); did you mean "minContextSize"?');
        const load = await LlamaModel.load({ path: 'm.gguf', ngl: 99 } as never).catch((e: Error) => e.message);
        expect(load).toBe('Unknown option "ngl" for LlamaModel.load(); did you mean "gpuLayers"?');
    });

    it('suggests only close names', () => {
        expect(suggest('batchsize', ['batchSize', 'threads'])).toBe('batchSize');
        expect(suggest('zzzz', ['batchSize', 'threads'])).toBeUndefined();
    });
});

describe('one wording in every API', () => {
    // Each public entry point validates its options before any file or native call: the
    // same "Expected X for Y but received Z" and the same suggestion for a misspelling.
    const cases: [string, () => unknown, string][] = [
        ['LlamaModel.load()', () => LlamaModel.load({ path: 'm.gguf', cpuMoeLayers: '2' } as never), 'Expected a non-negative integer for cpuMoeLayers but received "2" (string)'],
        ['estimateMemory()', () => estimateMemory({ model: 'm.gguf', parallel: '2' } as never), 'Expected a positive integer for parallel but received "2" (string)'],
        ['planFit()', () => planFit({ model: 'm.gguf', budgetBytes: 1, minContextSize: '2' } as never), 'Expected a positive integer for minContextSize but received "2" (string)'],
        // The message says the rule that was broken: LlamaContext's parallel reads the same (it said "up to 256" for 1.5 too).
        ['planFit() parallel', () => planFit({ model: 'm.gguf', budgetBytes: 1, parallel: 1.5 }), 'Expected a positive integer for parallel but received 1.5 (number)'],
        ['planFit() parallel 300', () => planFit({ model: 'm.gguf', budgetBytes: 1, parallel: 300 }), 'Expected a positive integer up to 256 for parallel but received 300 (number)'],
        ['quantizeModel()', () => quantizeModel({ input: 'a.gguf', output: 'b.gguf', type: 'Q8_0', threads: '2' } as never), 'Expected a positive integer for threads but received "2" (string)'],
        ['calibrate()', () => calibrate({ model: {} as never, threads: '2' } as never), 'Expected a positive integer for threads but received "2" (string)'],
        ['planFit() misspelt', () => planFit({ model: 'm.gguf', budgetBytes: 1, minContextsize: 2 } as never), 'Unknown option "minContextsize" for planFit(); did you mean "minContextSize"?'],
        ['quantizeModel() misspelt', () => quantizeModel({ input: 'a.gguf', output: 'b.gguf', type: 'Q8_0', threds: 2 } as never), 'Unknown option "threds" for quantizeModel(); did you mean "threads"?'],
    ];

    it.each(cases)('%s', async (_name, call, expected) => {
        const error = await Promise.resolve().then(call).then(() => null, (e: unknown) => e);
        expect(error).toBeInstanceOf(LlamaConfigError);
        expect((error as LlamaConfigError).code).toBe('INVALID_CONFIG');
        expect((error as Error).message).toBe(expected);
    });
});

describe("llama.cpp's bounds, checked in TypeScript with one wording", () => {
    // Each was a native INVALID_ARGUMENT ("context parameter threads must be an integer in [1, 512], received 1000.000000")
    // or passed estimateMemory / planFit unchecked.
    const context = (o: object) => message(() => parseOptions(contextOptionsSchema, { model: {}, ...o }, 'LlamaContext'));
    const generate = (o: object) => message(() => parseOptions(generateOptionsSchema, o, 'generate()'));

    it('context options', () => {
        expect(context({ threads: 1000 })).toBe('Expected a positive integer up to 512 for threads but received 1000 (number)');
        expect(context({ threads: 0 })).toBe('Expected a positive integer for threads but received 0 (number)');
        expect(context({ threadsBatch: 513 })).toBe('Expected a positive integer up to 512 for threadsBatch but received 513 (number)');
        expect(context({ parallel: 300 })).toBe('Expected a positive integer up to 256 for parallel but received 300 (number)');
        expect(context({ contextSize: 1e12 })).toBe('Expected a positive integer up to 16777216 for contextSize but received 1000000000000 (number)');
        expect(context({ batchSize: 2 ** 21 })).toBe('Expected a positive integer up to 1048576 for batchSize but received 2097152 (number)');
        expect(context({ ubatchSize: 2 ** 21 })).toBe('Expected a positive integer up to 1048576 for ubatchSize but received 2097152 (number)');
        // One message per option, also for a value past 2^53 that breaks two rules.
        expect(context({ contextSize: 2 ** 53 })).toBe('Expected a positive integer up to 16777216 for contextSize but received 9007199254740992 (number)');
        expect(() => parseOptions(contextOptionsSchema, { model: {}, contextSize: 2 ** 24, batchSize: 2 ** 20, ubatchSize: 2 ** 20, parallel: 256, threads: 512, threadsBatch: 512 }, 'LlamaContext')).not.toThrow();
    });

    it('generation settings', () => {
        expect(generate({ maxTokens: 2 ** 32 })).toBe('Expected a non-negative integer up to 4294967295 for maxTokens but received 4294967296 (number)');
        expect(generate({ topK: 2 ** 31 })).toBe('Expected a non-negative integer up to 2147483647 for topK but received 2147483648 (number)');
        expect(generate({ repeatLastN: 2 ** 31 })).toBe('Expected a non-negative integer up to 2147483647 for repeatLastN but received 2147483648 (number)');
        expect(generate({ temperature: 1e300 })).toBe('Expected a number in [0, 3.4e38] for temperature but received 1e+300 (number)');
        expect(generate({ repeatPenalty: 1e300 })).toBe('Expected a number in (0, 3.4e38] for repeatPenalty but received 1e+300 (number)');
        expect(generate({ temperature: -1 })).toBe('Expected a number >= 0 for temperature but received -1 (number)');
        expect(() => parseOptions(generateOptionsSchema, { maxTokens: 2 ** 32 - 1, topK: 2 ** 31 - 1, temperature: 3.4e38 }, 'generate()')).not.toThrow();
    });

    it('load options and LoRA scales', () => {
        expect(message(() => parseOptions(modelLoadOptionsSchema, { path: 'm.gguf', gpuLayers: 2 ** 40 }, 'LlamaModel.load()'))).toBe(
            "Expected an integer in [-1, 2147483647], 'max' or 'auto' for gpuLayers but received 1099511627776 (number)",
        );
        expect(message(() => parseOptions(modelLoadOptionsSchema, { path: 'm.gguf', gpuLayers: -2 }, 'LlamaModel.load()'))).toBe(
            "Expected an integer in [-1, 2147483647], 'max' or 'auto' for gpuLayers but received -2 (number)",
        );
        expect(message(() => parseOptions(modelLoadOptionsSchema, { path: 'm.gguf', tensorSplit: [1, 1e10] }, 'LlamaModel.load()'))).toBe(
            'Expected a number in [0, 1e9] for tensorSplit.1 but received 10000000000 (number)',
        );
        expect(() => parseArgument(loraListSchema, [{ lora: {}, scale: 1e300 }], 'adapters')).toThrow(/Expected a number in \[-3\.4e38, 3\.4e38\] for adapters\.0\.scale but received 1e\+300/);
    });

    it('estimateMemory and planFit refuse what LlamaContext refuses, before reading the model', async () => {
        const refusal = async (call: () => Promise<unknown>) => {
            const error = await call().then(() => null, (e: unknown) => e);
            expect(error).toBeInstanceOf(LlamaConfigError);
            expect((error as LlamaConfigError).code).toBe('INVALID_CONFIG');
            return (error as Error).message;
        };
        for (const o of [{ parallel: 300 }, { contextSize: 1e12 }, { batchSize: 2 ** 21 }, { ubatchSize: 0.5 }]) {
            expect(await refusal(() => estimateMemory({ model: '/missing.gguf', ...o }))).toBe(context(o));
        }
        for (const o of [{ parallel: 300 }, { batchSize: 2 ** 21 }, { ubatchSize: -1 }]) {
            expect(await refusal(() => planFit({ model: '/missing.gguf', budgetBytes: 1e12, ...o }))).toBe(context(o));
        }
        // minContextSize has contextSize's bound, under its own name.
        expect(await refusal(() => planFit({ model: '/missing.gguf', budgetBytes: 1e12, minContextSize: 1e9 }))).toBe(
            'Expected a positive integer up to 16777216 for minContextSize but received 1000000000 (number)',
        );
        // calibrate() and quantizeModel() use the same bounds.
        expect(await refusal(() => calibrate({ model: {} as never, threads: 1000 }))).toBe(context({ threads: 1000 }));
        expect(await refusal(() => quantizeModel({ input: 'a.gguf', output: 'b.gguf', type: 'Q8_0', threads: 2000 }))).toBe(
            'Expected a positive integer up to 1024 for threads but received 2000 (number)',
        );
    });
});

describe('parseArgument', () => {
    it('words an argument error as parseOptions does, with INVALID_ARGUMENT and the path from the argument', () => {
        const schema = z.array(z.strictObject({ scale: z.number({ error: 'a finite number' }) }), { error: 'an array of { scale }' });
        let error: unknown;
        try {
            parseArgument(schema, [{ scale: 1 }, { scale: '2' }], 'adapters');
        } catch (e) {
            error = e;
        }
        expect(error).toBeInstanceOf(LlamaConfigError);
        expect((error as LlamaConfigError).code).toBe('INVALID_ARGUMENT');
        expect((error as Error).message).toBe('Expected a finite number for adapters.1.scale but received "2" (string)');
        expect(() => parseArgument(schema, 5, 'adapters')).toThrow('Expected an array of { scale } for adapters but received 5 (number)');
    });
});

describe("the CLI's flag names in the library's messages", () => {
    it('says -c for contextSize, -t 8 for threads 8 and --gpu none for gpu: false', async () => {
        const { inFlagNames } = await import('../../lib/cli/format/flag-names.js');
        const { runFlags } = await import('../../lib/cli/commands/run.js');
        expect(inFlagNames("contextSize 8192 is larger than the model's trained context (4096)", runFlags)).toBe("-c 8192 is larger than the model's trained context (4096)");
        expect(inFlagNames('threads 8 is more than the 2 CPUs available: the threads wait', runFlags)).toBe('-t 8 is more than the 2 CPUs available: the threads wait');
        expect(inFlagNames('no GPU backend is available, running on the CPU. Pass gpu: false to silence this.', runFlags)).toBe(
            'no GPU backend is available, running on the CPU. Pass --gpu none to silence this.',
        );
    });
});

describe('type names in any case', () => {
    it("cacheTypeK/cacheTypeV take 'Q8_0' as 'q8_0', and say so in the parsed options", () => {
        const parsed = parseOptions(contextOptionsSchema, { model: {}, cacheTypeK: 'Q8_0', cacheTypeV: 'Iq4_NL' }, 'LlamaContext');
        expect([parsed.cacheTypeK, parsed.cacheTypeV]).toEqual(['q8_0', 'iq4_nl']);
        const estimate = parseOptions(estimateOptionsSchema, { model: 'm.gguf', cacheTypeK: 'BF16' }, 'estimateMemory()');
        expect(estimate.cacheTypeK).toBe('bf16');
    });

    it("quantizeModel's type takes 'q4_k_m' as 'Q4_K_M'", () => {
        expect(parseOptions(quantizeSchema, { input: 'a.gguf', output: 'b.gguf', type: 'q4_k_m' }, 'quantizeModel()').type).toBe('Q4_K_M');
        expect(parseOptions(quantizeSchema, { input: 'a.gguf', output: 'b.gguf', type: 'iq4_xs' }, 'quantizeModel()').type).toBe('IQ4_XS');
    });

    it('a wrong case or a near-miss of a choice never fails without a suggestion', () => {
        expect(message(() => parseOptions(contextOptionsSchema, { model: {}, kvPreset: 'Balanced' }, 'LlamaContext'))).toBe(
            "Expected one of 'conservative', 'balanced', 'aggressive', 'extreme' for kvPreset but received \"Balanced\" (string); did you mean 'balanced'?",
        );
        expect(message(() => parseOptions(contextOptionsSchema, { model: {}, flashAttention: 'ON' }, 'LlamaContext'))).toBe(
            "Expected one of 'auto', 'on', 'off' (or true/false) for flashAttention but received \"ON\" (string); did you mean 'on'?",
        );
        expect(message(() => parseOptions(contextOptionsSchema, { model: {}, cacheTypeK: 'q8' }, 'LlamaContext'))).toBe(
            "Expected one of 'f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1' for cacheTypeK but received \"q8\" (string); did you mean 'q8_0'?",
        );
        expect(message(() => parseOptions(quantizeSchema, { input: 'a.gguf', output: 'b.gguf', type: 'Q4_KM' }, 'quantizeModel()'))).toMatch(
            /^Expected one of F32, .* for type but received "Q4_KM" \(string\); did you mean 'Q4_K_M'\?$/,
        );
        expect(message(() => parseOptions(modelLoadOptionsSchema, { path: 'm.gguf', gpu: 'CUDA' }, 'LlamaModel.load()'))).toMatch(/did you mean 'cuda'\?$/);
        // No suggestion for what is not close.
        expect(message(() => parseOptions(contextOptionsSchema, { model: {}, kvPreset: 'zzzzzzzz' }, 'LlamaContext'))).not.toMatch(/did you mean/);
    });
});
