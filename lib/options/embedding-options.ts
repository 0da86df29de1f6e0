/**
 * Options of embedding and ranking contexts and of their calls, and their translation to
 * what llama.cpp receives (the parameters of an embedding context).
 */
import { z } from 'zod';
import { LlamaConfigError } from '../errors.js';
import type { NativeContextParams } from '../native/binding.js';
import { defaults } from './defaults.js';
import { batchSizeOption, contextSizeOption, parallelOption, threadsOption } from './llama-limits.js';
import { bool, fn, oneOf, signal } from './validate.js';

/** How token embeddings become one vector per text (llama.cpp `--pooling`); 'model' takes the model's own. */
export const EMBEDDING_POOLINGS = ['model', 'none', 'mean', 'cls', 'last'] as const;
export type EmbeddingPooling = (typeof EMBEDDING_POOLINGS)[number];
/** What a context pools with once resolved ('rank' for a ranking context). */
export type ResolvedPooling = 'none' | 'mean' | 'cls' | 'last' | 'rank';

/** llama_pooling_type values. @internal */
export const POOLING_CODES: Readonly<Record<ResolvedPooling, number>> = { none: 0, mean: 1, cls: 2, last: 3, rank: 4 };
/** @internal */
export function poolingName(code: number): ResolvedPooling | null {
    const found = (Object.keys(POOLING_CODES) as ResolvedPooling[]).find((k) => POOLING_CODES[k] === code);
    return found ?? null;
}

/**
 * Normalization of each embedding (llama.cpp `--embd-normalize`): 'l2' (euclidean, 2),
 * 'none' (-1), or llama.cpp's number: 0 scales to the int16 range by the largest absolute
 * value, 1 taxicab, 2 euclidean, p > 2 the p-norm.
 */
export type EmbeddingNormalize = 'l2' | 'none' | number;

const normalizeOption = () =>
    z.union([z.enum(['l2', 'none']), z.number().int().min(-1).max(1000)], {
        error: "'l2', 'none', or llama.cpp's --embd-normalize integer in [-1, 1000]",
    });

/** The embd_norm code of common_embd_normalize. @internal */
export function normalizeCode(value: EmbeddingNormalize): number {
    return value === 'l2' ? 2 : value === 'none' ? -1 : value;
}

/** Settings shared by embedding and ranking contexts. */
export interface EmbedderSettings {
    /**
     * Tokens of one decode (llama.cpp `--ctx-size`): the longest text, and what the texts of
     * one llama_decode add up to. Defaults to the model's trained context, at most `8192`.
     */
    contextSize?: number;
    /** Tokens per llama_decode (llama.cpp `--batch-size`); at most contextSize. Defaults to `contextSize`. */
    batchSize?: number;
    /**
     * Texts decoded together in one llama_decode, one llama.cpp sequence each (llama.cpp
     * `--parallel`). Defaults to `64`, or batchSize if smaller.
     */
    parallel?: number;
    /** Threads (llama.cpp `--threads`). Defaults to the number of CPUs (`os.availableParallelism()`). */
    threads?: number;
    /**
     * Refuse the context with `INSUFFICIENT_MEMORY` before llama.cpp allocates, as
     * {@link ContextSettings.checkMemory} does. Defaults to `true`.
     */
    checkMemory?: boolean;
}

/** Options of {@link LlamaModel.createEmbeddingContext}. */
export interface EmbeddingContextOptions<P extends EmbeddingPooling = EmbeddingPooling> extends EmbedderSettings {
    /**
     * Pooling (llama.cpp `--pooling`): 'mean', 'cls' (the first token), 'last' (the last
     * token, for decoder embedding models), 'none' (one vector per token), or 'model', the
     * model's own (`<arch>.pooling_type`; `model.metadata.pooling`). Defaults to `'model'`.
     */
    pooling?: P;
    /** Normalization of every vector (llama.cpp `--embd-normalize`). Defaults to `'l2'`. */
    normalize?: EmbeddingNormalize;
}

/** Options of {@link LlamaModel.createRankingContext}. */
export type RankingContextOptions = EmbedderSettings;

/** Options of embed() and embedBatch(). */
export interface EmbedOptions {
    /** Aborts the call between two decodes: it rejects with ABORTED. Defaults to none. */
    signal?: AbortSignal;
    /**
     * Cut a text longer than one decode takes (`ctx.maxTokens`) to its first tokens,
     * keeping its final SEP or EOS token; without it such a text is a CONTEXT_FULL error.
     * Defaults to `false`.
     */
    truncate?: boolean;
    /** Called after each decode with the texts done so far and the total. Defaults to none. */
    onProgress?: (done: number, total: number) => void;
}

const settingsShape = {
    contextSize: contextSizeOption().optional(),
    batchSize: batchSizeOption().optional(),
    parallel: parallelOption().optional(),
    threads: threadsOption().optional(),
    checkMemory: bool().optional(),
};

/** @internal */
export const embeddingContextOptionsSchema = z.strictObject({
    ...settingsShape,
    pooling: z.enum(EMBEDDING_POOLINGS, { error: oneOf(EMBEDDING_POOLINGS) }).optional(),
    normalize: normalizeOption().optional(),
});

/** @internal */
export const rankingContextOptionsSchema = z.strictObject(settingsShape);

/** @internal */
export const embedOptionsSchema = z.strictObject({
    signal: signal().optional(),
    truncate: bool().optional(),
    onProgress: fn<(done: number, total: number) => void>().optional(),
});

/** The facts of a model that an embedding context's parameters depend on. @internal */
export interface EmbedderModelFacts {
    trainedContextSize: number;
    causalAttention: boolean;
}

/**
 * The native parameters of an embedding (or ranking) context. llama.cpp's embedding
 * example's choices: one KV buffer for all sequences of a decode (kvUnified), the batch the
 * whole context, and a micro-batch as large as the batch.
 * @internal
 */
export function resolveEmbedderParams(
    opts: z.output<typeof rankingContextOptionsSchema>,
    pooling: number,
    model: EmbedderModelFacts,
): NativeContextParams {
    const trained = model.trainedContextSize;
    const contextSize = opts.contextSize ?? Math.min(defaults.embedding.contextSize, trained > 0 ? trained : Infinity);
    const batchSize = opts.batchSize ?? contextSize;
    if (batchSize > contextSize) {
        throw new LlamaConfigError(
            `Expected batchSize <= contextSize but received batchSize ${batchSize} and contextSize ${contextSize}; an embedding context decodes at most its contextSize at once`,
            'INVALID_CONFIG',
            ['batchSize', 'contextSize'],
        );
    }
    const sequences = opts.parallel ?? Math.min(defaults.embedding.parallel, batchSize);
    if (sequences > batchSize) {
        throw new LlamaConfigError(
            `Expected parallel <= batchSize but received parallel ${sequences} and batchSize ${batchSize}; each text of a decode takes at least one token`,
            'INVALID_CONFIG',
            ['parallel', 'batchSize'],
        );
    }
    const threads = opts.threads ?? defaults.context.threads();
    return {
        contextSize,
        batchSize,
        // One micro-batch per decode for every model, as llama.cpp's server forces: llama.cpp
        // pools each micro-batch on its own, so a text split across two would be pooled from
        // its last part only (and a model without a KV cache is encoded in one piece).
        ubatchSize: batchSize,
        sequences,
        threads,
        threadsBatch: threads,
        cacheTypeK: 1, // GGML_TYPE_F16: a causal embedding model's cache lives for one decode
        cacheTypeV: 1,
        flashAttention: -1,
        kvUnified: true,
        offloadKqv: defaults.context.offloadKqv,
        swaFull: defaults.context.swaFull,
        embeddings: true,
        pooling,
    };
}
