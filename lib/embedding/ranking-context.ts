/**
 * LlamaRankingContext: relevance scores of documents for a query from a reranker model
 * (pooling 'rank': a classification head over the pair), as llama.cpp's embedding example
 * and its server's /rerank compute them.
 */
import { z } from 'zod';
import { LlamaConfigError, LlamaError } from '../errors.js';
import { checkSignalBeforeStart } from '../context/prepare.js';
import { LlamaModel, nativeModel } from '../model/model.js';
import type { MemoryReport } from '../memory/report.js';
import { defaults } from '../options/defaults.js';
import { embedOptionsSchema, rankingContextOptionsSchema, type EmbedOptions, type RankingContextOptions } from '../options/embedding-options.js';
import { parseArgument, parseOptions } from '../options/validate.js';
import { Embedder, type EmbedderConfig } from './embedder.js';

/** One document of {@link LlamaRankingContext.rankAndSort}'s result. */
export interface RankedDocument {
    /** The document's text. */
    document: string;
    /** Its index in the documents given. */
    index: number;
    /** The reranker's score (its first class output, as llama.cpp returns it: a logit, higher is more relevant). */
    score: number;
}

const documentsSchema = z.array(z.string({ error: 'a string' }), { error: 'an array of strings' });

/**
 * Scores documents against a query with a reranker model. Create with
 * {@link LlamaModel.createRankingContext}. Each (query, document) pair is one llama.cpp
 * sequence, many per llama_decode.
 *
 * @example
 * const ranker = model.createRankingContext();
 * const ranked = await ranker.rankAndSort('what do cats eat?', ['Cats eat fish.', 'The sky is blue.']);
 * console.log(ranked[0].document);
 */
export class LlamaRankingContext {
    readonly #embedder: Embedder;
    /** The EOS and SEP texts the tokenizer adds, between query and document without a rerank template. */
    readonly #separator: string;
    /** What this context was created with. */
    readonly config: Readonly<EmbedderConfig>;

    /** @internal Use {@link LlamaModel.createRankingContext} or {@link LlamaModel.createRankingContextAsync}. */
    constructor(model: LlamaModel, options: RankingContextOptions = {}, prepared?: unknown) {
        const opts = rankingPlan(model, options);
        this.#embedder = new Embedder(model, opts, 'rank', 'ranking context', prepared);
        this.config = this.#embedder.config;
        const meta = model.metadata;
        const piece = (token: number) => nativeModel(model).tokenToPiece(token, true).toString('utf8');
        this.#separator = (meta.addEos ? piece(meta.eosToken) : '') + (meta.addSep ? piece(meta.sepToken) : '');
    }

    /** @internal The context made on a worker (LlamaModel.createRankingContextAsync). */
    static async create(model: LlamaModel, options: RankingContextOptions & { signal?: AbortSignal }): Promise<LlamaRankingContext> {
        const { signal, ...rest } = options;
        checkSignalBeforeStart(signal, 'createRankingContextAsync()', 'creating the ranking context');
        const handle = await Embedder.prepare(model, rankingPlan(model, rest), 'rank', 'ranking context', signal);
        return new LlamaRankingContext(model, rest, handle);
    }

    /** The model this context runs. */
    get model(): LlamaModel {
        return this.#embedder.model;
    }

    /** Whether {@link dispose} was called. */
    get disposed(): boolean {
        return this.#embedder.disposed;
    }

    /**
     * The text one (query, document) pair is scored as: the model's
     * `tokenizer.chat_template.rerank` with {query} and {document} filled in, else the query
     * and the document joined by the tokenizer's EOS and SEP texts where it adds them
     * (llama.cpp's embedding example).
     */
    pairText(query: string, document: string): string {
        const meta = this.model.metadata;
        // Functions as replacements: a `$&` in the text stays text.
        if (meta.rerankTemplate !== null) return meta.rerankTemplate.replaceAll('{query}', () => query).replaceAll('{document}', () => document);
        return query + this.#separator + document;
    }

    /** A text's tokens as it is scored (special tokens added and parsed, as llama.cpp's tools do). */
    tokenize(text: string): Int32Array {
        parseArgument(z.string({ error: 'a string' }), text, 'text');
        return this.#embedder.tokenize(text);
    }

    /** Scores of each document for the query, in the documents' order (higher is more relevant). */
    async rank(query: string, documents: readonly string[], options: EmbedOptions = {}): Promise<number[]> {
        parseArgument(z.string({ error: 'a string' }), query, 'query');
        parseArgument(documentsSchema, documents, 'documents');
        const opts = parseOptions(embedOptionsSchema, options, 'rank()');
        if (query.length === 0) throw new LlamaConfigError('the query is empty', 'INVALID_ARGUMENT', ['query']);
        documents.forEach((d, i) => {
            if (d.length === 0) throw new LlamaConfigError(`document ${i} is empty`, 'INVALID_ARGUMENT', ['documents']);
        });
        if (documents.length === 0) return [];
        const tokens = this.#embedder.prepare(documents.map((d) => this.pairText(query, d)), opts.truncate ?? defaults.embedding.truncate);
        const scores = await this.#embedder.run(tokens, -1, opts);
        return scores.map((s) => {
            if (s.length === 0) throw new LlamaError('DECODE_FAILED', 'llama.cpp returned no score');
            return s[0];
        });
    }

    /** The documents with their scores, most relevant first; equal scores keep the documents' order. */
    async rankAndSort(query: string, documents: readonly string[], options: EmbedOptions = {}): Promise<RankedDocument[]> {
        const scores = await this.rank(query, documents, options);
        return documents.map((document, index) => ({ document, index, score: scores[index] })).sort((a, b) => b.score - a.score || a.index - b.index);
    }

    /** What this context has allocated. */
    memoryReport(): MemoryReport {
        return this.#embedder.memoryReport();
    }

    /** Frees the context; a call in flight is aborted. Idempotent. */
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
        /** A ranking context on this reranker model (pooling 'rank'). See {@link RankingContextOptions}. */
        createRankingContext(options?: RankingContextOptions): LlamaRankingContext;
        /** {@link createRankingContext}, with the context allocated off the JS thread (as LlamaContext.create()); `signal` aborts the wait. */
        createRankingContextAsync(options?: RankingContextOptions & { signal?: AbortSignal }): Promise<LlamaRankingContext>;
    }
}

Object.defineProperty(LlamaModel.prototype, 'createRankingContext', {
    value: function createRankingContext(this: LlamaModel, options: RankingContextOptions = {}): LlamaRankingContext {
        return new LlamaRankingContext(this, options);
    },
    writable: true,
    configurable: true,
});
Object.defineProperty(LlamaModel.prototype, 'createRankingContextAsync', {
    value: function createRankingContextAsync(this: LlamaModel, options: RankingContextOptions & { signal?: AbortSignal } = {}): Promise<LlamaRankingContext> {
        return LlamaRankingContext.create(this, options);
    },
    writable: true,
    configurable: true,
});

/** The options of a ranking context, checked against the model: what the constructor and create() share. */
function rankingPlan(model: LlamaModel, options: RankingContextOptions) {
    const opts = parseOptions(rankingContextOptionsSchema, options, 'createRankingContext()');
    nativeModel(model);
    if (!model.metadata.isReranker) {
        throw new LlamaConfigError(
            `this model (${model.metadata.architecture}) is not a reranker: it has no classification head (cls.output.weight); use model.createEmbeddingContext() and compare embeddings instead`,
            'INVALID_CONFIG',
            ['model'],
        );
    }
    return opts;
}
