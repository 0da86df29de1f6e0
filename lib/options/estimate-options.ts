/** Options of estimateMemory(). */
import { z } from 'zod';
import type { GgufMetadata } from '../gguf/types.js';
import { contextSettingsShape, type ContextSettings } from './context-options.js';
import { modelLoadOptionsSchema, type ModelLoadOptions } from './model-options.js';
import { bool, oneOf, signal } from './validate.js';
import { EMBEDDING_POOLINGS, type EmbeddingPooling } from './embedding-options.js';

/** `model` of an estimate or a plan: a GGUF file path or a parsed header. */
export const ggufModelOption = () =>
    z.union([z.string().min(1), z.custom<GgufMetadata>((v) => typeof v === 'object' && v !== null && 'tensors' in v && 'kv' in v)], {
        error: 'a GGUF file path or the result of readGgufMetadata()',
    });

/** Options of {@link estimateMemory}: the context options, and the model. */
export interface EstimateOptions extends Omit<ContextSettings, 'threads' | 'threadsBatch' | 'seed' | 'checkMemory'> {
    /** A GGUF file path, or its header as returned by readGgufMetadata(). */
    model: string | GgufMetadata;
    /** LoRA adapter files the context would have active: their bytes are read from their headers. Defaults to none. */
    loras?: string[];
    /**
     * Ask llama.cpp to dry-run the allocations (model loaded with no_alloc: the weights
     * are never read). Exact for every component; needs a file path. Defaults to `false`.
     */
    simulate?: boolean;
    /** The model load's `useMmap` ({@link ModelLoadOptions.useMmap}): a mapped file's weights are one view of its range. Defaults to `true`. */
    useMmap?: boolean;
    /** The model load's `repack` ({@link ModelLoadOptions.repack}): whether the CPU's extra buffer types may copy weights. Defaults to `true`. */
    repack?: boolean;
    /**
     * The model load's GPU choice ({@link ModelLoadOptions.gpu}), for `simulate`: llama.cpp's
     * dry run places layers, KV cache and compute buffers on the devices the load would use,
     * and `devices` gives the figures per device. The header level assumes the CPU and refuses
     * a GPU placement. Defaults to `'auto'`, as for the load.
     */
    gpu?: ModelLoadOptions['gpu'];
    /** The model load's `gpuLayers` ({@link ModelLoadOptions.gpuLayers}), for `simulate` only. Defaults to `'auto'`. */
    gpuLayers?: ModelLoadOptions['gpuLayers'];
    /** The model load's `devices` ({@link ModelLoadOptions.devices}), for `simulate` only. Defaults to `gpu`'s choice. */
    devices?: string[];
    /** The model load's `tensorSplit` ({@link ModelLoadOptions.tensorSplit}), for `simulate` only. Defaults to llama.cpp's split. */
    tensorSplit?: number[];
    /** The model load's `cpuMoeLayers` ({@link ModelLoadOptions.cpuMoeLayers}), for `simulate` only. Defaults to `0`. */
    cpuMoeLayers?: number;
    /**
     * The model load's `tensorOverrides` ({@link ModelLoadOptions.tensorOverrides}), for
     * `simulate` only: llama.cpp's dry run places the matching weights in the named buffer
     * types (e.g. `'CPU_REPACK'`, `'Vulkan0'`). Defaults to none.
     */
    tensorOverrides?: { pattern: string; bufferType: string }[];
    /**
     * The model load's `rpcServers` ({@link ModelLoadOptions.rpcServers}), for `simulate` only:
     * the dry run connects to the servers, and the layers, KV cache and compute buffers the
     * load would give their devices are in `devices` (`RPC0`, `RPC1`… with their `endpoint`).
     * The servers must be running; no weights are sent. Defaults to none.
     */
    rpcServers?: string[];
    /** The model load's `rpcTimeoutMs` ({@link ModelLoadOptions.rpcTimeoutMs}), with `rpcServers`. Defaults to `60000`. */
    rpcTimeoutMs?: number;
    /**
     * Estimate an embedding context ({@link LlamaModel.createEmbeddingContext}) instead of a
     * generation context: no logits, a KV cache only for decoder models, the output buffer at
     * one embedding per token of the largest decode. Takes contextSize, batchSize, parallel and
     * pooling; the K/V options do not apply. Defaults to `false`.
     */
    embeddings?: boolean;
    /** The embedding context's pooling (with `embeddings`); 'rank' for a ranking context. Defaults to `'model'`. */
    pooling?: EmbeddingPooling | 'rank';
    /** Checked between the steps (the header read, the dry run): an abort rejects with ABORTED. Defaults to none. */
    signal?: AbortSignal;
}

const { threads: _threads, threadsBatch: _threadsBatch, seed: _seed, checkMemory: _checkMemory, ...estimateSettings } = contextSettingsShape;

/** The context options an estimate takes (not threads, seed, checkMemory), LoRA files, the model and the load's weight options. */
export const estimateOptionsSchema = z.strictObject({
    ...estimateSettings,
    loras: z.array(z.string({ error: 'a LoRA adapter file path' }).min(1, { error: 'a LoRA adapter file path' }), { error: 'an array of LoRA adapter file paths' }).optional(),
    model: ggufModelOption(),
    simulate: bool().optional(),
    embeddings: bool().optional(),
    pooling: z.enum([...EMBEDDING_POOLINGS, 'rank'], { error: oneOf([...EMBEDDING_POOLINGS, 'rank']) }).optional(),
    useMmap: bool().optional(),
    repack: bool().optional(),
    gpu: modelLoadOptionsSchema.shape.gpu,
    gpuLayers: modelLoadOptionsSchema.shape.gpuLayers,
    devices: modelLoadOptionsSchema.shape.devices,
    tensorSplit: modelLoadOptionsSchema.shape.tensorSplit,
    cpuMoeLayers: modelLoadOptionsSchema.shape.cpuMoeLayers,
    tensorOverrides: modelLoadOptionsSchema.shape.tensorOverrides,
    rpcServers: modelLoadOptionsSchema.shape.rpcServers,
    rpcTimeoutMs: modelLoadOptionsSchema.shape.rpcTimeoutMs,
    signal: signal().optional(),
});
