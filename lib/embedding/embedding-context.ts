/**
 * LlamaEmbeddingContext: embeddings of texts, many per llama_decode, with the pooling and
 * normalization of llama.cpp's embedding example and server.
 */
import { LlamaConfigError, LlamaError } from '../errors.js';
import { checkSignalBeforeStart } from '../context/prepare.js';
import { z } from 'zod';
import { LlamaModel, nativeModel } from '../model/model.js';
import type { MemoryReport } from '../memory/report.js';
import { defaults } from '../options/defaults.js';
import {
    embeddingContextOptionsSchema,
    embedOptionsSchema,
    normalizeCode,
    type EmbeddingContextOptions,
    type EmbeddingNormalize,
    type EmbeddingPooling,
    type EmbedOptions,
} from '../options/embedding-options.js';
import { parseArgument, parseOptions } from '../options/validate.js';
import { Embedder, type EmbedderConfig, type EmbeddingInput } from './embedder.js';

/** One text's embedding: a vector, or with pooling 'none' one vector per token. */
export type EmbeddingOf<P extends EmbeddingPooling> = P extends 'none' ? Float32Array[] : Float32Array;

/** What an embedding context was created with. */
export interface EmbeddingContextConfig extends EmbedderConfig {
    /** The normalization of every vector, as llama.cpp's `--embd-normalize` number (2 for 'l2', -1 for 'none'). */
    normalize: number;
    /** Floats per vector (llama_model_n_embd_out). */
    embeddingSize: number;
}

/**
 * Embeddings of texts on one model: encoder models (BERT and the other non-causal
 * architectures llama.cpp runs) and decoder embedding models (causal, last-token pooling).
 * Create with {@link LlamaModel.createEmbeddingContext}. Calls run one at a time, each
 * packing as many texts as fit into each llama_decode.
 *
 * @example
 * const embedder = model.createEmbeddingContext();
 * const [a, b] = await embedder.embedBatch(['the cat sat', 'a cat was sitting']);
 * let dot = 0;
 * for (let i = 0; i < a.length; i++) dot += a[i] * b[i]; // cosine similarity: the vectors are L2-normalized
 */
export class LlamaEmbeddingContext<P extends EmbeddingPooling = EmbeddingPooling> {
    readonly #embedder: Embedder;
    readonly #normalize: number;
    /** What this context was created with. */
    readonly config: Readonly<EmbeddingContextConfig>;

    /** @internal Use {@link LlamaModel.createEmbeddingContext} or {@link LlamaModel.createEmbeddingContextAsync}. */
    constructor(model: LlamaModel, options: EmbeddingContextOptions<P> = {}, prepared?: unknown) {
        const { opts, pooling } = embeddingPlan(model, options);
        this.#embedder = new Embedder(model, opts, pooling === 'model' ? -1 : pooling, 'embedding context', prepared);
        this.#normalize = normalizeCode(opts.normalize ?? (defaults.embedding.normalize as EmbeddingNormalize));
        this.config = Object.freeze({ ...this.#embedder.config, normalize: this.#normalize, embeddingSize: model.metadata.embeddingOutputSize });
    }

    /** @internal The context made on a worker (LlamaModel.createEmbeddingContextAsync). */
    static async create<P extends EmbeddingPooling>(model: LlamaModel, options: EmbeddingContextOptions<P> & { signal?: AbortSignal }): Promise<LlamaEmbeddingContext<P>> {
        const { signal, ...rest } = options;
        checkSignalBeforeStart(signal, 'createEmbeddingContextAsync()', 'creating the embedding context');
        const { opts, pooling } = embeddingPlan(model, rest);
        const handle = await Embedder.prepare(model, opts, pooling === 'model' ? -1 : pooling, 'embedding context', signal);
        return new LlamaEmbeddingContext(model, rest as EmbeddingContextOptions<P>, handle);
    }

    /** The model this context runs. */
    get model(): LlamaModel {
        return this.#embedder.model;
    }

    /** Whether {@link dispose} was called. */
    get disposed(): boolean {
        return this.#embedder.disposed;
    }

    /** A text's tokens as they are embedded (llama.cpp's: special tokens added, and special-token text in it parsed). */
    tokenize(text: string): Int32Array {
        parseArgument(z.string({ error: 'a string' }), text, 'text');
        return this.#embedder.tokenize(text);
    }

    /** The embedding of one text (or of token ids). */
    async embed(input: EmbeddingInput, options: EmbedOptions = {}): Promise<EmbeddingOf<P>> {
        const [out] = await this.embedBatch([input], options);
        return out;
    }

    /**
     * Embeddings of many texts, in order: as many texts per llama_decode as fit in
     * `config.batchSize` tokens and `config.parallel` sequences. A text longer than
     * `config.maxTokens` is a CONTEXT_FULL error unless `truncate` is set.
     */
    async embedBatch(inputs: readonly EmbeddingInput[], options: EmbedOptions = {}): Promise<EmbeddingOf<P>[]> {
        if (!Array.isArray(inputs)) throw new LlamaConfigError(`Expected an array of texts for inputs but received ${typeof inputs}`, 'INVALID_ARGUMENT', ['inputs']);
        const opts = parseOptions(embedOptionsSchema, options, 'embedBatch()');
        if (inputs.length === 0) return [];
        const tokens = this.#embedder.prepare(inputs, opts.truncate ?? defaults.embedding.truncate);
        const vectors = await this.#embedder.run(tokens, this.#normalize, opts);
        if (this.config.pooling !== 'none') return vectors as EmbeddingOf<P>[];
        const width = this.config.embeddingSize;
        return vectors.map((flat) => Array.from({ length: flat.length / width }, (_, i) => flat.subarray(i * width, (i + 1) * width))) as EmbeddingOf<P>[];
    }

    /** What this context has allocated (no KV cache for encoder models; the output buffer holds embeddings, not logits). */
    memoryReport(): MemoryReport {
        return this.#embedder.memoryReport();
    }

    /** Frees the context; a call in flight is aborted (it rejects with DISPOSED or ABORTED). Idempotent. */
    dispose(): void {
        this.#embedder.dispose();
    }

    [Symbol.dispose](): void {
        this.dispose();
    }

    async [Symbol.asyncDispose](): Promise<void> {
        this.dispose();
    }
}

declare module '../model/model.js' {
    interface LlamaModel {
        /**
         * An embedding context on this model (llama.cpp's context with embeddings on).
         * See {@link EmbeddingContextOptions}.
         */
        createEmbeddingContext<P extends EmbeddingPooling = 'model'>(options?: EmbeddingContextOptions<P>): LlamaEmbeddingContext<P>;
        /**
         * {@link createEmbeddingContext}, with the context allocated off the JS thread (as
         * LlamaContext.create()); `signal` aborts the wait.
         */
        createEmbeddingContextAsync<P extends EmbeddingPooling = 'model'>(options?: EmbeddingContextOptions<P> & { signal?: AbortSignal }): Promise<LlamaEmbeddingContext<P>>;
    }
}

// model/ sits below embedding/ and never imports it: the method is added here.
Object.defineProperty(LlamaModel.prototype, 'createEmbeddingContext', {
    value: function createEmbeddingContext(this: LlamaModel, options: EmbeddingContextOptions = {}): LlamaEmbeddingContext {
        return new LlamaEmbeddingContext(this, options);
    },
    writable: true,
    configurable: true,
});
Object.defineProperty(LlamaModel.prototype, 'createEmbeddingContextAsync', {
    value: function createEmbeddingContextAsync(this: LlamaModel, options: EmbeddingContextOptions & { signal?: AbortSignal } = {}): Promise<LlamaEmbeddingContext> {
        return LlamaEmbeddingContext.create(this, options);
    },
    writable: true,
    configurable: true,
});

/** The options of an embedding context, checked against the model: what the constructor and create() share. */
function embeddingPlan<P extends EmbeddingPooling>(model: LlamaModel, options: EmbeddingContextOptions<P>) {
    const opts = parseOptions(embeddingContextOptionsSchema, options, 'createEmbeddingContext()');
    nativeModel(model); // a live LlamaModel
    const pooling = opts.pooling ?? defaults.embedding.pooling;
    const meta = model.metadata;
    if (!meta.hasWeights) {
        throw new LlamaError('CONTEXT_CREATE_FAILED', 'the model was loaded with vocabOnly and has no weights: load it without vocabOnly to compute embeddings');
    }
    if (pooling === 'model' && meta.pooling === 'none') {
        throw new LlamaConfigError(
            `this model (${meta.architecture}) names no pooling in its file (${meta.architecture}.pooling_type), so pooling 'model' would give one vector per token: ` +
                "pass pooling: 'mean', 'cls' or 'last' for one vector per text, or 'none' for token embeddings",
            'INVALID_CONFIG',
            ['pooling'],
        );
    }
    if (pooling === 'model' && meta.pooling === 'rank') {
        throw new LlamaConfigError(
            "this model is a reranker (pooling 'rank'): use model.createRankingContext() for its scores, or pass pooling: 'mean', 'cls' or 'last' for embeddings",
            'INVALID_CONFIG',
            ['pooling'],
        );
    }
    return { opts, pooling };
}
