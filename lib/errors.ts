/**
 * Every error thrown or rejected by llama-kv is a {@link LlamaError} with a stable
 * `code`. Subclasses exist for the codes that callers commonly branch on.
 */

/** Stable error codes. New codes may be added; existing ones never change meaning. */
export type LlamaErrorCode =
    | 'INVALID_CONFIG'
    | 'INVALID_ARGUMENT'
    | 'MODEL_NOT_FOUND'
    | 'INVALID_MODEL_FILE'
    | 'MODEL_LOAD_FAILED'
    | 'CONTEXT_CREATE_FAILED'
    | 'DISPOSED'
    | 'ABORTED'
    | 'BUSY'
    | 'CONTEXT_FULL'
    | 'INVALID_BATCH'
    | 'DECODE_FAILED'
    | 'TOKENIZE_FAILED'
    | 'BINDING_LOAD_FAILED'
    | 'INSUFFICIENT_MEMORY'
    | 'BACKEND_UNAVAILABLE'
    | 'LORA_LOAD_FAILED'
    | 'QUANTIZE_FAILED'
    | 'MODEL_CRASHED'
    | 'STATE_MISMATCH'
    | 'INVALID_STATE_FILE'
    | 'STATE_IO_FAILED'
    | 'TEMPLATE_FAILED'
    | 'INVALID_GRAMMAR'
    | 'GRAMMAR_FAILED'
    | 'DOWNLOAD_FAILED'
    | 'INTERNAL';

/** Options of {@link LlamaError}. */
export interface LlamaErrorOptions {
    /** The underlying error, if any. */
    cause?: unknown;
    /** llama.cpp's own return code, where the failure came with one (e.g. llama_decode's). */
    status?: number;
}

/** Root of llama-kv's error hierarchy. */
export class LlamaError extends Error {
    /** Stable machine-readable code. */
    readonly code: LlamaErrorCode;
    /** llama.cpp's return code, when there was one. */
    readonly status?: number;

    constructor(code: LlamaErrorCode, message: string, options: LlamaErrorOptions = {}) {
        super(message, options.cause === undefined ? undefined : { cause: options.cause });
        this.name = new.target.name;
        this.code = code;
        if (options.status !== undefined) this.status = options.status;
    }
}

/** An option or argument was invalid. The message names it, the expected value and what was received. */
export class LlamaConfigError extends LlamaError {
    /** The option(s) at fault, e.g. `['cacheTypeV', 'flashAttention']`. */
    readonly path: readonly string[];

    constructor(message: string, code: 'INVALID_CONFIG' | 'INVALID_ARGUMENT' = 'INVALID_CONFIG', path: readonly string[] = []) {
        super(code, message);
        this.path = Object.freeze([...path]);
    }
}

/** A model file could not be found, read or loaded. */
export class LlamaModelLoadError extends LlamaError {}

/** The object was disposed before it was used. */
export class LlamaDisposedError extends LlamaError {
    constructor(what: string) {
        super('DISPOSED', `This ${what} has been disposed; create a new one to continue`);
    }
}

/** The operation was aborted through an AbortSignal. */
export class LlamaAbortError extends LlamaError {
    constructor(message = 'The operation was aborted', options: LlamaErrorOptions = {}) {
        super('ABORTED', message, options);
    }
}

/** Where the memory that ran out is: host RAM (and swap), or a GPU device's memory. */
export type MemoryLocation = 'host' | 'device';

/**
 * Code 'INSUFFICIENT_MEMORY': what was asked for does not fit in the memory there is.
 * Thrown before the allocation when the estimate shows it (then `neededBytes` and
 * `availableBytes` are set), or when llama.cpp's own allocation failed.
 */
export class LlamaMemoryError extends LlamaError {
    /** Bytes the estimate says are needed; undefined when llama.cpp's allocation failed. */
    readonly neededBytes?: number;
    /** Bytes the tightest limit left at the time of the check. */
    readonly availableBytes?: number;
    /** Host memory or a GPU device's. */
    readonly location?: MemoryLocation;

    constructor(message: string, details: { neededBytes?: number; availableBytes?: number; location?: MemoryLocation } = {}, options: LlamaErrorOptions = {}) {
        super('INSUFFICIENT_MEMORY', message, options);
        if (details.neededBytes !== undefined) this.neededBytes = details.neededBytes;
        if (details.availableBytes !== undefined) this.availableBytes = details.availableBytes;
        if (details.location !== undefined) this.location = details.location;
    }
}

/** A decode failed: the code tells why (CONTEXT_FULL, INVALID_BATCH, DECODE_FAILED). */
export class LlamaDecodeError extends LlamaError {}

const decodeCodes = new Set<string>(['CONTEXT_FULL', 'INVALID_BATCH', 'DECODE_FAILED']);
const knownCodes = new Set<string>([
    'INVALID_CONFIG', 'INVALID_ARGUMENT', 'MODEL_NOT_FOUND', 'INVALID_MODEL_FILE', 'MODEL_LOAD_FAILED',
    'CONTEXT_CREATE_FAILED', 'DISPOSED', 'ABORTED', 'BUSY', 'CONTEXT_FULL', 'INVALID_BATCH', 'DECODE_FAILED',
    'TOKENIZE_FAILED', 'BINDING_LOAD_FAILED', 'INSUFFICIENT_MEMORY', 'BACKEND_UNAVAILABLE', 'LORA_LOAD_FAILED',
    'QUANTIZE_FAILED', 'MODEL_CRASHED', 'STATE_MISMATCH', 'INVALID_STATE_FILE', 'STATE_IO_FAILED', 'TEMPLATE_FAILED',
    'INVALID_GRAMMAR', 'GRAMMAR_FAILED', 'DOWNLOAD_FAILED', 'INTERNAL',
]);

/**
 * Turns an error from the native layer (an Error with `code` and maybe `status`)
 * into the matching LlamaError. `callerStack`, captured before the native call,
 * replaces the native stack so the error points at the user's code.
 * @internal
 */
export function fromNative(error: unknown, callerStack?: string): LlamaError {
    if (error instanceof LlamaError) return error;
    const native = error as { code?: unknown; status?: unknown; message?: unknown } | null;
    const rawCode = typeof native?.code === 'string' ? native.code : 'INTERNAL';
    const code = (knownCodes.has(rawCode) ? rawCode : 'INTERNAL') as LlamaErrorCode;
    const message = typeof native?.message === 'string' ? native.message : String(error);
    const status = typeof native?.status === 'number' ? native.status : undefined;
    let result: LlamaError;
    if (code === 'ABORTED') result = new LlamaAbortError(message, { cause: error, status });
    else if (decodeCodes.has(code)) result = new LlamaDecodeError(code, message, { cause: error, status });
    else if (code === 'MODEL_LOAD_FAILED') result = new LlamaModelLoadError(code, message, { cause: error });
    else if (code === 'INVALID_ARGUMENT' || code === 'INVALID_CONFIG') result = new LlamaConfigError(message, code);
    else if (code === 'INSUFFICIENT_MEMORY') result = new LlamaMemoryError(message, {}, { cause: error, status });
    else result = new LlamaError(code, message, { cause: error, status });
    if (callerStack) result.stack = `${result.name}: ${message}\n${callerStack}`;
    return result;
}

/**
 * Captures the current JS stack (without this frame) so an error that comes back
 * from a worker thread can point at the caller.
 * @internal
 */
export function captureStack(): string {
    const holder: { stack?: string } = {};
    Error.captureStackTrace(holder, captureStack);
    return (holder.stack ?? '').split('\n').slice(1).join('\n');
}
