/** Options of planFit(). */
import { promptCacheOption, type PromptCacheOptions } from './state-options.js';
import { z } from 'zod';
import type { GgufMetadata } from '../gguf/types.js';
import { ggufModelOption } from './estimate-options.js';
import { batchSizeOption, contextSizeOption, parallelOption } from './llama-limits.js';
import { bool, signal } from './validate.js';
import { modelLoadOptionsSchema, type ModelLoadOptions } from './model-options.js';

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
    /**
     * The model load's `rpcServers` ({@link ModelLoadOptions.rpcServers}): the plan is for the
     * model split across these servers' devices and the host, each candidate dry-run by llama.cpp
     * (the servers must be running; the model must be a local file). `budgetBytes` is then the
     * host's share, and each remote device must fit its own budget ({@link deviceBudgets}).
     * Defaults to none: the whole model on the host.
     */
    rpcServers?: string[];
    /** The model load's `rpcTimeoutMs`, with `rpcServers`. Defaults to `60000`. */
    rpcTimeoutMs?: number;
    /** The model load's `gpuLayers` (layers offloaded to the remote devices), with `rpcServers`. Defaults to `'auto'` (all). */
    gpuLayers?: ModelLoadOptions['gpuLayers'];
    /** The model load's `tensorSplit` (remote devices first), with `rpcServers`. Defaults to llama.cpp's split. */
    tensorSplit?: number[];
    /**
     * Bytes each remote device may take, by device name (`'RPC0'`) or by its server's `host:port`.
     * Defaults to the free memory its server reports for it.
     */
    deviceBudgets?: Record<string, number>;
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
    rpcServers: modelLoadOptionsSchema.shape.rpcServers,
    rpcTimeoutMs: modelLoadOptionsSchema.shape.rpcTimeoutMs,
    gpuLayers: modelLoadOptionsSchema.shape.gpuLayers,
    tensorSplit: modelLoadOptionsSchema.shape.tensorSplit,
    deviceBudgets: z.record(
        z.string({ error: "a device name ('RPC0') or a server's host:port" }),
        z.number({ error: 'a non-negative number of bytes' }).nonnegative({ error: 'a non-negative number of bytes' }),
        { error: "an object of bytes by device name ('RPC0') or host:port" },
    ).optional(),
    signal: signal().optional(),
});
