/**
 * What `llama-kv info` says about a model from its GGUF header alone (no model load): the
 * figures llama.cpp would report once loaded, the chat template's name, and the memory of
 * a context at the trained length.
 */
import { LlamaError } from '../../errors.js';
import type { GgufMetadata } from '../../gguf/types.js';
import { estimateMemory } from '../../memory/estimate.js';
import { modelFactsFromGguf } from '../../memory/model-facts.js';
import { chatTemplateName } from '../../model/chat-template-name.js';
import type { ModelMetadata } from '../../model/metadata.js';

/** The model's figures read from the header, under ModelMetadata's names (and meanings). */
export type HeaderInfo = Pick<
    ModelMetadata,
    'architecture' | 'name' | 'trainedContextSize' | 'layerCount' | 'embeddingSize' | 'headCount' | 'headCountKv' | 'headDimK' | 'headDimV' | 'vocabSize' | 'parameterCount' | 'sizeBytes'
>;

/** The chat template of the file, as `info` shows it. */
export interface ChatTemplateSummary {
    /** The name llama.cpp's llm_chat_detect_template gives it, or null when it names none. */
    name: string | null;
    /** Characters of the source. */
    length: number;
    /** Where it comes from: the file's `tokenizer.chat_template`, or the `chatTemplate` load option (with --load). */
    origin: 'file' | 'override';
}

/** The memory of a context at the model's trained length, default K/V types (estimateMemory's header level). */
export interface TrainedContextMemory {
    contextSize: number;
    cacheTypeK: string;
    cacheTypeV: string;
    kvBytes: number;
    weightsBytes: number;
    computeBytes: number;
    outputBytes: number;
    totalBytes: number;
    /** Whether every figure is exact (the compute buffers never are at the header level). */
    exact: boolean;
}

/** The header's figures (the estimator's reading of it, with llama.cpp's fallbacks). */
export function headerInfo(gguf: GgufMetadata): HeaderInfo {
    const facts = modelFactsFromGguf(gguf);
    const name = gguf.kv['general.name'];
    let parameterCount = 0;
    let sizeBytes = 0;
    for (const t of gguf.tensors) {
        parameterCount += t.shape.reduce((a, b) => a * b, 1);
        sizeBytes += t.byteSize;
    }
    return {
        architecture: facts.architecture,
        name: typeof name === 'string' ? name : '',
        trainedContextSize: facts.trainedContextSize,
        layerCount: facts.layerCount,
        embeddingSize: facts.embeddingSize,
        headCount: facts.layerHeadCount[0] ?? 0,
        headCountKv: facts.layerHeadCountKv[0] ?? 0,
        headDimK: facts.layerHeadDimK[0] ?? 0,
        headDimV: facts.layerHeadDimV[0] ?? 0,
        vocabSize: facts.vocabSize,
        parameterCount,
        sizeBytes,
    };
}

/** The template's name and length; null when there is no template. */
export function chatTemplateSummary(source: unknown, origin: ChatTemplateSummary['origin'] = 'file'): ChatTemplateSummary | null {
    if (typeof source !== 'string' || source === '') return null;
    return { name: chatTemplateName(source), length: source.length, origin };
}

/** The memory at the trained context, or the reason it cannot be estimated (a LlamaError's message). */
export async function trainedContextMemory(gguf: GgufMetadata, contextSize: number): Promise<TrainedContextMemory | { error: string }> {
    if (!(contextSize > 0)) return { error: 'the header gives no trained context length' };
    try {
        const e = await estimateMemory({ model: gguf, contextSize });
        return {
            contextSize: e.config.contextSize,
            cacheTypeK: e.config.cacheTypeK,
            cacheTypeV: e.config.cacheTypeV,
            kvBytes: e.kv.bytes,
            weightsBytes: e.weights.bytes,
            computeBytes: e.compute.bytes,
            outputBytes: e.output.bytes,
            totalBytes: e.total.bytes,
            exact: Object.values(e.exact).every(Boolean),
        };
    } catch (error) {
        if (error instanceof LlamaError) return { error: error.message };
        throw error;
    }
}
