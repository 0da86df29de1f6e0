/**
 * The pseudo-random tensors of the generated fixture models: what each tensor is
 * ({@link TensorPlan}) and its deterministic values.
 */
import { f32ToBytes, f32ToF16Bytes, quantizeQ4_0, quantizeQ8_0, type GgufTensorEntry } from '../gguf/writer.js';

/** A tensor to generate: name, shape (ne0 first) and weight scale. @internal */
export interface TensorPlan {
    name: string;
    shape: number[];
    /** Standard deviation of the weights; 0 means a norm weight (all ones, F32). */
    std: number;
    /**
     * Stored as F32 whatever the weight type, pseudo-random with `std` (zeros when `std` is 0):
     * biases, and the tensors llama.cpp's converter always keeps F32 (`position_embd`, `token_types`).
     */
    f32?: true;
}

/** Storage type of a fixture's weight matrices. @internal */
export type FixtureWeightType = 'F16' | 'Q8_0' | 'Q4_0';

/** The values of one planned tensor, encoded: matrices in `weightType`, norms and biases F32. @internal */
export function planTensor(plan: TensorPlan, seed: number, weightType: FixtureWeightType): GgufTensorEntry {
    const count = plan.shape.reduce((a, b) => a * b, 1);
    if (plan.f32) {
        const values = plan.std === 0 ? new Float32Array(count) : randomWeights(count, plan.std, tensorSeed(seed, plan.name));
        return { name: plan.name, type: 'F32', shape: plan.shape, data: f32ToBytes(values) };
    }
    if (plan.std === 0) {
        return { name: plan.name, type: 'F32', shape: plan.shape, data: f32ToBytes(new Float32Array(count).fill(1)) };
    }
    const values = randomWeights(count, plan.std, tensorSeed(seed, plan.name));
    const data = weightType === 'F16' ? f32ToF16Bytes(values) : weightType === 'Q8_0' ? quantizeQ8_0(values) : quantizeQ4_0(values);
    return { name: plan.name, type: weightType, shape: plan.shape, data };
}

/** Per-tensor seed: FNV-1a of the tensor name mixed with the model seed. @internal */
export function tensorSeed(seed: number, name: string): number {
    let h = 0x811c9dc5 ^ seed;
    for (let i = 0; i < name.length; i++) {
        h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    }
    return h >>> 0;
}

/**
 * `count` uniform pseudo-random values with mean 0 and standard deviation `std`
 * (mulberry32; integer and basic float arithmetic only, so bit-identical everywhere).
 * @internal
 */
export function randomWeights(count: number, std: number, seed: number): Float32Array {
    const out = new Float32Array(count);
    const halfWidth = std * Math.sqrt(3);
    let state = seed >>> 0;
    for (let i = 0; i < count; i++) {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = Math.imul(state ^ (state >>> 15), state | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
        out[i] = (2 * u - 1) * halfWidth;
    }
    return out;
}
