/**
 * The benchmark against llama.cpp: llama-bench (A) and llama-kv (B) on the same model
 * files with the same settings, interleaved A B A B, medians and ratios; plus TTFT,
 * event-loop lag, peak RSS and model load time. Used by `npm run bench`
 * (scripts/bench.mjs) and `llama-kv bench`.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, platform, release, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { getBackends } from '../../backends/backends.js';
import { packageRoot } from '../../native/binding.js';
import { packageVersion } from '../version.js';
import { LlamaModel } from '../../model/model.js';
import { cpuIdentity, featureList } from './cpu-facts.js';
import { startCpuMeter } from './cpu-meter.js';
import { measureLoad, measureMemory } from './measure-extras.js';
import { measureRow, type LlamaBenchFacts } from './measure-row.js';
import { BENCH_REPORT_VERSION, type BenchReport, type BenchRow, type KvPair, type LoadRow, type MemoryRow } from './report.js';

/** The configurations of the targets: f16/f16, q8_0/q8_0, q8_0/q4_0. */
export const DEFAULT_BENCH_CONFIGS: readonly KvPair[] = [
    { cacheTypeK: 'f16', cacheTypeV: 'f16' },
    { cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' },
    { cacheTypeK: 'q8_0', cacheTypeV: 'q4_0' },
];

/** Options of {@link runBench}. */
export interface BenchOptions {
    /** GGUF model files. */
    models: string[];
    /** Thread counts (each is one row per K/V pair). Defaults to `[1, 2]`. */
    threads?: number[];
    /** K/V cache type pairs. Defaults to {@link DEFAULT_BENCH_CONFIGS}. */
    configs?: readonly KvPair[];
    /** Flash attention on both sides (llama-bench `-fa`). Defaults to `'on'` (a quantized V cache needs it). */
    flashAttention?: 'on' | 'off' | 'auto';
    /** Prompt tokens of the pp test (llama-bench `-p`). Defaults to `512`. */
    promptTokens?: number;
    /** Generated tokens of the tg test (llama-bench `-n`). Defaults to `128`. */
    generatedTokens?: number;
    /** Batch size (llama-bench `-b`). Defaults to `2048`, llama-bench's default. */
    batchSize?: number;
    /** Micro-batch size (llama-bench `-ub`). Defaults to `512`, llama-bench's default. */
    ubatchSize?: number;
    /** Interleaved repetitions per configuration. Defaults to `5`. */
    reps?: number;
    /** The llama-bench binary; null runs our side only. Defaults to `null`. */
    llamaBench?: string | null;
    /** The reference program (test/support/reference/greedy.cpp) that times llama.cpp's model load; null skips that side. Defaults to `null`. */
    reference?: string | null;
    /** Measure peak RSS against llama-bench's. Defaults to `true`. */
    memory?: boolean;
    /** Measure model load time. Defaults to `true`. */
    load?: boolean;
    /** Notes to carry into the report (e.g. how the llama-bench build compares with the addon's). Defaults to none. */
    notes?: string[];
    /** Called with a line of progress now and then. Defaults to none. */
    onProgress?: (message: string) => void;
}

/** The llama.cpp commit of vendor/llama.cpp.json, or null. */
export function pinnedCommit(): string | null {
    try {
        return (JSON.parse(readFileSync(join(packageRoot(), 'vendor', 'llama.cpp.json'), 'utf8')) as { commit?: string }).commit ?? null;
    } catch {
        return null;
    }
}

/** llama-kv's version (package.json). */
export function ownVersion(): string {
    return packageVersion();
}

/** The machine a report was measured on. */
export function machineFacts(): BenchReport['machine'] {
    return {
        cpu: cpus()[0]?.model?.trim() ?? 'unknown',
        cpuId: cpuIdentity(),
        cpus: availableParallelism(),
        memoryBytes: totalmem(),
        os: `${platform()} ${release()}`,
        node: process.version,
    };
}

/** Runs the benchmark and returns the report (nothing is printed: progress goes to `onProgress`). */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
    const started = performance.now();
    const runMeter = startCpuMeter();
    const threadList = options.threads ?? [1, 2];
    const configs = options.configs ?? DEFAULT_BENCH_CONFIGS;
    const fa = options.flashAttention ?? 'on';
    const P = options.promptTokens ?? 512;
    const N = options.generatedTokens ?? 128;
    const batchSize = options.batchSize ?? 2048;
    const ubatchSize = options.ubatchSize ?? 512;
    const reps = options.reps ?? 5;
    const llamaBench = options.llamaBench ?? null;
    const reference = options.reference ?? null;
    const progress = options.onProgress ?? (() => undefined);
    for (const [name, n] of [['reps', reps], ['promptTokens', P], ['generatedTokens', N]] as const) {
        if (!Number.isInteger(n) || n < 1) throw new Error(`Expected a positive integer for ${name} but received ${n}`);
    }

    const cpu = getBackends().find((b) => b.kind === 'cpu' && b.available);
    const facts: LlamaBenchFacts = { cpuBackend: null, commit: null };
    const rows: BenchRow[] = [];
    const memory: MemoryRow[] = [];
    const load: LoadRow[] = [];

    for (const path of options.models) {
        const model = await LlamaModel.load({ path });
        try {
            for (const threads of threadList) {
                for (const kv of configs) {
                    const settings = { path, threads, ...kv, flashAttention: fa, batchSize, ubatchSize, promptTokens: P, generatedTokens: N, reps, llamaBench, seed: 1000 * threads + rows.length };
                    rows.push(await measureRow(model, settings, facts, progress));
                }
            }
        } finally {
            model.dispose();
        }
        if (options.memory ?? true) {
            // One configuration: the most threads, the first K/V pair.
            const settings = { model: path, threads: Math.max(...threadList), ...configs[0], flashAttention: fa, batchSize, ubatchSize, promptTokens: P, generatedTokens: N };
            const row = await measureMemory(settings, llamaBench, Math.min(reps, 3), progress);
            if (row !== null) memory.push(row);
        }
        if (options.load ?? true) load.push(await measureLoad(path, reference, reps, progress));
    }

    const notes = [...(options.notes ?? [])];
    if (llamaBench !== null && facts.cpuBackend !== null && cpu?.path && basename(facts.cpuBackend) !== basename(cpu.path)) {
        notes.push(`the two sides loaded different CPU backend variants: ours ${basename(cpu.path)}, llama-bench ${basename(facts.cpuBackend)}`);
    }
    return {
        version: BENCH_REPORT_VERSION,
        createdAt: new Date().toISOString(),
        machine: machineFacts(),
        llamaCpp: { llamaBench, commit: facts.commit, pinnedCommit: pinnedCommit(), cpuBackend: facts.cpuBackend, reference },
        ours: { version: ownVersion(), cpuBackend: cpu?.path ?? null, cpuVariant: cpu?.variant ?? null, cpuFeatures: cpu ? featureList(cpu.features) : [], extraBufferTypes: cpu?.devices[0]?.extraBufferTypes ?? [] },
        settings: { promptTokens: P, generatedTokens: N, batchSize, ubatchSize, flashAttention: fa, reps, threads: threadList, configs: [...configs] },
        rows,
        memory,
        load,
        notes,
        contention: runMeter(),
        durationMs: performance.now() - started,
    };
}

