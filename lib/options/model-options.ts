/** Options of LlamaModel.load() and of tokenize(). */
import { z } from 'zod';
import { LIMITS } from './llama-limits.js';
import { bool, filePath, fn, nonNegativeInt, positiveInt, signal } from './validate.js';

const GPU_CHOICES = ['auto', 'cuda', 'rocm', 'vulkan', 'metal'] as const;
const GPU_LAYERS = `an integer in [-1, ${LIMITS.int32}], 'max' or 'auto'`;

export const modelLoadOptionsSchema = z.strictObject({
    path: filePath(),
    gpu: z.union([z.enum(GPU_CHOICES), z.literal(false)], { error: "one of 'auto', 'cuda', 'rocm', 'vulkan', 'metal' or false" }).optional(),
    gpuLayers: z.union([z.number().int({ error: GPU_LAYERS }).min(-1, { error: GPU_LAYERS }).max(LIMITS.int32, { error: GPU_LAYERS }), z.literal('max'), z.literal('auto')], { error: GPU_LAYERS }).optional(),
    devices: z.array(z.string({ error: 'a device name' }).min(1, { error: 'a device name' }), { error: "an array of device names, e.g. ['CUDA0']" }).optional(),
    tensorSplit: z.array(
        z.number({ error: 'a non-negative number' }).max(LIMITS.tensorSplit, { error: 'a number in [0, 1e9]' }).nonnegative({ error: 'a non-negative number' }),
        { error: 'an array of non-negative numbers' },
    ).min(1, { error: 'at least one proportion' }).optional(),
    cpuMoeLayers: nonNegativeInt().optional(),
    tensorOverrides: z.array(z.strictObject({
        pattern: z.string({ error: 'a regular expression (string)' }).min(1, { error: 'a non-empty regular expression' }),
        bufferType: z.string({ error: "a buffer type name, e.g. 'CPU' or 'CUDA0'" }).min(1, { error: "a buffer type name, e.g. 'CPU' or 'CUDA0'" }),
    }), { error: "an array of { pattern, bufferType }" }).optional(),
    rpcServers: z.array(
        z.string({ error: "a host:port string, e.g. '127.0.0.1:50052'" }).regex(/^[^\s:]+:\d{1,5}$/, { error: "a host:port string, e.g. '127.0.0.1:50052'" }),
        { error: "an array of host:port strings, e.g. ['127.0.0.1:50052']" },
    ).min(1, { error: 'at least one host:port' }).max(16, { error: 'at most 16 servers (GGML_RPC_MAX_SERVERS)' })
        .refine((list) => new Set(list).size === list.length, { error: 'each server once' }).optional(),
    rpcTimeoutMs: z.number({ error: 'a number of milliseconds' }).int({ error: 'an integer number of milliseconds' }).min(1, { error: 'at least 1 ms' }).max(2_147_483_647, { error: 'at most 2147483647 ms' }).optional(),
    isolation: z.enum(['none', 'process'], { error: "'none' or 'process'" }).optional(),
    useMmap: bool().optional(),
    repack: bool().optional(),
    useMlock: bool().optional(),
    vocabOnly: bool().optional(),
    checkTensors: bool().optional(),
    checkMemory: bool().optional(),
    chatTemplate: z.string({ error: 'a Jinja chat template (string)' }).min(1, { error: 'a non-empty Jinja chat template' }).optional(),
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
     * ggml RPC servers (`host:port`, e.g. `['192.168.1.10:50052']`, llama.cpp `--rpc`) whose devices
     * join this load: `llama-kv rpc-server` on each machine. The remote devices go first in the
     * offload list (as llama.cpp puts them, to keep network transfers low), then the local GPUs;
     * layers and their KV cache are split across them as llama.cpp splits them (`tensorSplit`:
     * remote devices first). `gpuLayers` counts layers offloaded to any of them. A server that
     * is not there, refuses or answers garbage rejects the load with `BACKEND_UNAVAILABLE`. The
     * protocol has no authentication or encryption: see docs/backends.md. Defaults to none.
     */
    rpcServers?: string[];
    /**
     * How long an RPC exchange may wait for its server, in ms (each send and each receive, a
     * remote graph computation included): past it the call fails (`BACKEND_UNAVAILABLE` at load,
     * `DECODE_FAILED` in a context, which is then unusable). It applies to every RPC connection
     * of the process, and the last load with `rpcServers` sets it. Defaults to `60000`.
     */
    rpcTimeoutMs?: number;
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
     * speed cost (docs/memory.md). Defaults to `true`.
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
    /**
     * A Jinja chat template to use instead of the file's `tokenizer.chat_template` (llama.cpp
     * `--chat-template-file`'s contents): {@link LlamaModel.chatTemplate} then says 'override'.
     * Defaults to the file's template, or llama.cpp's ChatML when it has none.
     */
    chatTemplate?: string;
    /** Called with the load progress in [0, 1]. Defaults to none. */
    onProgress?: (progress: number) => void;
    /** Aborts the load; the promise then rejects with an ABORTED error. Defaults to none. */
    signal?: AbortSignal;
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

/** Options of {@link LlamaModel.tokenizeAsync}. */
export interface TokenizeAsyncOptions extends TokenizeOptions {
    /** Checked before and after the tokenization (which cannot be interrupted): an abort rejects with ABORTED. Defaults to none. */
    signal?: AbortSignal;
}

export const tokenizeAsyncOptionsSchema = z.strictObject({
    ...tokenizeOptionsSchema.shape,
    signal: signal().optional(),
});

/** inspectModel()'s options (InspectModelOptions, in model/, types them). */
export const inspectModelOptionsSchema = z.strictObject({
    timeoutMs: positiveInt().optional(),
    signal: signal().optional(),
});

