/** The benchmark's extra comparisons: peak RSS against llama-bench's, and model load time against llama.cpp's. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../../native/binding.js';
import { llamaBenchArgv } from './llama-bench.js';
import type { MemoryChildSettings } from './memory-child.js';
import { timeLoad } from './ours.js';
import { peakRss } from './peak-rss.js';
import type { LoadRow, MemoryRow } from './report.js';
import { ratio, series } from './stats.js';

/** The memory child: beside this module in dist/, or in dist/cli/bench/ when this runs from lib/ (tests). */
function memoryChild(): string {
    const beside = fileURLToPath(new URL('./memory-child.js', import.meta.url));
    return existsSync(beside) ? beside : join(packageRoot(), 'dist', 'cli', 'bench', 'memory-child.js');
}

/**
 * Peak RSS of `llama-bench -p P -n N -r 1` and of a node child doing the same through
 * llama-kv (lib/cli/bench/memory-child.ts), `samples` times each, interleaved; and of a node
 * child that only loads the addon. Null where peak RSS cannot be measured.
 */
export async function measureMemory(settings: MemoryChildSettings, llamaBench: string | null, samples: number, progress: (line: string) => void): Promise<MemoryRow | null> {
    const name = basename(settings.model);
    const ours: number[] = [];
    const theirs: number[] = [];
    let method: MemoryRow['method'] = 'wait4';
    for (let i = 0; i < samples; i++) {
        progress(`${name}: peak RSS ${i + 1}/${samples}`);
        if (llamaBench !== null) {
            const r = await peakRss(llamaBench, llamaBenchArgv({ ...settings, reps: 1 }));
            if (r === null) return null;
            if (r.code !== 0) throw new Error(`llama-bench failed under the RSS probe (exit ${r.code}): ${r.stderr.slice(-1000)}`);
            theirs.push(r.bytes);
        }
        const o = await peakRss(process.execPath, [memoryChild(), JSON.stringify(settings)]);
        if (o === null) return null;
        if (o.code !== 0) throw new Error(`the memory child failed (exit ${o.code}): ${o.stderr.slice(-1000)}`);
        ours.push(o.bytes);
        method = o.method;
    }
    const base = await peakRss(process.execPath, [memoryChild(), '--baseline']);
    const o = series(ours);
    const t = theirs.length > 0 ? series(theirs) : null;
    return {
        model: name,
        threads: settings.threads,
        cacheTypeK: settings.cacheTypeK,
        cacheTypeV: settings.cacheTypeV,
        ours: o,
        llamaBench: t,
        ratio: ratio(o.median, t?.median),
        nodeBaseline: base?.bytes ?? null,
        method,
    };
}

/** Milliseconds of llama_model_load_from_file in the reference program (its `load: X ms` line on stderr). */
function referenceLoadMs(reference: string, model: string): Promise<number> {
    return new Promise((resolve, reject) => {
        const child = spawn(reference, [model, 'a', '1', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.on('error', reject);
        child.on('close', (code) => {
            const m = /^load: ([\d.]+) ms$/m.exec(stderr);
            if (code !== 0 || !m) reject(new Error(`${reference} failed (exit ${code}) or printed no load time: ${stderr.trim()}`));
            else resolve(Number(m[1]));
        });
    });
}

/**
 * Model load time with mmap, `reps` times each side, interleaved, after one untimed load
 * that puts the file in the page cache: ours is `await LlamaModel.load({ path })` in this
 * process; llama.cpp's is llama_model_load_from_file() alone, timed inside the reference
 * program (a fresh process each time, backends already loaded, as ours are).
 */
export async function measureLoad(path: string, reference: string | null, reps: number, progress: (line: string) => void): Promise<LoadRow> {
    const name = basename(path);
    progress(`${name}: load time`);
    await timeLoad(path);
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let i = 0; i < reps; i++) {
        if (reference !== null) theirs.push(await referenceLoadMs(reference, path));
        ours.push(await timeLoad(path));
    }
    const o = series(ours);
    const t = theirs.length > 0 ? series(theirs) : null;
    return { model: name, ours: o, llamaCpp: t, ratio: ratio(o.median, t?.median) };
}
