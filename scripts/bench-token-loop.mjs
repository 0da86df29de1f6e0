#!/usr/bin/env node
// Measures llama-kv's token loop against the same loop written straight against
// libllama (build/Release/llama-kv-reference: same libraries, same threads, one persistent
// threadpool like llama-bench). Interleaved A B A B; medians; ratio ours/reference.
//
//   node scripts/bench-token-loop.mjs [--tokens 256] [--reps 5] [--threads 1,2]
//
// Needs `npm run build:ts` and `cmake --build build --target llama-kv-reference`.
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { LlamaModel, ensureFixtureModel } = await import(join(root, 'dist', 'index.js'));

const arg = (name, fallback) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const tokens = Number(arg('--tokens', '256'));
const reps = Number(arg('--reps', '5'));
const threadList = arg('--threads', '1,2').split(',').map(Number);
const reference = join(root, 'build', 'Release', 'llama-kv-reference');
const prompt = 'Once upon a time';
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** ms per generated token in the reference loop (timed inside the program, load and prompt excluded). */
function referenceMsPerToken(path, threads) {
    const r = spawnSync(reference, [path, prompt, String(tokens), String(threads)], { encoding: 'utf8' });
    const m = /generation: (\d+) tokens in ([\d.]+) ms/.exec(r.stderr);
    if (r.status !== 0 || !m) throw new Error(`reference failed: ${r.stderr}`);
    return Number(m[2]) / Number(m[1]);
}

const rows = [];
for (const name of ['tiny-f16', 'tiny-q8_0']) {
    const path = await ensureFixtureModel(name);
    for (const threads of threadList) {
        const model = await LlamaModel.load({ path });
        const ctx = model.createContext({ contextSize: Number(arg("--ctx", "1024")), threads });
        const ref = [];
        const native = [];
        const seen = [];
        for (let i = 0; i < reps; i++) {
            ref.push(referenceMsPerToken(path, threads));
            await ctx.evaluate([1, 2]); // replace the cached prompt so each run decodes it again
            const t0 = performance.now();
            const res = await ctx.complete(prompt, { maxTokens: tokens, temperature: 0 });
            const n = res.timings.generatedTokens - 1;
            native.push(res.timings.generationMs / n);
            seen.push((performance.now() - t0 - res.timings.promptMs) / n);
        }
        model.dispose();
        rows.push({
            model: name,
            threads,
            'reference ms/tok': median(ref).toFixed(3),
            'llama-kv native ms/tok': median(native).toFixed(3),
            'llama-kv JS-seen ms/tok': median(seen).toFixed(3),
            'speed ratio ours/ref': (median(ref) / median(seen)).toFixed(3),
        });
    }
}
console.table(rows);
