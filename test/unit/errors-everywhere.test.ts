// Every error the package throws is a LlamaError with a documented code (issue 16): these
// were plain Errors and TypeErrors.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaConfigError, LlamaError, LlamaModelLoadError } from '../../lib/errors.js';
import { ensureFixtureLora, ensureFixtureModel, quantizeModel, readPromptFile, setLogger, setLogLevel, type FixtureModelName } from '../../lib/index.js';

async function failure(call: () => unknown): Promise<LlamaError> {
    try {
        await call();
    } catch (error) {
        expect(error).toBeInstanceOf(LlamaError);
        return error as LlamaError;
    }
    throw new Error('did not fail');
}

describe('errors of the small entry points', () => {
    let tmp = '';
    beforeAll(async () => {
        tmp = await mkdtemp(join(tmpdir(), 'llama-kv-errors-'));
    });
    afterAll(() => rm(tmp, { recursive: true, force: true }));

    it('setLogger and setLogLevel: LlamaConfigError in the options wording (was a TypeError)', async () => {
        const notFn = await failure(() => setLogger('x' as never));
        expect(notFn).toBeInstanceOf(LlamaConfigError);
        expect([notFn.code, notFn.message]).toEqual(['INVALID_ARGUMENT', 'Expected a function or null for logger but received "x" (string)']);
        const level = await failure(() => setLogger(() => {}, { level: 'verbose' as never }));
        expect([level.code, level.message]).toEqual([
            'INVALID_CONFIG',
            `Expected one of 'debug', 'info', 'warn', 'error', 'none' for level but received "verbose" (string)`,
        ]);
        const options = await failure(() => setLogger(() => {}, null as never));
        expect([options.code, options.message]).toEqual(['INVALID_CONFIG', 'Expected an options object for setLogger() but received null']);
        const misspelt = await failure(() => setLogger(() => {}, { levle: 'info' } as never));
        expect(misspelt.message).toBe('Unknown option "levle" for setLogger(); did you mean "level"?');
        const setLevel = await failure(() => setLogLevel('loud' as never));
        expect([setLevel.code, setLevel.message]).toEqual([
            'INVALID_ARGUMENT',
            `Expected one of 'debug', 'info', 'warn', 'error', 'none' for level but received "loud" (string)`,
        ]);
    });

    it('ensureFixtureModel / ensureFixtureLora: INVALID_ARGUMENT for a name, MODEL_NOT_FOUND for a missing vocabulary', async () => {
        const name = await failure(() => ensureFixtureModel('tiny-f61' as FixtureModelName, { dir: tmp }));
        expect(name).toBeInstanceOf(LlamaConfigError);
        expect(name.code).toBe('INVALID_ARGUMENT');
        expect(name.message).toMatch(/^unknown fixture model 'tiny-f61' \(known: .*\); did you mean 'tiny-f16'\?$/);
        const lora = await failure(() => ensureFixtureLora('nope' as never, { dir: tmp }));
        expect([lora.code, lora.message]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/^unknown fixture adapter 'nope'/)]);
        const vocab = await failure(() => ensureFixtureModel('tiny-f16', { dir: tmp, vocabPath: join(tmp, 'missing-vocab.gguf') }));
        expect(vocab).toBeInstanceOf(LlamaModelLoadError);
        expect([vocab.code, vocab.message]).toEqual(['MODEL_NOT_FOUND', `vocab file not found: ${join(tmp, 'missing-vocab.gguf')}`]);
        const previous = process.env.LLAMA_KV_VOCAB;
        process.env.LLAMA_KV_VOCAB = join(tmp, 'nowhere.gguf');
        try {
            const env = await failure(() => ensureFixtureModel('tiny-f16', { dir: tmp }));
            expect([env.code, env.message]).toEqual(['MODEL_NOT_FOUND', `LLAMA_KV_VOCAB points to ${join(tmp, 'nowhere.gguf')}, which does not exist`]);
        } finally {
            if (previous === undefined) delete process.env.LLAMA_KV_VOCAB;
            else process.env.LLAMA_KV_VOCAB = previous;
        }
        const options = await failure(() => ensureFixtureModel('tiny-f16', { dri: tmp } as never));
        expect(options.message).toBe('Unknown option "dri" for ensureFixtureModel(); did you mean "dir"?');
    });

    it('readPromptFile: INVALID_ARGUMENT for a file it cannot read (was a plain ENOENT Error)', async () => {
        const error = await failure(() => readPromptFile(join(tmp, 'missing.jsonl')));
        expect(error).toBeInstanceOf(LlamaConfigError);
        expect([error.code, error.message]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/^Cannot read the prompt file .*missing\.jsonl: ENOENT/)]);
    });

    it('quantizeModel refuses an output that is a directory, or in none, before quantizing', async () => {
        // It failed with INTERNAL (EISDIR) when renaming the result, after the whole quantization.
        const dir = await failure(() => quantizeModel({ input: join(tmp, 'in.gguf'), output: tmp, type: 'Q8_0' }));
        expect(dir).toBeInstanceOf(LlamaConfigError);
        expect([dir.code, (dir as LlamaConfigError).path, dir.message]).toEqual([
            'INVALID_CONFIG', ['output'], `Expected a file path for output but received ${JSON.stringify(tmp)}, which is a directory`,
        ]);
        const parent = await failure(() => quantizeModel({ input: join(tmp, 'in.gguf'), output: join(tmp, 'no', 'out.gguf'), type: 'Q8_0' }));
        expect([parent.code, parent.message]).toEqual([
            'INVALID_CONFIG', `Expected a file path in an existing directory for output but received ${JSON.stringify(join(tmp, 'no', 'out.gguf'))}: ${join(tmp, 'no')} does not exist`,
        ]);
    });
});
