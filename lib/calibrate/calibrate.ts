/**
 * calibrate(): what each K/V cache setting costs in quality on a model, measured
 * against a reference setting (f16/f16) on the same token sequences.
 */
import { binding } from '../native/binding.js';
import { LlamaContext } from '../context/context.js';
import { LlamaAbortError, LlamaConfigError } from '../errors.js';
import { KV_PRESETS, type FlashAttention, type KvPreset } from '../options/kv-cache.js';
import { LlamaModel } from '../model/model.js';
import { calibrateOptionsSchema } from '../options/calibrate-options.js';
import { defaults } from '../options/defaults.js';
import { userCallback } from '../logger.js';
import { parseOptions } from '../options/validate.js';
import { compareCalibration } from './compare.js';
import { CALIBRATION_REPORT_VERSION, configLabel, LONG_PROMPT_TOKENS, type BucketScore, type CalibrationConfig, type CalibrationProgress, type CalibrationReport, type CalibrationResult } from './report.js';
import { builtInPrompts, type CalibrationPrompt } from './prompts.js';
import { agreement, klSummary, mean, perplexity, quarters } from './stats.js';

/** Options of {@link calibrate}. */
export interface CalibrateOptions {
    /** The model to calibrate. */
    model: LlamaModel;
    /** The prompts to score (see {@link readPromptFile}). Defaults to the built-in set: code, long-context retrieval, reasoning, creative. */
    prompts?: CalibrationPrompt[];
    /** The configurations to compare: preset names or K/V pairs. Defaults to `['conservative', 'balanced', 'aggressive', 'extreme']` (f16/f16, q8_0/q8_0, q8_0/q4_0, q4_0/q4_0). */
    configurations?: (KvPreset | CalibrationConfig)[];
    /** The configuration every other one is compared with. Defaults to `'conservative'` (f16/f16). */
    reference?: KvPreset | CalibrationConfig;
    /** Context size of every context; longer prompts are cut to it. Defaults to `2048`, or the model's trained context if smaller. */
    contextSize?: number;
    /** Threads of each context. Defaults to the number of CPUs. */
    threads?: number;
    /** Flash attention for every context (a quantized V cache needs it on; 'auto' turns it on). Defaults to `'auto'`. */
    flashAttention?: FlashAttention | boolean;
    /** Tokens generated (greedy) per configuration to measure generation speed; 0 skips it. Defaults to `32`. */
    generationTokens?: number;
    /** A saved report to check this run against: the result then has `comparison`. Defaults to none. */
    baseline?: CalibrationReport;
    /** With `baseline`: the largest increase of a configuration's mean KL (nats) that is not a regression. Defaults to `0`. */
    maxKlIncrease?: number;
    /** Called after each scored prompt. Defaults to none. */
    onProgress?: (progress: CalibrationProgress) => void;
    /** Aborts the calibration: it rejects with a LlamaAbortError. Defaults to none. */
    signal?: AbortSignal;
}

function resolveConfig(c: KvPreset | CalibrationConfig): CalibrationConfig {
    return typeof c === 'string' ? { ...KV_PRESETS[c] } : { cacheTypeK: c.cacheTypeK, cacheTypeV: c.cacheTypeV };
}

interface Accumulated {
    kl: number[];
    agree: boolean[];
    logProbs: number[];
    refLogProbs: number[];
    longFirst: { kl: number[]; agree: boolean[] };
    longLast: { kl: number[]; agree: boolean[] };
    byPrompt: CalibrationResult['byPrompt'];
}

function bucket(b: { kl: number[]; agree: boolean[] }): BucketScore {
    return { klMean: mean(b.kl), top1Agreement: agreement(b.agree), positions: b.kl.length };
}

/**
 * Scores the prompts under each K/V configuration against the reference configuration
 * (f16/f16 by default), on the same tokens: for every position, the KL divergence of
 * the next-token distribution from the reference's, whether the most likely token
 * agrees, and the log-probability of the actual next token (perplexity). Also reads
 * each configuration's KV bytes from its live context and times a short greedy
 * generation. Runs one reference and one candidate context at a time.
 *
 * @example
 * const report = await calibrate({ model, contextSize: 2048 });
 * for (const r of report.results) console.log(r.cacheTypeK, r.cacheTypeV, r.kl.mean, r.top1Agreement);
 */
export async function calibrate(options: CalibrateOptions): Promise<CalibrationReport> {
    const opts = parseOptions(calibrateOptionsSchema, options, 'calibrate()');
    const onProgress = opts.onProgress ? userCallback(opts.onProgress as NonNullable<CalibrateOptions['onProgress']>, 'calibrate() onProgress') : undefined;
    const model = opts.model;
    if (!(model instanceof LlamaModel)) throw new LlamaConfigError('calibrate(): expected a LlamaModel for model', 'INVALID_ARGUMENT', ['model']);
    const signal = opts.signal;
    const checkAbort = () => {
        if (signal?.aborted) throw new LlamaAbortError();
    };
    const contextSize = opts.contextSize ?? Math.min(defaults.calibrate.contextSize, model.metadata.trainedContextSize || Infinity);
    const configs = (opts.configurations ?? defaults.calibrate.configurations).map(resolveConfig);
    const reference = resolveConfig(opts.reference ?? defaults.calibrate.reference);
    const flashAttention = opts.flashAttention ?? defaults.calibrate.flashAttention;
    const generationTokens = opts.generationTokens ?? defaults.calibrate.generationTokens;
    const common = { model, contextSize, flashAttention, threads: opts.threads, seed: 0 };

    const prompts = (opts.prompts ?? builtInPrompts(contextSize)).map((p) => {
        const all = model.tokenize(p.text);
        if (all.length < 2) {
            throw new LlamaConfigError(`calibrate(): prompt "${p.name}" has ${all.length} token(s); at least 2 are needed to score one`, 'INVALID_ARGUMENT', ['prompts']);
        }
        return { name: p.name, category: p.category ?? null, tokens: all.length > contextSize ? all.slice(0, contextSize) : all, truncated: all.length > contextSize };
    });
    const total = configs.length * prompts.length;
    let done = 0;

    const referenceCtx = new LlamaContext({ ...common, ...reference });
    try {
        const referenceKvBytes = referenceCtx.memoryReport().kv.bytes;
        let referencePerplexity = NaN;
        const results: CalibrationResult[] = [];
        for (const config of configs) {
            checkAbort();
            const ctx = new LlamaContext({ ...common, ...config });
            try {
                const acc: Accumulated = { kl: [], agree: [], logProbs: [], refLogProbs: [], longFirst: { kl: [], agree: [] }, longLast: { kl: [], agree: [] }, byPrompt: [] };
                for (const prompt of prompts) {
                    const scores = await ctx.scoreTokens(prompt.tokens, { reference: referenceCtx, signal });
                    const ref = scores.reference!;
                    const kl = Array.from(ref.kl);
                    const agree = Array.from(scores.topTokens, (t, i) => t === ref.topTokens[i]);
                    acc.kl.push(...kl);
                    acc.agree.push(...agree);
                    acc.logProbs.push(...scores.logProbs);
                    acc.refLogProbs.push(...ref.logProbs);
                    acc.byPrompt.push({ name: prompt.name, klMean: mean(kl), top1Agreement: agreement(agree) });
                    if (prompt.tokens.length >= LONG_PROMPT_TOKENS) {
                        const k = quarters(kl);
                        const a = quarters(agree);
                        acc.longFirst.kl.push(...k.first);
                        acc.longFirst.agree.push(...a.first);
                        acc.longLast.kl.push(...k.last);
                        acc.longLast.agree.push(...a.last);
                    }
                    onProgress?.({ configuration: configLabel(config), prompt: prompt.name, done: ++done, total });
                }
                if (Number.isNaN(referencePerplexity)) referencePerplexity = perplexity(acc.refLogProbs);
                const ppl = perplexity(acc.logProbs);
                results.push({
                    ...config,
                    flashAttention: ctx.config.flashAttention,
                    kl: klSummary(acc.kl),
                    top1Agreement: agreement(acc.agree),
                    perplexity: ppl,
                    perplexityChange: ppl / referencePerplexity - 1,
                    kvBytes: ctx.memoryReport().kv.bytes,
                    generationTokensPerSecond: generationTokens > 0 ? await generationSpeed(ctx, prompts[0].tokens, generationTokens, signal) : null,
                    byPosition: acc.longFirst.kl.length > 0 ? { first: bucket(acc.longFirst), last: bucket(acc.longLast) } : null,
                    byPrompt: acc.byPrompt,
                });
            } finally {
                ctx.dispose();
            }
        }
        const report: CalibrationReport = {
            version: CALIBRATION_REPORT_VERSION,
            model: model.path,
            modelName: model.metadata.name,
            contextSize: referenceCtx.config.contextSize,
            threads: referenceCtx.config.threads,
            llamaCpp: binding().llamaVersion,
            createdAt: new Date().toISOString(),
            reference: { ...reference, perplexity: referencePerplexity, kvBytes: referenceKvBytes },
            prompts: prompts.map((p) => ({ name: p.name, category: p.category, tokens: p.tokens.length, truncated: p.truncated })),
            positions: prompts.reduce((n, p) => n + p.tokens.length - 1, 0),
            results,
        };
        if (opts.baseline) report.comparison = compareCalibration(report, opts.baseline as CalibrationReport, opts.maxKlIncrease ?? defaults.calibrate.maxKlIncrease);
        return report;
    } finally {
        referenceCtx.dispose();
    }
}

/**
 * Greedy generation from the start of the first prompt, tokens/s as the `run` command
 * reports it: the median of three runs (the prompt is cached after the first).
 */
async function generationSpeed(ctx: LlamaContext, tokens: Int32Array, maxTokens: number, signal: AbortSignal | undefined): Promise<number> {
    const prompt = tokens.slice(0, Math.min(tokens.length, 64, Math.max(1, ctx.config.contextSize - maxTokens)));
    const rates: number[] = [];
    for (let i = 0; i < 3; i++) {
        const { timings, finishReason } = await ctx.complete(prompt, { maxTokens, temperature: 0, signal });
        if (finishReason === 'abort') throw new LlamaAbortError();
        rates.push(timings.generationMs > 0 ? (timings.generatedTokens * 1000) / timings.generationMs : 0);
    }
    return rates.sort((a, b) => a - b)[1];
}
