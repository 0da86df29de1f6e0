/**
 * LlamaSequence: one sequence of a context held by its user (ctx.acquireSequence()). Its
 * calls run one after another, in call order, on that sequence only; other sequences of the
 * context run at the same time.
 */
import { LlamaDisposedError, LlamaError } from '../errors.js';
import type { GenerateOptions } from '../options/generate-options.js';
import type { CompletionResult, GeneratedToken, RunPlace } from './generation.js';
import type { ScoreOptionsOf, ScoreReference, TokenScores } from './scores.js';
import type { Slot } from './sequence-pool.js';

/** What a {@link LlamaSequence} runs its calls with (implemented by its context). @internal */
export interface SequenceHost {
    /** The context (typed loosely: context.ts imports this file). */
    context(): object;
    generate(place: RunPlace, prompt: string | ArrayLike<number>, options: GenerateOptions): AsyncGenerator<GeneratedToken, CompletionResult, undefined>;
    complete(place: RunPlace, prompt: string | ArrayLike<number>, options: GenerateOptions): Promise<CompletionResult>;
    evaluate(place: RunPlace, tokens: ArrayLike<number>, options: { signal?: AbortSignal }): Promise<Float32Array>;
    scoreTokens(place: RunPlace, tokens: ArrayLike<number>, options: ScoreOptionsOf<ScoreReference>): Promise<TokenScores>;
    /** A place on `slot` whose acquire() waits for `before` first. */
    place(slot: Slot, before: Promise<void>, done: () => void, isReleased: () => boolean): RunPlace;
    /** A new owned sequence holding a copy of `slot`'s cache. */
    fork(slot: Slot, place: RunPlace, options: { signal?: AbortSignal }): Promise<LlamaSequence>;
    clear(slot: Slot): void | Promise<void>;
    /** Saves the sequence's state in its turn: a Buffer, or the bytes written to `path`. */
    saveState(place: RunPlace, path: string | undefined, options: { signal?: AbortSignal }): Promise<Buffer | number>;
    /** Loads a state (a Buffer, or a file's path) into the sequence in its turn. */
    loadState(place: RunPlace, source: Buffer | string, options: { signal?: AbortSignal }): Promise<void>;
    disown(slot: Slot): void;
    disposed(): boolean;
}

/** A sequence's own queue: each call's place resolves the next one's turn when it ends. */
class Turns {
    #tail: Promise<void> = Promise.resolve();

    /** The previous call's end, and the function that ends this call's turn (idempotent). */
    next(): [before: Promise<void>, done: () => void] {
        const before = this.#tail;
        let resolve!: () => void;
        this.#tail = new Promise<void>((r) => (resolve = r));
        let ended = false;
        return [before, () => {
            if (!ended) {
                ended = true;
                resolve();
            }
        }];
    }

    get idle(): Promise<void> {
        return this.#tail;
    }
}

/**
 * A sequence of a {@link LlamaContext} that its holder controls: requests on it reuse its
 * cache, `fork()` copies that cache to another sequence (one evaluated system prompt shared by
 * many requests), `release()` gives it back to the context's pool.
 *
 * @example
 * using seq = await ctx.acquireSequence();
 * await seq.evaluate(model.tokenize(systemPrompt));
 * const [a, b] = [await seq.fork(), await seq.fork()];
 * const answers = await Promise.all([a.complete(questionA), b.complete(questionB)]);
 */
export class LlamaSequence {
    readonly #host: SequenceHost;
    readonly #slot: Slot;
    readonly #turns = new Turns();
    #released = false;

    /** @internal */
    constructor(host: SequenceHost, slot: Slot) {
        this.#host = host;
        this.#slot = slot;
    }

    /** The context this sequence belongs to (a LlamaContext). @internal */
    get host(): object {
        return this.#host.context();
    }

    /** The sequence id in the context (llama.cpp's seq_id). */
    get id(): number {
        return this.#slot.id;
    }

    /** The tokens its KV cache holds (as of the end of its last request; a running request adds to them). */
    get tokens(): Int32Array {
        return this.#slot.cached.slice();
    }

    /** Whether {@link release} was called (or the context disposed). */
    get released(): boolean {
        return this.#released || this.#host.disposed();
    }

    /** Streams a generation on this sequence: see {@link LlamaContext.generate}. */
    generate(prompt: string | ArrayLike<number>, options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, CompletionResult, undefined> {
        return this.#host.generate(this.#place(), prompt, options);
    }

    /** Generates to the end on this sequence: see {@link LlamaContext.complete}. */
    complete(prompt: string | ArrayLike<number>, options: GenerateOptions = {}): Promise<CompletionResult> {
        return this.#host.complete(this.#place(), prompt, options);
    }

    /** Decodes `tokens` on this sequence (reusing its cached prefix): see {@link LlamaContext.evaluate}. */
    evaluate(tokens: ArrayLike<number>, options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
        return this.#host.evaluate(this.#place(), tokens, options);
    }

    /** Scores `tokens` on this sequence: see {@link LlamaContext.scoreTokens}. */
    scoreTokens(tokens: ArrayLike<number>, options: ScoreOptionsOf<ScoreReference> = {}): Promise<TokenScores> {
        return this.#host.scoreTokens(this.#place(), tokens, options);
    }

    /**
     * Another sequence that starts with this one's cache (llama_memory_seq_cp), after this
     * sequence's calls queued so far: a request on it reuses every cached token. Waits for a free
     * sequence of the context; `signal` aborts the wait.
     */
    fork(options: { signal?: AbortSignal } = {}): Promise<LlamaSequence> {
        return this.#host.fork(this.#slot, this.#place(), options);
    }

    /**
     * Its KV cache and tokens as a self-describing state (docs/api.md, "State files"), after its
     * calls queued so far. A state of n tokens takes about n times the KV bytes per cell
     * ({@link estimateMemory}'s `state`), so a q4_0 cache saves about a quarter of an f16 one.
     *
     * @example
     * const saved = await seq.saveState();
     * // ... later, on a context with the same model, K/V types and adapters:
     * await other.loadState(saved);
     */
    async saveState(options: { signal?: AbortSignal } = {}): Promise<Buffer> {
        return (await this.#host.saveState(this.#place(), undefined, options)) as Buffer;
    }

    /**
     * Replaces this sequence's cache with a state of {@link saveState} (or of
     * {@link saveStateFile}'s file read into a Buffer), after its calls queued so far. Every header
     * field is checked first: another model, K or V type, flash attention setting or LoRA set
     * rejects with STATE_MISMATCH naming the field and both values, and the sequence stays as
     * it was; damaged bytes reject with INVALID_STATE_FILE. A state of more tokens than the
     * sequence has cells rejects with STATE_MISMATCH and the numbers.
     */
    loadState(state: Buffer, options: { signal?: AbortSignal } = {}): Promise<void> {
        return this.#host.loadState(this.#place(), state, options);
    }

    /** {@link saveState} to a file, written under a temporary name and renamed when complete; resolves with its size. */
    async saveStateFile(path: string, options: { signal?: AbortSignal } = {}): Promise<number> {
        return (await this.#host.saveState(this.#place(), path, options)) as number;
    }

    /** {@link loadState} from a file of {@link saveStateFile}, read off the JS thread. */
    loadStateFile(path: string, options: { signal?: AbortSignal } = {}): Promise<void> {
        return this.#host.loadState(this.#place(), path, options);
    }

    /** Empties this sequence's cache, after its calls queued so far. */
    async clear(): Promise<void> {
        const place = this.#place();
        const slot = await place.acquire(undefined);
        try {
            await this.#host.clear(slot);
        } finally {
            place.release(slot, new Int32Array(0));
        }
    }

    /**
     * Gives the sequence back to the context once its queued calls have ended; later calls on it
     * reject with DISPOSED. Its cache stays, so a request that shares its prefix may reuse it. Idempotent.
     */
    release(): void {
        if (this.#released) return;
        this.#released = true;
        void this.#turns.idle.then(() => {
            if (!this.#host.disposed()) this.#host.disown(this.#slot);
        });
    }

    [Symbol.dispose](): void {
        this.release();
    }

    #place(): RunPlace {
        if (this.released) {
            const error = this.#host.disposed() ? new LlamaDisposedError('context') : new LlamaError('DISPOSED', `sequence ${this.id} was released`);
            return {
                acquire: () => Promise.reject(error),
                release: () => undefined,
                native: () => {
                    throw error;
                },
                disposed: () => true,
                cancel: () => undefined,
            };
        }
        const [before, done] = this.#turns.next();
        return this.#host.place(this.#slot, before, done, () => this.released);
    }
}
