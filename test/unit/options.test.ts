import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LlamaConfigError } from '../../lib/errors.js';
import { contextOptionsSchema } from '../../lib/context/options.js';
import { generateOptionsSchema } from '../../lib/options/generate-options.js';
import { modelLoadOptionsSchema } from '../../lib/options/model-options.js';
import { parseOptions, suggest } from '../../lib/options/validate.js';

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
