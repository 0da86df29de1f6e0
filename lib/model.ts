import { stat } from 'node:fs/promises';
import { binding, type NativeLoadParams, type NativeModel, type NativeModelMetadata } from './binding.js';
import { chooseGpu, cpuExtraBufferTypes, listBackends } from './backends.js';
import { log } from './logger.js';
import {
    captureStack,
    fromNative,
    LlamaAbortError,
    LlamaError,
    LlamaConfigError,
    LlamaDisposedError,
    LlamaModelLoadError,
} from './errors.js';
import { LlamaContext } from './context.js';
import { LlamaLora, loraFacts } from './lora.js';
import { inspectModel } from './isolation.js';
import { readGgufMetadata, type GgufMetadata, type GgufValue } from './gguf.js';
import { checkModelMemory } from './memory-guard.js';
import { CPU_TENSOR_ALIGNMENT, firstMisalignedTensor, type WeightPlacement } from './weight-buffers.js';
import { modelFactsFromGguf, type HeaderModelFacts } from './model-facts.js';
import { defaults, modelLoadOptionsSchema, parseOptions, tokenizeOptionsSchema, type ContextOptionsWithoutModel, type ModelLoadOptions, type TokenizeOptions } from './options.js';

/** What a model is, read from the loaded model by llama.cpp, plus the raw GGUF metadata. */
export interface ModelMetadata {
    /** `general.architecture`, e.g. `'llama'`. */
    architecture: string;
    /** `general.name`, or `''`. */
    name: string;
    /** llama.cpp's one-line description (architecture, size, file type). */
    description: string;
    /** False when loaded with `vocabOnly`: only tokenize/detokenize work, and the size fields are 0. */
    hasWeights: boolean;
    /** Context length the model was trained with. */
    trainedContextSize: number;
    layerCount: number;
    embeddingSize: number;
    /** Attention heads (query). */
    headCount: number;
    /** Key/value heads (fewer than headCount with grouped-query attention). */
    headCountKv: number;
    /** Dimension of one key head. */
    headDimK: number;
    /** Dimension of one value head. */
    headDimV: number;
    /** Key head dimension of each layer (they may differ between layers). */
    layerHeadDimK: readonly number[];
    /** Value head dimension of each layer. */
    layerHeadDimV: readonly number[];
    /** Whether the K and V caches must have the same type (MLA attention, e.g. DeepSeek 2/3). */
    kvTypesMustMatch: boolean;
    vocabSize: number;
    /** Bytes of all weight tensors. */
    sizeBytes: number;
    parameterCount: number;
    /** Beginning-of-sequence and end-of-sequence token ids. */
    bosToken: number;
    eosToken: number;
    /** Whether tokenize() with addSpecial adds a BOS token. */
    addBos: boolean;
    /** The GGUF key/value map as stored in the file. */
    gguf: Record<string, GgufValue>;
}

/** Anything that a model disposes before itself. @internal */
export interface ModelChild {
    dispose(): void;
}

let nativeOf: (model: LlamaModel) => NativeModel;
let placementOf: (model: LlamaModel) => ModelPlacement;
let childrenOf: (model: LlamaModel) => Set<ModelChild>;

/**
 * A GGUF model loaded by llama.cpp. Create with {@link LlamaModel.load}; free with
 * {@link LlamaModel.dispose} (or `using`), which disposes its contexts first.
 */
export class LlamaModel {
    #native: NativeModel | null;
    readonly #children = new Set<ModelChild>();
    readonly #placement: ModelPlacement;
    /** Path the model was loaded from. */
    readonly path: string;
    /** Metadata of the model. */
    readonly metadata: Readonly<ModelMetadata>;

    static {
        nativeOf = (model) => model.#requireNative();
        childrenOf = (model) => model.#children;
        placementOf = (model) => model.#placement;
    }

    private constructor(native: NativeModel, path: string, gguf: Record<string, GgufValue>, placement: ModelPlacement) {
        this.#native = native;
        this.#placement = placement;
        this.path = path;
        this.metadata = Object.freeze(toMetadata(native.metadata(), gguf));
    }

    /**
     * Loads a GGUF model off the JS thread. A missing file, a directory, a file that
     * is not GGUF or a truncated one reject with a LlamaModelLoadError saying which.
     */
    static async load(options: ModelLoadOptions): Promise<LlamaModel> {
        const stack = captureStack();
        const opts = parseOptions(modelLoadOptionsSchema, options, 'LlamaModel.load()');
        const gguf = await inspectFile(opts.path);
        if (opts.isolation === 'process') await inspectModel(opts.path);
        if (opts.signal?.aborted) throw new LlamaAbortError('Model loading was aborted before it started');
        const placement = resolvePlacement(opts, gguf.kv);
        // ggml asserts that memory-mapped tensor data sits at 32-byte boundaries (a file
        // whose general.alignment is 1 or 8 would abort the process): read such a file.
        let useMmap = opts.useMmap ?? defaults.model.useMmap;
        const misaligned = firstMisalignedTensor(gguf);
        if (useMmap && misaligned) {
            useMmap = false;
            log('warn', `${opts.path}: tensor ${misaligned.name} is not at a ${CPU_TENSOR_ALIGNMENT}-byte boundary of the file (general.alignment ${gguf.alignment}); loading without mmap`);
        }
        const vocabOnly = opts.vocabOnly ?? defaults.model.vocabOnly;
        const repack = opts.repack ?? defaults.model.repack;
        if (!vocabOnly && (opts.checkMemory ?? defaults.model.checkMemory)) {
            checkModelMemory(gguf, {
                layerCount: modelLayerCount(gguf.kv),
                gpuLayers: placement.gpuLayers,
                devices: placement.devices ?? [],
                overrides: placement.tensorOverrides ?? [],
                useMmap,
                extraBufferTypes: repack ? cpuExtraBufferTypes() : [],
            });
        }
        const { promise, abort } = call(() =>
            binding().loadModel(
                opts.path,
                {
                    ...placement,
                    useMmap,
                    extraBufferTypes: repack,
                    useMlock: opts.useMlock ?? defaults.model.useMlock,
                    vocabOnly,
                    checkTensors: opts.checkTensors ?? defaults.model.checkTensors,
                },
                opts.onProgress ? safeCallback(opts.onProgress) : undefined,
            ),
        );
        const onAbort = () => abort();
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        try {
            return new LlamaModel(await promise, opts.path, gguf.kv, {
                gpuLayers: placement.gpuLayers,
                devices: placement.devices ?? [],
                header: gguf,
                facts: headerFacts(gguf),
                useMmap,
                repack,
                weights: null,
            });
        } catch (error) {
            throw fromNative(error, stack);
        } finally {
            opts.signal?.removeEventListener('abort', onAbort);
        }
    }

    /** Whether {@link dispose} was called. */
    get disposed(): boolean {
        return this.#native === null;
    }

    /** Text to token ids, on the JS thread: for short text. See {@link tokenizeAsync} for large inputs. */
    tokenize(text: string, options: TokenizeOptions = {}): Int32Array {
        const [addSpecial, parseSpecial] = tokenizeArgs(text, options, 'tokenize()');
        return call(() => this.#requireNative().tokenize(text, addSpecial, parseSpecial));
    }

    /** Text to token ids on a worker thread: for large inputs (the event loop keeps running). */
    async tokenizeAsync(text: string, options: TokenizeOptions = {}): Promise<Int32Array> {
        const stack = captureStack();
        const [addSpecial, parseSpecial] = tokenizeArgs(text, options, 'tokenizeAsync()');
        try {
            return await this.#requireNative().tokenizeAsync(text, addSpecial, parseSpecial);
        } catch (error) {
            throw fromNative(error, stack);
        }
    }

    /** Token ids to text. Special tokens (BOS, EOS) are not rendered unless `renderSpecial` is set. */
    detokenize(tokens: ArrayLike<number>, options: { renderSpecial?: boolean } = {}): string {
        const ids = toTokenArray(tokens);
        return call(() => this.#requireNative().detokenize(ids, options.renderSpecial !== true, options.renderSpecial === true).toString('utf8'));
    }

    /**
     * Loads a LoRA adapter for this model (llama.cpp's llama_adapter_lora_init, off the JS
     * thread). A file that is not a LoRA GGUF, an adapter for another architecture or
     * other shapes, or a missing file rejects with LORA_LOAD_FAILED saying which.
     * Apply it with `ctx.setLoras([{ lora, scale }])`. `signal` is checked before and
     * after the load (llama.cpp's adapter load cannot be interrupted).
     */
    async loadLora(path: string, options: { signal?: AbortSignal } = {}): Promise<LlamaLora> {
        const stack = captureStack();
        if (typeof path !== 'string' || path.length === 0) {
            throw new LlamaConfigError(`Expected a file path (non-empty string) for path but received ${typeof path}`, 'INVALID_ARGUMENT', ['path']);
        }
        const native = this.#requireNative();
        const gguf = await inspectLoraFile(path, this.metadata.architecture);
        if (options.signal?.aborted) throw new LlamaAbortError('Loading the LoRA adapter was aborted before it started');
        let adapter;
        try {
            adapter = await binding().loadLora(native, path);
        } catch (error) {
            throw fromNative(error, stack);
        }
        if (options.signal?.aborted || this.#native === null) {
            adapter.dispose();
            if (this.#native === null) throw new LlamaDisposedError('model');
            throw new LlamaAbortError('Loading the LoRA adapter was aborted');
        }
        let release = () => {};
        let lora: LlamaLora;
        try {
            lora = new LlamaLora(adapter, path, loraFacts(path, gguf), () => release());
        } catch (error) {
            adapter.dispose();
            throw fromNative(error, stack);
        }
        release = adoptChild(this, lora);
        return lora;
    }

    /** Sugar for `new LlamaContext({ model: this, ...options })`. */
    createContext(options: ContextOptionsWithoutModel = {}): LlamaContext {
        return new LlamaContext({ ...options, model: this });
    }

    /** Disposes the model's contexts, then frees the weights. Idempotent. */
    dispose(): void {
        if (this.#native === null) return;
        for (const child of [...this.#children]) child.dispose();
        this.#children.clear();
        const native = this.#native;
        this.#native = null;
        native.dispose();
    }

    [Symbol.dispose](): void {
        this.dispose();
    }

    async [Symbol.asyncDispose](): Promise<void> {
        this.dispose();
    }

    #requireNative(): NativeModel {
        if (this.#native === null) throw new LlamaDisposedError('model');
        return this.#native;
    }
}

/** @internal */
export function nativeModel(model: LlamaModel): NativeModel {
    if (!(model instanceof LlamaModel)) {
        throw new LlamaConfigError(`Expected a LlamaModel for model but received ${model === null ? 'null' : typeof model}`);
    }
    return nativeOf(model);
}

let warnedNoGpu = false;


/**
 * The devices, layers and tensor overrides of a load, from its gpu options: see
 * {@link ModelLoadOptions.gpu}. Logs 'auto''s CPU fallback once per process.
 * @internal
 */
export function resolvePlacement(opts: ModelLoadOptions, gguf: Record<string, GgufValue>): Pick<NativeLoadParams, 'gpuLayers' | 'devices' | 'tensorSplit' | 'tensorOverrides'> {
    const choice = chooseGpu(listBackends(), opts.gpu ?? defaults.model.gpu, opts.devices);
    if (choice.warning && !warnedNoGpu) {
        warnedNoGpu = true;
        log('warn', choice.warning);
    }
    const requested = opts.gpuLayers ?? defaults.model.gpuLayers;
    if (opts.gpu === false && typeof requested === 'number' && requested > 0) {
        throw new LlamaConfigError(`gpuLayers: ${requested} needs a GPU, but gpu is false: remove gpuLayers or choose a gpu`, 'INVALID_CONFIG', ['gpuLayers', 'gpu']);
    }
    if (opts.tensorSplit && opts.tensorSplit.length > Math.max(choice.devices.length, 1)) {
        throw new LlamaConfigError(
            `tensorSplit has ${opts.tensorSplit.length} entries but the model is offloaded to ${choice.devices.length} device(s) (${choice.devices.join(', ') || 'none'})`,
            'INVALID_CONFIG', ['tensorSplit'],
        );
    }
    const gpuLayers = choice.devices.length === 0 ? 0 : requested === 'auto' || requested === 'max' ? -1 : requested;
    const overrides = [...cpuMoeOverrides(opts.cpuMoeLayers ?? defaults.model.cpuMoeLayers, gguf), ...(opts.tensorOverrides ?? [])];
    return {
        gpuLayers,
        devices: choice.devices,
        ...(opts.tensorSplit ? { tensorSplit: opts.tensorSplit } : {}),
        ...(overrides.length > 0 ? { tensorOverrides: overrides } : {}),
    };
}

/** llama.cpp's --n-cpu-moe: the expert tensors of layers [0, n) to the CPU buffer type. */
function cpuMoeOverrides(n: number, gguf: Record<string, GgufValue>): { pattern: string; bufferType: string }[] {
    if (n <= 0) return [];
    // Layers beyond the model's match nothing; without a block count, no model has more than this.
    const layers = Math.min(n, modelLayerCount(gguf) || 1024);
    const ids = Array.from({ length: layers }, (_, i) => i).join('|');
    return [{ pattern: `^blk\\.(${ids})\\.ffn_(up|down|gate|gate_up)_(ch|)exps`, bufferType: 'CPU' }];
}

/** Where a model's layers went, and its GGUF header (for the memory checks of its contexts). @internal */
export interface ModelPlacement {
    /** Layers requested on a GPU (-1: all; 0 when no GPU is used). */
    gpuLayers: number;
    /** The GPU devices offloaded to ([] on the CPU). */
    devices: readonly string[];
    header: GgufMetadata;
    /** The estimator's facts from the header, read once; null when it does not understand the header. */
    facts: HeaderModelFacts | null;
    /** Whether the file is memory-mapped (after the alignment fallback). */
    useMmap: boolean;
    /** Whether the CPU backend's extra buffer types may take weights. */
    repack: boolean;
    /** Where each weight went, read from llama.cpp on first use (it does not change after the load). */
    weights: WeightPlacement | null;
}

function headerFacts(gguf: GgufMetadata): HeaderModelFacts | null {
    try {
        return modelFactsFromGguf(gguf);
    } catch {
        return null;
    }
}

/** @internal */
export function modelPlacement(model: LlamaModel): ModelPlacement {
    return placementOf(model);
}

/** Where each weight of the model went (buffer type per tensor), read once. @internal */
export function modelWeightPlacement(model: LlamaModel): WeightPlacement {
    const placement = placementOf(model);
    placement.weights ??= nativeOf(model).weightPlacement();
    return placement.weights;
}

/** `<arch>.block_count` of a GGUF header, 0 when absent. @internal */
export function modelLayerCount(kv: Record<string, GgufValue>): number {
    const arch = kv['general.architecture'];
    const blocks = typeof arch === 'string' ? kv[`${arch}.block_count`] : undefined;
    return typeof blocks === 'number' ? blocks : typeof blocks === 'bigint' ? Number(blocks) : 0;
}

/** Layers requested on a GPU at load (-1: all). @internal */
export function modelGpuLayers(model: LlamaModel): number {
    return placementOf(model).gpuLayers;
}

/** Registers a child (a context) that the model disposes first. @internal */
export function adoptChild(model: LlamaModel, child: ModelChild): () => void {
    const children = childrenOf(model);
    children.add(child);
    return () => children.delete(child);
}

/** Converts token ids to an Int32Array, checking they are 32-bit integers. @internal */
export function toTokenArray(tokens: ArrayLike<number>): Int32Array {
    if (tokens instanceof Int32Array) return tokens;
    if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
        throw new LlamaConfigError('Expected an array of token ids (numbers)', 'INVALID_ARGUMENT');
    }
    const out = new Int32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i];
        if (!Number.isInteger(t) || t < -0x80000000 || t > 0x7fffffff) {
            throw new LlamaConfigError(`Expected an integer token id at index ${i} but received ${String(t)}`, 'INVALID_ARGUMENT');
        }
        out[i] = t;
    }
    return out;
}

/** Validates tokenize()'s arguments; returns [addSpecial, parseSpecial]. */
function tokenizeArgs(text: unknown, options: TokenizeOptions, what: string): [boolean, boolean] {
    if (typeof text !== 'string') {
        throw new LlamaConfigError(`Expected a string for text but received ${typeof text}`, 'INVALID_ARGUMENT');
    }
    const opts = parseOptions(tokenizeOptionsSchema, options, what);
    return [opts.addSpecial ?? defaults.tokenize.addSpecial, opts.parseSpecial ?? defaults.tokenize.parseSpecial];
}

function call<T>(fn: () => T): T {
    try {
        return fn();
    } catch (error) {
        throw fromNative(error, captureStack());
    }
}

function safeCallback(fn: (progress: number) => void): (progress: number) => void {
    return (progress) => {
        try {
            fn(progress);
        } catch {
            // A throwing progress callback must not break the load.
        }
    };
}

/** Checks a GGUF file before llama.cpp reads it: exists, is a file, parses, is complete. */
/** @internal */
export async function inspectFile(path: string, kind: 'model' | 'LoRA adapter' = 'model') {
    const fail = (code: 'MODEL_NOT_FOUND' | 'MODEL_LOAD_FAILED' | 'INVALID_MODEL_FILE', message: string, cause?: unknown) =>
        kind === 'model'
            ? new LlamaModelLoadError(code, message, { cause })
            : new LlamaError('LORA_LOAD_FAILED', message, { cause });
    let info;
    try {
        info = await stat(path);
    } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
            throw fail('MODEL_NOT_FOUND', `${kind === 'model' ? 'Model' : 'LoRA adapter'} file not found: ${path}`, error);
        }
        throw fail('MODEL_LOAD_FAILED', `Cannot read ${kind} file ${path}: ${(error as Error).message}`, error);
    }
    if (info.isDirectory()) {
        throw fail('INVALID_MODEL_FILE', `${path} is a directory, not a GGUF ${kind} file`);
    }
    let gguf;
    try {
        gguf = await readGgufMetadata(path);
    } catch (error) {
        throw fail('INVALID_MODEL_FILE', `${path} is not a valid GGUF ${kind}: ${(error as Error).message}`, error);
    }
    const needed = gguf.tensors.reduce((end, t) => Math.max(end, gguf.dataOffset + t.offset + t.byteSize), gguf.dataOffset);
    if (needed > info.size) {
        throw fail(
            'INVALID_MODEL_FILE',
            `${path} is truncated: its tensors need ${needed} bytes but the file has ${info.size}; download or generate it again`,
        );
    }
    return gguf;
}

/** A LoRA adapter file for this model, or a LORA_LOAD_FAILED error saying what it is instead. */
async function inspectLoraFile(path: string, modelArch: string) {
    const gguf = await inspectFile(path, 'LoRA adapter');
    const type = gguf.kv['general.type'];
    const adapterType = gguf.kv['adapter.type'];
    if (type !== 'adapter' || adapterType !== 'lora') {
        const what = type === undefined || type === 'model' ? 'a model, not an adapter' : `general.type '${String(type)}', adapter.type '${String(adapterType)}'`;
        throw new LlamaError('LORA_LOAD_FAILED', `${path} is not a LoRA adapter (${what}): convert the adapter with llama.cpp's convert_lora_to_gguf.py`);
    }
    const arch = gguf.kv['general.architecture'];
    if (arch !== modelArch) {
        throw new LlamaError('LORA_LOAD_FAILED', `${path} is a LoRA adapter for a '${String(arch)}' model, but this model is '${modelArch}'`);
    }
    return gguf;
}

function toMetadata(native: NativeModelMetadata, gguf: Record<string, GgufValue>): ModelMetadata {
    return {
        architecture: native.architecture,
        name: native.name,
        description: native.description,
        hasWeights: native.hasWeights,
        trainedContextSize: native.trainedContextSize,
        layerCount: native.layerCount,
        embeddingSize: native.embeddingSize,
        headCount: native.headCount,
        headCountKv: native.headCountKv,
        headDimK: native.headDimK,
        headDimV: native.headDimV,
        layerHeadDimK: Object.freeze([...native.layerHeadDimK]),
        layerHeadDimV: Object.freeze([...native.layerHeadDimV]),
        kvTypesMustMatch: native.kvTypesMustMatch,
        vocabSize: native.vocabSize,
        sizeBytes: native.sizeBytes,
        parameterCount: native.parameterCount,
        bosToken: native.bos,
        eosToken: native.eos,
        addBos: native.addBos,
        gguf,
    };
}
