/** What calibrate() returns and compareCalibration() reads: the report, its results and the comparison with a saved one. */
import type { KvCacheType } from '../options/kv-cache.js';
import type { KlSummary } from './stats.js';

/** A K/V cache configuration to calibrate. */
export interface CalibrationConfig {
    cacheTypeK: KvCacheType;
    cacheTypeV: KvCacheType;
}

/** Prompts at least this long (in tokens) are also scored by position: first and last quarter. */
export const LONG_PROMPT_TOKENS = 256;

/** The `version` of the reports {@link calibrate} writes. */
export const CALIBRATION_REPORT_VERSION = 1;

/** Where {@link calibrate} is. */
export interface CalibrationProgress {
    /** e.g. 'q8_0/q4_0'. */
    configuration: string;
    prompt: string;
    /** Steps done (one per configuration and prompt) and in all. */
    done: number;
    total: number;
}

/** Quality of one position bucket. */
export interface BucketScore {
    klMean: number;
    /** Fraction of positions (0..1) whose most likely token is the reference's. */
    top1Agreement: number;
    positions: number;
}

/** What one configuration scored. */
export interface CalibrationResult {
    cacheTypeK: KvCacheType;
    cacheTypeV: KvCacheType;
    /** Flash attention as llama.cpp resolved it. */
    flashAttention: 'on' | 'off';
    /** KL(reference ‖ this) of the next-token distributions over every scored position, in nats. */
    kl: KlSummary;
    /** Fraction of positions (0..1) whose most likely next token is the reference's. */
    top1Agreement: number;
    /** Perplexity of the prompts' own next tokens under this configuration. */
    perplexity: number;
    /** perplexity / reference perplexity - 1 (0.01 = 1% higher). */
    perplexityChange: number;
    /** K and V cache bytes, from the live context's memory report. */
    kvBytes: number;
    /** Greedy generation speed (tokens/s), or null when `generationTokens` is 0. */
    generationTokensPerSecond: number | null;
    /** First and last quarter of the long prompts' positions (>= LONG_PROMPT_TOKENS tokens), or null when there is none. */
    byPosition: { first: BucketScore; last: BucketScore } | null;
    /** Per prompt, in prompt order. */
    byPrompt: { name: string; klMean: number; top1Agreement: number }[];
}

/** The report {@link calibrate} returns; `JSON.stringify` writes it as saved and read back by `--baseline`. */
export interface CalibrationReport {
    version: number;
    /** The model file. */
    model: string;
    /** `general.name` of the model, or ''. */
    modelName: string;
    contextSize: number;
    threads: number;
    /** llama.cpp's version string. */
    llamaCpp: string;
    createdAt: string;
    reference: CalibrationConfig & { perplexity: number; kvBytes: number };
    prompts: { name: string; category: string | null; tokens: number; truncated: boolean }[];
    /** Positions scored per configuration (each prompt's tokens minus one). */
    positions: number;
    results: CalibrationResult[];
    /** Against `baseline`, when one was given. */
    comparison?: CalibrationComparison;
}

/** 'q8_0/q4_0'. */
export function configLabel(c: CalibrationConfig): string {
    return `${c.cacheTypeK}/${c.cacheTypeV}`;
}

/** A configuration whose mean KL rose by more than the threshold. */
export interface CalibrationRegression {
    /** e.g. 'q8_0/q4_0'. */
    configuration: string;
    savedKlMean: number;
    klMean: number;
    /** klMean - savedKlMean, in nats. */
    increase: number;
}

/** The outcome of {@link compareCalibration}. */
export interface CalibrationComparison {
    /** The threshold used: the largest mean-KL increase (nats) that is not a regression. */
    maxKlIncrease: number;
    regressions: CalibrationRegression[];
    /** Configurations of the saved report that this run did not measure. */
    missing: string[];
    /** Differences that make the comparison weaker: another model file, context size or prompt set. */
    warnings: string[];
}
