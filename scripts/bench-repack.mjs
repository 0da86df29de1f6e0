#!/usr/bin/env node
// What `repack: false` costs: prompt processing (pp) and generation (tg) with the CPU
// backend's extra buffer types (AMX, CPU_REPACK: llama.cpp's default) and without them
// (llama.cpp's --no-repack), through the public API, with the benchmark's own timing
// functions (lib/cli/bench/ours.ts). Both models stay loaded; the runs alternate on / off;
// medians and the ratio off / on. Also prints where the weights went.
//
//   node scripts/bench-repack.mjs [--model PATH|fixture-name ...] [-p 512] [-n 128] [-r 5] [-t 2]
//
// npm run bench:repack [-- flags]. Default models: the two bench fixtures (F16 and Q8_0 weights).
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { LlamaModel, ensureFixtureModel, getBackends } = await import(join(root, 'dist', 'index.js'));
const ours = await import(join(root, 'dist', 'cli', 'bench', 'ours.js'));
const { median } = await import(join(root, 'dist', 'cli', 'bench', 'stats.js'));

const argv = process.argv.slice(2);
const values = (flag) => argv.flatMap((a, i) => (a === flag && i + 1 < argv.length ? [argv[i + 1]] : []));
const value = (flag, fallback) => Number(values(flag).at(-1) ?? fallback);
const P = value('-p', 512);
const N = value('-n', 128);
const reps = value('-r', 5);
const threads = value('-t', 2);
const models = values('--model');
const paths = await Promise.all((models.length > 0 ? models : ['bench-f16', 'bench-small-q8_0']).map((m) => (m.endsWith('.gguf') ? m : ensureFixtureModel(m))));

const cpu = getBackends().find((b) => b.kind === 'cpu' && b.available);
process.stdout.write(
    `CPU: ${cpus()[0]?.model?.trim()}, ${cpus().length} CPUs; extra buffer types: ${cpu?.devices[0]?.extraBufferTypes.join(', ') || 'none'}; ` +
        `features: ${Object.keys(cpu?.features ?? {}).join(' ')}\npp${P} / tg${N}, ${threads} threads, f16 K/V cache, ${reps} alternating repetitions, medians\n\n`,
);
const settings = { threads, cacheTypeK: 'f16', cacheTypeV: 'f16', flashAttention: 'auto', batchSize: 2048, ubatchSize: 512 };
const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;

for (const path of paths) {
    const sides = [];
    for (const repack of [true, false]) {
        const model = await LlamaModel.load({ path, repack });
        const pp = ours.benchContext(model, settings, P);
        const tg = ours.benchContext(model, settings, N + 1);
        const weights = pp.memoryReport().weights.byBufferType.map((b) => `${b.bufferType} ${mib(b.bytes)}`).join(' + ');
        const { prompt } = await ours.findGenerationPrompt(tg, N);
        sides.push({ repack, model, pp, tg, prompt, weights, next: ours.promptSource(7, model.metadata.vocabSize, P), ppTps: [], tgTps: [] });
    }
    for (const s of sides) await ours.timePrompt(s.pp, s.next()); // warm-up
    for (let r = 0; r < reps; r++) {
        for (const s of sides) {
            s.ppTps.push((P * 1000) / (await ours.timePrompt(s.pp, s.next())));
            const g = await ours.timeGeneration(s.tg, s.prompt, N);
            s.tgTps.push((g.tokens * 1000) / g.ms);
        }
    }
    const [on, off] = sides;
    process.stdout.write(`${path.split('/').pop()}\n`);
    for (const s of sides) {
        process.stdout.write(`  repack ${String(s.repack).padEnd(5)}  pp ${median(s.ppTps).toFixed(1).padStart(8)} t/s  tg ${median(s.tgTps).toFixed(1).padStart(7)} t/s  weights: ${s.weights}\n`);
    }
    process.stdout.write(`  off / on   pp ${(median(off.ppTps) / median(on.ppTps)).toFixed(3)}  tg ${(median(off.tgTps) / median(on.tgTps)).toFixed(3)}\n\n`);
    for (const s of sides) {
        s.pp.dispose();
        s.tg.dispose();
        s.model.dispose();
    }
}
