#!/usr/bin/env node
// Saved state against decoding (issue: saved state): for a 4,096-token sequence on the bench
// model, the time to restore its state (seq.loadState from a Buffer, seq.loadStateFile from
// a file in the page cache) against the time to decode those tokens again (seq.evaluate on an
// empty sequence), medians and the ratio decode / restore; and the state's bytes per token
// against the KV cache's bytes per cell. f16/f16 and q8_0/q4_0 caches, flash attention on.
//
//   node scripts/bench-state.mjs [--model PATH|fixture-name] [-n 4096] [-r 5] [-t 2] [--json FILE]
//
// npm run bench:state [-- flags]. Default model: bench-f16 (generated on first use).
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { LlamaContext, LlamaModel, ensureFixtureModel } = await import(join(root, 'dist', 'index.js'));
const ours = await import(join(root, 'dist', 'cli', 'bench', 'ours.js'));
const { median } = await import(join(root, 'dist', 'cli', 'bench', 'stats.js'));

const argv = process.argv.slice(2);
const values = (flag) => argv.flatMap((a, i) => (a === flag && i + 1 < argv.length ? [argv[i + 1]] : []));
const value = (flag, fallback) => Number(values(flag).at(-1) ?? fallback);
const N = value('-n', 4096);
const reps = value('-r', 5);
const threads = value('-t', 2);
const modelArg = values('--model').at(-1) ?? 'bench-f16';
const jsonOut = values('--json').at(-1);
const path = modelArg.endsWith('.gguf') ? modelArg : await ensureFixtureModel(modelArg);

const work = mkdtempSync(join(tmpdir(), 'llama-kv-bench-state-'));
const model = await LlamaModel.load({ path });
process.stdout.write(`CPU: ${cpus()[0]?.model?.trim()}, ${cpus().length} CPUs; model ${modelArg}; ${N} tokens, ${threads} threads, ${reps} repetitions, medians\n\n`);
const rows = [];
for (const [k, v] of [['f16', 'f16'], ['q8_0', 'q4_0']]) {
    const ctx = new LlamaContext({ model, contextSize: N + 256, batchSize: 2048, ubatchSize: 512, threads, threadsBatch: threads, cacheTypeK: k, cacheTypeV: v, flashAttention: 'on' });
    const tokens = ours.promptSource(11, model.metadata.vocabSize, N)();
    const seq = await ctx.acquireSequence();
    const decodeMs = [];
    const bufferMs = [];
    const fileMs = [];
    let state;
    const file = join(work, `${k}-${v}.state`);
    for (let r = 0; r < reps; r++) {
        await seq.clear();
        let t0 = performance.now();
        await seq.evaluate(tokens);
        decodeMs.push(performance.now() - t0);
        state = await seq.saveState();
        await seq.saveStateFile(file);
        await seq.clear();
        t0 = performance.now();
        await seq.loadState(state);
        bufferMs.push(performance.now() - t0);
        await seq.clear();
        t0 = performance.now();
        await seq.loadStateFile(file);
        fileMs.push(performance.now() - t0);
    }
    const kv = ctx.memoryReport().kv;
    const kvPerCell = (kv.k.bytes + kv.v.bytes) / kv.cells;
    const fileBytes = statSync(file).size;
    const json = Math.ceil((16 + state.readUInt32LE(12)) / 8) * 8;
    const row = {
        kv: `${k}/${v}`,
        tokens: N,
        decodeMs: median(decodeMs),
        restoreBufferMs: median(bufferMs),
        restoreFileMs: median(fileMs),
        decodeOverRestoreBuffer: median(decodeMs) / median(bufferMs),
        decodeOverRestoreFile: median(decodeMs) / median(fileMs),
        fileBytes,
        headerBytes: json,
        stateBytesPerToken: (fileBytes - json) / N,
        kvBytesPerCell: kvPerCell,
        predicted: kv.state,
        predictedMatches: fileBytes - json === kv.state.fixedBytes + N * kv.state.bytesPerToken,
    };
    rows.push(row);
    process.stdout.write(
        `${k}/${v}: decode ${row.decodeMs.toFixed(1)} ms, restore ${row.restoreBufferMs.toFixed(1)} ms (Buffer) / ${row.restoreFileMs.toFixed(1)} ms (file): ` +
            `${row.decodeOverRestoreBuffer.toFixed(1)}x / ${row.decodeOverRestoreFile.toFixed(1)}x faster; file ${(fileBytes / 2 ** 20).toFixed(2)} MiB, ` +
            `${row.stateBytesPerToken.toFixed(1)} B/token against ${kvPerCell} B/cell of KV (+16 B of cell metadata and token id); predicted ${row.predictedMatches ? 'exactly' : 'NOT'}\n`,
    );
    ctx.dispose();
}
const [f16, q] = rows;
process.stdout.write(`\nq8_0/q4_0 state / f16 state: ${(q.fileBytes / f16.fileBytes).toFixed(3)}\n`);
if (jsonOut) {
    // The bench-results/ schema (scripts/bench-table.mjs renders it into docs/performance.md).
    let flags = '';
    try {
        const info = readFileSync('/proc/cpuinfo', 'utf8');
        const has = (f) => new RegExp(`\\b${f}\\b`).test(info);
        flags = [has('avx512f') ? 'AVX-512' : has('avx2') ? 'AVX2' : 'no AVX2', has('amx_tile') ? 'AMX' : null].filter(Boolean).join(', ');
    } catch {
        flags = 'unknown';
    }
    const date = new Date().toISOString().slice(0, 10);
    const result = {
        schema: 'llama-kv-bench-result/1',
        date,
        benchmark: 'bench:state',
        title: `Restoring a ${N}-token saved state against decoding it again`,
        command: `npm run bench:state -- --model ${modelArg} -n ${N} -r ${reps} -t ${threads}`,
        cpu: { model: cpus()[0]?.model?.trim() ?? 'unknown', flags, vcpus: cpus().length },
        model: { name: modelArg },
        settings: { tokens: N, repetitions: reps, threads, flashAttention: 'on', batchSize: 2048, ubatchSize: 512 },
        rows,
        notes: [`q8_0/q4_0 state / f16 state: ${(q.fileBytes / f16.fileBytes).toFixed(3)}`],
    };
    writeFileSync(jsonOut, `${JSON.stringify(result, null, 2)}\n`);
}
model.dispose();
rmSync(work, { recursive: true, force: true });
