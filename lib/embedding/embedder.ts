/**
 * What embedding and ranking contexts share: the llama.cpp context made for embeddings,
 * tokenization as llama.cpp's embedding tools do it, the checks on each text, one native
 * embed() at a time, memory reports and disposal.
 * @internal
 */
import { binding, type NativeContext } from '../native/binding.js';
import { withSignal } from '../native/abortable.js';
import { captureStack, fromNative, LlamaConfigError, LlamaDisposedError, LlamaError } from '../errors.js';
import { LlamaModel, adoptChild, modelGpuLayers, modelPlacement, modelWeightPlacement, nativeModel, toTokenArray } from '../model/model.js';
import { guardDevices, trackForExit } from '../context/context.js';
import { prepareNativeContext } from '../context/prepare.js';
import { toMemoryReport, type MemoryReport } from '../memory/report.js';
import { estimateEmbedderResolved, KV_ONLY_LOAD } from '../memory/estimate.js';
import { checkContextMemory } from '../memory/guard.js';
import type { NativeContextParams } from '../native/binding.js';
import { defaults } from '../options/defaults.js';
import { POOLING_CODES, poolingName, resolveEmbedderParams, type EmbedOptions, type ResolvedPooling, type rankingContextOptionsSchema } from '../options/embedding-options.js';
import type { z } from 'zod';

/** What an embedding or ranking context was created with, as llama.cpp put it in force. */
export interface EmbedderConfig {
    /** Cells of the context (llama.cpp pads it to a multiple of 256). */
    contextSize: number;
    /** Tokens per llama_decode. */
    batchSize: number;
    /** Tokens per micro-batch (the batch for non-causal attention). */
    ubatchSize: number;
    /** Texts decoded together in one llama_decode. */
    parallel: number;
    threads: number;
    /** The pooling in force ('rank' for a ranking context). */
    pooling: ResolvedPooling;
    /** Causal attention (a decoder embedding model) or not (an encoder). */
    causal: boolean;
    /** The most tokens one text may have (`truncate` cuts longer ones): the batch, at most the model's trained context. */
    maxTokens: number;
}

/** Input of embed(): a text, or token ids as llama.cpp would get them (special tokens included). */
export type EmbeddingInput = string | ArrayLike<number>;

/** @internal */
export class Embedder {
    #native: NativeContext | null;
    readonly model: LlamaModel;
    readonly config: Readonly<EmbedderConfig>;
    readonly #release: () => void;
    readonly #untrackForExit: () => void;
    readonly #what: string;
    /** One native embed() at a time: each call waits for the one before. */
    #queue: Promise<unknown> = Promise.resolve();

    /**
     * `prepared`: the context that {@link Embedder.prepare} made on a worker for the same options
     * (adopted; its memory was checked then). Without it the context is made here.
     */
    constructor(model: LlamaModel, opts: z.output<typeof rankingContextOptionsSchema>, pooling: ResolvedPooling | -1, what: string, prepared?: unknown) {
        const native = nativeModel(model);
        this.#what = what;
        const params = Embedder.#params(model, opts, pooling, prepared === undefined);
        let created: NativeContext | undefined;
        try {
            created = new (binding().NativeContext)(native, params, prepared);
            const c = created.config();
            const resolved = poolingName(c.pooling);
            if (resolved === null) throw new LlamaError('INTERNAL', `llama.cpp resolved pooling to ${c.pooling}`);
            const trained = model.metadata.trainedContextSize;
            let maxTokens = Math.min(c.batchSize, c.ubatchSize);
            maxTokens = Math.min(maxTokens, c.contextSizePerSequence);
            if (trained > 0) maxTokens = Math.min(maxTokens, trained);
            this.config = Object.freeze({
                contextSize: c.contextSize,
                batchSize: c.batchSize,
                ubatchSize: c.ubatchSize,
                parallel: c.sequences,
                threads: c.threads,
                pooling: resolved,
                causal: c.causal,
                maxTokens,
            });
        } catch (error) {
            created?.dispose();
            throw fromNative(error, captureStack());
        }
        this.#native = created;
        this.#untrackForExit = trackForExit(created);
        this.model = model;
        this.#release = adoptChild(model, this);
    }

    /** The native parameters of these options, checked against the memory there is when `check`. */
    static #params(model: LlamaModel, opts: z.output<typeof rankingContextOptionsSchema>, pooling: ResolvedPooling | -1, check: boolean): NativeContextParams {
        const params = resolveEmbedderParams(opts, pooling === -1 ? -1 : POOLING_CODES[pooling], model.metadata);
        if (check && (opts.checkMemory ?? defaults.context.checkMemory)) checkEmbedderFits(model, params);
        return params;
    }

    /**
     * Checks the options as the constructor does, then makes the context on a worker (off the
     * JS thread): a handle for the constructor's `prepared`. `signal` is checked after the wait.
     */
    static prepare(model: LlamaModel, opts: z.output<typeof rankingContextOptionsSchema>, pooling: ResolvedPooling | -1, what: string, signal?: AbortSignal): Promise<unknown> {
        return prepareNativeContext(model, Embedder.#params(model, opts, pooling, true), signal, `creating the ${what}`);
    }

    get disposed(): boolean {
        return this.#native === null;
    }

    #requireNative(): NativeContext {
        if (this.#native === null) throw new LlamaDisposedError(this.#what);
        return this.#native;
    }

    /** A text's tokens as llama.cpp's embedding example and server make them: special tokens added and parsed. */
    tokenize(text: string): Int32Array {
        this.#requireNative();
        return this.model.tokenize(text, { addSpecial: true, parseSpecial: true });
    }

    /** Token lists for inputs, checked: not empty, at most maxTokens (or truncated). */
    prepare(inputs: readonly EmbeddingInput[], truncate: boolean): Int32Array[] {
        return inputs.map((input, i) => {
            const where = inputs.length === 1 ? 'the text' : `text ${i}`;
            if (typeof input === 'string' && input.length === 0) {
                throw new LlamaConfigError(`${where} is empty: an embedding needs at least one character (llama.cpp would embed only its special tokens)`, 'INVALID_ARGUMENT');
            }
            const tokens = typeof input === 'string' ? this.tokenize(input) : toTokenArray(input);
            if (tokens.length === 0) throw new LlamaConfigError(`${where} has no tokens`, 'INVALID_ARGUMENT');
            if (tokens.length <= this.config.maxTokens) return tokens;
            if (!truncate) {
                throw new LlamaError(
                    'CONTEXT_FULL',
                    `${where} has ${tokens.length} tokens, more than the ${this.config.maxTokens} one decode of this ${this.#what} takes: ` +
                        'pass truncate: true to cut it, split it, or create the context with a larger contextSize (at most the model\'s trained context)',
                );
            }
            return truncated(tokens, this.config.maxTokens, this.model.metadata);
        });
    }

    /** The native embed(), after the calls before it; `total` texts for onProgress. */
    run(tokens: Int32Array[], normalize: number, opts: Omit<EmbedOptions, 'truncate'>): Promise<Float32Array[]> {
        const stack = captureStack();
        const run = this.#queue.then(async () => {
            const native = this.#requireNative();
            const onProgress = opts.onProgress;
            return withSignal(() => native.embed(tokens, normalize, onProgress ? (done) => onProgress(done, tokens.length) : undefined), opts.signal, stack);
        });
        this.#queue = run.catch(() => undefined);
        return run;
    }

    memoryReport(): MemoryReport {
        try {
            return toMemoryReport(this.#requireNative().memoryReport(), { placement: modelWeightPlacement(this.model), gguf: modelPlacement(this.model).header });
        } catch (error) {
            throw fromNative(error, captureStack());
        }
    }

    dispose(): void {
        if (this.#native === null) return;
        const native = this.#native;
        this.#native = null;
        this.#release();
        this.#untrackForExit();
        native.dispose();
    }
}

/** The first max - 1 tokens and the final SEP/EOS when the text ends with one, else the first max. */
function truncated(tokens: Int32Array, max: number, meta: { eosToken: number; sepToken: number }): Int32Array {
    const last = tokens[tokens.length - 1];
    if (max >= 2 && (last === meta.eosToken || last === meta.sepToken)) {
        const out = new Int32Array(max);
        out.set(tokens.subarray(0, max - 1));
        out[max - 1] = last;
        return out;
    }
    return tokens.slice(0, max);
}

/** INSUFFICIENT_MEMORY before llama.cpp allocates, as LlamaContext's checkMemory (header-level figures). */
function checkEmbedderFits(model: LlamaModel, params: NativeContextParams): void {
    const placement = modelPlacement(model);
    const facts = placement.facts;
    if (facts === null || (facts.embedding.hasKvCache && !facts.denseKv)) return;
    const { devices, free } = guardDevices(placement);
    checkContextMemory({ ...estimateEmbedderResolved(placement.header, facts, params, KV_ONLY_LOAD), warnings: [] }, {
        layerCount: facts.layerCount,
        gpuLayers: modelGpuLayers(model),
        devices,
        offloadKqv: params.offloadKqv,
    }, undefined, free);
}
