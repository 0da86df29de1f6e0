#!/usr/bin/env node
// How long readGgufMetadata takes on a GGUF of several hundred MB (the generated
// 'bench-f16' model, about 250 MB), and how many bytes it reads: it must read the
// header and tensor table only, never the weights. Medians of repeated runs.
//
//   node scripts/bench-gguf-reader.mjs [--runs 20]
import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { readGgufMetadata, ensureFixtureModel } = await import(join(root, 'dist', 'index.js'));
const runs = Number(process.argv.includes('--runs') ? process.argv[process.argv.indexOf('--runs') + 1] : 20);

const t0 = performance.now();
const path = await ensureFixtureModel('bench-f16');
process.stderr.write(`model ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${path}\n`);
const size = statSync(path).size;

const times = [];
let bytesRead = 0;
let tensors = 0;
for (let i = 0; i < runs; i++) {
    let read = 0;
    const start = performance.now();
    const meta = await readGgufMetadata(path, { onRead: (_position, length) => (read += length) });
    times.push(performance.now() - start);
    bytesRead = read;
    tensors = meta.tensors.length;
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(
    `readGgufMetadata: file ${(size / 1e6).toFixed(0)} MB, ${tensors} tensors, read ${(bytesRead / 1024).toFixed(0)} KiB ` +
        `(${((bytesRead / size) * 100).toFixed(2)}% of the file); median ${median.toFixed(2)} ms, max ${times.at(-1).toFixed(2)} ms over ${runs} runs`,
);
