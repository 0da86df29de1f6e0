/** `llama-kv bench --embed`: the flags of the embedding benchmark, checked, and the run. */
import { existsSync } from 'node:fs';
import type { EmbeddingPooling } from '../../options/embedding-options.js';
import { UsageError, type ParsedFlags } from '../flags/args.js';
import { findLlamaEmbedding } from './embed-llama.js';
import type { EmbedBenchReport } from './embed-report.js';
import { runEmbedBench } from './embed-run.js';

/** Flags of `llama-kv bench` that the embedding benchmark has no use for, by key, with the name to say. */
const NOT_EMBED: Readonly<Record<string, string>> = {
    parallel: '-npl',
    kv: '--kv',
    cacheTypeK: '-ctk',
    cacheTypeV: '-ctv',
    flashAttention: '-fa',
    promptTokens: '-p',
    generatedTokens: '-n',
    ubatchSize: '-ub',
    llamaBench: '--llama-bench',
    batchedBench: '--batched-bench',
    reference: '--reference',
    noMemory: '--no-memory',
    noLoad: '--no-load',
    compare: '--compare',
    current: '--current',
    threshold: '--threshold',
};

/** Flags only the embedding benchmark takes, by key, with the name to say. */
export const EMBED_ONLY: Readonly<Record<string, string>> = { llamaEmbedding: '--llama-embedding', contextSize: '-c', texts: '--texts', pooling: '--pooling' };

/** The settings of `--quick`: a smoke run of the whole pipeline (tests), no figure to keep. */
const QUICK = { texts: 16, tokenRange: [8, 32] as [number, number], contextSize: 256, batchSize: 256, reps: 1 };

/**
 * Runs the embedding benchmark from the parsed flags of `llama-kv bench`; returns the report
 * (printed by the caller). `say` gets notes, `progress` the step under way.
 */
export async function benchEmbed(
    flags: ParsedFlags,
    model: string,
    threads: number[],
    positive: (flag: string, n: number | undefined) => number | undefined,
    extra: { notes?: string[]; say: (line: string) => void; progress: (line: string) => void },
): Promise<EmbedBenchReport> {
    for (const [key, name] of Object.entries(NOT_EMBED)) {
        if (flags[key] !== undefined) throw new UsageError(`${name} is not used by the embedding benchmark (--embed)`);
    }
    const quick = flags.quick === true;
    const oursOnly = flags.oursOnly === true;
    const llamaEmbedding = oursOnly ? null : ((flags.llamaEmbedding as string | undefined) ?? findLlamaEmbedding());
    if (llamaEmbedding !== null && !existsSync(llamaEmbedding)) throw new UsageError(`--llama-embedding: ${llamaEmbedding} does not exist`);
    if (llamaEmbedding === null && !oursOnly) extra.say('no llama-embedding found (build it with `npm run bench -- --embed` in a clone, or pass --llama-embedding): measuring llama-kv only');
    const contextSize = positive('-c', flags.contextSize as number | undefined) ?? (quick ? QUICK.contextSize : 512);
    const batchSize = positive('-b', flags.batchSize as number | undefined) ?? (quick ? QUICK.batchSize : 512);
    const report = await runEmbedBench({
        model,
        threads,
        texts: positive('--texts', flags.texts as number | undefined) ?? (quick ? QUICK.texts : 256),
        tokenRange: quick ? QUICK.tokenRange : [64, Math.min(256, batchSize)],
        contextSize,
        batchSize,
        pooling: flags.pooling as EmbeddingPooling | undefined,
        reps: positive('-r', flags.reps as number | undefined) ?? (quick ? QUICK.reps : 5),
        llamaEmbedding,
        notes: extra.notes,
        onProgress: extra.progress,
    });
    return report;
}
