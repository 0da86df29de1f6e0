/**
 * The metadata and tensors of a fixture model in llama.cpp's `bert` architecture
 * (src/models/bert.cpp): learned position and token-type embeddings, post-LayerNorm
 * blocks with biases, GELU feed-forward, bidirectional attention, and optionally the
 * sequence-classification head that RANK pooling applies (`cls`, `cls.output`).
 */
import { GGUF_VALUE_TYPE } from '../gguf/types.js';
import type { GgufKvEntry } from '../gguf/writer.js';
import type { TensorPlan } from './weights.js';

/** The shape of a BERT network. @internal */
export interface BertNetwork {
    nLayer: number;
    nEmbd: number;
    nHead: number;
    nFf: number;
    /** Positions (`bert.context_length`, the rows of `position_embd`). */
    contextLength: number;
    /** LayerNorm epsilon (`bert.attention.layer_norm_epsilon`). */
    normEps: number;
    /** Rows of `token_types` (the vocabulary's `tokenizer.ggml.token_type_count`). */
    nTokenTypes: number;
    /** llama_pooling_type written as `bert.pooling_type`; undefined for none. */
    poolingType: number | undefined;
    /** The classification head: undefined for none; labels written as `bert.classifier.output_labels` (absent: one output). */
    classifier: { labels?: readonly string[] } | undefined;
}

/** Standard deviation of the biases: small, so that LayerNorm sees mostly the weights' signal. */
const BIAS_STD = 0.02;

/** The `bert.*` metadata entries. @internal */
export function bertEntries(net: BertNetwork): GgufKvEntry[] {
    const u32 = (key: string, value: number): GgufKvEntry => ({ key: `bert.${key}`, type: GGUF_VALUE_TYPE.UINT32, value });
    const labels = net.classifier?.labels;
    return [
        u32('context_length', net.contextLength),
        u32('embedding_length', net.nEmbd),
        u32('block_count', net.nLayer),
        u32('feed_forward_length', net.nFf),
        u32('attention.head_count', net.nHead),
        { key: 'bert.attention.layer_norm_epsilon', type: GGUF_VALUE_TYPE.FLOAT32, value: net.normEps },
        { key: 'bert.attention.causal', type: GGUF_VALUE_TYPE.BOOL, value: false },
        ...(net.poolingType === undefined ? [] : [u32('pooling_type', net.poolingType)]),
        ...(labels === undefined ? [] : [{ key: 'bert.classifier.output_labels', type: GGUF_VALUE_TYPE.ARRAY, arrayType: GGUF_VALUE_TYPE.STRING, value: [...labels] }]),
    ];
}

/** Every tensor llama.cpp's bert loader reads, with shapes and scales (LayerNorm weights 1, biases small). @internal */
export function bertTensorPlans(net: BertNetwork, nVocab: number): TensorPlan[] {
    const { nEmbd, nFf } = net;
    const norm = (name: string): TensorPlan[] => [
        { name: `${name}.weight`, shape: [nEmbd], std: 0 },
        { name: `${name}.bias`, shape: [nEmbd], std: BIAS_STD, f32: true },
    ];
    const linear = (name: string, inputs: number, outputs: number): TensorPlan[] => [
        { name: `${name}.weight`, shape: [inputs, outputs], std: 1 / Math.sqrt(inputs) },
        { name: `${name}.bias`, shape: [outputs], std: BIAS_STD, f32: true },
    ];
    const plans: TensorPlan[] = [
        { name: 'token_embd.weight', shape: [nEmbd, nVocab], std: 1 },
        // F32 as llama.cpp's converter writes them: the CPU backend cannot add an F16 token_types row to F32 activations (it aborts).
        { name: 'token_types.weight', shape: [nEmbd, net.nTokenTypes], std: 0.1, f32: true },
        { name: 'position_embd.weight', shape: [nEmbd, net.contextLength], std: 0.1, f32: true },
        ...norm('token_embd_norm'),
    ];
    for (let i = 0; i < net.nLayer; i++) {
        const p = `blk.${i}.`;
        plans.push(
            ...linear(`${p}attn_q`, nEmbd, nEmbd),
            ...linear(`${p}attn_k`, nEmbd, nEmbd),
            ...linear(`${p}attn_v`, nEmbd, nEmbd),
            ...linear(`${p}attn_output`, nEmbd, nEmbd),
            ...norm(`${p}attn_output_norm`),
            ...linear(`${p}ffn_up`, nEmbd, nFf),
            ...linear(`${p}ffn_down`, nFf, nEmbd),
            ...norm(`${p}layer_output_norm`),
        );
    }
    if (net.classifier !== undefined) {
        // RANK pooling: the [CLS] row, then tanh(cls · x + b), then cls.output (src/llama-graph.cpp build_pooling).
        plans.push(...linear('cls', nEmbd, nEmbd), ...linear('cls.output', nEmbd, net.classifier.labels?.length ?? 1));
    }
    return plans;
}
