/** Options of planFit(). */
import { promptCacheOption, type PromptCacheOptions } from './state-options.js';
import { z } from 'zod';
import type { GgufMetadata } from '../gguf/types.js';
import { ggufModelOption } from './estimate-options.js';
import { batchSizeOption, contextSizeOption, parallelOption } from './llama-limits.js';
import { bool, signal } from './validate.js';

/** What the planner optimises. */
export type FitPreference = 'context' | 'parallel' | 'quality';

/** Options of {@link planFit}. */
export interface PlanFitOptions {
    /** A GGUF file path (the plan is then checked by a llama.cpp dry run), or its header from readGgufMetadata(). */
    model: string | GgufMetadata;
    /** Memory for weights, KV cache, compute and output buffers together, in bytes. */
    budgetBytes: number;
    /**
     * 'context': the longest context at `parallel`; 'parallel': the most sequences of minContextSize tokens;
     * 'quality': the most precise K/V types that give minContextSize. Defaults to `'quality'`.
     */
    prefer?: FitPreference;
    /**
     * Tokens each sequence needs at least; minContextSize x parallel is at most 16777216 (the largest
     * contextSize). Defaults to `4096`, or the trained context if smaller.
     */
    minContextSize?: number;
    /** Sequences (for 'context' and 'quality'); at most batchSize. Defaults to `1`. */
    parallel?: number;
    /** Passed on to the estimate. Defaults as for LlamaContext. */
    batchSize?: number;
    ubatchSize?: number;
    /** The model load's `useMmap` (the weights' buffers depend on it). Defaults to `true`. */
    useMmap?: boolean;
    /** The model load's `repack` (whether the CPU's extra buffer types copy weights). Defaults to `true`. */
    repack?: boolean;
    /** The context's prompt cache: its `ramBytes` are counted in the plan's total (see {@link PromptCacheOptions}). Defaults to none. */
    promptCache?: PromptCacheOptions;
    /** Checked before each candidate's estimate: an abort rejects with ABORTED. Defaults to none. */
    signal?: AbortSignal;
}

/** planFit()'s options. */
export const planFitSchema = z.strictObject({
    model: ggufModelOption(),
    budgetBytes: z.number({ error: 'a positive number of bytes' }).positive({ error: 'a positive number of bytes' }),
    prefer: z.enum(['context', 'parallel', 'quality'], { error: "one of 'context', 'parallel', 'quality'" }).optional(),
    minContextSize: contextSizeOption().optional(),
    parallel: parallelOption().optional(),
    batchSize: batchSizeOption().optional(),
    ubatchSize: batchSizeOption().optional(),
    useMmap: bool().optional(),
    repack: bool().optional(),
    promptCache: promptCacheOption().optional(),
    signal: signal().optional(),
});
