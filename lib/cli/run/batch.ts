/**
 * `llama-kv run --prompts-file`: every prompt submitted at once to one context (its
 * sequences take them concurrently, the rest wait in order), the results in input order,
 * and a summary whose rates are over the batch's wall time, as llama.cpp's llama-parallel
 * reports them.
 */
import type { CompletionResult, FinishReason, LlamaContext } from '../../context/context.js';
import type { GenerateOptions } from '../../options/generate-options.js';
import type { FilePrompt } from './prompts-file.js';

/** One prompt's result, as `--json` prints it. */
export interface BatchResult {
    /** The prompt's position among the file's prompts, from 1. */
    index: number;
    /** The file line it came from, from 1. */
    line: number;
    prompt: string;
    text: string;
    /** Tokens sampled (complete()'s `tokens.length`). */
    tokenCount: number;
    finishReason: FinishReason;
    seed: number;
    timings: CompletionResult['timings'];
}

/** The whole batch. */
export interface BatchSummary {
    prompts: number;
    /** Sequences of the context (`-np`, as in force). */
    sequences: number;
    promptTokens: number;
    /** Prompt tokens found in the cache, not decoded again. */
    reusedTokens: number;
    generatedTokens: number;
    /** From submitting the first prompt to the last result. */
    wallMs: number;
    /** Decoded prompt tokens (promptTokens - reusedTokens) per second of wall time. */
    promptTokensPerSecond: number;
    /** Generated tokens of all prompts per second of wall time. */
    generationTokensPerSecond: number;
    finishReasons: Partial<Record<FinishReason, number>>;
}

const perSecond = (tokens: number, ms: number) => (ms > 0 ? (tokens * 1000) / ms : 0);
const round2 = (x: number) => Math.round(x * 100) / 100;
const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Submits every prompt at once with `controller`'s signal and waits for all. When one fails,
 * the others are aborted and awaited before the error is thrown, so nothing runs on after it.
 */
export async function runBatch(
    ctx: LlamaContext,
    prompts: readonly FilePrompt[],
    options: Omit<GenerateOptions, 'signal'>,
    controller: AbortController,
): Promise<{ results: BatchResult[]; summary: BatchSummary }> {
    const start = performance.now();
    const pending = prompts.map((p) => ctx.complete(p.text, { ...options, signal: controller.signal }));
    let completions: CompletionResult[];
    try {
        completions = await Promise.all(pending);
    } catch (error) {
        controller.abort();
        await Promise.allSettled(pending);
        throw error;
    }
    const wallMs = performance.now() - start;
    const results = completions.map((r, i): BatchResult => ({
        index: i + 1,
        line: prompts[i].line,
        prompt: prompts[i].text,
        text: r.text,
        tokenCount: r.tokens.length,
        finishReason: r.finishReason,
        seed: r.seed,
        timings: r.timings,
    }));
    const sum = (pick: (r: BatchResult) => number) => results.reduce((n, r) => n + pick(r), 0);
    const promptTokens = sum((r) => r.timings.promptTokens);
    const reusedTokens = sum((r) => r.timings.reusedTokens);
    const generatedTokens = sum((r) => r.timings.generatedTokens);
    const finishReasons: Partial<Record<FinishReason, number>> = {};
    for (const r of results) finishReasons[r.finishReason] = (finishReasons[r.finishReason] ?? 0) + 1;
    return {
        results,
        summary: {
            prompts: results.length,
            sequences: ctx.config.parallel,
            promptTokens,
            reusedTokens,
            generatedTokens,
            wallMs: Math.round(wallMs * 10) / 10,
            promptTokensPerSecond: round2(perSecond(promptTokens - reusedTokens, wallMs)),
            generationTokensPerSecond: round2(perSecond(generatedTokens, wallMs)),
            finishReasons,
        },
    };
}

/**
 * One block per prompt, in input order: a header line (`=== prompt 2/3 (length, 32 tokens): the
 * prompt`), then the text and a line break, as `run -p` prints it; a blank line between blocks.
 */
export function formatResults(results: readonly BatchResult[]): string {
    return results
        .map((r) => `=== prompt ${r.index}/${results.length} (${r.finishReason}, ${r.tokenCount} tokens): ${r.prompt}\n${r.text}\n`)
        .join('\n');
}

/** The summary line (stderr): counts, wall time, aggregate t/s, finish reasons; `config` is the K/V part the single-prompt line ends with too. */
export function formatSummary(s: BatchSummary, config: string): string {
    const finish = Object.entries(s.finishReasons)
        .map(([reason, n]) => `${n} ${reason}`)
        .join(', ');
    return (
        `batch: ${count(s.prompts, 'prompt')} on ${count(s.sequences, 'sequence')} in ${(s.wallMs / 1000).toFixed(2)} s | ` +
        `prompt: ${s.promptTokens} tokens, ${s.promptTokensPerSecond.toFixed(2)} t/s | ` +
        `generation: ${s.generatedTokens} tokens, ${s.generationTokensPerSecond.toFixed(2)} t/s | ` +
        `finish: ${finish} | ${config}\n`
    );
}
