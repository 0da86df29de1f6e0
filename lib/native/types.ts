/**
 * The types of the native addon's surface (native/*.cpp): what lib/native/binding.ts
 * returns. Internal: the public classes hold these handles in private fields.
 * @internal
 */
/** Metadata read by llama.cpp from a loaded model. */
export interface NativeModelMetadata {
    architecture: string;
    name: string;
    description: string;
    hasWeights: boolean;
    trainedContextSize: number;
    layerCount: number;
    embeddingSize: number;
    headCount: number;
    headCountKv: number;
    headDimK: number;
    headDimV: number;
    slidingWindow: number;
    layerHeadDimK: number[];
    layerHeadDimV: number[];
    kvTypesMustMatch: boolean;
    vocabSize: number;
    vocabType: number;
    sizeBytes: number;
    parameterCount: number;
    fileType: number;
    bos: number;
    eos: number;
    addBos: boolean;
    isRecurrent: boolean;
    hasEncoder: boolean;
    hasDecoder: boolean;
    /** The model's llama_pooling_type (hparams; 0 none when the file names none). */
    poolingType: number;
    causalAttention: boolean;
    /** A classification head (cls / cls.output): a reranker. */
    hasClassifier: boolean;
    /** llama_model_n_embd_out. */
    embeddingOutputSize: number;
    /** llama_model_n_cls_out. */
    classifierOutputs: number;
    /** `tokenizer.chat_template.rerank`, or null. */
    rerankTemplate: string | null;
    addEos: boolean;
    addSep: boolean;
    sep: number;
}

/** Each weight tensor, the buffer type llama.cpp placed it in ('' for none) and its bytes. */
export interface NativeWeightPlacement {
    names: string[];
    buffers: string[];
    bytes: number[];
}

/** A remote device of a model loaded with rpcServers, with its memory as its server reported it once the weights were there. */
export interface NativeRemoteDevice {
    name: string;
    /** Its server's host:port. */
    endpoint: string;
    /** Absent when the server did not answer. */
    freeBytes?: number;
    totalBytes?: number;
}

export interface NativeModel {
    /** With rpcServers: the servers' devices (set by loadModel). */
    readonly remoteDevices?: readonly NativeRemoteDevice[];
    metadata(): NativeModelMetadata;
    weightPlacement(): NativeWeightPlacement;
    tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
    tokenizeAsync(text: string, addSpecial: boolean, parseSpecial: boolean): Promise<Int32Array>;
    detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): Buffer;
    tokenToPiece(token: number, special: boolean): Buffer;
    dispose(): void;
    readonly disposed: boolean;
}

export interface NativeContextParams {
    contextSize: number;
    batchSize: number;
    ubatchSize: number;
    sequences: number;
    threads: number;
    threadsBatch: number;
    /** ggml_type ids. */
    cacheTypeK: number;
    cacheTypeV: number;
    /** llama_flash_attn_type: -1 auto, 0 off, 1 on. */
    flashAttention: number;
    kvUnified: boolean;
    offloadKqv: boolean;
    swaFull: boolean;
    /** An embedding context (llama.cpp's cparams.embeddings); absent: false. */
    embeddings?: boolean;
    /** llama_pooling_type: -1 the model's, 0 none, 1 mean, 2 cls, 3 last, 4 rank; absent: -1. */
    pooling?: number;
}

export interface NativeContextConfig {
    contextSize: number;
    contextSizePerSequence: number;
    batchSize: number;
    ubatchSize: number;
    sequences: number;
    threads: number;
    threadsBatch: number;
    threadpool: boolean;
    flashAttention: boolean;
    kvUnified: boolean;
    /** llama_memory_can_shift: whether a full sequence can be shifted. */
    canShift: boolean;
    cacheTypeK: string | null;
    cacheTypeV: string | null;
    embeddings: boolean;
    /** llama_pooling_type(ctx): what is in force. */
    pooling: number;
    causal: boolean;
}

/** A request for the context's engine, on one sequence. */
export interface NativeRequest {
    kind: 'generate' | 'evaluate';
    sequence: number;
    prompt: string | Int32Array;
    addSpecial?: boolean;
    parseSpecial?: boolean;
    maxTokens?: number;
    temperature?: number;
    topK?: number;
    topP?: number;
    minP?: number;
    repeatPenalty?: number;
    repeatLastN?: number;
    seed?: number;
    stop?: string[];
    /** Backpressure: the sequence sits out of the batch while this many delivered tokens are unread (tokensRead()); 0 or absent: no limit. */
    unreadLimit?: number;
    /** A full sequence: 'shift' drops the oldest half after the first `keep` tokens; 'error' (default) ends with contextFull. */
    onContextFull?: 'error' | 'shift';
    keep?: number;
    /** A GBNF grammar the output follows (llama.cpp's grammar sampler, root rule 'root'). */
    grammar?: NativeGrammar;
    /** Special tokens whose text the output shows (a chat format's preserved tokens). */
    renderSpecial?: number[];
    /** [token, bias, token, bias, ...]: llama.cpp's logit-bias sampler, first in the chain. */
    logitBias?: number[];
}

/** A grammar for the sampler: lazy ones apply from the first trigger (a regex over the output, or a token) on. */
export interface NativeGrammar {
    text: string;
    lazy: boolean;
    patterns: string[];
    tokens: number[];
    /** Tokens accepted by the grammar before sampling (a template's generation prompt). */
    prefill: number[];
}

/** Bounds on one chat template init or render (0: none). */
export interface NativeTemplateLimits {
    maxSteps: number;
    maxDepth: number;
    maxBytes: number;
}

export interface NativeRequestResult {
    finishReason: 'eos' | 'stop' | 'length' | 'contextFull' | 'abort';
    promptTokens: number;
    reusedTokens: number;
    promptMs: number;
    generatedTokens: number;
    generationMs: number;
    stopOffset: number | null;
    /** Context shifts made during the request. */
    shifts: number;
    /** What the sequence's cache holds now. */
    cached: Int32Array;
    /** evaluate: the logits of the last position. */
    logits?: Float32Array;
}

/** A request in flight. */
export interface NativeRequestHandle {
    promise: Promise<NativeRequestResult>;
    /** Ends the request at the engine's next step; other sequences go on. */
    abort(): void;
    /** Its reader has taken `n` tokens (backpressure). */
    tokensRead(n: number): void;
}

/** Cumulative figures of a context's engine. */
export interface NativeEngineStats {
    steps: number;
    tokens: number;
    decodeMs: number;
    stepMs: number;
}

export interface NativeBufferPlace {
    buffer: string;
    device: string;
    kind: 'cpu' | 'gpu' | 'other';
    freeBytes?: number;
    totalBytes?: number;
    /** A remote (RPC) device: its server's host:port. */
    endpoint?: string;
}

export interface NativeMemoryReport {
    kv: {
        present: boolean;
        typeK: string | null;
        typeV: string | null;
        kBytes: number;
        vBytes: number;
        bufferBytes: number;
        recurrentBytes: number;
        cells: number;
        layers: number;
        streams: number;
        /** Cells each sequence holds, by sequence id. */
        sequenceCells: number[];
    };
    buffers: (NativeBufferPlace & { model: number; context: number; compute: number; experts: number })[];
    output: NativeBufferPlace & { bytes: number };
    /** The buffers of the active LoRA adapters. */
    loras: (NativeBufferPlace & { bytes: number })[];
}

export interface NativeLora {
    metadata(): { alpha: number; sizeBytes: number; tensorPairs: number; invocationTokens: number; kv: Record<string, string> };
    dispose(): void;
    readonly disposed: boolean;
}

/** Per position i: ln p(tokens[i + 1]) and the argmax; with a reference, its own and KL(reference || this). */
export interface NativeScores {
    logProbs: Float64Array;
    topTokens: Int32Array;
    reference?: { logProbs: Float64Array; topTokens: Int32Array; kl: Float64Array };
}

/** From NativeContext.stateLayout(): llama_internals' context_state_layout. */
export interface NativeStateLayout {
    /** Why this context's state cannot be saved (recurrent or hybrid memory); null when it can. */
    unsupported: string | null;
    /** 1, or 2 for an iSWA cache. */
    caches: number;
    cellExt: boolean;
    hasV: boolean;
    vTransposed: boolean;
    rotateK: boolean;
    rotateV: boolean;
}

export interface NativeContext {
    config(): NativeContextConfig;
    memoryReport(): NativeMemoryReport;
    submit(request: NativeRequest, onTokens: (tokens: Int32Array, pieces: Buffer[]) => void): NativeRequestHandle;
    score(tokens: Int32Array, sequence: number, reference?: NativeContext, referenceSequence?: number): { promise: Promise<NativeScores>; abort(): void };
    /** How this context's memory saves a sequence (for a saved state's header). */
    stateLayout(): NativeStateLayout;
    /** Writes `prefix` then one section per sequence (holding `tokenCounts[i]` tokens, else INTERNAL), to a Buffer, or to `tmpPath` renamed to `path` (resolves with the bytes written). */
    saveState(sequences: number[], prefix: Buffer, tokenCounts: number[], path?: string, tmpPath?: string): { promise: Promise<Buffer | number>; abort(): void };
    /** Loads the sections from `offset` of a Buffer or file into `sequences`; resolves with each section's tokens. */
    loadState(source: Buffer | string, offset: number, sequences: number[], tokenCounts: number[]): { promise: Promise<Int32Array[]>; abort(): void };
    /** Empties a sequence that runs no request (waits for the engine's current step). */
    clearSequence(sequence: number): void;
    /** `target` becomes a copy of `source`'s cache; neither may run a request. */
    copySequence(source: number, target: number): void;
    engineStats(): NativeEngineStats;
    /** Cells each sequence holds, as of the engine's last step (no lock). */
    sequenceCells(): Uint32Array;
    /** Aborts everything on the context for good (process exit). */
    abort(): void;
    setLoras(adapters: { lora: NativeLora; scale: number }[]): void;
    /**
     * Embedding contexts only: one Float32Array per input (pooled: n_out floats; pooling none:
     * n_tokens * n_out), normalized with common_embd_normalize(normalize); onProgress(inputsDone) after each decode.
     */
    embed(inputs: Int32Array[], normalize: number, onProgress?: (done: number) => void): { promise: Promise<Float32Array[]>; abort(): void };
    dispose(): void;
    readonly disposed: boolean;
}

/** The loaded backends and the GPU libraries that failed to load. */
export interface NativeBackendInfo {
    addonDir: string;
    hasCpu: boolean;
    /** x86 builds from source: the ggml CPU variant libggml-cpu was compiled as (CMake's LLAMA_KV_CPU_VARIANT_IN_FORCE). */
    cpuVariantBuilt?: string | null;
    registries: {
        name: string;
        path: string;
        features: Record<string, string>;
        /** extraBufferTypes: the CPU backend's extra buffer types (e.g. 'AMX', 'CPU_REPACK'); empty elsewhere. */
        devices: { name: string; description: string; type: string; freeBytes: number; totalBytes: number; extraBufferTypes: string[] }[];
    }[];
    attempts: { name: string; path: string; error: string | null }[];
}

export interface NativeLoadParams {
    gpuLayers: number;
    /** Devices to offload to, by name; absent: llama.cpp's default (all). [] keeps everything on the CPU. */
    devices?: string[];
    tensorSplit?: number[];
    tensorOverrides?: { pattern: string; bufferType: string }[];
    useMmap: boolean;
    useMlock: boolean;
    vocabOnly: boolean;
    checkTensors: boolean;
    /** Memory dry run: llama.cpp simulates the allocations and reads no weights. */
    noAlloc?: boolean;
    /** llama.cpp's use_extra_bufts: weights may go to the CPU backend's extra buffer types (AMX, CPU_REPACK). Default true. */
    extraBufferTypes?: boolean;
    /** host:port of ggml RPC servers, connected before the load; their devices go first in the offload list. */
    rpcServers?: string[];
    /** The RPC client sockets' send/receive timeout in ms (0: none), for every RPC connection of the process. */
    rpcTimeoutMs?: number;
}

export interface NativeBinding {
    NativeModel: new (handle: unknown) => NativeModel;
    /** With `prepared` (from prepareContext): adopts that context instead of creating one. */
    NativeContext: new (model: NativeModel, params: NativeContextParams, prepared?: unknown) => NativeContext;
    /** Checks the parameters as NativeContext does (throwing at once), then creates the context on a worker: a handle for NativeContext. */
    prepareContext(model: NativeModel, params: NativeContextParams): Promise<unknown>;
    loadModel(path: string, params: NativeLoadParams, onProgress?: (progress: number) => void): {
        promise: Promise<NativeModel>;
        abort(): void;
    };
    loadLora(model: NativeModel, path: string): Promise<NativeLora>;
    quantize(input: string, output: string, params: { ftype: number; threads: number; allowRequantize: boolean }, onProgress?: (progress: number) => void): {
        promise: Promise<void>;
        abort(): void;
    };
    setLogger(fn: ((level: number, message: string) => void) | null, minLevel?: number): void;
    setLogLevel(level: number): void;
    systemInfo(): {
        llamaSystemInfo: string;
        supportsMmap: boolean;
        supportsMlock: boolean;
        supportsGpuOffload: boolean;
        maxParallelSequences: number;
    };
    /** glibc's malloc_trim(0): the allocator's free memory back to the OS (for leak measurements); false where there is none. */
    trimHeap(): boolean;
    /** Loads ggml's backend libraries, once per process (later calls do nothing). */
    loadBackends(extraDirs: string[]): void;
    /** With `withMemory`, each device's free and total memory (a GPU backend may create a driver context to answer); 0 otherwise. */
    backendInfo(withMemory?: boolean): NativeBackendInfo;
    /**
     * Whether the named device's backend runs GGML_OP_FLASH_ATTN_EXT with these ggml K/V type
     * ids and head shapes (for 1 and 512 query tokens over `kvCells` cells); null when no device
     * has that name.
     */
    flashAttentionSupported(device: string, typeK: number, typeV: number, headDimK: number, headDimV: number, heads: number, headsKv: number, kvCells: number): boolean | null;
    llamaVersion: string;
    /** Initializes a model's chat templates (or `override` when not empty); `info` is JSON. */
    chatInit(model: NativeModel, override: string, limits: NativeTemplateLimits): {
        promise: Promise<{ handle: NativeChatTemplates; info: string }>;
        abort(): void;
    };
    /** Renders an OpenAI-style body; `params` is common_chat_params as JSON. */
    chatApply(model: NativeModel, handle: NativeChatTemplates, inputs: string, limits: NativeTemplateLimits, tokenize: boolean, prefix?: string): {
        promise: Promise<{ params: string; tokens?: Int32Array }>;
        abort(): void;
    };
    /** common_chat_parse of generated text: JSON { content, reasoning, toolCalls } or { error }. */
    chatParse(text: string, isPartial: boolean, params: string): string;
    /** llama.cpp's json-schema-to-grammar; throws INVALID_GRAMMAR. */
    jsonSchemaToGrammar(schema: string): string;
    /** Parses a GBNF grammar against the model's vocabulary; throws INVALID_GRAMMAR with llama.cpp's message. */
    checkGrammar(model: NativeModel, grammar: string, root: string): void;
}

/** An opaque handle to initialized chat templates. */
export type NativeChatTemplates = { readonly __brand: 'NativeChatTemplates' };
