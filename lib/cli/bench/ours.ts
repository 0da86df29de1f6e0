/**
 * llama-kv's side of the benchmark: what a user of the API gets, timed in JS around
 * the public calls (`evaluate()`, `generate()`, `LlamaModel.load()`).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LlamaContext } from '../../context/context.js';
import type { KvCacheType } from '../../options/kv-cache.js';
import { LlamaModel } from '../../model/model.js';
import { mulberry32 } from './embed-texts.js';

/** The context settings of one benchmark configuration (llama-bench's flags, our names). */
export interface BenchContextSettings {
    /** Threads for prompt and generation (llama-bench `-t`). */
    threads: number;
    /** K cache type (`-ctk`). */
    cacheTypeK: KvCacheType;
    /** V cache type (`-ctv`). */
    cacheTypeV: KvCacheType;
    /** Flash attention (`-fa`). */
    flashAttention: 'on' | 'off' | 'auto';
    /** Logical batch size (`-b`). */
    batchSize: number;
    /** Physical micro-batch size (`-ub`). */
    ubatchSize: number;
}

/**
 * A context as llama-bench creates one for a test: contextSize = the tokens of the test
 * (llama-bench's n_ctx = n_prompt + n_gen + n_depth; llama.cpp pads it to a multiple of
 * 256 and lowers batchSize to it), `parallel` sequences (one KV stream each; one by default), `threads` for both prompt and generation
 * (one threadpool), the same K/V types, flash attention and batch sizes.
 */
export function benchContext(model: LlamaModel, settings: BenchContextSettings, contextSize: number, parallel = 1): LlamaContext {
    return new LlamaContext({
        model,
        contextSize,
        threads: settings.threads,
        threadsBatch: settings.threads,
        cacheTypeK: settings.cacheTypeK,
        cacheTypeV: settings.cacheTypeV,
        flashAttention: settings.flashAttention,
        batchSize: settings.batchSize,
        ubatchSize: settings.ubatchSize,
        parallel,
        kvUnified: false,
        seed: 1,
    });
}

/** A small deterministic PRNG (mulberry32), so that prompts are the same from run to run. */
export function tokenSource(seed: number, vocabSize: number): () => number {
    const next = mulberry32(seed);
    return () => (next() * 4294967296) % vocabSize;
}

/**
 * Random prompts of `n` tokens, as llama-bench's (random ids over the vocabulary). The
 * first token differs from the previous prompt's, so the context's prefix cache reuses
 * nothing and every prompt is decoded in full.
 */
export function promptSource(seed: number, vocabSize: number, n: number): () => number[] {
    const next = tokenSource(seed, vocabSize);
    let previousFirst = -1;
    return () => {
        const tokens = Array.from({ length: n }, next);
        while (tokens[0] === previousFirst) tokens[0] = next();
        previousFirst = tokens[0];
        return tokens;
    };
}

/** Prompt processing: milliseconds of one `ctx.evaluate(tokens)`, call to result. */
export async function timePrompt(ctx: LlamaContext, tokens: readonly number[]): Promise<number> {
    const t0 = performance.now();
    await ctx.evaluate(tokens);
    return performance.now() - t0;
}

/** One timed generation. */
export interface GenerationTiming {
    /** Milliseconds from the `generate()` call to the end of the iteration. */
    ms: number;
    /** Milliseconds from the call to the first token event. */
    firstTokenMs: number;
    /** Tokens received. */
    tokens: number;
    finishReason: string;
    /** Prompt tokens reused from the cache (0 in the benchmark: every prompt is decoded). */
    reusedTokens: number;
    /** The native timings (promptMs + generationMs): decoding and sampling inside the worker, without the delivery to JS. */
    nativeMs: number;
}

/**
 * Greedy generation of up to `maxTokens` tokens after `prompt`, streamed with
 * `generate()` as an application reads it, timed from the call to the last event.
 */
export async function timeGeneration(ctx: LlamaContext, prompt: readonly number[], maxTokens: number): Promise<GenerationTiming> {
    const t0 = performance.now();
    let first = Number.NaN;
    let tokens = 0;
    const stream = ctx.generate(prompt, { maxTokens, temperature: 0 });
    let step = await stream.next();
    while (!step.done) {
        if (tokens === 0) first = performance.now() - t0;
        tokens++;
        step = await stream.next();
    }
    const ms = performance.now() - t0;
    const { finishReason, timings } = step.value;
    return { ms, firstTokenMs: first, tokens, finishReason, reusedTokens: timings.reusedTokens, nativeMs: timings.promptMs + timings.generationMs };
}

/**
 * A one-token prompt after which greedy generation runs `maxTokens` tokens without
 * ending on an end-of-generation token (llama-bench's tg test never stops early):
 * the BOS token if it does, else the first of a few other ids that does. Returns the
 * best found, with the tokens it reached.
 */
export async function findGenerationPrompt(ctx: LlamaContext, maxTokens: number): Promise<{ prompt: number[]; tokens: number }> {
    const meta = ctx.model.metadata;
    const candidates = [meta.bosToken, 1000, 2000, 3000, 5000, 8000].filter((t) => t >= 0 && t < meta.vocabSize);
    let best = { prompt: [candidates[0]], tokens: -1 };
    for (const token of candidates) {
        const r = await timeGeneration(ctx, [token], maxTokens);
        if (r.tokens > best.tokens) best = { prompt: [token], tokens: r.tokens };
        if (r.tokens >= maxTokens) break;
    }
    return best;
}

/** Event-loop delay during a generation, in milliseconds above the sampling interval. */
export interface EventLoopLag {
    /** Median delay. */
    p50: number;
    /** 99th percentile (the target: under 5 ms). */
    p99: number;
    /** Longest delay seen. */
    max: number;
    /** Samples taken. */
    count: number;
    /** The sampling interval (monitorEventLoopDelay's resolution). */
    resolutionMs: number;
}

/**
 * Runs one generation while perf_hooks.monitorEventLoopDelay samples the event loop,
 * and returns the delay percentiles. The histogram records the time between its timer's
 * ticks, so the interval itself (`resolutionMs`) is subtracted: 0 means the loop ran
 * the timer on time.
 */
export async function measureEventLoopLag(ctx: LlamaContext, prompt: readonly number[], maxTokens: number, resolutionMs = 1): Promise<EventLoopLag> {
    const h = monitorEventLoopDelay({ resolution: resolutionMs });
    h.enable();
    try {
        await timeGeneration(ctx, prompt, maxTokens);
    } finally {
        h.disable();
    }
    const lag = (ns: number) => Math.max(0, ns / 1e6 - resolutionMs);
    return { p50: lag(h.percentile(50)), p99: lag(h.percentile(99)), max: lag(h.max), count: h.count, resolutionMs };
}

/** Milliseconds of one `LlamaModel.load({ path })` (mmap, as by default), call to result; the model is disposed after. */
export async function timeLoad(path: string): Promise<number> {
    const t0 = performance.now();
    const model = await LlamaModel.load({ path });
    const ms = performance.now() - t0;
    model.dispose();
    return ms;
}
