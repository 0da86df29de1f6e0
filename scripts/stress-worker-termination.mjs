#!/usr/bin/env node
// Terminates worker threads at random moments while they load models, evaluate,
// generate (with a debug-level logger), tokenize or create contexts on a worker
// (LlamaContext.create): the process must survive every one.
// Environment teardown while native code calls into JS is where addons crash.
//
//   node scripts/stress-worker-termination.mjs MODEL.gguf [ROUNDS=40] [OPS=evaluate,generate,load,tokenize,create] [MAX_WAIT_MS=400]
import { Worker } from 'node:worker_threads';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const entry = pathToFileURL(join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'dist', 'index.js')).href;
const [path, rounds = '40', opList = 'evaluate,generate,load,tokenize,create', maxWait = '400'] = process.argv.slice(2);
if (!path) {
    process.stderr.write('usage: stress-worker-termination.mjs MODEL.gguf [ROUNDS] [OPS] [MAX_WAIT_MS]\n');
    process.exit(2);
}
const ops = opList.split(',');
const body = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.entry).then(async ({ LlamaContext, LlamaModel, setLogger }) => {
    if (workerData.round % 2) setLogger(() => {}, { level: 'debug' });
    parentPort.postMessage('up');
    const model = await LlamaModel.load({ path: workerData.path, useMmap: workerData.op !== 'load' });
    const ctx = model.createContext({ contextSize: 2048, batchSize: 64, ubatchSize: 64, threads: 1 });
    const prompt = Array.from({ length: 1900 }, (_, i) => 100 + (i % 1000));
    for (;;) {
        if (workerData.op === 'evaluate') await ctx.evaluate(prompt);
        else if (workerData.op === 'generate') await ctx.complete('Once upon a time', { maxTokens: 1500, temperature: 0 });
        else if (workerData.op === 'tokenize') await model.tokenizeAsync('hello world '.repeat(200000));
        else if (workerData.op === 'create') (await LlamaContext.create({ model, contextSize: 65536, threads: 1 })).dispose();
        else (await LlamaModel.load({ path: workerData.path, useMmap: false })).dispose();
    }
});`;
for (let round = 0; round < Number(rounds); round++) {
    const op = ops[round % ops.length];
    const worker = new Worker(body, { eval: true, workerData: { entry, path, op, round } });
    await new Promise((r) => worker.once('message', r));
    await new Promise((r) => setTimeout(r, Math.random() * Number(maxWait)));
    await worker.terminate();
}
console.log(`terminated ${rounds} workers (${ops.join(', ')}) without a crash`);
