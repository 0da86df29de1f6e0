import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LlamaModel, setLogger, type LogLevel } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

/** A copy of the f16 fixture whose general.architecture says `arch` (same length as "llama"). */
function withArchitecture(arch: string): string {
    const bytes = Buffer.from(readFileSync(fixtures.f16));
    const key = bytes.indexOf('general.architecture');
    // key, then value type (u32 = 8, string), u64 length (5), then the bytes "llama"
    const value = key + 'general.architecture'.length + 4 + 8;
    expect(bytes.subarray(value, value + 5).toString()).toBe('llama');
    bytes.write(arch, value, 'latin1');
    const file = join(mkdtempSync(join(tmpdir(), 'llama-kv-arch-')), 'arch.gguf');
    writeFileSync(file, bytes);
    return file;
}

async function tick(): Promise<void> {
    // Log lines arrive through a thread-safe function: let the event loop deliver them.
    await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('logging', () => {
    afterEach(() => setLogger(null));

    it("routes llama.cpp's log to the logger at the chosen level, and nowhere without one", async () => {
        const lines: [LogLevel, string][] = [];
        setLogger((level, message) => lines.push([level, message]), { level: 'info' });
        (await LlamaModel.load({ path: fixtures.f16 })).dispose();
        await tick();
        expect(lines.some(([level, m]) => level === 'info' && m.includes('llama_model_loader'))).toBe(true);
        expect(lines.every(([, m]) => !m.endsWith('\n'))).toBe(true);

        lines.length = 0;
        setLogger((level, message) => lines.push([level, message])); // default level: warn
        (await LlamaModel.load({ path: fixtures.f16 })).dispose();
        await tick();
        expect(lines.filter(([level]) => level === 'info' || level === 'debug')).toEqual([]);

        setLogger(null);
        lines.length = 0;
        (await LlamaModel.load({ path: fixtures.f16 })).dispose();
        await tick();
        expect(lines).toEqual([]);
    });

    it('a throwing logger does not break loading', async () => {
        setLogger(() => {
            throw new Error('logger failure');
        }, { level: 'debug' });
        const model = await LlamaModel.load({ path: fixtures.f16 });
        await tick();
        expect(model.metadata.layerCount).toBe(2);
        model.dispose();
    });

    it("puts llama.cpp's reason into the error when it refuses a model", async () => {
        await expect(LlamaModel.load({ path: withArchitecture('llamb') })).rejects.toMatchObject({
            code: 'MODEL_LOAD_FAILED',
            message: expect.stringMatching(/could not load the model.*unknown model architecture: 'llamb'/),
        });
    });
});
