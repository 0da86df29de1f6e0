/**
 * Options of a context. The schema of `loras` takes the check of a LlamaLora from
 * context/ (LlamaLora is in model/, above this folder); its wording is here.
 */
import { z } from 'zod';
import { batchSizeOption, contextSizeOption, floatOption, parallelOption, threadsOption } from './llama-limits.js';
import { KV_CACHE_TYPES, KV_PRESETS, type FlashAttention, type KvCacheType, type KvPreset } from './kv-cache.js';
import { bool, oneOf, samplingSeed } from './validate.js';
import { promptCacheOption, type PromptCacheOptions } from './state-options.js';

const FLASH_ATTENTION = ['auto', 'on', 'off'] as const;

/** flashAttention: 'auto' | 'on' | 'off', or true/false for 'on'/'off'. */
export const flashAttentionOption = () =>
    z
        .union([z.enum(FLASH_ATTENTION), z.boolean()], { error: `${oneOf(FLASH_ATTENTION)} (or true/false)` })
        .transform((v): FlashAttention => (v === true ? 'on' : v === false ? 'off' : v));

/** A K/V cache type name, in any case ('Q8_0' is 'q8_0'); the output is llama.cpp's lower-case name. */
export const cacheTypeOption = () =>
    z.preprocess((v) => (typeof v === 'string' ? v.toLowerCase() : v), z.enum(KV_CACHE_TYPES, { error: oneOf(KV_CACHE_TYPES) }));

/** What a request does when its sequence is full. */
export const CONTEXT_FULL_POLICIES = ['error', 'shift'] as const;
export type ContextFullPolicy = (typeof CONTEXT_FULL_POLICIES)[number];
export const contextFullOption = () => z.enum(CONTEXT_FULL_POLICIES, { error: oneOf(CONTEXT_FULL_POLICIES) });

/** A preset name ('conservative', 'balanced', ...). */
export const kvPresetOption = () => z.enum(Object.keys(KV_PRESETS) as [KvPreset, ...KvPreset[]], { error: oneOf(Object.keys(KV_PRESETS)) });

/** The fields of every context option other than `model` and `loras`, in the order errors list them. */
export const contextSettingsShape = {
    contextSize: contextSizeOption().optional(),
    batchSize: batchSizeOption().optional(),
    ubatchSize: batchSizeOption().optional(),
    parallel: parallelOption().optional(),
    threads: threadsOption().optional(),
    threadsBatch: threadsOption().optional(),
    seed: samplingSeed().optional(),
    cacheTypeK: cacheTypeOption().optional(),
    cacheTypeV: cacheTypeOption().optional(),
    kvPreset: kvPresetOption().optional(),
    flashAttention: flashAttentionOption().optional(),
    kvUnified: bool().optional(),
    offloadKqv: bool().optional(),
    swaFull: bool().optional(),
    checkMemory: bool().optional(),
    onContextFull: contextFullOption().optional(),
    promptCache: promptCacheOption().optional(),
};

/** `model`: any object here; the context checks that it is a live LlamaModel. */
export const modelOption = () => z.custom<object>((v) => typeof v === 'object' && v !== null, { error: 'a LlamaModel' });

/** The `loras` list: [{ lora, scale }], `isLora` saying what a LlamaLora is. */
export const loraListSchema = <L>(isLora: (value: unknown) => value is L) => z.array(
    z.strictObject({
        lora: z.custom<L>(isLora, { error: 'a LlamaLora from model.loadLora()' }),
        scale: floatOption(),
    }),
    { error: 'an array of { lora, scale }' },
);

/** The whole context schema (model, settings, loras), for a LlamaLora check. */
export const contextOptionsSchemaFor = <L>(isLora: (value: unknown) => value is L) =>
    z.strictObject({ model: modelOption(), ...contextSettingsShape, loras: loraListSchema(isLora).optional() });

/** Options of {@link LlamaContext} other than its model and LoRA adapters ({@link ContextOptionsWithoutModel} adds `loras`). */
export interface ContextSettings {
    /** Tokens the context holds (llama.cpp `--ctx-size`). Defaults to `4096`, or the model's trained context if smaller. */
    contextSize?: number;
    /** Largest number of tokens decoded in one call (llama.cpp `--batch-size`). Defaults to `512`. */
    batchSize?: number;
    /** Physical micro-batch size (llama.cpp `--ubatch-size`); at most batchSize. Defaults to `512`, or batchSize if smaller. */
    ubatchSize?: number;
    /**
     * Sequences the context can hold at once (llama.cpp `--parallel`, n_seq_max). contextSize is shared:
     * each sequence gets contextSize / parallel tokens unless kvUnified is set. Defaults to `1`.
     */
    parallel?: number;
    /**
     * Element type of the K cache (llama.cpp `--cache-type-k`), in any case (`'Q8_0'` is `'q8_0'`). Quantized
     * types save memory; K tolerates quantization better than V. Overrides kvPreset. Defaults to `'f16'`.
     */
    cacheTypeK?: KvCacheType | Uppercase<KvCacheType>;
    /**
     * Element type of the V cache (llama.cpp `--cache-type-v`), in any case. A quantized V needs flash
     * attention. Overrides kvPreset. Defaults to `'f16'`.
     */
    cacheTypeV?: KvCacheType | Uppercase<KvCacheType>;
    /**
     * A named K/V pair: 'conservative' (f16/f16), 'balanced' (q8_0/q8_0), 'aggressive' (q8_0/q4_0),
     * 'extreme' (q4_0/q4_0). Explicit cacheTypeK/cacheTypeV win. Defaults to none (f16/f16).
     */
    kvPreset?: KvPreset;
    /**
     * Flash attention (llama.cpp `--flash-attn`): 'on', 'off', or 'auto' (llama.cpp decides; a quantized V turns it on).
     * `true`/`false` mean 'on'/'off'. `ctx.config.flashAttention` says what was resolved. Defaults to `'auto'`.
     */
    flashAttention?: FlashAttention | boolean;
    /** One KV buffer shared by all sequences (llama.cpp `--kv-unified`). Defaults to `false`. */
    kvUnified?: boolean;
    /** Keep the KV cache and attention on the GPU with offloaded layers (llama.cpp `--no-kv-offload` negates). Defaults to `true`. */
    offloadKqv?: boolean;
    /** Full-size cache for sliding-window layers (llama.cpp `--swa-full`). Defaults to `true`. */
    swaFull?: boolean;
    /**
     * Refuse the context with `INSUFFICIENT_MEMORY` (a {@link LlamaMemoryError}) before
     * llama.cpp allocates, when its KV cache, compute and output buffers (the header-level
     * estimate of {@link estimateMemory}) exceed the host memory available
     * ({@link getHostMemory}: RAM and swap, the cgroup limit, the process's ulimits) or, for
     * offloaded layers, the GPU devices' free memory. Skipped for models whose KV cache the
     * header level cannot compute exactly (sliding-window, MLA, recurrent). Defaults to `true`.
     */
    checkMemory?: boolean;
    /** Threads for generation (llama.cpp `--threads`). Defaults to the number of CPUs (`os.availableParallelism()`). */
    threads?: number;
    /** Threads for prompt processing (llama.cpp `--threads-batch`). Defaults to `threads`. */
    threadsBatch?: number;
    /**
     * Makes the context's requests reproducible in order: request n (0, 1, ... in call order) samples with
     * seed + n unless it has its own `seed`. Defaults to none: every request draws a fresh random seed.
     */
    seed?: number;
    /**
     * What a request does when its sequence is full (no cell left for the next token): 'error' ends it with
     * finishReason 'contextFull', keeping the tokens so far; 'shift' keeps the first `keep` tokens (and the
     * BOS token), discards the oldest half of the rest and goes on, as llama.cpp's server does
     * (`--context-shift`). 'shift' is refused where llama.cpp cannot shift the model's cache. Each request
     * may override it. Defaults to `'error'`.
     */
    onContextFull?: ContextFullPolicy;
    /**
     * Keep sequences' states when they are about to be overwritten (another prompt takes the
     * sequence, or it is cleared), in RAM and optionally on disk, and restore one for a prompt
     * that starts with its tokens instead of decoding them (see {@link PromptCacheOptions}).
     * `ctx.promptCache` reports it. Defaults to none.
     */
    promptCache?: PromptCacheOptions;
}
