/**
 * Memory estimates before loading: from the GGUF header alone (fast; KV cache, weights
 * and output exact for dense-attention models, compute approximate), or by asking
 * llama.cpp to dry-run every allocation without reading the weights (`simulate`).
 */
import { stateSizeOf } from './state-size.js';
import { binding, type NativeBinding, type NativeMemoryReport, type NativeModel } from '../native/binding.js';
import { CONTEXT_PADDING, resolveContextParams } from '../options/context-params.js';
import { captureStack, fromNative, LlamaAbortError, LlamaConfigError, LlamaError } from '../errors.js';
import { readGgufMetadata } from '../gguf/reader.js';
import { isRemoteModel, needsLocalFile, readModelHeader } from '../download/model-header.js';
import { type GgufMetadata } from '../gguf/types.js';
import { KV_CACHE_TYPE_INFO, type FlashAttention, type KvCacheType, type ResolvedKvConfig } from '../options/kv-cache.js';
import { cpuExtraBufferTypes } from '../backends/backends.js';
import { isExpertTensor, toMemoryReport, type DeviceMemory, type MemoryComponent, type MemoryReport } from './report.js';
import { modelFactsFromGguf, type HeaderModelFacts } from './model-facts.js';
import { estimateOptionsSchema, type EstimateOptions } from '../options/estimate-options.js';
import { defaults } from '../options/defaults.js';
import { resolvePlacement } from '../backends/placement.js';
import type { ModelLoadOptions } from '../options/model-options.js';
import type { LlamaWarning } from '../warnings.js';
import { parseOptions } from '../options/validate.js';
import { POOLING_CODES, resolveEmbedderParams } from '../options/embedding-options.js';
import type { NativeContextParams } from '../native/binding.js';
import { CPU_BUFFER_TYPE, CPU_MAPPED_BUFFER_TYPE, CPU_TENSOR_ALIGNMENT, firstMisalignedTensor, mappedFromDryRun, mappedRange, summarize, weightCopyCandidates, type WeightBuffer, type WeightsMemory } from './weight-buffers.js';

/** Which level produced a figure. */
export type EstimateSource = 'header' | 'simulate';

type Components = 'kv' | 'weights' | 'loras' | 'compute' | 'output';

/** An estimate: the memory report's shape, without live device figures. */
export interface MemoryEstimate {
    /** The settings the estimate is for, after defaults, presets and llama.cpp's padding. */
    config: {
        contextSize: number;
        parallel: number;
        cacheTypeK: KvCacheType;
        cacheTypeV: KvCacheType;
        flashAttention: 'on' | 'off';
        batchSize: number;
        ubatchSize: number;
        kvUnified: boolean;
    };
    kv: MemoryReport['kv'];
    /** The weights per buffer type (see {@link MemoryReport.weights}); at the header level the CPU's extra buffer types are a guess, flagged in `exact` and `notes`. */
    weights: WeightsMemory;
    /** The LoRA adapters of the `loras` option (their tensors, as llama.cpp allocates them in CPU memory; GPU buffers may align them differently). */
    loras: MemoryComponent;
    compute: MemoryComponent;
    output: MemoryComponent;
    /** The prompt cache's `ramBytes` when the options have a `promptCache` (the most it holds in RAM), else 0. */
    promptCache: MemoryComponent;
    total: MemoryComponent;
    /** Whether each figure is exact (equal to what a live context allocates) or approximate. */
    exact: Record<Components, boolean>;
    /** Which level produced each figure. */
    source: Record<Components, EstimateSource>;
    /** Per device (simulate only; the header level assumes the CPU). */
    devices: Omit<DeviceMemory, 'freeBytes' | 'totalBytes'>[];
    /** Caveats, e.g. why a figure is approximate. */
    notes: string[];
    /** What LlamaContext would warn about for these options (e.g. contextSize above the trained context): see {@link LlamaWarning}. */
    warnings: LlamaWarning[];
}

/** `n` rounded up to a multiple of `to`. @internal */
export const pad = (n: number, to: number) => Math.ceil(n / to) * to;
const rowBytes = (type: KvCacheType, values: number) => (values / KV_CACHE_TYPE_INFO[type].blockSize) * KV_CACHE_TYPE_INFO[type].blockBytes;

/**
 * Estimates what a context with these options would allocate, before loading the
 * model. Applies the same defaults, padding and validation as LlamaContext.
 *
 * @example
 * const e = await estimateMemory({ model: 'model.gguf', contextSize: 32768, kvPreset: 'aggressive' });
 * console.log(e.kv.bytes, e.total.bytes, e.exact);
 */
export async function estimateMemory(options: EstimateOptions): Promise<MemoryEstimate> {
    const stack = captureStack();
    const { signal, ...opts } = parseOptions(estimateOptionsSchema, options, 'estimateMemory()');
    const checkAbort = () => {
        if (signal?.aborted) throw new LlamaAbortError('estimateMemory() was aborted');
    };
    checkAbort();
    if (opts.simulate && typeof opts.model === 'string' && isRemoteModel(opts.model)) throw needsLocalFile(opts.model, 'simulate: true', ['model', 'simulate']);
    const gguf = await readModelHeader(opts.model, signal ? { signal } : {});
    const facts = modelFactsFromGguf(gguf);
    const loraBytes = await loraFileBytes(opts.loras ?? []);
    checkAbort();
    const load = { useMmap: opts.useMmap ?? defaults.model.useMmap, repack: opts.repack ?? defaults.model.repack };
    if (!opts.simulate) {
        refuseHeaderPlacement(opts);
        return withLoras(estimateFromHeader(gguf, facts, opts, weightLoad(load)), loraBytes);
    }
    if (typeof opts.model !== 'string') {
        throw new LlamaConfigError(
            'simulate: true needs the model as a GGUF file path (llama.cpp dry-runs the load), not a parsed header',
            'INVALID_CONFIG',
            ['model', 'simulate'],
        );
    }
    const { gpu, gpuLayers, devices, tensorSplit, cpuMoeLayers, tensorOverrides, rpcServers, rpcTimeoutMs } = opts;
    const placement = { gpu, gpuLayers, devices, tensorSplit, cpuMoeLayers, tensorOverrides, rpcServers, rpcTimeoutMs };
    const simulator = await openSimulator(opts.model, { repack: load.repack, placement }, stack);
    try {
        checkAbort();
    } catch (error) {
        simulator.dispose();
        throw error;
    }
    try {
        return withLoras(simulator.run(opts, facts, { useMmap: load.useMmap }), loraBytes);
    } finally {
        simulator.dispose();
    }
}

/**
 * The header level assumes the CPU: a GPU placement option needs llama.cpp's dry run.
 * (`gpu: false`, `gpuLayers: 0` and `cpuMoeLayers: 0` are what the header level assumes.)
 */
function refuseHeaderPlacement(opts: Pick<EstimateOptions, PlacementKey>): void {
    for (const key of PLACEMENT_KEYS) {
        const value = opts[key];
        const cpuOnly =
            value === undefined ||
            (key === 'gpu' && value === false) ||
            ((key === 'gpuLayers' || key === 'cpuMoeLayers') && value === 0) ||
            (Array.isArray(value) && value.length === 0);
        if (cpuOnly) continue;
        throw new LlamaConfigError(
            `${key} needs simulate: true (the header level assumes the CPU and does not place weights on devices)`,
            'INVALID_CONFIG',
            [key, 'simulate'],
        );
    }
}

/** The load options that place weights, which a dry run takes. @internal */
export type PlacementOptions = Pick<ModelLoadOptions, PlacementKey>;
type PlacementKey = (typeof PLACEMENT_KEYS)[number];
const PLACEMENT_KEYS = ['gpu', 'gpuLayers', 'devices', 'tensorSplit', 'cpuMoeLayers', 'tensorOverrides', 'rpcServers', 'rpcTimeoutMs'] as const;

/**
 * Bytes llama.cpp allocates for LoRA adapter files: each tensor copied as it is stored,
 * aligned as ggml's allocator aligns tensors in a buffer.
 */
async function loraFileBytes(paths: readonly string[]): Promise<number> {
    let bytes = 0;
    for (const path of paths) {
        const gguf = await readLoraHeader(path);
        if (gguf.kv['general.type'] !== 'adapter' || gguf.kv['adapter.type'] !== 'lora') {
            throw new LlamaConfigError(`loras: ${path} is not a LoRA adapter (general.type '${String(gguf.kv['general.type'])}')`, 'INVALID_CONFIG', ['loras']);
        }
        // llama.cpp loads the lora_a / lora_b pairs and nothing else of the file.
        bytes += gguf.tensors.filter((t) => /\.lora_[ab]$/.test(t.name)).reduce((s, t) => s + pad(t.byteSize, CPU_TENSOR_ALIGNMENT), 0);
    }
    return bytes;
}

/** An adapter's header, or the LORA_LOAD_FAILED that model.loadLora() gives for the same file. */
async function readLoraHeader(path: string): Promise<GgufMetadata> {
    try {
        return await readGgufMetadata(path);
    } catch (error) {
        const e = error as LlamaError;
        throw new LlamaError(
            'LORA_LOAD_FAILED',
            e.code === 'MODEL_NOT_FOUND' ? `LoRA adapter file not found: ${path}` : `${path} is not a valid GGUF LoRA adapter: ${e.message}`,
            { cause: error },
        );
    }
}

function withLoras(estimate: MemoryEstimate, bytes: number): MemoryEstimate {
    estimate.loras.bytes = bytes;
    estimate.total.bytes += bytes;
    if (estimate.devices[0]) estimate.devices[0].loraBytes += bytes;
    return estimate;
}

/** The context options an estimate is made for (validated). @internal */
export type EstimateContextOptions = Omit<EstimateOptions, 'model' | 'simulate' | 'flashAttention' | 'cacheTypeK' | 'cacheTypeV' | 'loras' | 'useMmap' | 'repack' | PlacementKey> &
    { flashAttention?: FlashAttention; cacheTypeK?: KvCacheType; cacheTypeV?: KvCacheType };

/**
 * How the weights would be loaded, for the header level: mapped or read, and the CPU
 * backend's extra buffer types that may take copies of them ([] with repack: false).
 * @internal
 */
export interface WeightLoad {
    useMmap: boolean;
    extraBufferTypes: readonly string[];
}

/** A WeightLoad for estimates whose weight figures are not used (KV cache, compute). @internal */
export const KV_ONLY_LOAD: WeightLoad = { useMmap: true, extraBufferTypes: [] };

/** The header level's WeightLoad for a load's options, asking the native layer for this CPU's extra buffer types. @internal */
export function weightLoad(load: { useMmap: boolean; repack: boolean }): WeightLoad {
    return { useMmap: load.useMmap, extraBufferTypes: load.repack ? cpuExtraBufferTypes() : [] };
}

/** Header-level estimate for already parsed options. Throws the same errors as LlamaContext. @internal */
export function estimateFromHeader(gguf: GgufMetadata, facts: HeaderModelFacts, options: EstimateContextOptions, load: WeightLoad): MemoryEstimate {
    if (options.embeddings) return { ...estimateEmbedderResolved(gguf, facts, embedderParams(options, facts), load), warnings: [] };
    if (options.pooling !== undefined) throw new LlamaConfigError('pooling needs embeddings: true (it is an embedding context\'s option)', 'INVALID_CONFIG', ['pooling', 'embeddings']);
    const resolved = resolveContextParams(options, facts);
    return withPromptCache({ ...headerEstimate(gguf, facts, resolved.native, resolved.kv, load), warnings: resolved.warnings }, options);
}

/** The prompt cache's RAM limit counted in an estimate whose options have one. */
function withPromptCache(estimate: MemoryEstimate, options: { promptCache?: { ramBytes?: number } }): MemoryEstimate {
    if (options.promptCache === undefined) return estimate;
    const bytes = options.promptCache.ramBytes ?? defaults.promptCache.ramBytes;
    return { ...estimate, promptCache: { bytes }, total: { bytes: estimate.total.bytes + bytes } };
}

/** Header-level estimate for parameters already resolved by resolveContextParams. @internal */
export function estimateResolved(gguf: GgufMetadata, facts: HeaderModelFacts, resolved: ReturnType<typeof resolveContextParams>, load: WeightLoad): MemoryEstimate {
    return { ...headerEstimate(gguf, facts, resolved.native, resolved.kv, load), warnings: resolved.warnings };
}

/** A model loaded by llama.cpp for dry runs (no weights read), for many estimates. @internal */
export interface Simulator {
    /** `useMmap`: the weights as a memory-mapped load would place them (default true). */
    run(options: EstimateContextOptions, facts: HeaderModelFacts, load?: { useMmap?: boolean }): MemoryEstimate;
    /** The remote devices (rpcServers) of the last run, with the free memory their servers reported then. */
    remoteDevices(): RemoteDevice[];
    dispose(): void;
}

/** A remote device of a dry run: its name (`RPC0`…), its server and the free memory the server reported. @internal */
export interface RemoteDevice {
    name: string;
    endpoint: string;
    freeBytes?: number;
}

/**
 * Loads `path` with no_alloc: llama.cpp simulates every allocation and reads no weights.
 * `repack` as for LlamaModel.load (the placement of weights in extra buffer types);
 * `placement` the load's GPU options, resolved as LlamaModel.load resolves them (its
 * defaults: gpu 'auto', every layer offloaded).
 * @internal
 */
export async function openSimulator(
    path: string,
    load: { repack?: boolean; placement?: PlacementOptions } = {},
    stack = captureStack(),
): Promise<Simulator> {
    const native = binding();
    let model: NativeModel;
    let gguf: GgufMetadata;
    try {
        gguf = await readGgufMetadata(path);
        // The load's warnings (gpu 'auto' without a GPU) are the model's, not the context's.
        const placement = resolvePlacement(load.placement ?? {}, gguf.kv, []);
        const remote = load.placement?.rpcServers;
        model = await native.loadModel(path, {
            ...placement,
            ...(remote ? { rpcServers: remote, rpcTimeoutMs: load.placement?.rpcTimeoutMs ?? defaults.model.rpcTimeoutMs } : {}),
            useMmap: false, useMlock: false, vocabOnly: false, checkTensors: false, noAlloc: true,
            extraBufferTypes: load.repack ?? defaults.model.repack,
        }).promise;
    } catch (error) {
        throw fromNative(error, stack);
    }
    const placement = model.weightPlacement();
    // LlamaModel.load reads a file whose tensors are off 32-byte boundaries instead of mapping it.
    const mappable = firstMisalignedTensor(gguf) === undefined;
    let remote: RemoteDevice[] = [];
    return {
        run(options, facts, run = {}) {
            if (!options.embeddings && options.pooling !== undefined) throw new LlamaConfigError('pooling needs embeddings: true (it is an embedding context\'s option)', 'INVALID_CONFIG', ['pooling', 'embeddings']);
            const resolved = options.embeddings ? null : resolveContextParams(options, facts);
            const params = resolved?.native ?? embedderParams(options, facts);
            try {
                const simulated = simulateEstimate(native, model, params, { placement, gguf }, (devices) => {
                    remote = devices.flatMap((d) => (d.endpoint === undefined ? [] : [{ name: d.name, endpoint: d.endpoint, ...(d.freeBytes === undefined ? {} : { freeBytes: d.freeBytes }) }]));
                });
                const estimate = { ...(options.embeddings ? withEmbedderOutput(simulated, facts, params) : simulated), warnings: resolved?.warnings ?? [] };
                return withPromptCache((run.useMmap ?? defaults.model.useMmap) && mappable ? asMapped(estimate, placement, gguf) : estimate, options);
            } catch (error) {
                throw fromNative(error, stack);
            }
        },
        remoteDevices: () => remote,
        dispose() {
            model.dispose();
        },
    };
}

type NativeParams = ReturnType<typeof resolveContextParams>['native'];

/** The native parameters of the embedding (or, with pooling 'rank', ranking) context an estimate's options describe. */
function embedderParams(options: EstimateContextOptions, facts: HeaderModelFacts): NativeContextParams {
    for (const key of ['cacheTypeK', 'cacheTypeV', 'kvPreset', 'flashAttention', 'kvUnified', 'ubatchSize', 'promptCache'] as const) {
        if (options[key] !== undefined) {
            throw new LlamaConfigError(`${key} does not apply to an embedding context (embeddings: true): leave it out`, 'INVALID_CONFIG', [key, 'embeddings']);
        }
    }
    const pooling = options.pooling === undefined || options.pooling === 'model' ? -1 : POOLING_CODES[options.pooling];
    return resolveEmbedderParams(options, pooling, { trainedContextSize: facts.trainedContextSize, causalAttention: facts.embedding.causal });
}

/**
 * Tokens of an embedding context's largest decode: its batch and micro-batch, at most the
 * context (llama.cpp's batch limits, native/context_embed.cpp).
 * @internal
 */
export function embedderDecodeTokens(p: NativeContextParams): number {
    return Math.min(p.batchSize, p.ubatchSize, pad(p.contextSize, CONTEXT_PADDING));
}

/**
 * An embedding context's output buffer at its largest (vendor/patches/0008: no logits):
 * n_embd_out floats per output row, and a pooled batch outputs every token, so llama.cpp
 * grows it from one row per sequence to the largest decode's tokens on the first full one.
 */
function embedderOutputBytes(facts: HeaderModelFacts, p: NativeContextParams): number {
    return facts.embedding.outputSize * 4 * Math.max(p.sequences, embedderDecodeTokens(p));
}

/** A dry run's estimate with the output buffer at its largest (a dry run reserves only one row per sequence). */
function withEmbedderOutput(estimate: Omit<MemoryEstimate, 'warnings'>, facts: HeaderModelFacts, p: NativeContextParams): Omit<MemoryEstimate, 'warnings'> {
    const bytes = embedderOutputBytes(facts, p);
    const delta = bytes - estimate.output.bytes;
    // llama.cpp's output buffer is host memory: the CPU device's.
    const devices = estimate.devices.map((d) => (d.name === 'CPU' ? { ...d, outputBytes: d.outputBytes + delta } : d));
    return { ...estimate, output: { bytes }, total: { bytes: estimate.total.bytes + delta }, devices, notes: [...estimate.notes, EMBEDDER_OUTPUT_NOTE] };
}

const EMBEDDER_OUTPUT_NOTE =
    'output is the buffer at its largest: llama.cpp reserves one embedding per sequence and grows it to one per token of the largest decode on the first full batch';

/** Header-level estimate of an embedding context. @internal */
export function estimateEmbedderResolved(gguf: GgufMetadata, facts: HeaderModelFacts, p: NativeContextParams, load: WeightLoad): Omit<MemoryEstimate, 'warnings'> {
    const base = headerEstimate(gguf, facts, p, { cacheTypeK: 'f16', cacheTypeV: 'f16', flashAttention: 'auto' }, load);
    const tokens = embedderDecodeTokens(p);
    const hasKv = facts.embedding.hasKvCache;
    const kv = hasKv ? base.kv : { ...base.kv, k: { ...base.kv.k, bytes: 0 }, v: { ...base.kv.v, bytes: 0 }, bytes: 0, cells: 0, layers: 0 };
    const output = embedderOutputBytes(facts, p);
    // Compute (approximate): a decoder still computes its output layer's logits for every
    // token; an encoder has none. Both keep a few hidden-state and feed-forward rows per token.
    // Fitted on the fixtures (within 15% on the CPU from 256 to 512 tokens).
    const compute = hasKv
        ? Math.round(4 * tokens * (facts.vocabSize + 4 * facts.embeddingSize + 2 * facts.feedForwardSize))
        : Math.round(4 * tokens * (facts.embeddingSize + 2 * facts.feedForwardSize));
    const weights = base.weights.bytes;
    return {
        ...base,
        config: { ...base.config, ubatchSize: Math.min(p.ubatchSize, base.config.batchSize) },
        kv,
        compute: { bytes: compute },
        output: { bytes: output },
        total: { bytes: weights + kv.bytes + compute + output },
        exact: { ...base.exact, kv: base.exact.kv || !hasKv },
        devices: [{ ...base.devices[0], kvBytes: kv.bytes, computeBytes: compute, outputBytes: output }],
        notes: [...base.notes, EMBEDDER_OUTPUT_NOTE],
    };
}

/**
 * A dry run's estimate as a memory-mapped load would allocate it: the default-CPU weights
 * become one CPU_Mapped view of their file range (llama.cpp maps nothing in a dry run).
 */
function asMapped(estimate: MemoryEstimate, placement: ReturnType<NativeModel['weightPlacement']>, gguf: GgufMetadata): MemoryEstimate {
    const weights = mappedFromDryRun(estimate.weights, placement, gguf);
    const delta = weights.bytes - estimate.weights.bytes;
    const cpu = estimate.devices.find((d) => d.name === 'CPU');
    if (cpu) cpu.weightsBytes += delta;
    return { ...estimate, weights, total: { bytes: estimate.total.bytes + delta } };
}

export { CONTEXT_PADDING };

/** llama.cpp's context padding (llama_context constructor): cells in total and per stream. */
export function paddedContext(contextSize: number, parallel: number, kvUnified: boolean): { total: number; perStream: number } {
    const total = pad(contextSize, CONTEXT_PADDING);
    if (kvUnified) return { total, perStream: total };
    const perStream = pad(Math.floor(total / parallel), CONTEXT_PADDING);
    return { total: perStream * parallel, perStream };
}

/**
 * The weights at the header level. Exact when no extra buffer type of this CPU can take any
 * of the model's weights: a mapped file is one CPU_Mapped view of its tensors' range, a read
 * one a CPU buffer of the tensors at ggml's alignment. Otherwise the weights that such a
 * type may take are counted twice, in the mapping (or the CPU buffer) and as copies at
 * their file size (usually above what llama.cpp allocates), and flagged approximate.
 */
function headerWeights(gguf: GgufMetadata, load: WeightLoad): { weights: WeightsMemory; exact: boolean; note: string | null } {
    const mappable = load.useMmap && firstMisalignedTensor(gguf) === undefined;
    const copies = weightCopyCandidates(gguf, load.extraBufferTypes);
    const buffers: WeightBuffer[] = [];
    const span = mappedRange(gguf, gguf.tensors.map((t) => t.name));
    if (span) {
        buffers.push({
            bufferType: mappable ? CPU_MAPPED_BUFFER_TYPE : CPU_BUFFER_TYPE,
            device: 'CPU',
            bytes: mappable ? span.last - span.first : gguf.tensors.reduce((s, t) => s + pad(t.byteSize, CPU_TENSOR_ALIGNMENT), 0),
            mapped: mappable,
            tensors: gguf.tensors.length,
            elsewhereBytes: 0,
        });
    }
    if (copies.tensors === 0) return { weights: summarize(buffers), exact: true, note: null };
    buffers.push({ bufferType: copies.bufferTypes.join('/'), device: 'CPU', bytes: copies.bytes, mapped: false, tensors: copies.tensors, elsewhereBytes: 0 });
    const note =
        `weights are approximate (counted both in the file and as copies, usually above the live figure): this CPU's extra buffer types (${copies.bufferTypes.join(', ')}) may take copies of ` +
        `${copies.tensors} ${copies.types.join('/')} tensors (${copies.bytes} bytes) in their own layout, which the header cannot tell; ` +
        'use simulate: true for the exact figure, or repack: false to keep every weight in the mapped file';
    return { weights: summarize(buffers), exact: false, note };
}

/** @internal */
export function headerEstimate(gguf: GgufMetadata, facts: HeaderModelFacts, p: NativeParams, kv: ResolvedKvConfig, load: WeightLoad): Omit<MemoryEstimate, 'warnings'> {
    const ctx = paddedContext(p.contextSize, p.sequences, p.kvUnified);
    const { cacheTypeK: typeK, cacheTypeV: typeV } = kv;
    // On the CPU every K/V type has a flash-attention kernel, so llama.cpp's 'auto' resolves to on.
    const flashAttention = kv.flashAttention === 'off' ? 'off' : 'on';
    const kBytes = facts.layerHeadDimK.reduce((s, dim, il) => s + ctx.total * rowBytes(typeK, dim * facts.layerHeadCountKv[il]), 0);
    const vBytes = facts.layerHeadDimV.reduce((s, dim, il) => s + ctx.total * rowBytes(typeV, dim * facts.layerHeadCountKv[il]), 0);
    const placed = headerWeights(gguf, load);
    const weights = placed.weights.bytes;
    const experts = gguf.tensors.reduce((s, t) => s + (isExpertTensor(t.name) ? t.byteSize : 0), 0);
    const output = facts.vocabSize * 4 * p.sequences;
    // Compute buffers (approximate): the graph reserved for one micro-batch keeps either the
    // logits (n_vocab floats per token) or, without flash attention, the attention scores of
    // every head over the whole cache, whichever is larger, plus a few hidden-state rows.
    // llama.cpp clamps the batch to the requested (unpadded) context, and the micro-batch to the batch.
    const batchSize = Math.min(p.contextSize, p.batchSize);
    const tokens = Math.min(batchSize, p.ubatchSize);
    const heads = Math.max(...facts.layerHeadCount, 1);
    const logits = 4 * tokens * facts.vocabSize;
    const scores = flashAttention === 'off' ? 4 * tokens * ctx.perStream * heads * (1 + 1 / heads) : 0;
    const compute = Math.round(Math.max(logits, scores) + 4 * tokens * 4 * facts.embeddingSize);
    const notes = ['compute is approximate at the header level (within 15% on the CPU for the fixture models); use simulate: true for the exact figure'];
    if (placed.note) notes.push(placed.note);
    if (!facts.denseKv) notes.push(`the KV cache is approximate: this model has ${facts.notDenseReason}, which the header level computes as dense attention; use simulate: true`);
    const kvBytes = kBytes + vBytes;
    return {
        config: {
            contextSize: ctx.total,
            parallel: p.sequences,
            cacheTypeK: typeK,
            cacheTypeV: typeV,
            flashAttention,
            batchSize,
            ubatchSize: tokens,
            kvUnified: p.kvUnified,
        },
        kv: { k: { type: typeK, bytes: kBytes }, v: { type: typeV, bytes: vBytes }, bytes: kvBytes, cells: ctx.total, layers: facts.layerCount, sequences: p.kvUnified ? 1 : p.sequences, cellsPerSequence: p.kvUnified ? ctx.total : Math.floor(ctx.total / p.sequences), cellsUsed: new Array<number>(p.sequences).fill(0), recurrentBytes: 0, state: stateSizeOf({ k: { bytes: kBytes }, v: { bytes: vBytes }, cells: ctx.total, layers: facts.layerCount, sequences: p.kvUnified ? 1 : p.sequences }) },
        weights: placed.weights,
        loras: { bytes: 0 },
        compute: { bytes: compute },
        output: { bytes: output },
        promptCache: { bytes: 0 },
        total: { bytes: weights + kvBytes + compute + output },
        exact: { kv: facts.denseKv, weights: placed.exact, loras: true, compute: false, output: true },
        source: { kv: 'header', weights: 'header', loras: 'header', compute: 'header', output: 'header' },
        devices: [{ name: 'CPU', kind: 'cpu', weightsBytes: weights, expertWeightsBytes: experts, kvBytes, loraBytes: 0, computeBytes: compute, outputBytes: output }],
        notes,
    };
}

/**
 * Bytes a backend adds to each buffer it allocates of a buffer type, beyond the size asked
 * for: a dry run reports the size asked for. ggml-vulkan's pinned host buffers are 32 bytes
 * larger ("Behave like the CPU buffer type", ggml_backend_vk_host_buffer_type_alloc_buffer).
 */
const ALLOCATION_PADDING: Readonly<Record<string, number>> = { Vulkan_Host: 32 };

/**
 * A dry run's figures as the allocations would be: one buffer per buffer type, padded as
 * its backend pads it. (Weights beyond a buffer type's largest buffer are split into
 * several, each padded: not counted, a few bytes per buffer.)
 */
function withAllocationPadding(report: NativeMemoryReport): NativeMemoryReport {
    const buffers = report.buffers.map((b) => {
        const padding = ALLOCATION_PADDING[b.buffer] ?? 0;
        if (padding === 0) return b;
        return { ...b, model: b.model > 0 ? b.model + padding : 0, compute: b.compute > 0 ? b.compute + padding : 0 };
    });
    return { ...report, buffers };
}

/** A dry run's estimate; `onDevices` sees the report's devices with their free memory, which an estimate leaves out. */
function simulateEstimate(
    native: NativeBinding, model: NativeModel, p: NativeParams, header: Parameters<typeof toMemoryReport>[1], onDevices: (devices: DeviceMemory[]) => void,
): Omit<MemoryEstimate, 'warnings'> {
    const ctx = new native.NativeContext(model, p);
    try {
        const config = ctx.config();
        const report = toMemoryReport(withAllocationPadding(ctx.memoryReport()), header);
        onDevices(report.devices);
        return {
            config: {
                contextSize: config.contextSize,
                parallel: config.sequences,
                cacheTypeK: config.cacheTypeK as KvCacheType,
                cacheTypeV: config.cacheTypeV as KvCacheType,
                flashAttention: config.flashAttention ? 'on' : 'off',
                batchSize: config.batchSize,
                ubatchSize: config.ubatchSize,
                kvUnified: config.kvUnified,
            },
            kv: report.kv,
            weights: report.weights,
            loras: { bytes: 0 },
            compute: report.compute,
            output: report.output,
            promptCache: { bytes: 0 },
            total: report.total,
            exact: { kv: true, weights: true, loras: true, compute: true, output: true },
            source: { kv: 'simulate', weights: 'simulate', loras: 'header', compute: 'simulate', output: 'simulate' },
            devices: report.devices.map(({ freeBytes: _f, totalBytes: _t, ...d }) => d),
            notes: [],
        };
    } finally {
        ctx.dispose();
    }
}
