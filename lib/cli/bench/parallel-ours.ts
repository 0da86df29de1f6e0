/**
 * llama-kv's side of the parallel benchmark: N concurrent `generate()` calls on one context
 * of N sequences, timed in JS from the token events, and split into a prompt phase and a
 * generation phase as llama-batched-bench splits its T_PP and T_TG.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { LlamaContext } from '../../context/context.js';
import type { LlamaModel } from '../../model/model.js';
import type { BenchContextSettings, EventLoopLag } from './ours.js';
import { benchContext, tokenSource } from './ours.js';
import { spansOverlap, splitPhases, type ParallelPhases, type TokenEvent } from './phases.js';

/**
 * The engine's cumulative counters (`ctx.engineStats`, from the continuous-batching engine):
 * llama_decode calls it made, tokens it decoded, milliseconds inside llama_decode and of
 * whole steps (decode, sampling and delivery).
 */
export interface EngineStats {
    steps: number;
    tokens: number;
    decodeMs: number;
    stepMs: number;
}

/** The context's engine counters (`ctx.engineStats`). */
export function readEngineStats(ctx: LlamaContext): EngineStats | null {
    return ctx.engineStats;
}

/** `after - before`, field by field (null when either is null). */
export function engineStatsDelta(before: EngineStats | null, after: EngineStats | null): EngineStats | null {
    if (before === null || after === null) return null;
    return { steps: after.steps - before.steps, tokens: after.tokens - before.tokens, decodeMs: after.decodeMs - before.decodeMs, stepMs: after.stepMs - before.stepMs };
}

/**
 * A context for `parallel` sequences of `perSequence` cells each, as llama-batched-bench's
 * with `-c contextSize -npl parallel -no-kvu`: one KV stream per sequence (kvUnified false,
 * llama.cpp's default), the same threads, K/V types, flash attention and batch sizes.
 */
export function parallelContext(model: LlamaModel, settings: BenchContextSettings, parallel: number, contextSize: number): LlamaContext {
    return benchContext(model, settings, contextSize, parallel);
}

/**
 * Random prompts of `n` tokens over the vocabulary (as llama-batched-bench's), each with a
 * first token no earlier prompt of this source had: whatever sequence a prompt lands on, no
 * prefix of it is in that sequence's cache, so every prompt is decoded in full.
 */
export function distinctPromptSource(seed: number, vocabSize: number, n: number): () => number[] {
    const next = tokenSource(seed, vocabSize);
    const firsts = new Set<number>();
    return () => {
        const tokens = Array.from({ length: n }, next);
        while (firsts.has(tokens[0])) tokens[0] = next();
        firsts.add(tokens[0]);
        return tokens;
    };
}

/** One sequence's outcome. */
export interface SequenceOutcome {
    tokens: number;
    finishReason: string;
    reusedTokens: number;
}

/** What one parallel run measured. */
export interface ParallelRun extends ParallelPhases {
    sequences: SequenceOutcome[];
    /** S_PP: prompt tokens / prompt time, tokens/s. */
    pp: number;
    /** S_TG: generation tokens / generation time, tokens/s. */
    tg: number;
    /** S: (prompt tokens + decoded generated tokens) / total time, tokens/s. */
    total: number;
    /** The engine's counters over the run, or null without them. */
    engine: EngineStats | null;
    /** Event-loop delay from the first token event to the last, when asked for. */
    lag: EventLoopLag | null;
    /** Whether the sequences generated at the same time (the spans from their first to their last token event overlap); false for one sequence. */
    concurrent: boolean;
}

/**
 * Starts `generate(prompt, { maxTokens, temperature: 0 })` for every prompt at once (on
 * today's context they run one after another; with the batching engine, together), reads
 * every stream to its end as an application does, and times each token event. With
 * `lagResolutionMs`, perf_hooks.monitorEventLoopDelay samples the event loop from the first
 * token event (of any sequence) to the last: the generation phase.
 */
export async function runParallel(ctx: LlamaContext, prompts: readonly (readonly number[])[], maxTokens: number, lagResolutionMs?: number): Promise<ParallelRun> {
    const events: TokenEvent[] = [];
    const histogram = lagResolutionMs === undefined ? null : monitorEventLoopDelay({ resolution: lagResolutionMs });
    const engineBefore = readEngineStats(ctx);
    const start = performance.now();
    const read = async (prompt: readonly number[], sequence: number): Promise<SequenceOutcome> => {
        const stream = ctx.generate(prompt, { maxTokens, temperature: 0 });
        let tokens = 0;
        let step = await stream.next();
        while (!step.done) {
            events.push({ at: performance.now(), sequence, first: tokens === 0 });
            if (histogram !== null && events.length === 1) histogram.enable();
            tokens++;
            step = await stream.next();
        }
        return { tokens, finishReason: step.value.finishReason, reusedTokens: step.value.timings.reusedTokens };
    };
    let sequences: SequenceOutcome[];
    try {
        sequences = await Promise.all(prompts.map((p, i) => read(p, i)));
    } finally {
        histogram?.disable();
    }
    const engine = engineStatsDelta(engineBefore, readEngineStats(ctx));
    const phases = splitPhases(start, events);
    const promptTokens = prompts.reduce((n, p) => n + p.length, 0);
    const rate = (tokens: number, ms: number) => (ms > 0 ? (tokens * 1000) / ms : Number.NaN);
    let lag: EventLoopLag | null = null;
    if (histogram !== null && lagResolutionMs !== undefined) {
        const ms = (ns: number) => Math.max(0, ns / 1e6 - lagResolutionMs);
        lag = histogram.count > 0
            ? { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max), count: histogram.count, resolutionMs: lagResolutionMs }
            : { p50: Number.NaN, p99: Number.NaN, max: Number.NaN, count: 0, resolutionMs: lagResolutionMs };
    }
    return {
        ...phases,
        sequences,
        pp: rate(promptTokens, phases.promptMs),
        tg: rate(phases.generationTokens, phases.generationMs),
        total: rate(promptTokens + phases.decodedGenerated, phases.totalMs),
        engine,
        lag,
        concurrent: spansOverlap(events),
    };
}
