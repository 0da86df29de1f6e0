/**
 * Model quantization through llama.cpp's llama_model_quantize, on a worker thread: the
 * "merge the adapter, then re-quantize" path of serving a QLoRA fine-tune, and plain
 * F16 -> Q8_0 / Q4_K_M conversion.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { binding } from './binding.js';
import { captureStack, fromNative, LlamaAbortError, LlamaConfigError } from './errors.js';
import { inspectFile } from './model.js';
import { parseOptions } from './options.js';

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
    /** The target type (llama-quantize's names). The IQ1/IQ2 types need an importance matrix, which this API does not take yet. */
    type: QuantizationType;
    /** Threads. Defaults to the number of CPUs. */
    threads?: number;
    /** Allow re-quantizing tensors that are already quantized (quality loss adds up). Defaults to `false`. */
    allowRequantize?: boolean;
    /** Called with the progress in [0, 1], tensor by tensor. */
    onProgress?: (progress: number) => void;
    /** Stops between two tensors; the promise rejects with ABORTED and no output is left. */
    signal?: AbortSignal;
}

/** What {@link quantizeModel} did. */
export interface QuantizeResult {
    output: string;
    type: QuantizationType;
    inputBytes: number;
    outputBytes: number;
    ms: number;
}

const typeNames = Object.keys(QUANTIZATION_TYPES) as [QuantizationType, ...QuantizationType[]];
const quantizeSchema = z.strictObject({
    input: z.string({ error: 'a file path (string)' }).min(1, { error: 'a non-empty file path' }),
    output: z.string({ error: 'a file path (string)' }).min(1, { error: 'a non-empty file path' }),
    type: z.enum(typeNames, { error: `one of ${typeNames.join(', ')}` }),
    threads: z.number({ error: 'a positive integer' }).int({ error: 'a positive integer' }).positive({ error: 'a positive integer' }).max(1024, { error: 'at most 1024' }).optional(),
    allowRequantize: z.boolean({ error: 'a boolean' }).optional(),
    onProgress: z.custom<(p: number) => void>((v) => typeof v === 'function', { error: 'a function' }).optional(),
    signal: z.instanceof(AbortSignal, { error: 'an AbortSignal' }).optional(),
});

/**
 * Quantizes a GGUF model with llama.cpp (llama_model_quantize) off the JS thread.
 * llama.cpp's refusals (e.g. re-quantizing a quantized model without `allowRequantize`)
 * reject with QUANTIZE_FAILED and its message.
 *
 * @example
 * await quantizeModel({ input: 'merged-f16.gguf', output: 'merged-q4_k_m.gguf', type: 'Q4_K_M' });
 */
export async function quantizeModel(options: QuantizeOptions): Promise<QuantizeResult> {
    const stack = captureStack();
    const opts = parseOptions(quantizeSchema, options, 'quantizeModel()');
    if (resolve(opts.input) === resolve(opts.output)) {
        throw new LlamaConfigError('output must differ from input: quantizing in place would destroy the input while it is read', 'INVALID_CONFIG', ['output']);
    }
    await inspectFile(opts.input); // a missing, truncated or non-GGUF input fails here, with the model errors
    if (opts.signal?.aborted) throw new LlamaAbortError('Quantization was aborted before it started');
    const tmp = `${opts.output}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    const started = performance.now();
    const onProgress = opts.onProgress;
    const { promise, abort } = binding().quantize(
        opts.input,
        tmp,
        { ftype: QUANTIZATION_TYPES[opts.type], threads: opts.threads ?? availableParallelism(), allowRequantize: opts.allowRequantize ?? false },
        onProgress
            ? (p) => {
                  try {
                      onProgress(p);
                  } catch {
                      // a throwing progress callback must not break the quantization
                  }
              }
            : undefined,
    );
    const onAbort = () => abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
        await promise;
        await rename(tmp, opts.output);
    } catch (error) {
        await rm(tmp, { force: true }).catch(() => undefined);
        throw fromNative(error, stack);
    } finally {
        opts.signal?.removeEventListener('abort', onAbort);
    }
    const [inputStat, outputStat] = await Promise.all([stat(opts.input), stat(opts.output)]);
    return { output: opts.output, type: opts.type, inputBytes: inputStat.size, outputBytes: outputStat.size, ms: performance.now() - started };
}
