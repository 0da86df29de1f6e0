/** The parallel benchmark's report (`llama-kv bench -npl`): its JSON shape, the table on stdout, and its figures for --compare. */
import type { CpuContention } from './cpu-meter.js';
import type { EventLoopLag } from './ours.js';
import type { EngineStats } from './parallel-ours.js';
import { BENCH_REPORT_VERSION, CONTENTION_WARNING_PERCENT, LAG_P99_TARGET_MS, RATIO_TARGET, type BenchReport, type ContextInForce, type Figure, type KvPair, type RateComparison } from './report.js';
import { textTable } from '../format/table.js';

/** The engine's counters summed over a row's timed repetitions, and the time per step outside llama_decode. */
export interface EngineSummary extends EngineStats {
    /** (stepMs - decodeMs) / steps: sampling, delivery and bookkeeping per step, milliseconds. */
    outsideDecodeMsPerStep: number | null;
    /** (stepMs - decodeMs) / stepMs, in percent of the step. */
    outsideDecodePercent: number | null;
}

/** One row: a model, a thread count, a number of sequences and a K/V pair. */
export interface ParallelRow extends KvPair {
    model: string;
    threads: number;
    /** Sequences decoded together (llama-batched-bench's `-npl`; our context's `parallel`). */
    parallel: number;
    flashAttention: 'on' | 'off';
    /** Our context as llama.cpp put it in force (contextSize: all sequences together), and one sequence's share. */
    context: ContextInForce & { perSequence: number };
    /** S_TG: generated tokens/s of all sequences together in the generation phase. */
    tg: RateComparison;
    /** S: prompt and generated tokens/s over the whole run. */
    total: RateComparison;
    /** S_PP: prompt tokens/s in the prompt phase. */
    pp: RateComparison;
    /** Ours: S_TG over ours at one sequence (same model, threads, K/V), null without a one-sequence row. */
    speedupVs1: number | null;
    /** llama-batched-bench's S_TG over its one-sequence S_TG. */
    llamaCppSpeedupVs1: number | null;
    /** Ours: whether the npl requests generated at the same time in every timed repetition (their token events overlapped); null for one sequence. */
    concurrent: boolean | null;
    /** Ours: tokens each sequence received, per repetition (maxTokens = generatedTokens + 1 each). */
    sequenceTokens: number[][];
    /** Ours: event-loop delay during the generation phase of one more run. */
    eventLoopLagMs: EventLoopLag;
    /** Ours: the engine's counters over the timed repetitions, null where the context has none (before the batching engine). */
    engine: EngineSummary | null;
    contention: CpuContention | null;
    /**
     * CPU time other processes took during each repetition (both sides), in percent of one CPU, in
     * the order of the samples: on a shared machine a repetition others ran into can be many times
     * slower. Null where not measurable.
     */
    repetitionContention: number[] | null;
    notes: string[];
}

/** The settings both sides ran with. */
export interface ParallelSettings {
    promptTokens: number;
    generatedTokens: number;
    parallel: number[];
    batchSize: number;
    ubatchSize: number;
    flashAttention: 'on' | 'off' | 'auto';
    kvUnified: false;
    reps: number;
    threads: number[];
    configs: KvPair[];
}

/** Everything the parallel mode measures, as written to the JSON file. */
export interface ParallelBenchReport {
    version: typeof BENCH_REPORT_VERSION;
    /** Tells this report from the single-sequence one ({@link BenchReport}, which has no `mode`). */
    mode: 'parallel';
    createdAt: string;
    machine: BenchReport['machine'];
    llamaCpp: {
        /** The llama-batched-bench binary, or null when the comparison did not run. */
        batchedBench: string | null;
        /** The llama.cpp commit of vendor/llama.cpp.json, which it is built from (it prints no commit of its own). */
        pinnedCommit: string | null;
        /** The CPU backend library it loaded, where it logs it (this pin does not: null); it loads the one beside it in build-bench/Release. */
        cpuBackend: string | null;
    };
    ours: { version: string; cpuBackend: string | null; cpuVariant: string | null };
    settings: ParallelSettings;
    rows: ParallelRow[];
    notes: string[];
    contention: CpuContention | null;
    durationMs: number;
}

/** Whether a parsed report is a parallel one. */
export function isParallelReport(r: BenchReport | ParallelBenchReport): r is ParallelBenchReport {
    return (r as Partial<ParallelBenchReport>).mode === 'parallel';
}

const f = (x: number | null | undefined, digits = 2) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
const mark = (r: number | null) => (r === null ? '' : r >= RATIO_TARGET ? '' : ' *');
const table = (header: string[], rows: string[][], left: number) => textTable(header, rows, { left, markdown: true });

function engineText(e: EngineSummary | null): string {
    if (e === null || e.outsideDecodeMsPerStep === null) return 'n/a';
    return `${f(e.outsideDecodeMsPerStep, 3)} (${f(e.outsideDecodePercent, 1)}%)`;
}

/** The report as text: throughput against llama-batched-bench, then scaling, event-loop lag and the engine's time outside llama_decode. */
export function formatParallelReport(report: ParallelBenchReport): string {
    const s = report.settings;
    const out: string[] = [];
    const kv = (r: ParallelRow) => `${r.cacheTypeK}/${r.cacheTypeV}`;
    out.push(
        table(
            ['model', 'threads', 'npl', 'K/V', 'S_TG ours t/s', 'S_TG llama.cpp t/s', 'ratio', 'S ours t/s', 'S llama.cpp t/s', 'ratio'],
            report.rows.map((r) => [
                r.model, String(r.threads), String(r.parallel), kv(r),
                f(r.tg.ours.median), f(r.tg.llamaCpp?.median), f(r.tg.ratio, 3) + mark(r.tg.ratio),
                f(r.total.ours.median), f(r.total.llamaCpp?.median), f(r.total.ratio, 3) + mark(r.total.ratio),
            ]),
            4,
        ),
    );
    out.push(
        `medians of ${s.reps} interleaved repetitions (llama-batched-bench, llama-kv, ...); ratio = ours / llama.cpp (target >= ${RATIO_TARGET}, * below). ` +
            `npl sequences, each a distinct random ${s.promptTokens}-token prompt then ${s.generatedTokens} generation steps; S_TG = generated tokens / time of the generation steps, ` +
            `S = (prompt + generated tokens) / whole time, as llama-batched-bench's. Both: -c npl*${Math.ceil((s.promptTokens + s.generatedTokens) / 256) * 256} -b ${s.batchSize} -ub ${s.ubatchSize} -fa ${s.flashAttention}, no unified KV.`,
    );
    out.push(
        `ours: npl concurrent generate() calls (greedy, maxTokens ${s.generatedTokens + 1}: the first token ends the prompt phase, the other ${s.generatedTokens} are the generation steps) on one context of parallel = npl, ` +
            'timed from the token events as an application reads them. llama-batched-bench: llama_decode of random tokens, no sampling.',
    );
    out.push('');
    out.push(
        table(
            ['model', 'threads', 'npl', 'K/V', 'S_PP ours t/s', 'S_PP llama.cpp t/s', 'S_TG ours vs npl 1', 'S_TG llama.cpp vs npl 1', 'lag p50 ms', 'lag p99 ms', 'lag max ms', 'outside llama_decode ms/step (% of step)', 'CPU taken by others %'],
            report.rows.map((r) => [
                r.model, String(r.threads), String(r.parallel), kv(r),
                f(r.pp.ours.median), f(r.pp.llamaCpp?.median),
                r.speedupVs1 === null ? '-' : `x${f(r.speedupVs1)}`, r.llamaCppSpeedupVs1 === null ? '-' : `x${f(r.llamaCppSpeedupVs1)}`,
                f(r.eventLoopLagMs.p50, 3), f(r.eventLoopLagMs.p99, 3) + (r.eventLoopLagMs.p99 < LAG_P99_TARGET_MS ? '' : ' *'), f(r.eventLoopLagMs.max, 3),
                engineText(r.engine),
                r.contention === null ? '-' : `${r.contention.otherPercent.toFixed(0)}${r.contention.stealPercent >= 1 ? ` (+${r.contention.stealPercent.toFixed(0)} steal)` : ''}`,
            ]),
            4,
        ),
    );
    out.push(`event-loop lag: monitorEventLoopDelay (1 ms resolution, subtracted) from the first token event to the last of one more run; target p99 < ${LAG_P99_TARGET_MS} ms`);
    out.push('outside llama_decode: (stepMs - decodeMs) / steps of ctx.engineStats over the timed repetitions (sampling, delivery); n/a: the context has no engineStats (before the batching engine)');
    const four = report.rows.filter((r) => r.parallel === 4 && r.speedupVs1 !== null);
    if (four.length > 0) {
        out.push(
            `ours 4 sequences vs 1 (S_TG): ${four.map((r) => `x${f(r.speedupVs1)} (${r.model} t=${r.threads} ${kv(r)}; llama.cpp x${f(r.llamaCppSpeedupVs1)})`).join(', ')}`,
        );
    }
    out.push('');
    const m = report.machine;
    out.push(`CPU: ${m.cpu}${m.cpuId ? ` (${m.cpuId})` : ''}, ${m.cpus} CPUs | ${(report.durationMs / 1000).toFixed(0)} s`);
    out.push(`CPU backend: ours ${report.ours.cpuBackend ?? '-'} (variant ${report.ours.cpuVariant ?? '-'}); llama-batched-bench ${report.llamaCpp.cpuBackend ?? '-'}`);
    const busy = report.rows.filter((r) => (r.contention?.otherPercent ?? 0) >= CONTENTION_WARNING_PERCENT);
    if (busy.length > 0) {
        out.push(`WARNING: other processes took >= ${CONTENTION_WARNING_PERCENT}% of a CPU during ${busy.length} of ${report.rows.length} rows: those figures are not clean; rerun on a quiet machine`);
    }
    for (const n of report.notes) out.push(`note: ${n}`);
    for (const r of report.rows) for (const n of r.notes) out.push(`note (${r.model} t=${r.threads} npl=${r.parallel} ${kv(r)}): ${n}`);
    return out.join('\n') + '\n';
}

/** The figures --compare looks at: ours S_TG and S, their ratios, and the event-loop lag p99. */
export function parallelFigures(report: ParallelBenchReport): Figure[] {
    const out: Figure[] = [];
    for (const r of report.rows) {
        const key = `${r.model} t=${r.threads} npl=${r.parallel} ${r.cacheTypeK}/${r.cacheTypeV}`;
        out.push(
            { name: `${key} S_TG ours t/s`, value: r.tg.ours.median, higherIsBetter: true },
            { name: `${key} S_TG ratio`, value: r.tg.ratio, higherIsBetter: true },
            { name: `${key} S ours t/s`, value: r.total.ours.median, higherIsBetter: true },
            { name: `${key} S ratio`, value: r.total.ratio, higherIsBetter: true },
            { name: `${key} event-loop lag p99 ms`, value: r.eventLoopLagMs.p99, higherIsBetter: false, floor: 1 },
        );
    }
    return out;
}
