/**
 * zod schemas for every public option, and the only place defaults live.
 * Errors name the option, the expected value and what was received, and suggest the
 * right name for a misspelled option.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { LlamaConfigError } from './errors.js';
import { LlamaLora } from './lora.js';
import { KV_CACHE_TYPES, KV_PRESETS, type FlashAttention, type KvCacheType, type KvPreset } from './kv-cache.js';

const positiveInt = (what = 'a positive integer') =>
    z.number({ error: what }).int({ error: what }).positive({ error: what });
const nonNegativeInt = (what = 'a non-negative integer') =>
    z.number({ error: what }).int({ error: what }).nonnegative({ error: what });
const bool = () => z.boolean({ error: 'a boolean' });
const unitInterval = () =>
    z.number({ error: 'a number in [0, 1]' }).min(0, { error: 'a number in [0, 1]' }).max(1, { error: 'a number in [0, 1]' });
const signal = () => z.instanceof(AbortSignal, { error: 'an AbortSignal' });
const fn = <T extends (...args: never[]) => unknown>() =>
    z.custom<T>((v) => typeof v === 'function', { error: 'a function' });
const uint32 = () =>
    z.number({ error: 'an integer in [0, 4294967295]' }).int({ error: 'an integer in [0, 4294967295]' })
        .min(0, { error: 'an integer in [0, 4294967295]' }).max(0xffffffff, { error: 'an integer in [0, 4294967295]' });

const GPU_CHOICES = ['auto', 'cuda', 'rocm', 'vulkan', 'metal'] as const;

export const modelLoadOptionsSchema = z.strictObject({
    path: z.string({ error: 'a file path (string)' }).min(1, { error: 'a non-empty file path' }),
    gpu: z.union([z.enum(GPU_CHOICES), z.literal(false)], { error: "one of 'auto', 'cuda', 'rocm', 'vulkan', 'metal' or false" }).optional(),
    gpuLayers: z.union([z.number().int().min(-1), z.literal('max'), z.literal('auto')], { error: "an integer >= -1, 'max' or 'auto'" }).optional(),
    devices: z.array(z.string({ error: 'a device name' }).min(1, { error: 'a device name' }), { error: "an array of device names, e.g. ['CUDA0']" }).optional(),
    tensorSplit: z.array(z.number({ error: 'a non-negative number' }).nonnegative({ error: 'a non-negative number' }).finite({ error: 'a non-negative number' }), { error: 'an array of non-negative numbers' }).min(1, { error: 'at least one proportion' }).optional(),
    cpuMoeLayers: nonNegativeInt().optional(),
    tensorOverrides: z.array(z.strictObject({
        pattern: z.string({ error: 'a regular expression (string)' }).min(1, { error: 'a non-empty regular expression' }),
        bufferType: z.string({ error: "a buffer type name, e.g. 'CPU' or 'CUDA0'" }).min(1, { error: "a buffer type name, e.g. 'CPU' or 'CUDA0'" }),
    }), { error: "an array of { pattern, bufferType }" }).optional(),
    isolation: z.enum(['none', 'process'], { error: "'none' or 'process'" }).optional(),
    useMmap: bool().optional(),
    repack: bool().optional(),
    useMlock: bool().optional(),
    vocabOnly: bool().optional(),
    checkTensors: bool().optional(),
    checkMemory: bool().optional(),
    onProgress: fn<(progress: number) => void>().optional(),
    signal: signal().optional(),
});

/** Options of {@link LlamaModel.load}. */
export interface ModelLoadOptions {
    /** Path of the GGUF model file. */
    path: string;
    /**
     * The GPU backend to use. `'auto'` takes the first available of CUDA, ROCm, Metal and
     * Vulkan and otherwise runs on the CPU, logging one warning; a named backend that is
     * not available throws `BACKEND_UNAVAILABLE` with the reason and the fix (see
     * {@link getBackends}); `false` keeps everything on the CPU. Defaults to `'auto'`.
     */
    gpu?: 'auto' | 'cuda' | 'rocm' | 'vulkan' | 'metal' | false;
    /**
     * Layers to offload to the GPU (llama.cpp `--n-gpu-layers`). `'auto'`, `'max'` and `-1`
     * offload all of them when a GPU is used; with no GPU the value is ignored. Use
     * {@link estimateMemory} / {@link planFit} to see what fits. Defaults to `'auto'`.
     */
    gpuLayers?: number | 'max' | 'auto';
    /**
     * Devices to offload to, by ggml name (e.g. `['CUDA0', 'CUDA1']`, matched case-insensitively), in
     * place of `gpu`'s choice; they must belong to `gpu`'s backend when `gpu` names one. `'CPU'` may be
     * listed and means no offload. Defaults to the chosen backend's discrete GPUs (its integrated ones
     * when it has none).
     */
    devices?: string[];
    /** Proportions of the layers per offload device, in the order of `devices` without the CPU (llama.cpp `--tensor-split`), e.g. `[3, 1]`. Defaults to llama.cpp's split by free memory. */
    tensorSplit?: number[];
    /**
     * Keep the MoE expert weights of the first N layers in CPU memory (llama.cpp
     * `--n-cpu-moe`): the rest of those layers still run on the GPU. Ignored by dense
     * models. The memory report's `expertWeightsBytes` per device shows where they went.
     * Defaults to `0`.
     */
    cpuMoeLayers?: number;
    /**
     * Buffer-type overrides for tensors whose name matches `pattern` (a regular
     * expression, llama.cpp `--override-tensor`), e.g. `{ pattern: 'ffn_.*_exps', bufferType: 'CPU' }`.
     * Applied after `cpuMoeLayers`; the first match wins. Defaults to none.
     */
    tensorOverrides?: { pattern: string; bufferType: string }[];
    /**
     * `'process'` loads the file in a child process first ({@link inspectModel}): a file that
     * would crash llama.cpp rejects with `MODEL_CRASHED` instead of taking this process
     * down. For files from untrusted sources; it costs a process start and a second load.
     * Defaults to `'none'`.
     */
    isolation?: 'none' | 'process';
    /** Memory-map the file instead of reading it (llama.cpp `--mmap`). Defaults to `true`. */
    useMmap?: boolean;
    /**
     * Let the CPU backend put weights it has faster kernels for into its extra buffer types
     * (`AMX` on Intel CPUs with AMX, `CPU_REPACK` for Q4_0, IQ4_NL, Q4_K and other types on
     * AVX2/AVX-512 and ARM): llama.cpp's default, `use_extra_bufts`. Those weights are then
     * copies in allocated memory, in another layout, instead of pages of the mapped file
     * shared with other processes; `memoryReport().weights.byBufferType` shows where each
     * went. `false` is llama.cpp's `--no-repack`: every CPU weight stays mapped, at some
     * speed cost (README, "Memory"). Defaults to `true`.
     */
    repack?: boolean;
    /** Lock the weights in RAM (llama.cpp `--mlock`). Defaults to `false`. */
    useMlock?: boolean;
    /** Load only the vocabulary, no weights (tokenize/detokenize only). Defaults to `false`. */
    vocabOnly?: boolean;
    /** Validate tensor data while loading (llama.cpp `--check-tensors`). Defaults to `false`. */
    checkTensors?: boolean;
    /**
     * Refuse the load with `INSUFFICIENT_MEMORY` (a {@link LlamaMemoryError}) before llama.cpp
     * allocates, when the weights do not fit: read into host memory (`useMmap: false`)
     * against available RAM and swap, the cgroup limit and the process's ulimits
     * ({@link getHostMemory}); a memory-mapped file against the address-space limit;
     * offloaded layers against the GPU devices' free memory. Defaults to `true`.
     */
    checkMemory?: boolean;
    /** Called with the load progress in [0, 1]. Defaults to none. */
    onProgress?: (progress: number) => void;
    /** Aborts the load; the promise then rejects with an ABORTED error. Defaults to none. */
    signal?: AbortSignal;
}

const oneOf = (values: readonly string[]) => `one of ${values.map((v) => `'${v}'`).join(', ')}`;
const cacheType = () => z.enum(KV_CACHE_TYPES, { error: oneOf(KV_CACHE_TYPES) });
const FLASH_ATTENTION = ['auto', 'on', 'off'] as const;

/** An adapter applied to a context, and its scale. */
export interface LoraUse {
    lora: LlamaLora;
    /** 1 applies the adapter as trained, 0 is the base model; other values scale its effect. */
    scale: number;
}

export const loraListSchema = z.array(
    z.strictObject({
        lora: z.custom<LlamaLora>((v) => v instanceof LlamaLora, { error: 'a LlamaLora from model.loadLora()' }),
        scale: z.number({ error: 'a finite number' }).finite({ error: 'a finite number' }),
    }),
    { error: 'an array of { lora, scale }' },
);

export const contextOptionsSchema = z.strictObject({
    model: z.custom<object>((v) => typeof v === 'object' && v !== null, { error: 'a LlamaModel' }),
    contextSize: positiveInt().optional(),
    batchSize: positiveInt().optional(),
    ubatchSize: positiveInt().optional(),
    parallel: positiveInt().optional(),
    threads: positiveInt().optional(),
    threadsBatch: positiveInt().optional(),
    seed: uint32().optional(),
    cacheTypeK: cacheType().optional(),
    cacheTypeV: cacheType().optional(),
    kvPreset: z.enum(Object.keys(KV_PRESETS) as [KvPreset, ...KvPreset[]], { error: oneOf(Object.keys(KV_PRESETS)) }).optional(),
    flashAttention: z
        .union([z.enum(FLASH_ATTENTION), z.boolean()], { error: `${oneOf(FLASH_ATTENTION)} (or true/false)` })
        .transform((v): FlashAttention => (v === true ? 'on' : v === false ? 'off' : v))
        .optional(),
    kvUnified: bool().optional(),
    offloadKqv: bool().optional(),
    swaFull: bool().optional(),
    checkMemory: bool().optional(),
    loras: loraListSchema.optional(),
});

/** Options of {@link LlamaContext}. */
export interface ContextOptionsWithoutModel {
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
     * Element type of the K cache (llama.cpp `--cache-type-k`). Quantized types save memory; K tolerates
     * quantization better than V. Overrides kvPreset. Defaults to `'f16'`.
     */
    cacheTypeK?: KvCacheType;
    /**
     * Element type of the V cache (llama.cpp `--cache-type-v`). A quantized V needs flash attention.
     * Overrides kvPreset. Defaults to `'f16'`.
     */
    cacheTypeV?: KvCacheType;
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
    /**
     * LoRA adapters applied from the start, each with a scale (1 is the adapter as trained,
     * 0 is the base model). Same as calling `ctx.setLoras()` right after creation. Defaults to none.
     */
    loras?: LoraUse[];
    /** Threads for generation (llama.cpp `--threads`). Defaults to the number of CPUs (`os.availableParallelism()`). */
    threads?: number;
    /** Threads for prompt processing (llama.cpp `--threads-batch`). Defaults to `threads`. */
    threadsBatch?: number;
    /** Default sampling seed for this context's generations. Defaults to a random seed. */
    seed?: number;
}

const stopSchema = z.union([z.string(), z.array(z.string())], { error: 'a string or an array of strings' });

export const generateOptionsSchema = z.strictObject({
    maxTokens: nonNegativeInt().optional(),
    temperature: z.number({ error: 'a number >= 0' }).min(0, { error: 'a number >= 0' }).optional(),
    topK: nonNegativeInt().optional(),
    topP: unitInterval().optional(),
    minP: unitInterval().optional(),
    repeatPenalty: z.number({ error: 'a number > 0' }).positive({ error: 'a number > 0' }).optional(),
    repeatLastN: nonNegativeInt().optional(),
    seed: uint32().optional(),
    stop: stopSchema.optional(),
    signal: signal().optional(),
    addSpecial: bool().optional(),
    parseSpecial: bool().optional(),
});

/** Options of {@link LlamaContext.generate} and {@link LlamaContext.complete}. */
export interface GenerateOptions {
    /** Most tokens to generate (llama.cpp `--n-predict`). Defaults to `256`. */
    maxTokens?: number;
    /** Sampling temperature; 0 is greedy and deterministic (llama.cpp `--temp`). Defaults to `0.8`. */
    temperature?: number;
    /** Keep only the K most likely tokens, 0 disables (llama.cpp `--top-k`). Defaults to `40`. */
    topK?: number;
    /** Nucleus sampling threshold, 1 disables (llama.cpp `--top-p`). Defaults to `0.95`. */
    topP?: number;
    /** Minimum probability relative to the best token, 0 disables (llama.cpp `--min-p`). Defaults to `0.05`. */
    minP?: number;
    /** Penalty for repeated tokens, 1 disables (llama.cpp `--repeat-penalty`). Defaults to `1`. */
    repeatPenalty?: number;
    /** How many recent tokens the repeat penalty looks at (llama.cpp `--repeat-last-n`). Defaults to `64`. */
    repeatLastN?: number;
    /** Sampling seed. Defaults to the context's seed. */
    seed?: number;
    /** Stop when the generated text contains one of these strings; it is not included in the text. Defaults to none. */
    stop?: string | string[];
    /** Aborts generation: it ends with finishReason 'abort'. Defaults to none. */
    signal?: AbortSignal;
    /** For a text prompt: add the model's BOS/EOS tokens as it is configured to. Defaults to `true`. */
    addSpecial?: boolean;
    /** For a text prompt: parse special tokens such as `<s>` written in the text. Defaults to `false`. */
    parseSpecial?: boolean;
}

/** Options of {@link LlamaModel.tokenize}. */
export interface TokenizeOptions {
    /** Add the model's BOS/EOS tokens as it is configured to. Defaults to `true`. */
    addSpecial?: boolean;
    /** Parse special tokens written in the text. Defaults to `false`. */
    parseSpecial?: boolean;
}

export const tokenizeOptionsSchema = z.strictObject({
    addSpecial: bool().optional(),
    parseSpecial: bool().optional(),
});

const kvPair = () =>
    z.strictObject({
        cacheTypeK: cacheType(),
        cacheTypeV: cacheType(),
    }, { error: `a preset name (${oneOf(Object.keys(KV_PRESETS))}) or { cacheTypeK, cacheTypeV }` });
const kvConfiguration = () =>
    z.union([z.enum(Object.keys(KV_PRESETS) as [KvPreset, ...KvPreset[]]), kvPair()], {
        error: `a preset name (${oneOf(Object.keys(KV_PRESETS))}) or { cacheTypeK, cacheTypeV }`,
    });

export const calibrateOptionsSchema = z.strictObject({
    model: z.custom<object>((v) => typeof v === 'object' && v !== null, { error: 'a LlamaModel' }),
    prompts: z.array(z.strictObject({
        name: z.string({ error: 'a prompt name (string)' }).min(1, { error: 'a non-empty prompt name' }),
        category: z.string({ error: 'a category (string)' }).optional(),
        text: z.string({ error: 'the prompt text (string)' }).min(1, { error: 'a non-empty prompt text' }),
    }), { error: 'an array of { name, category?, text }' }).min(1, { error: 'at least one prompt' }).optional(),
    configurations: z.array(kvConfiguration(), { error: 'an array of presets or { cacheTypeK, cacheTypeV }' }).min(1, { error: 'at least one configuration' }).optional(),
    reference: kvConfiguration().optional(),
    contextSize: positiveInt().refine((n) => n >= 16, { error: 'an integer >= 16' }).optional(),
    threads: positiveInt().optional(),
    flashAttention: z
        .union([z.enum(FLASH_ATTENTION), z.boolean()], { error: `${oneOf(FLASH_ATTENTION)} (or true/false)` })
        .transform((v): FlashAttention => (v === true ? 'on' : v === false ? 'off' : v))
        .optional(),
    generationTokens: nonNegativeInt().optional(),
    baseline: z.custom<object>((v) => typeof v === 'object' && v !== null && Array.isArray((v as { results?: unknown }).results), { error: 'a saved calibration report (an object with results)' }).optional(),
    maxKlIncrease: z.number({ error: 'a number >= 0' }).min(0, { error: 'a number >= 0' }).finite({ error: 'a number >= 0' }).optional(),
    onProgress: fn<(progress: unknown) => void>().optional(),
    signal: signal().optional(),
});

/** Defaults, in one place. */
export const defaults = {
    model: { gpu: 'auto' as const, gpuLayers: 'auto' as const, cpuMoeLayers: 0, useMmap: true, repack: true, useMlock: false, vocabOnly: false, checkTensors: false, checkMemory: true },
    context: {
        contextSize: 4096,
        batchSize: 512,
        ubatchSize: 512,
        parallel: 1,
        threads: () => Math.max(1, availableParallelism()),
        cacheTypeK: 'f16' as KvCacheType,
        cacheTypeV: 'f16' as KvCacheType,
        flashAttention: 'auto' as FlashAttention,
        kvUnified: false,
        offloadKqv: true,
        swaFull: true,
        checkMemory: true,
    },
    generate: {
        maxTokens: 256,
        temperature: 0.8,
        topK: 40,
        topP: 0.95,
        minP: 0.05,
        repeatPenalty: 1,
        repeatLastN: 64,
        addSpecial: true,
        parseSpecial: false,
    },
    tokenize: { addSpecial: true, parseSpecial: false },
    calibrate: {
        configurations: ['conservative', 'balanced', 'aggressive', 'extreme'] as const satisfies readonly KvPreset[],
        reference: 'conservative' as KvPreset,
        contextSize: 2048,
        flashAttention: 'auto' as FlashAttention,
        generationTokens: 32,
        maxKlIncrease: 0,
    },
} as const;

/** A random 32-bit seed. */
export function randomSeed(): number {
    return Math.floor(Math.random() * 0xffffffff);
}

function describe(value: unknown): string {
    if (value === undefined) return 'undefined';
    if (value === null) return 'null';
    if (typeof value === 'string') return `${JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)} (string)`;
    if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${String(value)} (${typeof value})`;
    if (typeof value === 'function') return 'a function';
    if (Array.isArray(value)) return `an array of length ${value.length}`;
    const name = (value as object).constructor?.name;
    return name && name !== 'Object' ? `an instance of ${name}` : 'an object';
}

function editDistance(a: string, b: string): number {
    const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        let prev = dp[0];
        dp[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const tmp = dp[j];
            dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
            prev = tmp;
        }
    }
    return dp[b.length];
}

/** The known option closest to a misspelled one, if close enough. */
export function suggest(name: string, known: readonly string[]): string | undefined {
    let best: string | undefined;
    let bestDistance = Infinity;
    for (const candidate of known) {
        const d = editDistance(name, candidate);
        if (d < bestDistance) {
            bestDistance = d;
            best = candidate;
        }
    }
    return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
    let value = input;
    for (const key of path) {
        if (value === null || typeof value !== 'object') return undefined;
        value = (value as Record<PropertyKey, unknown>)[key];
    }
    return value;
}

/**
 * Validates `input` against `schema`; throws a LlamaConfigError whose message lists
 * each problem as "Expected X for option but received Y".
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
        throw new LlamaConfigError(`Expected an options object for ${what} but received ${describe(input)}`);
    }
    const result = schema.safeParse(input);
    if (result.success) return result.data;
    const known = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
    const paths = new Set<string>();
    const messages = result.error.issues.map((issue) => {
        if (issue.code === 'unrecognized_keys') {
            issue.keys.forEach((key) => paths.add(key));
            return issue.keys
                .map((key) => {
                    const hint = suggest(key, known);
                    return `Unknown option "${key}" for ${what}${hint ? `; did you mean "${hint}"?` : ''}`;
                })
                .join('; ');
        }
        const path = issue.path.map(String).join('.');
        if (path) paths.add(path);
        return `Expected ${issue.message} for ${path || what} but received ${describe(valueAt(input, issue.path))}`;
    });
    throw new LlamaConfigError(messages.join('; '), 'INVALID_CONFIG', [...paths]);
}
