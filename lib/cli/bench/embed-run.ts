/**
 * The embedding benchmark (`llama-kv bench --embed`, `npm run bench -- --embed`): texts/s and
 * tokens/s of `embedBatch()` against llama.cpp's llama-embedding on the same texts and
 * settings, and of one `embed()` call per text; interleaved, medians, the ratio.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { getBackends } from '../../backends/backends.js';
import { LlamaModel } from '../../model/model.js';
import '../../embedding/embedding-context.js'; // adds model.createEmbeddingContext()
import type { EmbeddingPooling } from '../../options/embedding-options.js';
import { startCpuMeter } from './cpu-meter.js';
import { benchTexts, type BenchTexts } from './embed-texts.js';
import { runLlamaEmbedding, type LlamaEmbeddingArgs } from './embed-llama.js';
import type { EmbedBenchReport, EmbedRow, EmbedSide } from './embed-report.js';
import { BENCH_REPORT_VERSION } from './report.js';
import { machineFacts, ownVersion, pinnedCommit } from './run.js';
import { ratio, series } from './stats.js';

/** Options of {@link runEmbedBench}. */
export interface EmbedBenchOptions {
    /** The GGUF embedding model. */
    model: string;
    /** Thread counts, one row each. Defaults to `[2]`. */
    threads?: number[];
    /** Number of texts. Defaults to `256`. */
    texts?: number;
    /** Tokens per text, least and most. Defaults to `[64, 256]`. */
    tokenRange?: [number, number];
    /** Context size, both sides (`-c`). Defaults to `512`. */
    contextSize?: number;
    /** Batch size, both sides (`-b`; `-ub` too: an encoder's batch is one micro-batch). Defaults to `512`. */
    batchSize?: number;
    /** Pooling of ours, passed to llama-embedding as it resolves. Defaults to `'model'`. */
    pooling?: EmbeddingPooling;
    /** Interleaved repetitions. Defaults to `5`. */
    reps?: number;
    /** The llama-embedding binary; null runs our side only. Defaults to `null`. */
    llamaEmbedding?: string | null;
    /** The texts' PRNG seed. Defaults to `1`. */
    seed?: number;
    /** Notes to carry into the report. Defaults to none. */
    notes?: string[];
    /** Called with a line of progress now and then. Defaults to none. */
    onProgress?: (message: string) => void;
}

/** The texts are joined by this in llama-embedding's file (`--embd-separator`); none of them holds it. */
const SEPARATOR = '<#sep#>';
/** llama.cpp's most sequences (LLAMA_MAX_SEQ): what llama-embedding's -np 1 context holds. */
const LLAMA_MAX_SEQ = 256;
/** llama-embedding's --embd-normalize for the default 'l2' of ours. */
const NORMALIZE = 2;

function side(ms: number[], texts: number, tokens: number): EmbedSide {
    return { ms: series(ms), textsPerSecond: series(ms.map((m) => (texts * 1000) / m)), tokensPerSecond: series(ms.map((m) => (tokens * 1000) / m)) };
}

interface RowInput {
    model: LlamaModel;
    path: string;
    threads: number;
    set: BenchTexts;
    file: string;
    options: Required<Pick<EmbedBenchOptions, 'contextSize' | 'batchSize' | 'pooling' | 'reps'>> & { llamaEmbedding: string | null };
}

async function measureRow({ model, path, threads, set, file, options }: RowInput, progress: (line: string) => void, facts: { cpuBackend: string | null }): Promise<EmbedRow> {
    const label = `${basename(path)} t=${threads}`;
    const meter = startCpuMeter();
    const ctx = model.createEmbeddingContext({ contextSize: options.contextSize, batchSize: options.batchSize, pooling: options.pooling, normalize: NORMALIZE, threads });
    try {
        const c = ctx.config;
        if (c.pooling === 'rank') throw new Error(`${label}: pooling rank is a reranker's`);
        const total = set.tokens.reduce((a, b) => a + b, 0);
        const notes: string[] = [];
        // Warm-up (llama-embedding decodes one small batch first): the weights paged in, the buffers used once.
        progress(`${label}: warm-up`);
        await ctx.embedBatch(set.texts.slice(0, 8));
        const ours: number[] = [];
        const single: number[] = [];
        const theirs = { ms: [] as number[], promptEval: [] as number[], process: [] as number[], decodes: 0 };
        const repContention: number[] = [];
        const args: LlamaEmbeddingArgs = {
            model: path, file, separator: SEPARATOR, contextSize: options.contextSize, batchSize: c.batchSize, ubatchSize: c.ubatchSize, threads, pooling: c.pooling, normalize: NORMALIZE,
        };
        for (let rep = 0; rep < options.reps; rep++) {
            const repMeter = startCpuMeter();
            progress(`${label}: repetition ${rep + 1}/${options.reps}: ours (embedBatch)`);
            let t0 = performance.now();
            const vectors = await ctx.embedBatch(set.texts);
            ours.push(performance.now() - t0);
            if (vectors.length !== set.texts.length) throw new Error(`${label}: embedBatch returned ${vectors.length} embeddings for ${set.texts.length} texts`);
            if (options.llamaEmbedding !== null) {
                progress(`${label}: repetition ${rep + 1}/${options.reps}: llama-embedding`);
                const r = await runLlamaEmbedding(options.llamaEmbedding, args);
                if (r.texts !== set.texts.length || r.tokens !== total) {
                    throw new Error(`${label}: llama-embedding embedded ${r.texts} texts of ${r.tokens} tokens, ours ${set.texts.length} of ${total}`);
                }
                const got = r.context;
                if ((got.contextSize !== null && got.contextSize !== c.contextSize) || (got.batchSize !== null && got.batchSize !== c.batchSize) || (got.ubatchSize !== null && got.ubatchSize !== c.ubatchSize)) {
                    throw new Error(`${label}: llama-embedding's context is -c ${got.contextSize} -b ${got.batchSize} -ub ${got.ubatchSize}, ours ${c.contextSize} ${c.batchSize} ${c.ubatchSize}`);
                }
                theirs.ms.push(r.totalMs);
                theirs.promptEval.push(r.promptEvalMs);
                theirs.process.push(r.wallMs);
                theirs.decodes = r.decodes;
                facts.cpuBackend ??= r.cpuBackend;
            }
            progress(`${label}: repetition ${rep + 1}/${options.reps}: ours, one embed() per text`);
            t0 = performance.now();
            for (const text of set.texts) await ctx.embed(text);
            single.push(performance.now() - t0);
            const taken = repMeter();
            if (taken !== null) repContention.push(taken.otherPercent);
        }
        const n = set.texts.length;
        const a = side(ours, n, total);
        const b = options.llamaEmbedding === null ? null : { ...side(theirs.ms, n, total), promptEvalMs: series(theirs.promptEval), processMs: series(theirs.process), decodes: theirs.decodes };
        const one = side(single, n, total);
        return {
            model: basename(path),
            threads,
            ours: a,
            llamaCpp: b,
            oursSingle: one,
            ratio: ratio(a.textsPerSecond.median, b?.textsPerSecond.median),
            batchingGain: ratio(a.textsPerSecond.median, one.textsPerSecond.median),
            contention: meter(),
            repetitionContention: repContention.length === options.reps ? repContention : null,
            notes,
        };
    } finally {
        ctx.dispose();
    }
}

/** Runs the embedding benchmark and returns the report (nothing is printed: progress goes to `onProgress`). */
export async function runEmbedBench(options: EmbedBenchOptions): Promise<EmbedBenchReport> {
    const started = performance.now();
    const runMeter = startCpuMeter();
    const threadList = options.threads ?? [2];
    const count = options.texts ?? 256;
    const tokenRange = options.tokenRange ?? [64, 256];
    const contextSize = options.contextSize ?? 512;
    const batchSize = options.batchSize ?? 512;
    const pooling = options.pooling ?? 'model';
    const reps = options.reps ?? 5;
    const seed = options.seed ?? 1;
    const llamaEmbedding = options.llamaEmbedding ?? null;
    const progress = options.onProgress ?? (() => undefined);
    for (const [name, n] of [['reps', reps], ['texts', count], ...threadList.map((t) => ['threads', t] as const)] as const) {
        if (!Number.isInteger(n) || n < 1) throw new Error(`Expected a positive integer for ${name} but received ${n}`);
    }
    if (tokenRange[1] > batchSize) throw new Error(`Expected texts of at most batchSize (${batchSize}) tokens but received a token range up to ${tokenRange[1]}`);
    if (llamaEmbedding !== null && batchSize < LLAMA_MAX_SEQ) {
        // llama-embedding -np 1 makes a context of 256 sequences, and llama.cpp asserts n_seq_max <= n_batch (output_reserve).
        throw new Error(`Expected batchSize >= ${LLAMA_MAX_SEQ} against llama-embedding (its -np 1 context holds ${LLAMA_MAX_SEQ} sequences, at most one per batch token) but received ${batchSize}`);
    }

    const cpu = getBackends().find((b) => b.kind === 'cpu' && b.available);
    const model = await LlamaModel.load({ path: options.model });
    const dir = mkdtempSync(join(tmpdir(), 'llama-kv-bench-embed-'));
    try {
        const probe = model.createEmbeddingContext({ contextSize, batchSize, pooling, threads: threadList[0] });
        let set: BenchTexts;
        let config;
        try {
            set = benchTexts((text) => probe.tokenize(text), count, tokenRange[0], tokenRange[1], seed);
            config = probe.config;
        } finally {
            probe.dispose();
        }
        const file = join(dir, 'texts.txt');
        writeFileSync(file, set.texts.join(SEPARATOR));
        const facts = { cpuBackend: null as string | null };
        const rows: EmbedRow[] = [];
        for (const threads of threadList) {
            rows.push(await measureRow({ model, path: options.model, threads, set, file, options: { contextSize, batchSize, pooling, reps, llamaEmbedding } }, progress, facts));
        }
        const notes = [...(options.notes ?? [])];
        if (llamaEmbedding !== null && facts.cpuBackend !== null && cpu?.path && basename(facts.cpuBackend) !== basename(cpu.path)) {
            notes.push(`the two sides loaded different CPU backend variants: ours ${basename(cpu.path)}, llama-embedding ${basename(facts.cpuBackend)}`);
        }
        return {
            version: BENCH_REPORT_VERSION,
            mode: 'embed',
            createdAt: new Date().toISOString(),
            machine: machineFacts(),
            llamaCpp: { llamaEmbedding, pinnedCommit: pinnedCommit(), cpuBackend: facts.cpuBackend },
            ours: { version: ownVersion(), cpuBackend: cpu?.path ?? null, cpuVariant: cpu?.variant ?? null },
            settings: {
                texts: count,
                tokens: { total: set.tokens.reduce((a, b) => a + b, 0), min: Math.min(...set.tokens), max: Math.max(...set.tokens), counts: set.tokens },
                seed,
                tokenRange,
                contextSize: config.contextSize,
                batchSize: config.batchSize,
                ubatchSize: config.ubatchSize,
                parallel: config.parallel,
                pooling: config.pooling,
                normalize: NORMALIZE,
                reps,
                threads: threadList,
            },
            rows,
            notes,
            contention: runMeter(),
            durationMs: performance.now() - started,
        };
    } finally {
        rmSync(dir, { recursive: true, force: true });
        model.dispose();
    }
}
