import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LlamaConfigError } from '../../lib/errors.js';
import { calibrate, estimateMemory, LlamaModel, planFit, quantizeModel } from '../../lib/index.js';
import { contextOptionsSchema } from '../../lib/context/options.js';
import { generateOptionsSchema } from '../../lib/options/generate-options.js';
import { modelLoadOptionsSchema } from '../../lib/options/model-options.js';
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
            'Unknown option "ctxSize" for LlamaContext',
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
        ['planFit() parallel', () => planFit({ model: 'm.gguf', budgetBytes: 1, parallel: 1.5 }), 'Expected a positive integer up to 256 for parallel but received 1.5 (number)'],
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
