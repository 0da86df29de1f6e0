// inspectModel / isolation: 'process': a model file is vetted in a child process, so a
// file that crashes llama.cpp is an error here instead of the end of this process.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureFixtureModel } from '../../lib/demo/models.js';
import { inspectModel, LlamaError, LlamaModel } from '../../lib/index.js';
import { corpusCases } from '../support/corpus/corpus.js';
import { root } from '../support/global-setup.js';
import { fixtures } from '../support/fixtures.js';

describe('isolation', () => {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-isolation-'));
    let micro = '';
    let duplicateVocab = '';
    beforeAll(async () => {
        micro = await ensureFixtureModel('micro-f16', { dir: fixtures.cacheDir });
        const dupe = corpusCases(readFileSync(micro)).find((c) => c.name.startsWith('duplicate vocabulary string'))!;
        duplicateVocab = join(work, 'duplicate-vocab.gguf');
        await dupe.write(duplicateVocab);
    });
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    it('inspectModel loads and decodes in a child, and reports the metadata', async () => {
        const r = await inspectModel(micro);
        expect(r.metadata.architecture).toBe('llama');
        expect(r.metadata.layerCount).toBe(1);
        expect(r.ms).toBeGreaterThan(0);
    });

    it("a file llama.cpp refuses gives the child's LlamaError (duplicate vocabulary: an abort without vendor/patches/0001)", async () => {
        const error = await inspectModel(duplicateVocab).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LlamaError);
        expect((error as LlamaError).code).toBe('MODEL_LOAD_FAILED');
        expect((error as Error).message).toMatch(/duplicate token strings/);
        await expect(LlamaModel.load({ path: duplicateVocab, isolation: 'process' })).rejects.toThrow(/duplicate token strings/);
    });

    it('a crash in the child is MODEL_CRASHED here, with the signal, and this process goes on', async () => {
        process.env.LLAMA_KV_TEST_ABORT_IN_CHILD = '1';
        try {
            const error = await inspectModel(micro).catch((e: unknown) => e);
            expect((error as LlamaError).code).toBe('MODEL_CRASHED');
            expect((error as Error).message).toMatch(/crashed a child process \(SIGABRT\)/);
            await expect(LlamaModel.load({ path: micro, isolation: 'process' })).rejects.toMatchObject({ code: 'MODEL_CRASHED' });
        } finally {
            delete process.env.LLAMA_KV_TEST_ABORT_IN_CHILD;
        }
        const timeout = await inspectModel(micro, { timeoutMs: 1 }).catch((e: unknown) => e);
        expect((timeout as Error).message).toMatch(/did not finish within 1 ms/);
        const model = await LlamaModel.load({ path: micro, isolation: 'process', gpu: false });
        expect(model.metadata.layerCount).toBe(1);
        model.dispose();
    });

    it('process.exit() with live models and contexts, during a generation, exits 0 at once', () => {
        const script = `
            import { LlamaModel } from ${JSON.stringify(pathToFileURL(join(root, 'dist', 'index.js')).href)};
            const model = await LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)}, gpu: false });
            const ctxs = [model.createContext({ contextSize: 8192 }), model.createContext({ contextSize: 8192 })];
            const lora = await model.loadLora(${JSON.stringify(fixtures.loraAttn)});
            await ctxs[1].setLoras([{ lora, scale: 1 }]);
            for (const ctx of ctxs) ctx.complete('Once upon a time', { maxTokens: 8000 }).catch(() => {});
            setTimeout(() => process.exit(0), 50);
        `;
        const started = performance.now();
        const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
        expect(r.signal).toBeNull();
        expect(r.status).toBe(0);
        // Measured: 0.6 s; 17-36 s before the exit handler aborted the decodes in flight.
        expect(performance.now() - started).toBeLessThan(10_000);
    });
});
