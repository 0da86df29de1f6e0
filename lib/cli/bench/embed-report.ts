/** The embedding benchmark's report (`llama-kv bench --embed`): its JSON shape and the text on stdout. */
import type { CpuContention } from './cpu-meter.js';
import type { BENCH_REPORT_VERSION, BenchReport } from './report.js';
import type { Series } from './stats.js';
import { textTable } from '../format/table.js';

/** The target of ours / llama-embedding texts/s. */
export const EMBED_RATIO_TARGET = 0.95;

/** One side's figures over the repetitions: each a {@link Series} of one sample per repetition. */
export interface EmbedSide {
    /** Milliseconds to embed all the texts. */
    ms: Series;
    textsPerSecond: Series;
    tokensPerSecond: Series;
}

/** llama-embedding's figures: {@link EmbedSide} from its total time, and what its log says beside it. */
export interface LlamaEmbeddingSide extends EmbedSide {
    /** Its prompt eval time (the decodes alone), ms. */
    promptEvalMs: Series;
    /** The whole process (model load included), ms. */
    processMs: Series;
    /** llama_decode calls of one run (its batch_decode lines). */
    decodes: number;
}

/** One thread count. */
export interface EmbedRow {
    model: string;
    threads: number;
    /** Ours: one `embedBatch()` of every text. */
    ours: EmbedSide;
    /** llama-embedding on the same texts and settings; null without it. */
    llamaCpp: LlamaEmbeddingSide | null;
    /** Ours: one `embed()` call per text, one after another. */
    oursSingle: EmbedSide;
    /** Ours / llama-embedding, texts/s medians (the same texts: tokens/s gives the same ratio). */
    ratio: number | null;
    /** Ours embedBatch / ours one text per call, texts/s medians. */
    batchingGain: number | null;
    /** CPU time other processes took while this row was measured. */
    contention: CpuContention | null;
    /** CPU time others took in each repetition (null where not measurable). */
    repetitionContention: number[] | null;
    notes: string[];
}

/** The settings both sides ran with. */
export interface EmbedSettings {
    texts: number;
    /** Tokens of each text as embedded (special tokens included): their sum, least and most, and every count in order. */
    tokens: { total: number; min: number; max: number; counts: number[] };
    /** What the texts were drawn from: the word list's PRNG seed and the token range asked for. */
    seed: number;
    tokenRange: [number, number];
    contextSize: number;
    batchSize: number;
    ubatchSize: number;
    /** Ours: texts per decode at most (llama-embedding: -np 1, its unified mode of up to 256). */
    parallel: number;
    pooling: string;
    normalize: number;
    reps: number;
    threads: number[];
}

/** Everything the embedding benchmark measures, as written to the JSON file. */
export interface EmbedBenchReport {
    version: typeof BENCH_REPORT_VERSION;
    /** Tells this report from the others. */
    mode: 'embed';
    createdAt: string;
    machine: BenchReport['machine'];
    llamaCpp: { llamaEmbedding: string | null; pinnedCommit: string | null; cpuBackend: string | null };
    ours: { version: string; cpuBackend: string | null; cpuVariant: string | null };
    settings: EmbedSettings;
    rows: EmbedRow[];
    notes: string[];
    contention: CpuContention | null;
    durationMs: number;
}

/** Whether a parsed report is an embedding one. */
export function isEmbedReport(r: { mode?: unknown }): r is EmbedBenchReport {
    return r.mode === 'embed';
}

const f = (x: number | null | undefined, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));

/** The report as text: texts/s and tokens/s of both sides and of one text per call, the ratio and how the times were taken. */
export function formatEmbedReport(report: EmbedBenchReport): string {
    const s = report.settings;
    const rows = report.rows.map((r) => [
        r.model,
        String(r.threads),
        f(r.ours.textsPerSecond.median),
        f(r.ours.tokensPerSecond.median),
        f(r.llamaCpp?.textsPerSecond.median),
        f(r.llamaCpp?.tokensPerSecond.median),
        f(r.ratio, 3) + (r.ratio !== null && r.ratio < EMBED_RATIO_TARGET ? ' *' : ''),
        f(r.oursSingle.textsPerSecond.median),
        f(r.oursSingle.tokensPerSecond.median),
        r.batchingGain === null ? '-' : `x${f(r.batchingGain, 2)}`,
    ]);
    const out = [
        textTable(
            ['model', 'threads', 'ours texts/s', 'ours tokens/s', 'llama.cpp texts/s', 'llama.cpp tokens/s', 'ratio', 'one per call texts/s', 'one per call tokens/s', 'batching gain'],
            rows,
            { left: 2, markdown: true },
        ),
        `${s.texts} texts of ${s.tokens.min}-${s.tokens.max} tokens (${s.tokens.total} in all, special tokens included); -c ${s.contextSize} -b ${s.batchSize} -ub ${s.ubatchSize}, ` +
            `pooling ${s.pooling}, --embd-normalize ${s.normalize}; medians of ${s.reps} interleaved repetitions (ours, llama-embedding, ours one per call).`,
        `ours: embedBatch() of all texts (parallel ${s.parallel}), wall time of the call; one per call: embed() of each text in turn. llama-embedding: its total time ` +
            '(llama_perf_context_print: after its warm-up, to the end of the last batch; tokenization included, the model load not; no output). ' +
            `ratio = ours / llama.cpp texts/s (target >= ${EMBED_RATIO_TARGET}, * below); batching gain = embedBatch / one per call.`,
    ];
    const extra = report.rows.filter((r) => r.llamaCpp !== null);
    if (extra.length > 0) {
        out.push(
            extra
                .map((r) => `t=${r.threads}: llama-embedding decodes alone (prompt eval time) ${f(r.llamaCpp!.promptEvalMs.median, 0)} ms of its total ${f(r.llamaCpp!.ms.median, 0)} ms, ` +
                    `${r.llamaCpp!.decodes} decodes; its process ${f(r.llamaCpp!.processMs.median, 0)} ms with the model load; ours ${f(r.ours.ms.median, 0)} ms`)
                .join('\n'),
        );
    }
    for (const r of report.rows) {
        if (r.contention !== null && r.contention.otherPercent >= 10) out.push(`t=${r.threads}: other processes took ${r.contention.otherPercent.toFixed(0)}% of a CPU while it ran: its figures are not reliable`);
    }
    const notes = [...new Set([...report.rows.flatMap((r) => r.notes), ...report.notes])];
    if (notes.length > 0) out.push(['notes:', ...notes.map((n) => `- ${n}`)].join('\n'));
    return out.join('\n') + '\n';
}
