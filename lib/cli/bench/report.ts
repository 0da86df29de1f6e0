/** The benchmark report: its JSON shape, the table on stdout, and the comparison with a previous run. */
import type { KvCacheType } from '../../options/kv-cache.js';
import type { CpuContention } from './cpu-meter.js';
import type { EventLoopLag } from './ours.js';
import type { PeakRssMethod } from './peak-rss.js';
import type { Series } from './stats.js';
import { textTable } from '../format/table.js';

/** Version of the report's JSON shape. */
export const BENCH_REPORT_VERSION = 1;

/** The target of the ours / llama.cpp tokens/s ratios. */
export const RATIO_TARGET = 0.97;

/** CPU taken by other processes (percent of one CPU) from which a row is flagged as measured on a busy machine. */
export const CONTENTION_WARNING_PERCENT = 10;

/** The target of the event-loop lag p99 during generation, in milliseconds. */
export const LAG_P99_TARGET_MS = 5;

/** A K/V cache type pair. */
export interface KvPair {
    cacheTypeK: KvCacheType;
    cacheTypeV: KvCacheType;
}

/** A context's sizes as llama.cpp put them in force. */
export interface ContextInForce {
    contextSize: number;
    batchSize: number;
    ubatchSize: number;
}

/** Tokens/s on both sides, and ours / llama.cpp (the ratio of the medians; null without llama-bench). */
export interface RateComparison {
    ours: Series;
    llamaCpp: Series | null;
    ratio: number | null;
}

/** One configuration: a model, a thread count, a K/V pair. */
export interface BenchRow extends KvPair {
    /** The model file's name. */
    model: string;
    threads: number;
    /** Flash attention as in force on our side (llama-bench got the same `-fa`). */
    flashAttention: 'on' | 'off';
    /**
     * Our context (one for pp, tg and TTFT) as llama.cpp put it in force: contextSize
     * max(promptTokens, generatedTokens) asked for, padded by llama.cpp to a multiple of 256,
     * which lowers batchSize to the size asked for (and ubatchSize to batchSize). llama-bench's
     * pp context is the same; its tg context is n_ctx = generatedTokens, which computes the same
     * (attention covers the used cells padded to 256 either way).
     */
    context: ContextInForce;
    /** Prompt processing of `settings.promptTokens` tokens, tokens/s. */
    pp: RateComparison;
    /** Generation of `settings.generatedTokens` tokens, tokens/s. */
    tg: RateComparison;
    /**
     * Ours, tokens/s of the same generations by the native timings (promptMs + generationMs:
     * decoding and sampling in the worker thread, without the delivery to JS): how much of
     * `tg.ours` the JS side costs.
     */
    tgNative: Series;
    /** Ours: milliseconds from `generate()` with an uncached `promptTokens`-token prompt to the first token. */
    ttftMs: Series;
    /** Ours: event-loop delay while `generate()` streams `generatedTokens` tokens. */
    eventLoopLagMs: EventLoopLag;
    /** CPU time other processes took while this row was measured (null where not measurable). */
    contention: CpuContention | null;
    /** Anything that makes the row less than a like-for-like comparison. */
    notes: string[];
}

/** Peak RSS of the same workload in llama-bench and in a node process using llama-kv. */
export interface MemoryRow extends KvPair {
    model: string;
    threads: number;
    /** Ours, bytes (one child per sample). */
    ours: Series;
    /** llama-bench's, bytes. */
    llamaBench: Series | null;
    /** ours / llama-bench of the medians. */
    ratio: number | null;
    /** A node process that only loads the addon and its backends (no model), bytes: node's own share. */
    nodeBaseline: number | null;
    method: PeakRssMethod;
}

/** Model load time with mmap. */
export interface LoadRow {
    model: string;
    /** `await LlamaModel.load({ path })`, milliseconds. */
    ours: Series;
    /** `llama_model_load_from_file()` in the reference program, milliseconds. */
    llamaCpp: Series | null;
    /** ours / llama.cpp of the medians (above 1: ours is slower). */
    ratio: number | null;
}

/** The settings both sides ran with. */
export interface BenchSettings {
    promptTokens: number;
    generatedTokens: number;
    batchSize: number;
    ubatchSize: number;
    flashAttention: 'on' | 'off' | 'auto';
    reps: number;
    threads: number[];
    configs: KvPair[];
}

/** Everything `npm run bench` and `llama-kv bench` measure, as written to the JSON file. */
export interface BenchReport {
    version: typeof BENCH_REPORT_VERSION;
    createdAt: string;
    machine: {
        /** The CPU's brand string (os.cpus()). */
        cpu: string;
        /** Vendor, family, model and stepping (/proc/cpuinfo), e.g. `GenuineIntel family 6 model 143 stepping 8`; null where unknown. */
        cpuId: string | null;
        cpus: number;
        memoryBytes: number;
        os: string;
        node: string;
    };
    llamaCpp: {
        /** The llama-bench binary, or null when the comparison did not run. */
        llamaBench: string | null;
        /** llama-bench's build_commit. */
        commit: string | null;
        /** The llama.cpp commit of vendor/llama.cpp.json (both sides are built from it). */
        pinnedCommit: string | null;
        /** The CPU backend library llama-bench loaded. */
        cpuBackend: string | null;
        /** The reference program that timed llama.cpp's model load, or null. */
        reference: string | null;
    };
    ours: {
        version: string;
        /** The CPU backend library our side loaded. */
        cpuBackend: string | null;
        /** Its variant (getBackends()' `variant`: `'haswell'`, `'sapphirerapids'`, ...; `'native'` for a build from source). */
        cpuVariant: string | null;
        /** The features that CPU backend was compiled with and reports (AVX2, AVX512, AMX_INT8, REPACK, ...). */
        cpuFeatures: string[];
        /** The CPU backend's extra buffer types in force (AMX, CPU_REPACK): where weights it has kernels for were copied. Absent in older reports. */
        extraBufferTypes?: string[];
    };
    settings: BenchSettings;
    rows: BenchRow[];
    memory: MemoryRow[];
    load: LoadRow[];
    /** Anything about the run as a whole that makes it less than like for like (e.g. other CPU variants). */
    notes: string[];
    /** CPU time other processes took during the whole run (null where not measurable). */
    contention: CpuContention | null;
    /** Wall-clock milliseconds of the whole run. */
    durationMs: number;
}

const f = (x: number | null | undefined, digits = 2) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
const mib = (bytes: number | null | undefined) => (bytes === null || bytes === undefined ? '-' : (bytes / 2 ** 20).toFixed(1));

const table = (header: string[], rows: string[][], left = 3) => textTable(header, rows, { left, markdown: true });

const mark = (r: number | null) => (r === null ? '' : r >= RATIO_TARGET ? '' : ' *');

/** The report as text: the throughput table, then TTFT and event-loop lag, memory and load time. */
export function formatReport(report: BenchReport): string {
    const s = report.settings;
    const pp = `pp${s.promptTokens}`;
    const tg = `tg${s.generatedTokens}`;
    const out: string[] = [];
    out.push(
        table(
            ['model', 'threads', 'K/V', `${pp} ours t/s`, `${pp} llama.cpp t/s`, 'ratio', `${tg} ours t/s`, `${tg} llama.cpp t/s`, 'ratio'],
            report.rows.map((r) => [
                r.model, String(r.threads), `${r.cacheTypeK}/${r.cacheTypeV}`,
                f(r.pp.ours.median), f(r.pp.llamaCpp?.median), f(r.pp.ratio, 3) + mark(r.pp.ratio),
                f(r.tg.ours.median), f(r.tg.llamaCpp?.median), f(r.tg.ratio, 3) + mark(r.tg.ratio),
            ]),
        ),
    );
    const ratios = report.rows.flatMap((r) => [r.pp.ratio, r.tg.ratio]).filter((x): x is number => x !== null);
    if (ratios.length > 0) {
        const below = ratios.filter((x) => x < RATIO_TARGET).length;
        out.push(`medians of ${s.reps} interleaved repetitions (llama-bench, llama-kv, llama-bench, ...); ratio = ours / llama.cpp; target >= ${RATIO_TARGET}: ${below === 0 ? 'met by every ratio' : `${below} of ${ratios.length} ratios below (*)`}`);
    }
    out.push(
        `ours: ${pp} = ctx.evaluate() of ${s.promptTokens} random tokens, none cached; ${tg} = generate() streaming ${s.generatedTokens} greedy tokens after a 1-token prompt ` +
            `(${s.generatedTokens} decodes, sampling, delivery to JS); wall clock around the call. llama-bench: ${pp} = llama_decode of ${s.promptTokens} random tokens, ` +
            `${tg} = ${s.generatedTokens} one-token llama_decode calls (no sampling), each after its warm-up. Both: -b ${s.batchSize} -ub ${s.ubatchSize} -fa ${s.flashAttention}; ` +
            `n_ctx ${Math.max(s.promptTokens, s.generatedTokens)} (llama-bench: ${s.promptTokens} for pp, ${s.generatedTokens} for tg; the same attention work).`,
    );
    out.push('');
    out.push(
        table(
            ['model', 'threads', 'K/V', `TTFT ${s.promptTokens}-token prompt ms`, `${tg} ours in-worker t/s`, 'lag p50 ms', 'lag p99 ms', 'lag max ms', 'CPU taken by others %'],
            report.rows.map((r) => [
                r.model, String(r.threads), `${r.cacheTypeK}/${r.cacheTypeV}`,
                f(r.ttftMs.median, 1), f(r.tgNative.median), f(r.eventLoopLagMs.p50, 3), f(r.eventLoopLagMs.p99, 3) + (r.eventLoopLagMs.p99 < LAG_P99_TARGET_MS ? '' : ' *'), f(r.eventLoopLagMs.max, 3),
                r.contention === null ? '-' : `${r.contention.otherPercent.toFixed(0)}${r.contention.stealPercent >= 1 ? ` (+${r.contention.stealPercent.toFixed(0)} steal)` : ''}`,
            ]),
        ),
    );
    out.push(`in-worker: the same generations by their native timings (decode and sampling, without the delivery to JS)`);
    out.push(`event-loop lag while generate() streams ${s.generatedTokens} tokens (monitorEventLoopDelay, resolution subtracted); target p99 < ${LAG_P99_TARGET_MS} ms`);
    out.push(`CPU taken by others: CPU time of other processes while the row ran, in % of one of the ${report.machine.cpus} CPUs (0 on a quiet machine)`);
    for (const m of report.memory) {
        out.push('');
        out.push(
            `peak RSS (${m.model}, -p ${s.promptTokens} -n ${s.generatedTokens} -r 1, t=${m.threads}, ${m.cacheTypeK}/${m.cacheTypeV}, ${m.method}): ` +
                `ours ${mib(m.ours.median)} MiB, llama-bench ${mib(m.llamaBench?.median)} MiB, ratio ${f(m.ratio, 3)}; node + addon alone ${mib(m.nodeBaseline)} MiB`,
        );
    }
    for (const l of report.load) {
        out.push(`model load, mmap (${l.model}): ours ${f(l.ours.median, 1)} ms, llama.cpp ${f(l.llamaCpp?.median, 1)} ms, ratio ${f(l.ratio, 3)} (time; above 1 is slower)`);
    }
    out.push('');
    const m = report.machine;
    out.push(`CPU: ${m.cpu}${m.cpuId ? ` (${m.cpuId})` : ''}, ${m.cpus} CPUs | ${(report.durationMs / 1000).toFixed(0)} s`);
    out.push(
        `CPU backend: ours ${report.ours.cpuBackend ?? '-'} (variant ${report.ours.cpuVariant ?? '-'}; ` +
            `features ${(report.ours.cpuFeatures ?? []).join(' ') || '-'}; extra buffer types ${(report.ours.extraBufferTypes ?? []).join(', ') || '-'}); llama-bench ${report.llamaCpp.cpuBackend ?? '-'}`,
    );
    const busy = report.rows.filter((r) => (r.contention?.otherPercent ?? 0) >= CONTENTION_WARNING_PERCENT);
    if (busy.length > 0) {
        out.push(`WARNING: other processes took >= ${CONTENTION_WARNING_PERCENT}% of a CPU during ${busy.length} of ${report.rows.length} rows: those figures are not clean; rerun on a quiet machine`);
    }
    for (const n of report.notes) out.push(`note: ${n}`);
    for (const r of report.rows) for (const n of r.notes) out.push(`note (${r.model} t=${r.threads} ${r.cacheTypeK}/${r.cacheTypeV}): ${n}`);
    return out.join('\n') + '\n';
}

/** One figure compared with the previous run. */
export interface ComparedMetric {
    /** Which figure, e.g. `bench-f16 t=2 q8_0/q4_0 tg ours t/s`. */
    name: string;
    previous: number;
    current: number;
    /** Relative change in the figure's good direction: -0.08 is 8% worse. */
    change: number;
    regression: boolean;
}

/** What {@link compareReports} found. */
export interface Comparison {
    metrics: ComparedMetric[];
    regressions: ComparedMetric[];
    /** Figures of the current run with nothing to compare with (new configurations). */
    unmatched: string[];
}

/** One figure of a report, for {@link compareFigures}. */
export interface Figure {
    name: string;
    value: number | null;
    higherIsBetter: boolean;
    /** Changes smaller than this (in the figure's unit) never count as a regression. */
    floor?: number;
}

function figures(report: BenchReport): Figure[] {
    const out: Figure[] = [];
    for (const r of report.rows) {
        const key = `${r.model} t=${r.threads} ${r.cacheTypeK}/${r.cacheTypeV}`;
        out.push(
            { name: `${key} pp ours t/s`, value: r.pp.ours.median, higherIsBetter: true },
            { name: `${key} pp ratio`, value: r.pp.ratio, higherIsBetter: true },
            { name: `${key} tg ours t/s`, value: r.tg.ours.median, higherIsBetter: true },
            { name: `${key} tg ratio`, value: r.tg.ratio, higherIsBetter: true },
            { name: `${key} TTFT ms`, value: r.ttftMs.median, higherIsBetter: false },
            // Sub-millisecond and noisy: only a change of more than 1 ms counts.
            { name: `${key} event-loop lag p99 ms`, value: r.eventLoopLagMs.p99, higherIsBetter: false, floor: 1 },
        );
    }
    for (const m of report.memory) {
        out.push(
            { name: `${m.model} peak RSS ours bytes`, value: m.ours.median, higherIsBetter: false },
            { name: `${m.model} peak RSS ratio`, value: m.ratio, higherIsBetter: false },
        );
    }
    for (const l of report.load) {
        // A load of a cached file takes milliseconds: only a change of more than 5 ms counts.
        out.push({ name: `${l.model} load ours ms`, value: l.ours.median, higherIsBetter: false, floor: 5 });
    }
    return out;
}

/**
 * Compares `current` with `previous`, figure by figure (matched by model, threads and
 * K/V pair): ours tokens/s and the ratios (higher is better), TTFT, event-loop lag p99
 * (with a 1 ms floor), peak RSS and its ratio, and load time (5 ms floor) (lower is
 * better). A figure more than `thresholdPercent` worse than before is a regression.
 */
export function compareReports(previous: BenchReport, current: BenchReport, thresholdPercent = 5): Comparison {
    return compareFigures(figures(previous), figures(current), thresholdPercent);
}

/** Compares two reports' figures by name (see {@link compareReports}); the parallel report's go through it too. */
export function compareFigures(previousFigures: readonly Figure[], currentFigures: readonly Figure[], thresholdPercent = 5): Comparison {
    const before = new Map(previousFigures.map((x) => [x.name, x]));
    const metrics: ComparedMetric[] = [];
    const unmatched: string[] = [];
    for (const x of currentFigures) {
        const p = before.get(x.name);
        if (x.value === null || !Number.isFinite(x.value)) continue;
        if (!p || p.value === null || !Number.isFinite(p.value)) {
            unmatched.push(x.name);
            continue;
        }
        const delta = x.higherIsBetter ? x.value - p.value : p.value - x.value;
        const change = p.value === 0 ? (delta === 0 ? 0 : delta > 0 ? Infinity : -Infinity) : delta / Math.abs(p.value);
        const regression = change < -thresholdPercent / 100 && -delta > (x.floor ?? 0);
        metrics.push({ name: x.name, previous: p.value, current: x.value, change, regression });
    }
    return { metrics, regressions: metrics.filter((m) => m.regression), unmatched };
}

/** The comparison as text: every figure with its change, regressions marked. */
export function formatComparison(c: Comparison, thresholdPercent = 5): string {
    const rows = c.metrics.map((m) => [m.name, f(m.previous, 3), f(m.current, 3), `${m.change >= 0 ? '+' : ''}${(m.change * 100).toFixed(1)}%`, m.regression ? 'REGRESSION' : '']);
    const text = table(['figure', 'previous', 'current', 'change', ''], rows, 1);
    const summary = c.regressions.length === 0
        ? `no regression over ${thresholdPercent}% (${c.metrics.length} figures compared)`
        : `${c.regressions.length} regression(s) over ${thresholdPercent}%: ${c.regressions.map((m) => m.name).join('; ')}`;
    return `${text}\n${summary}${c.unmatched.length > 0 ? `\nnot in the previous run: ${c.unmatched.join('; ')}` : ''}\n`;
}
