/**
 * Warnings: what is allowed but probably not what the caller meant. They are returned
 * where they arise (`model.warnings`, `ctx.config.warnings`, an estimate's `warnings`)
 * and logged at 'warn'. Each names the options it is about, so that a front end (the
 * CLI) can say it with its own flag names.
 */

/** What a warning is about. */
export type LlamaWarningCode =
    /** contextSize is larger than the context the model was trained with. */
    | 'CONTEXT_ABOVE_TRAINED'
    /** llama.cpp limits the batch to the contextSize asked for, before padding the context: a tiny contextSize makes a tiny batch. */
    | 'BATCH_CLAMPED'
    /** More threads than CPUs: ggml's threads wait on each other at every step. */
    | 'THREADS_ABOVE_CPUS'
    /** The GPU in use has no flash-attention kernel for the K/V pair: attention falls back to the CPU. */
    | 'FLASH_ATTENTION_KV_PAIR'
    /** gpu 'auto' found no GPU backend: the model runs on the CPU. */
    | 'NO_GPU'
    /** The file's tensors are not 32-byte aligned: it is read instead of memory-mapped. */
    | 'MMAP_MISALIGNED';

/** One warning. */
export interface LlamaWarning {
    readonly code: LlamaWarningCode;
    /** What happened and what to do, in the library's option names. */
    readonly message: string;
    /** The options it is about (e.g. `['contextSize']`), for a front end's own names. */
    readonly options: readonly string[];
}

/** @internal */
export function warning(code: LlamaWarningCode, message: string, options: readonly string[]): LlamaWarning {
    return Object.freeze({ code, message, options: Object.freeze([...options]) });
}
