/** What a loaded model is: llama.cpp's facts about it and its GGUF metadata. */
import type { NativeModelMetadata } from '../native/binding.js';
import type { GgufValue } from '../gguf/types.js';

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
        gguf,
    };
}
