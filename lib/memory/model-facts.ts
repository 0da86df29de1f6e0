/**
 * What the memory estimator needs to know about a model, read from the GGUF header
 * alone (lib/gguf/reader.ts), with the same fallbacks llama.cpp's loader applies.
 */
import { LlamaError } from '../errors.js';
import type { GgufMetadata, GgufValue } from '../gguf/types.js';
import { ggufArrayLength } from '../gguf/lazy-array.js';
import type { KvModelFacts } from '../options/kv-cache.js';

/** Model facts from a GGUF header. */
export interface HeaderModelFacts extends KvModelFacts {
    architecture: string;
    layerCount: number;
    embeddingSize: number;
    feedForwardSize: number;
    /** Query heads per layer. */
    layerHeadCount: number[];
    /** KV heads per layer. */
    layerHeadCountKv: number[];
    trainedContextSize: number;
    vocabSize: number;
    /** Sliding-window size, 0 when the model has none. */
    slidingWindow: number;
    /** The KV cache of this architecture has the plain dense layout that the header estimate computes exactly. */
    denseKv: boolean;
    /** Why denseKv is false. */
    notDenseReason?: string;
    /** What an embedding context of this model gets (see {@link embeddingFactsFromGguf}). */
    embedding: HeaderEmbeddingFacts;
}

/** The header's facts for embeddings, with llama.cpp's fallbacks. */
export interface HeaderEmbeddingFacts {
    /** `<arch>.pooling_type` (llama_pooling_type), 0 (none) when absent. */
    pooling: number;
    /** `<arch>.attention.causal`, true when absent. */
    causal: boolean;
    /** Whether llama.cpp gives its contexts a KV cache (llama_model::create_memory: not BERT-style encoders). */
    hasKvCache: boolean;
    /** `<arch>.embedding_length_out`, else embedding_length. */
    outputSize: number;
    /** A classification head (cls.weight or cls.output.weight): a reranker. */
    classifier: boolean;
}

/** Architectures for which llama.cpp's llama_model::create_memory makes no memory (re-check on a pin bump). */
const NO_MEMORY_ARCHITECTURES = new Set([
    'bert', 'jina-bert-v2', 'jina-bert-v3', 'nomic-bert', 'nomic-bert-moe', 'neo-bert', 'eurobert',
    'wavtokenizer-dec', 'modern-bert', 'gemma-embedding', 'dream', 'llada', 'llada-moe', 'rnd1',
]);

function num(value: GgufValue | undefined): number | undefined {
    if (typeof value === 'number') return value;
    if (typeof value === 'bigint') return Number(value);
    return undefined;
}

/** A per-layer value that GGUF stores either as a scalar or as an array. */
function perLayer(value: GgufValue | undefined, layers: number, fallback: number): number[] {
    if (Array.isArray(value)) return Array.from({ length: layers }, (_, i) => num(value[i] as GgufValue) ?? fallback);
    const scalar = num(value);
    return Array.from({ length: layers }, () => scalar ?? fallback);
}

const NOT_DENSE_KEYS: [suffix: string, reason: string][] = [
    ['.attention.sliding_window', 'sliding-window attention layers'],
    ['.attention.kv_lora_rank', 'MLA attention'],
    ['.ssm.state_size', 'recurrent (SSM) state'],
    ['.wkv.head_size', 'recurrent (RWKV) state'],
    ['.shortconv.l_cache', 'recurrent (short-convolution) state'],
];

/** Reads the facts from a parsed GGUF header. Throws when it is not a model the estimator understands. */
export function modelFactsFromGguf(gguf: GgufMetadata): HeaderModelFacts {
    const kv = gguf.kv;
    const arch = kv['general.architecture'];
    if (typeof arch !== 'string') throw new LlamaError('INVALID_MODEL_FILE', 'The GGUF header has no general.architecture');
    const key = (suffix: string) => kv[`${arch}.${suffix}`];
    const layerCount = num(key('block_count'));
    const embeddingSize = num(key('embedding_length'));
    if (!layerCount || !embeddingSize) {
        throw new LlamaError('INVALID_MODEL_FILE', `The GGUF header lacks ${arch}.block_count or ${arch}.embedding_length`);
    }
    const layerHeadCount = perLayer(key('attention.head_count'), layerCount, 0);
    const layerHeadCountKv = perLayer(key('attention.head_count_kv'), layerCount, NaN).map((n, i) => (Number.isNaN(n) ? layerHeadCount[i] : n));
    const heads = layerHeadCount[0] || 1;
    const headDimK = num(key('attention.key_length')) ?? Math.floor(embeddingSize / heads);
    const headDimV = num(key('attention.value_length')) ?? Math.floor(embeddingSize / heads);
    // The count only: the tokens themselves are decoded when someone reads them.
    const tokenCount = ggufArrayLength(kv, 'tokenizer.ggml.tokens');
    const notDense = NOT_DENSE_KEYS.find(([suffix]) => key(suffix.slice(1)) !== undefined);
    return {
        architecture: arch,
        layerCount,
        embeddingSize,
        feedForwardSize: perLayer(key('feed_forward_length'), layerCount, 0).reduce((a, b) => Math.max(a, b), 0),
        layerHeadCount,
        layerHeadCountKv,
        layerHeadDimK: Array.from({ length: layerCount }, () => headDimK),
        layerHeadDimV: Array.from({ length: layerCount }, () => headDimV),
        kvTypesMustMatch: key('attention.kv_lora_rank') !== undefined || arch === 'deepseek4',
        trainedContextSize: num(key('context_length')) ?? 0,
        vocabSize: tokenCount ?? num(key('vocab_size')) ?? 0,
        slidingWindow: num(key('attention.sliding_window')) ?? 0,
        denseKv: notDense === undefined,
        embedding: {
            pooling: num(key('pooling_type')) ?? 0,
            causal: key('attention.causal') !== false,
            hasKvCache: !NO_MEMORY_ARCHITECTURES.has(arch),
            outputSize: num(key('embedding_length_out')) ?? embeddingSize,
            classifier: gguf.tensors.some((t) => t.name === 'cls.weight' || t.name === 'cls.output.weight'),
        },
        ...(notDense ? { notDenseReason: notDense[1] } : {}),
    };
}
