/**
 * Model quantization through llama.cpp's llama_model_quantize, on a worker thread: the
 * "merge the adapter, then re-quantize" path of serving a QLoRA fine-tune, and plain
 * F16 -> Q8_0 / Q4_K_M conversion.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { binding } from '../native/binding.js';
import { captureStack, fromNative, LlamaAbortError, LlamaConfigError } from '../errors.js';
import { inspectFile } from './inspect-file.js';
import { userCallback } from '../logger.js';
import { defaults } from '../options/defaults.js';
import { parseOptions } from '../options/validate.js';
import { QUANTIZATION_TYPES, quantizeSchema, type QuantizationType, type QuantizeOptions } from '../options/quantize-options.js';
import { nativeFilePath } from '../native/asar-path.js';

/** What {@link quantizeModel} did. */
export interface QuantizeResult {
    output: string;
    type: QuantizationType;
    inputBytes: number;
    outputBytes: number;
    ms: number;
}

/**
 * The output must be a file in an existing directory: found out before the quantization,
 * not when the result is renamed into place after it.
 */
async function checkOutputPath(output: string): Promise<void> {
    const info = await stat(output).catch(() => null);
    if (info?.isDirectory()) {
        throw new LlamaConfigError(`Expected a file path for output but received ${JSON.stringify(output)}, which is a directory`, 'INVALID_CONFIG', ['output']);
    }
    const dir = dirname(resolve(output));
    const parent = await stat(dir).catch(() => null);
    if (!parent?.isDirectory()) {
        throw new LlamaConfigError(
            `Expected a file path in an existing directory for output but received ${JSON.stringify(output)}: ${dir} ${parent ? 'is not a directory' : 'does not exist'}`,
            'INVALID_CONFIG',
            ['output'],
        );
    }
}

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
    await checkOutputPath(opts.output);
    await inspectFile(opts.input); // a missing, truncated or non-GGUF input fails here, with the model errors
    if (opts.signal?.aborted) throw new LlamaAbortError('Quantization was aborted before it started');
    const tmp = `${opts.output}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    const started = performance.now();
    const onProgress = opts.onProgress;
    const { promise, abort } = binding().quantize(
        nativeFilePath(opts.input),
        tmp,
        { ftype: QUANTIZATION_TYPES[opts.type], threads: opts.threads ?? defaults.quantize.threads(), allowRequantize: opts.allowRequantize ?? defaults.quantize.allowRequantize },
        onProgress ? userCallback(onProgress, 'quantizeModel() onProgress') : undefined,
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
