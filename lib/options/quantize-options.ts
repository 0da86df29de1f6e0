/** Options of quantizeModel(), and llama.cpp's quantization types by name. */
import { z } from 'zod';
import { LIMITS } from './llama-limits.js';
import { bool, filePath, fn, positiveIntUpTo, signal } from './validate.js';

/** llama.cpp's file types (llama_ftype), by the names llama-quantize uses. */
export const QUANTIZATION_TYPES = {
    F32: 0, F16: 1, BF16: 32,
    Q4_0: 2, Q4_1: 3, Q5_0: 8, Q5_1: 9, Q8_0: 7,
    Q2_K: 10, Q2_K_S: 21, Q3_K_S: 11, Q3_K_M: 12, Q3_K_L: 13, Q4_K_S: 14, Q4_K_M: 15, Q5_K_S: 16, Q5_K_M: 17, Q6_K: 18,
    IQ1_S: 24, IQ1_M: 31, IQ2_XXS: 19, IQ2_XS: 20, IQ2_S: 28, IQ2_M: 29, IQ3_XXS: 23, IQ3_XS: 22, IQ3_S: 26, IQ3_M: 27,
    IQ4_NL: 25, IQ4_XS: 30, TQ1_0: 36, TQ2_0: 37, MXFP4_MOE: 38,
} as const;

/** A quantization type name, e.g. `'Q4_K_M'`. */
export type QuantizationType = keyof typeof QUANTIZATION_TYPES;

/** Options of {@link quantizeModel}. */
export interface QuantizeOptions {
    /** The GGUF model to quantize. */
    input: string;
    /** Where to write the result; written under a temporary name and renamed when complete. Must differ from `input`. */
    output: string;
    /**
     * The target type (llama-quantize's names, in any case: `'q4_k_m'` is `'Q4_K_M'`). The IQ1/IQ2 types need an
     * importance matrix, which this API does not take yet.
     */
    type: QuantizationType | Lowercase<QuantizationType>;
    /** Threads. Defaults to the number of CPUs. */
    threads?: number;
    /** Allow re-quantizing tensors that are already quantized (quality loss adds up). Defaults to `false`. */
    allowRequantize?: boolean;
    /** Called with the progress in [0, 1], tensor by tensor. */
    onProgress?: (progress: number) => void;
    /** Stops between two tensors; the promise rejects with ABORTED and no output is left. */
    signal?: AbortSignal;
}

const typeNames = Object.keys(QUANTIZATION_TYPES) as [QuantizationType, ...QuantizationType[]];
/** quantizeModel()'s options. */
export const quantizeSchema = z.strictObject({
    input: filePath(),
    output: filePath(),
    type: z.preprocess((v) => (typeof v === 'string' ? v.toUpperCase() : v), z.enum(typeNames, { error: `one of ${typeNames.join(', ')}` })),
    threads: positiveIntUpTo(LIMITS.quantizeThreads).optional(),
    allowRequantize: bool().optional(),
    onProgress: fn<(p: number) => void>().optional(),
    signal: signal().optional(),
});
