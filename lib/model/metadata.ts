/** What a loaded model is: llama.cpp's facts about it and its GGUF metadata. */
import type { NativeModelMetadata } from '../native/binding.js';
import type { GgufValue } from '../gguf/types.js';
import { poolingName, type ResolvedPooling } from '../options/embedding-options.js';

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
    /** Whether tokenize() with addSpecial adds an EOS token (`tokenizer.ggml.add_eos_token`, as embedding models often do). */
    addEos: boolean;
    /** Whether tokenize() with addSpecial adds a SEP token (BERT's `[SEP]`). */
    addSep: boolean;
    /** The separator token id (BERT's `[SEP]`), or -1. */
    sepToken: number;
    /**
     * The model's own pooling (`<arch>.pooling_type`), what an embedding context's pooling
     * 'model' takes: 'none' when the file names none (a generation model), 'rank' for a reranker.
     */
    pooling: ResolvedPooling;
    /** Causal attention (false for BERT-style encoders, whose tokens all see each other). */
    causalAttention: boolean;
    /** An encoder: non-causal attention, or an encoder without a decoder (T5 encoder); generation contexts refuse it. */
    isEncoder: boolean;
    /** A reranker: a classification head (`cls.weight` / `cls.output.weight`) for {@link LlamaModel.createRankingContext}. */
    isReranker: boolean;
    /** Width of one embedding (llama_model_n_embd_out; usually embeddingSize). */
    embeddingOutputSize: number;
    /** Scores a reranker gives per text (llama_model_n_cls_out). */
    classifierOutputs: number;
    /** `tokenizer.chat_template.rerank` ({query} and {document} placeholders), or null for the separator convention. */
    rerankTemplate: string | null;
    /** The GGUF key/value map as stored in the file. */
    gguf: Record<string, GgufValue>;
}

/** The public metadata from llama.cpp's and the header's. @internal */
export function toMetadata(native: NativeModelMetadata, gguf: Record<string, GgufValue>): ModelMetadata {
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
        addEos: native.addEos,
        addSep: native.addSep,
        sepToken: native.sep,
        pooling: poolingName(native.poolingType) ?? 'none',
        causalAttention: native.causalAttention,
        isEncoder: !native.causalAttention || (native.hasEncoder && !native.hasDecoder),
        isReranker: native.hasClassifier,
        embeddingOutputSize: native.embeddingOutputSize,
        classifierOutputs: native.classifierOutputs,
        rerankTemplate: native.rerankTemplate,
        gguf,
    };
}
