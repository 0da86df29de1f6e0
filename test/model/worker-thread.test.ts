import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures } from '../support/fixtures.js';

const entry = join(import.meta.dirname, '..', '..', 'dist', 'index.js');

function runWorker(code: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
        const worker = new Worker(code, { eval: true, workerData: { entry, model: fixtures.f16 } });
        worker.once('message', resolve);
        worker.once('error', reject);
    });
}

describe('worker_threads (context-aware addon)', () => {
    it('loads and generates in two workers at once, and survives a worker terminated mid-generation', async () => {
        const code = `
            const { parentPort, workerData } = require('node:worker_threads');
            import(workerData.entry).then(async ({ LlamaModel }) => {
                const model = await LlamaModel.load({ path: workerData.model });
                const ctx = model.createContext({ contextSize: 256, threads: 1 });
                const r = await ctx.complete('Once upon a time', { maxTokens: 8, temperature: 0 });
                model.dispose();
                parentPort.postMessage(r.tokens);
            });`;
        const [a, b] = await Promise.all([runWorker(code), runWorker(code)]);
        expect(a).toHaveLength(8);
        expect(b).toEqual(a);

        // The worker logs at debug level while the main thread decodes with its own logger:
        // terminating the worker must release its logger cleanly.
        const { LlamaModel, setLogger } = await import(entry);
        const mainLines: string[] = [];
        setLogger((_level: string, message: string) => mainLines.push(message), { level: 'debug' });
        const mainModel = await LlamaModel.load({ path: fixtures.f16 });
        const mainCtx = mainModel.createContext({ contextSize: 2048, threads: 1 });
        const mainRun = mainCtx.complete('Once upon a time', { maxTokens: 300, temperature: 0 });
        const endless = new Worker(
            `const { parentPort, workerData } = require('node:worker_threads');
             import(workerData.entry).then(async ({ LlamaModel, setLogger }) => {
                setLogger(() => {}, { level: 'debug' });
                const model = await LlamaModel.load({ path: workerData.model });
                const ctx = model.createContext({ contextSize: 2048, threads: 1 });
                parentPort.postMessage('started');
                await ctx.complete('Once upon a time', { maxTokens: 2000, temperature: 0 });
             });`,
            { eval: true, workerData: { entry, model: fixtures.f16 } },
        );
        await new Promise((resolve) => endless.once('message', resolve));
        await new Promise((r) => setTimeout(r, 20));
        expect(await endless.terminate()).toBe(1);
        expect((await mainRun).tokens).toHaveLength(300);
        mainModel.dispose();
        setLogger(null);
        expect(mainLines.length).toBeGreaterThan(0);
    });
});

describe('terminating a worker thread in the middle of native work', () => {
    it('does not wait for a long prompt decode to finish (evaluate and generate)', async () => {
        const { LlamaModel } = await import(entry);
        const prompt = Array.from({ length: 1900 }, (_, i) => 100 + (i % 1000));
        const model = await LlamaModel.load({ path: fixtures.f16 });
        const ctx = model.createContext({ contextSize: 2048, batchSize: 64, ubatchSize: 64, threads: 1 });
        const t0 = performance.now();
        await ctx.evaluate(prompt);
        const decodeMs = performance.now() - t0;
        model.dispose();
        for (const op of ['evaluate', 'generate']) {
            const worker = new Worker(
                `const { parentPort, workerData } = require('node:worker_threads');
                 import(workerData.entry).then(async ({ LlamaModel }) => {
                    const model = await LlamaModel.load({ path: workerData.model });
                    const ctx = model.createContext({ contextSize: 2048, batchSize: 64, ubatchSize: 64, threads: 1 });
                    const prompt = Array.from({ length: 1900 }, (_, i) => 100 + (i % 1000));
                    parentPort.postMessage('decoding');
                    if (workerData.op === 'evaluate') await ctx.evaluate(prompt);
                    else await ctx.complete(prompt, { maxTokens: 4 });
                 });`,
                { eval: true, workerData: { entry, model: fixtures.f16, op } },
            );
            await new Promise((resolve) => worker.once('message', resolve));
            await new Promise((resolve) => setTimeout(resolve, 20));
            const t1 = performance.now();
            await worker.terminate();
            const terminateMs = performance.now() - t1;
            console.log(`${op}: the prompt decode takes ${decodeMs.toFixed(0)} ms; terminate() took ${terminateMs.toFixed(0)} ms`);
            // Without the heartbeat, terminate() waited for the whole decode.
            expect(terminateMs).toBeLessThan(decodeMs / 2);
        }
    });
});

describe('worker termination stress', () => {
    it('survives workers terminated at random moments of native work', () => {
        // Before NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS this aborted the process about once in
        // 180 terminations during generation ("FATAL ERROR: Error::Error napi_define_properties").
        const script = join(import.meta.dirname, '..', '..', 'scripts', 'stress-worker-termination.mjs');
        const r = spawnSync(process.execPath, [script, fixtures.f16, '25', 'generate,evaluate,generate,load,create', '250'], { encoding: 'utf8', timeout: 120_000 });
        expect(r.stderr).not.toContain('FATAL');
        expect(r.status).toBe(0);
        expect(r.stdout).toContain('terminated 25 workers');
    });
});
