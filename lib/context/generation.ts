/**
 * One generate()/complete() request from its queueing to its result: waits for a sequence,
 * submits to the context's engine, turns the token batches into text (stop strings,
 * UTF-8-safe), applies backpressure, and hands the sequence back.
 */
import type { NativeContext, NativeRequest, NativeRequestHandle, NativeRequestResult } from '../native/binding.js';
import { fromNative, LlamaDisposedError } from '../errors.js';
import type { Slot } from './sequence-pool.js';
import { TextStream } from './text-stream.js';

/** One generated token and the text it completes. */
export interface GeneratedToken {
    /** The token id. */
    token: number;
    /**
     * Text that became final with this token: may be empty (half of a multi-byte
     * character, or possibly the start of a stop string), never a split character.
     */
    text: string;
}

/** Why generation ended. */
export type FinishReason = 'eos' | 'stop' | 'length' | 'contextFull' | 'abort' | 'preempted';

/** Result of {@link LlamaContext.complete}. */
export interface CompletionResult {
    /** The generated text, without a matched stop string. */
    text: string;
    /** Every sampled token (including those that formed a stop string; not the end-of-generation token). */
    tokens: number[];
    /**
     * 'eos': the model ended; 'stop': a stop string matched; 'length': maxTokens were generated; 'contextFull': the
     * sequence has no room for another token (onContextFull 'error'); 'abort': aborted; 'preempted': a generate()
     * stream whose reader had stopped reading ({@link UNREAD_LIMIT} tokens unread) was ended because another request
     * was waiting for its sequence.
     */
    finishReason: FinishReason;
    /** The sampling seed this request used: pass it as `seed` to reproduce the answer (same model, prompt, options and sequence state). */
    seed: number;
    /** The sequence that ran it (see {@link LlamaContext.sequences}). */
    sequence: number;
    timings: {
        /** Tokens in the prompt. */
        promptTokens: number;
        /** Prompt tokens reused from the sequence's cache (not decoded again). */
        reusedTokens: number;
        promptMs: number;
        generatedTokens: number;
        generationMs: number;
        /** Context shifts made during the request (onContextFull 'shift'). */
        contextShifts: number;
    };
}

/**
 * Backpressure of generate(): after this many generated tokens that the reader has not taken,
 * the sequence sits out of the engine's batches until the reader reads on (the other sequences
 * go on); a paused stream whose sequence another request is waiting for is ended with
 * finishReason 'preempted'.
 */
export const UNREAD_LIMIT = 64;

/** How a request gets and gives back its sequence. */
export interface RunPlace {
    /** Waits for the sequence; rejects with ABORTED when `signal` fires meanwhile. */
    acquire(signal: AbortSignal | undefined): Promise<Slot>;
    /** The request ended; `cached`: what the sequence holds now (null: unknown, treat as empty). */
    release(slot: Slot, cached: Int32Array | null): void;
    /** The native context, or DISPOSED. */
    native(): NativeContext;
    disposed(): boolean;
    /** Tokens arrived (a stream may have become stalled while requests wait). */
    onTokens?(): void;
    /** The request ends without having called acquire() (aborted before it started). */
    cancel(): void;
}

/** A running generation as the context sees it, for preemption. */
export interface RunningStream {
    /** Tokens delivered so far. */
    delivered(): number;
    stalled(): boolean;
    preempt(): void;
}

export interface GenerationRun {
    next(): Promise<GeneratedToken | null>;
    result: Promise<CompletionResult>;
    abort(): void;
    stream: RunningStream;
}

type EngineRequest = Omit<NativeRequest, 'sequence' | 'kind'>;

/** The sequence tokens a failed native request attached to its error (null when none). */
export function tokensOnFailure(error: unknown): Int32Array | null {
    const t = (error as { sequenceTokens?: unknown } | null)?.sequenceTokens;
    return t instanceof Int32Array ? t : null;
}

export function startGeneration(
    request: EngineRequest,
    stops: string[],
    seed: number,
    place: RunPlace,
    signal: AbortSignal | undefined,
    stack: string | undefined,
): GenerationRun {
    const stream = new TextStream(stops);
    const tokens: number[] = [];
    const pending: GeneratedToken[] = [];
    let done = false;
    let wake: (() => void) | null = null;
    const notify = () => {
        const w = wake;
        wake = null;
        w?.();
    };
    let handle: NativeRequestHandle | null = null;
    let cancelled = false;
    let preempted = false;
    const waitAbort = new AbortController();
    const abort = () => {
        cancelled = true;
        waitAbort.abort();
        handle?.abort();
    };
    // Backpressure: tokens the reader has taken, and the count last told to the engine.
    let read = 0;
    let reported = 0;
    const report = () => {
        if (done || read === reported) return;
        reported = read;
        handle?.tokensRead(read);
    };
    const running: RunningStream = {
        delivered: () => tokens.length,
        // As the engine counts: the sequence sits out once UNREAD_LIMIT tokens are delivered beyond the last report.
        stalled: () => handle !== null && !done && tokens.length - reported >= UNREAD_LIMIT,
        preempt: () => {
            preempted = true;
            abort();
        },
    };
    const aborted = (): CompletionResult => ({
        text: '',
        tokens,
        finishReason: 'abort',
        seed,
        sequence: -1,
        timings: { promptTokens: 0, reusedTokens: 0, promptMs: 0, generatedTokens: 0, generationMs: 0, contextShifts: 0 },
    });

    const run = async (): Promise<CompletionResult> => {
        if (signal?.aborted || cancelled) {
            place.cancel();
            done = true;
            return aborted();
        }
        signal?.addEventListener('abort', abort, { once: true });
        let slot: Slot;
        try {
            try {
                slot = await place.acquire(waitAbort.signal);
            } catch (error) {
                if ((error as { code?: string }).code === 'ABORTED' && (cancelled || signal?.aborted)) return aborted();
                throw error;
            }
            let cached: Int32Array | null = null;
            let raw: NativeRequestResult;
            try {
                if (cancelled || signal?.aborted) {
                    cached = slot.cached;
                    return { ...aborted(), sequence: slot.id };
                }
                handle = place.native().submit({ ...request, kind: 'generate', sequence: slot.id }, (ids, pieces) => {
                    for (let i = 0; i < ids.length; i++) {
                        tokens.push(ids[i]);
                        pending.push({ token: ids[i], text: stream.push(pieces[i]) });
                    }
                    notify();
                    place.onTokens?.();
                });
                raw = await handle.promise;
                cached = raw.cached;
            } catch (error) {
                cached = tokensOnFailure(error);
                throw error;
            } finally {
                place.release(slot, cached);
            }
            // Stopped because the context (or its model) was disposed, not by the caller.
            if (raw.finishReason === 'abort' && place.disposed() && !signal?.aborted && !cancelled) {
                throw new LlamaDisposedError('context');
            }
            const finishReason: FinishReason = raw.finishReason === 'abort' && preempted && !signal?.aborted ? 'preempted' : raw.finishReason;
            const tail = stream.finish(raw.stopOffset);
            if (tail) {
                const last = pending.at(-1);
                if (last) last.text += tail;
                else pending.push({ token: tokens.at(-1) ?? -1, text: tail });
            }
            return {
                text: stream.fullText(raw.stopOffset),
                tokens,
                finishReason,
                seed,
                sequence: slot.id,
                timings: {
                    promptTokens: raw.promptTokens,
                    reusedTokens: raw.reusedTokens,
                    promptMs: raw.promptMs,
                    generatedTokens: raw.generatedTokens,
                    generationMs: raw.generationMs,
                    contextShifts: raw.shifts,
                },
            };
        } catch (error) {
            throw fromNative(error, stack);
        } finally {
            signal?.removeEventListener('abort', abort);
            done = true;
            notify();
        }
    };
    const result = run();
    result.catch(() => undefined); // observed by next()/result; never an unhandled rejection

    /**
     * The next token event, or null at the end. The last queued event is held back
     * while the stream holds bytes (a possible stop string or a partial character),
     * so that the final text can still be appended to it.
     */
    const next = async (): Promise<GeneratedToken | null> => {
        for (;;) {
            if (pending.length > 1 || (pending.length === 1 && (done || stream.pendingBytes === 0))) {
                read++;
                if (read - reported >= UNREAD_LIMIT / 4) report();
                return pending.shift()!;
            }
            if (done) {
                await result;
                return pending.shift() ?? null;
            }
            report(); // about to wait: the engine must know everything was read
            await new Promise<void>((resolve) => (wake = resolve));
        }
    };
    return { next, result, abort, stream: running };
}
