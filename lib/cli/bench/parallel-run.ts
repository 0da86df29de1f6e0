/**
 * The parallel benchmark (`llama-kv bench -npl 1,2,4,8`): llama-kv with npl concurrent
 * requests on one context of npl sequences against llama.cpp's llama-batched-bench with the
 * same model and settings, interleaved, medians and ratios of S_TG and S; plus how ours
 * scales with npl, the event-loop lag and the engine's time outside llama_decode.
 */
import { basename } from 'node:path';
import { getBackends } from '../../backends/backends.js';
import { LlamaModel } from '../../model/model.js';
import { runBatchedBench, type BatchedBenchArgs } from './batched-bench.js';
import { startCpuMeter } from './cpu-meter.js';
import { distinctPromptSource, parallelContext, runParallel, type EngineStats, type ParallelRun } from './parallel-ours.js';
import type { EngineSummary, ParallelBenchReport, ParallelRow } from './parallel-report.js';
import { BENCH_REPORT_VERSION, type KvPair } from './report.js';
import { machineFacts, ownVersion, pinnedCommit } from './run.js';
import { CONTEXT_PADDING } from '../../options/context-params.js';
import { ratio, series } from './stats.js';
import type { BenchContextSettings } from './ours.js';

/** The K/V pairs of the parallel mode by default: f16/f16 and q8_0/q4_0. */
export const DEFAULT_PARALLEL_CONFIGS: readonly KvPair[] = [
    { cacheTypeK: 'f16', cacheTypeV: 'f16' },
    { cacheTypeK: 'q8_0', cacheTypeV: 'q4_0' },
];

/** The numbers of sequences of the parallel mode by default (llama-batched-bench's `-npl`). */
export const DEFAULT_PARALLEL_LIST: readonly number[] = [1, 2, 4, 8];

/** A repetition whose generation ended on an end-of-generation token is run again with new prompts, this many times at most. */
const EOS_RETRIES = 3;

/** Options of {@link runParallelBench}. */
export interface ParallelBenchOptions {
    /** GGUF model files. */
    models: string[];
    /** Thread counts (`-t`; batch threads the same). Defaults to `[2]`. */
    threads?: number[];
    /** Sequences decoded together, one row each (llama-batched-bench `-npl`). Defaults to {@link DEFAULT_PARALLEL_LIST}. */
    parallel?: number[];
    /** K/V cache type pairs. Defaults to {@link DEFAULT_PARALLEL_CONFIGS}. */
    configs?: readonly KvPair[];
    /** Flash attention on both sides (`-fa`). Defaults to `'on'`. */
    flashAttention?: 'on' | 'off' | 'auto';
    /** Prompt tokens of each sequence (llama-batched-bench `-npp`). Defaults to `128`. */
    promptTokens?: number;
    /** Generation steps of each sequence (llama-batched-bench `-ntg`). Defaults to `128`. */
    generatedTokens?: number;
    /** Batch size (`-b`). Defaults to `2048`, llama-batched-bench's default. */
    batchSize?: number;
    /** Micro-batch size (`-ub`). Defaults to `512`, llama-batched-bench's default. */
    ubatchSize?: number;
    /** Interleaved repetitions per row. Defaults to `3`. */
    reps?: number;
    /** The llama-batched-bench binary; null runs our side only. Defaults to `null`. */
    batchedBench?: string | null;
    /** Notes to carry into the report. Defaults to none. */
    notes?: string[];
    /** Called with a line of progress now and then. Defaults to none. */
    onProgress?: (message: string) => void;
}

/**
 * The context of a row on both sides (`-c`, `contextSize`): npl sequences of the prompt and
 * the generation steps, each share padded to llama.cpp's 256 cells, which llama.cpp gives
 * for npl * (pp + tg) anyway; asking for the padded size keeps it from capping the batch at
 * the size asked for.
 */
export function parallelContextSize(parallel: number, promptTokens: number, generatedTokens: number): number {
    return parallel * Math.ceil((promptTokens + generatedTokens) / CONTEXT_PADDING) * CONTEXT_PADDING;
}

function summarizeEngine(samples: readonly (EngineStats | null)[]): EngineSummary | null {
    if (samples.length === 0 || samples.some((s) => s === null)) return null;
    const sum = (k: keyof EngineStats) => samples.reduce((n, s) => n + s![k], 0);
    const e = { steps: sum('steps'), tokens: sum('tokens'), decodeMs: sum('decodeMs'), stepMs: sum('stepMs') };
    const outside = e.stepMs - e.decodeMs;
    return { ...e, outsideDecodeMsPerStep: e.steps > 0 ? outside / e.steps : null, outsideDecodePercent: e.stepMs > 0 ? (100 * outside) / e.stepMs : null };
}

interface RowSettings extends BenchContextSettings {
    path: string;
    parallel: number;
    promptTokens: number;
    generatedTokens: number;
    reps: number;
    batchedBench: string | null;
    seed: number;
}

interface Facts {
    cpuBackend: string | null;
}

/**
 * One timed run of ours: npl fresh prompts; run again with fresh prompts (at most
 * {@link EOS_RETRIES} times) when a sequence ended on an end-of-generation token, as
 * llama-batched-bench's generation never ends early.
 */
async function oursRun(ctx: ReturnType<typeof parallelContext>, s: RowSettings, nextPrompt: () => number[], notes: string[], label: string, lag?: number): Promise<ParallelRun> {
    const maxTokens = s.generatedTokens + 1;
    for (let attempt = 0; ; attempt++) {
        const prompts = Array.from({ length: s.parallel }, nextPrompt);
        const run = await runParallel(ctx, prompts, maxTokens, lag);
        for (const q of run.sequences) {
            if (q.reusedTokens !== 0) throw new Error(`${label}: a prompt reused ${q.reusedTokens} cached tokens`);
            if (q.finishReason !== 'length' && q.finishReason !== 'eos') throw new Error(`${label}: a generation ended with finishReason ${q.finishReason} after ${q.tokens} tokens`);
        }
        const short = run.sequences.filter((q) => q.tokens < maxTokens);
        if (short.length === 0) return run;
        if (attempt + 1 >= EOS_RETRIES) {
            notes.push(`${short.length} of ${s.parallel} sequences ended on an end-of-generation token in ${EOS_RETRIES} tries with new prompts; the figures count the tokens really generated`);
            return run;
        }
    }
}

async function measureRow(model: LlamaModel, s: RowSettings, facts: Facts, progress: (line: string) => void): Promise<Omit<ParallelRow, 'speedupVs1' | 'llamaCppSpeedupVs1'>> {
    const P = s.promptTokens;
    const N = s.generatedTokens;
    const name = basename(s.path);
    const label = `${name} t=${s.threads} npl=${s.parallel} ${s.cacheTypeK}/${s.cacheTypeV}`;
    const notes: string[] = [];
    const meter = startCpuMeter();
    const contextSize = parallelContextSize(s.parallel, P, N);
    const ctx = parallelContext(model, s, s.parallel, contextSize);
    try {
        const c = ctx.config;
        if (c.threads !== s.threads || c.threadsBatch !== s.threads || c.cacheTypeK !== s.cacheTypeK || c.cacheTypeV !== s.cacheTypeV || c.parallel !== s.parallel || c.kvUnified) {
            throw new Error(`${label}: the context has threads ${c.threads}/${c.threadsBatch}, K/V ${c.cacheTypeK}/${c.cacheTypeV}, parallel ${c.parallel}, kvUnified ${c.kvUnified}`);
        }
        const perSequence = c.contextSize / c.parallel;
        if (perSequence < P + N) throw new Error(`${label}: a sequence has ${perSequence} cells, fewer than ${P} + ${N}`);
        const nextPrompt = distinctPromptSource(s.seed, model.metadata.vocabSize, P);
        // Warm-up (llama-batched-bench decodes 16 tokens first): the prompts and one step.
        progress(`${label}: warm-up`);
        await runParallel(ctx, Array.from({ length: s.parallel }, nextPrompt), 2);

        const theirs = { tg: [] as number[], total: [] as number[], pp: [] as number[] };
        const repContention: number[] = [];
        const ours = { tg: [] as number[], total: [] as number[], pp: [] as number[], tokens: [] as number[][], engine: [] as (EngineStats | null)[], concurrent: [] as boolean[] };
        const args: BatchedBenchArgs = {
            model: s.path, contextSize, promptTokens: P, generatedTokens: N, parallel: s.parallel, threads: s.threads,
            cacheTypeK: s.cacheTypeK, cacheTypeV: s.cacheTypeV, flashAttention: s.flashAttention, batchSize: s.batchSize, ubatchSize: s.ubatchSize,
        };
        for (let rep = 0; rep < s.reps; rep++) {
            progress(`${label}: repetition ${rep + 1}/${s.reps}`);
            const repMeter = startCpuMeter();
            if (s.batchedBench !== null) {
                const r = await runBatchedBench(s.batchedBench, args);
                if (r.row.n_kv_max !== c.contextSize) notes.push(`llama-batched-bench's context is ${r.row.n_kv_max} cells, ours ${c.contextSize}`);
                if (r.perSequence !== null && r.perSequence !== perSequence) notes.push(`llama-batched-bench's sequences have ${r.perSequence} cells each, ours ${perSequence}`);
                theirs.tg.push(r.tg);
                theirs.total.push(r.total);
                theirs.pp.push(r.pp);
                facts.cpuBackend ??= r.cpuBackend;
            }
            const run = await oursRun(ctx, s, nextPrompt, notes, label);
            ours.tg.push(run.tg);
            ours.total.push(run.total);
            ours.pp.push(run.pp);
            ours.tokens.push(run.sequences.map((q) => q.tokens));
            ours.engine.push(run.engine);
            ours.concurrent.push(run.concurrent);
            const taken = repMeter();
            if (taken !== null) repContention.push(taken.otherPercent);
        }
        progress(`${label}: event-loop lag`);
        const lagRun = await oursRun(ctx, s, nextPrompt, notes, label, 1);
        const side = (o: number[], t: number[]) => {
            const a = series(o);
            const b = s.batchedBench !== null ? series(t) : null;
            return { ours: a, llamaCpp: b, ratio: ratio(a.median, b?.median) };
        };
        return {
            model: name,
            threads: s.threads,
            parallel: s.parallel,
            cacheTypeK: s.cacheTypeK,
            cacheTypeV: s.cacheTypeV,
            flashAttention: c.flashAttention,
            context: { contextSize: c.contextSize, batchSize: c.batchSize, ubatchSize: c.ubatchSize, perSequence },
            tg: side(ours.tg, theirs.tg),
            total: side(ours.total, theirs.total),
            pp: side(ours.pp, theirs.pp),
            concurrent: s.parallel === 1 ? null : ours.concurrent.every(Boolean),
            sequenceTokens: ours.tokens,
            eventLoopLagMs: lagRun.lag!,
            engine: summarizeEngine(ours.engine),
            contention: meter(),
            repetitionContention: repContention.length === s.reps ? repContention : null,
            notes: [...new Set(notes)],
        };
    } finally {
        ctx.dispose();
    }
}

/** Runs the parallel benchmark and returns the report (nothing is printed: progress goes to `onProgress`). */
export async function runParallelBench(options: ParallelBenchOptions): Promise<ParallelBenchReport> {
    const started = performance.now();
    const runMeter = startCpuMeter();
    const threadList = options.threads ?? [2];
    const parallelList = options.parallel ?? [...DEFAULT_PARALLEL_LIST];
    const configs = options.configs ?? DEFAULT_PARALLEL_CONFIGS;
    const fa = options.flashAttention ?? 'on';
    const P = options.promptTokens ?? 128;
    const N = options.generatedTokens ?? 128;
    const batchSize = options.batchSize ?? 2048;
    const ubatchSize = options.ubatchSize ?? 512;
    const reps = options.reps ?? 3;
    const batchedBench = options.batchedBench ?? null;
    const progress = options.onProgress ?? (() => undefined);
    for (const [name, n] of [['reps', reps], ['promptTokens', P], ['generatedTokens', N], ...parallelList.map((p) => ['parallel', p] as const)] as const) {
        if (!Number.isInteger(n) || n < 1) throw new Error(`Expected a positive integer for ${name} but received ${n}`);
    }

    const cpu = getBackends().find((b) => b.kind === 'cpu' && b.available);
    const facts: Facts = { cpuBackend: null };
    const measured: Omit<ParallelRow, 'speedupVs1' | 'llamaCppSpeedupVs1'>[] = [];
    for (const path of options.models) {
        const model = await LlamaModel.load({ path });
        try {
            for (const threads of threadList) {
                for (const kv of configs) {
                    for (const parallel of parallelList) {
                        const settings = { path, threads, ...kv, flashAttention: fa, batchSize, ubatchSize, parallel, promptTokens: P, generatedTokens: N, reps, batchedBench, seed: 1000 * threads + measured.length };
                        measured.push(await measureRow(model, settings, facts, progress));
                    }
                }
            }
        } finally {
            model.dispose();
        }
    }
    const rows: ParallelRow[] = measured.map((r) => {
        const one = measured.find((o) => o.parallel === 1 && o.model === r.model && o.threads === r.threads && o.cacheTypeK === r.cacheTypeK && o.cacheTypeV === r.cacheTypeV);
        return {
            ...r,
            speedupVs1: one === undefined ? null : ratio(r.tg.ours.median, one.tg.ours.median),
            llamaCppSpeedupVs1: one === undefined ? null : ratio(r.tg.llamaCpp?.median, one.tg.llamaCpp?.median),
        };
    });

    const notes = [...(options.notes ?? [])];
    if (batchedBench !== null) {
        notes.push(
            'llama-batched-bench attaches no threadpool to its context: ggml\'s CPU backend starts and joins a threadpool in every llama_decode; ' +
                'llama-kv keeps one per context (a small per-step cost on their side only)',
        );
    }
    if (batchedBench !== null && facts.cpuBackend !== null && cpu?.path && basename(facts.cpuBackend) !== basename(cpu.path)) {
        notes.push(`the two sides loaded different CPU backend variants: ours ${basename(cpu.path)}, llama-batched-bench ${basename(facts.cpuBackend)}`);
    }
    const serial = rows.filter((r) => r.concurrent === false);
    if (serial.length > 0) {
        notes.push(
            `ours: in ${serial.length} of ${rows.filter((r) => r.parallel > 1).length} rows with npl > 1 the requests ran one after another (their token events did not overlap), ` +
                'as on a context without the batching engine: S_TG there is one sequence\'s rate',
        );
    }
    if (rows.length > 0 && rows.every((r) => r.engine === null)) notes.push('ours: the context has no engineStats: the time outside llama_decode is n/a');
    return {
        version: BENCH_REPORT_VERSION,
        mode: 'parallel',
        createdAt: new Date().toISOString(),
        machine: machineFacts(),
        llamaCpp: { batchedBench, pinnedCommit: pinnedCommit(), cpuBackend: facts.cpuBackend },
        ours: { version: ownVersion(), cpuBackend: cpu?.path ?? null, cpuVariant: cpu?.variant ?? null },
        settings: { promptTokens: P, generatedTokens: N, parallel: parallelList, batchSize, ubatchSize, flashAttention: fa, kvUnified: false, reps, threads: threadList, configs: [...configs] },
        rows,
        notes,
        contention: runMeter(),
        durationMs: performance.now() - started,
    };
}
