/**
 * The bounds of the numeric options and the schema of each bounded option, shared by
 * every API that takes it (LlamaContext, estimateMemory, planFit, calibrate, generate()):
 * a value is checked once, here, with one wording. The native layer checks the same
 * bounds again (native/context.cpp, native/workers/generate.cpp, native/placement.cpp,
 * native/context_loras.cpp) as a second line that the public API cannot reach.
 */
import { z } from 'zod';
import { nonNegativeIntUpTo, positiveIntUpTo } from './validate.js';

/** The addon's limits on what it hands llama.cpp; the native checks use the same numbers. */
export const LIMITS = {
    /** n_ctx: native/context.cpp reads at most 2^24 tokens. */
    contextSize: 1 << 24,
    /** n_batch and n_ubatch: native/context.cpp reads at most 2^20 tokens. */
    batchSize: 1 << 20,
    /** n_seq_max: llama.cpp's LLAMA_MAX_SEQ (llama_max_parallel_sequences()). */
    parallel: 256,
    /** n_threads, n_threads_batch: ggml's GGML_MAX_N_THREADS. */
    threads: 512,
    /** llama-quantize's nthread: native/workers/quantize.cpp reads at most 1024. */
    quantizeThreads: 1024,
    /** maxTokens: a uint32_t in the native request. */
    maxTokens: 0xffffffff,
    /** topK, repeatLastN, gpuLayers: int32_t in llama.cpp. */
    int32: 0x7fffffff,
    /** A float parameter (temperature, penalties, LoRA scales): a C float, below FLT_MAX (3.4028e38). */
    float: 3.4e38,
    /** tensorSplit proportions: native/placement.cpp reads at most 1e9. */
    tensorSplit: 1e9,
} as const;

/** contextSize (llama.cpp `--ctx-size`). */
export const contextSizeOption = () => positiveIntUpTo(LIMITS.contextSize);
/** batchSize and ubatchSize. */
export const batchSizeOption = () => positiveIntUpTo(LIMITS.batchSize);
/** parallel: sequences of a context. */
export const parallelOption = () => positiveIntUpTo(LIMITS.parallel);
/** threads and threadsBatch. */
export const threadsOption = () => positiveIntUpTo(LIMITS.threads);
/** maxTokens of a generation. */
export const maxTokensOption = () => nonNegativeIntUpTo(LIMITS.maxTokens);
/** An int32 count that may be 0 (topK, repeatLastN). */
export const int32CountOption = () => nonNegativeIntUpTo(LIMITS.int32);

/** A number >= 0 that fits in a float (temperature). */
export const nonNegativeFloatOption = () =>
    z.number({ error: 'a number >= 0' }).max(LIMITS.float, { error: 'a number in [0, 3.4e38]' }).min(0, { error: 'a number >= 0' });
/** A number > 0 that fits in a float (repeatPenalty). */
export const positiveFloatOption = () =>
    z.number({ error: 'a number > 0' }).max(LIMITS.float, { error: 'a number in (0, 3.4e38]' }).positive({ error: 'a number > 0' });
/** A finite number that fits in a float (a LoRA scale). */
export const floatOption = () =>
    z.number({ error: 'a finite number' })
        .max(LIMITS.float, { error: 'a number in [-3.4e38, 3.4e38]' })
        .min(-LIMITS.float, { error: 'a number in [-3.4e38, 3.4e38]' });
