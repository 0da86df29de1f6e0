/**
 * Runs an abortable native call ({ promise, abort() }): `signal` aborts it, and a rejection
 * becomes a LlamaError with the caller's stack (ABORTED as a LlamaAbortError when the
 * signal caused it).
 * @internal
 */
import { captureStack, fromNative, LlamaAbortError } from '../errors.js';

export async function withSignal<T>(
    start: () => { promise: Promise<T>; abort(): void },
    signal: AbortSignal | undefined,
    stack: string = captureStack(),
    what?: string,
): Promise<T> {
    if (signal?.aborted) throw new LlamaAbortError(what === undefined ? undefined : `${what} was aborted before it started`);
    let call: { promise: Promise<T>; abort(): void };
    try {
        call = start();
    } catch (error) {
        throw fromNative(error, stack);
    }
    const onAbort = () => call.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
        return await call.promise;
    } catch (error) {
        const e = fromNative(error, stack);
        if (e.code === 'ABORTED' && signal?.aborted && !(e instanceof LlamaAbortError)) throw new LlamaAbortError(what === undefined ? undefined : `${what} was aborted`, { cause: e });
        throw e;
    } finally {
        signal?.removeEventListener('abort', onAbort);
    }
}
