/**
 * Contexts allocated off the JS thread (LlamaContext.create(), createEmbeddingContextAsync(),
 * createRankingContextAsync()): the signal checked before the start, then the context made
 * on a worker by the native prepareContext, as a handle that a NativeContext adopts.
 * @internal
 */
import { binding, type NativeContextParams } from '../native/binding.js';
import { captureStack, fromNative, LlamaAbortError } from '../errors.js';
import { nativeModel, type LlamaModel } from '../model/model.js';
import { signalOptionsSchema } from '../options/generate-options.js';
import { parseOptions } from '../options/validate.js';

/** Validates `signal` (as `caller`'s option) and rejects with ABORTED when it has already fired. */
export function checkSignalBeforeStart(signal: AbortSignal | undefined, caller: string, what: string): void {
    parseOptions(signalOptionsSchema, { signal }, caller);
    if (signal?.aborted) throw new LlamaAbortError(`${what} was aborted before it started`);
}

/**
 * The context of these parameters, made on a worker: the handle for NativeContext's `prepared`.
 * An abort during the wait rejects with ABORTED; the handle, never adopted, is then freed by
 * its finalizer.
 */
export async function prepareNativeContext(model: LlamaModel, params: NativeContextParams, signal: AbortSignal | undefined, what: string): Promise<unknown> {
    const stack = captureStack();
    let handle: unknown;
    try {
        handle = await binding().prepareContext(nativeModel(model), params);
    } catch (error) {
        throw fromNative(error, stack);
    }
    if (signal?.aborted) throw new LlamaAbortError(`${what} was aborted`);
    return handle;
}
