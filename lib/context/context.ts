import { binding, type NativeContext, type NativeGenerateResult } from '../native/binding.js';
import { captureStack, fromNative, LlamaAbortError, LlamaConfigError, LlamaDisposedError } from '../errors.js';
import { log } from '../logger.js';
import { warning, type LlamaWarning } from '../warnings.js';
import { resolveContextParams } from '../options/context-params.js';
import { flashAttentionBackendWarning, type KvCacheType } from '../options/kv-cache.js';
import { toMemoryReport, type MemoryReport } from '../memory/report.js';
import { adoptChild, modelGpuLayers, modelPlacement, modelWeightPlacement, nativeModel, toTokenArray, LlamaModel } from '../model/model.js';
import { estimateResolved, KV_ONLY_LOAD } from '../memory/estimate.js';
import { checkContextMemory } from '../memory/guard.js';
import { defaults, randomSeed, requestSeed } from '../options/defaults.js';
import { generateOptionsSchema, signalOptionsSchema, type GenerateOptions } from '../options/generate-options.js';
import { describe, parseArgument, parseOptions } from '../options/validate.js';
import { contextOptionsSchema, loraListSchema, type ContextOptionsWithoutModel, type LlamaContextOptions, type LoraUse } from './options.js';
import { TextStream } from './text-stream.js';
import { IterableWeakSet } from '../weak-set.js';

export type { ContextOptionsWithoutModel, LlamaContextOptions, LoraUse };

/** What is really in force, read back from llama.cpp. */
export interface ContextConfig {
    /** Context size after llama.cpp's padding (all sequences together). */
    contextSize: number;
    /** Element type of the K cache, or null for a model without a KV cache (recurrent). */
    cacheTypeK: KvCacheType | null;
    /** Element type of the V cache, or null for a model without a KV cache. */
    cacheTypeV: KvCacheType | null;
    /** Flash attention as resolved by llama.cpp ('auto' has become 'on' or 'off'). */
    flashAttention: 'on' | 'off';
    /** Sequences the context holds (n_seq_max). */
    parallel: number;
    kvUnified: boolean;
    batchSize: number;
    ubatchSize: number;
    threads: number;
    threadsBatch: number;
    /** The context's `seed` option: its requests use seed + request index (see {@link GenerateOptions.seed}); `null`: a fresh random seed per request. */
    seed: number | null;
    /** What is allowed but probably not meant (contextSize above the trained context, a batch cut by a tiny contextSize, ...), also logged at 'warn'. */
    warnings: readonly LlamaWarning[];
}

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
    /** 'eos': the model ended; 'stop': a stop string matched; 'length': maxTokens were generated; 'contextFull': the context (its sequence's share) has no room for another token; 'abort': aborted; 'preempted': a generate() stream whose reader had stopped reading ({@link UNREAD_LIMIT} tokens unread) was ended because another call was waiting for the context. */
    finishReason: FinishReason;
    /** The sampling seed this request used: pass it as `seed` to reproduce the answer (same model, prompt, options and context state). */
    seed: number;
    timings: {
        /** Tokens in the prompt. */
        promptTokens: number;
        /** Prompt tokens reused from the cache of the previous call (not decoded again). */
        reusedTokens: number;
        promptMs: number;
        generatedTokens: number;
        generationMs: number;
    };
}

/**
 * Backpressure of generate(): after this many generated tokens that the reader has not taken,
 * the generation pauses until it reads on; a paused stream that another call on the context is
 * waiting behind is ended with finishReason 'preempted', so it never holds the context.
 */
export const UNREAD_LIMIT = 64;

/** Stops the generation of a generate() stream that was dropped, unfinished, without return(). */
const dropped = new FinalizationRegistry<{ abort?: () => void }>((run) => run.abort?.());

type Prompt = string | ArrayLike<number>;

/**
 * Per-position scores of a token sequence from {@link LlamaContext.scoreTokens}: entry i
 * is about position i predicting `tokens[i + 1]`, so each array has `tokens.length - 1`
 * entries.
 */
export interface TokenScores {
    /** ln p(tokens[i + 1] | tokens[0..i]) under this context, in nats. */
    logProbs: Float64Array;
    /** The most likely next token at each position (argmax of the logits; the lowest id on a tie). */
    topTokens: Int32Array;
    /** With a reference context: its log-probabilities and top tokens, and the divergence from it. */
    reference?: {
        logProbs: Float64Array;
        topTokens: Int32Array;
        /** KL(reference ‖ this) of the next-token distributions, in nats (0 when they are identical). */
        kl: Float64Array;
    };
}

/** Options of {@link LlamaContext.scoreTokens}. */
export interface ScoreOptions {
    /**
     * Another context to compare with, e.g. the same model with an f16 cache: it decodes
     * the same tokens in step, and each position gets the KL divergence of this
     * context's next-token distribution from the reference's. Its model may differ
     * (e.g. f16 weights against a quantized file) but must have the same vocabulary size.
     */
    reference?: LlamaContext;
    /** Aborts the scoring: the promise rejects with a {@link LlamaAbortError} (code `ABORTED`). */
    signal?: AbortSignal;
}

let nextContextId = 0;


/**
 * A llama.cpp context (KV cache, compute buffers, a persistent threadpool) on a
 * model. Calls on one context run one at a time, in call order.
 *
 * @example
 * const ctx = new LlamaContext({ model, contextSize: 2048 });
 * const { text } = await ctx.complete('Once upon a time', { maxTokens: 32, temperature: 0 });
 */
export class LlamaContext {
    #native: NativeContext | null;
    readonly #model: LlamaModel;
    readonly #seed: number | null;
    /** generate()/complete() calls so far: the index of the next request. */
    #requests = 0;
    readonly #untrackForExit: () => void;
    /** llama_n_ctx_seq: one sequence's share of the context (repeatLastN may not exceed it). */
    readonly #contextPerSequence: number;
    readonly #warnings: readonly LlamaWarning[];
    readonly #release: () => void;
    #queue: Promise<unknown> = Promise.resolve();
    /** Calls queued that have not started. */
    #waiting = 0;
    /** The generation running now, for preemption when its reader has stopped reading. */
    #running: { stalled(): boolean; preempt(): void } | null = null;
    #loras: readonly Readonly<LoraUse>[] = Object.freeze([]);
    /** Creation order: two contexts' queues are always entered in this order (see scoreTokens). */
    readonly #id = nextContextId++;

    constructor(options: LlamaContextOptions) {
        const opts = parseOptions(contextOptionsSchema, options, 'LlamaContext');
        const model = opts.model as LlamaModel;
        const native = nativeModel(model);
        const resolved = resolveContextParams(opts, model.metadata);
        const { kv, native: params } = resolved;
        if (opts.checkMemory ?? defaults.context.checkMemory) checkContextFits(model, resolved);
        const warnings = [...resolved.warnings];
        const fa = flashAttentionBackendWarning(kv, binding().backendInfo(false), params.offloadKqv && modelGpuLayers(model) !== 0);
        if (fa) warnings.push(warning('FLASH_ATTENTION_KV_PAIR', fa, ['cacheTypeK', 'cacheTypeV', 'flashAttention']));
        let created: NativeContext | undefined;
        try {
            created = new (binding().NativeContext)(native, params);
            if (opts.loras && opts.loras.length > 0) {
                created.setLoras(opts.loras.map(({ lora, scale }) => ({ lora: lora.requireNative(), scale })));
            }
        } catch (error) {
            created?.dispose();
            throw fromNative(error, captureStack());
        }
        this.#native = created;
        this.#untrackForExit = trackForExit(created);
        this.#contextPerSequence = created.config().contextSizePerSequence;
        this.#warnings = Object.freeze(warnings);
        for (const w of warnings) log('warn', w.message);
        this.#loras = Object.freeze((opts.loras ?? []).map(({ lora, scale }) => Object.freeze({ lora, scale })));
        this.#model = model;
        this.#seed = opts.seed ?? null;
        this.#release = adoptChild(model, this);
    }

    /** The model this context runs. */
    get model(): LlamaModel {
        return this.#model;
    }

    /** Whether {@link dispose} was called. */
    get disposed(): boolean {
        return this.#native === null;
    }

    /** The configuration in force, read back from llama.cpp. */
    get config(): ContextConfig {
        const c = this.#requireNative().config();
        return {
            contextSize: c.contextSize,
            cacheTypeK: c.cacheTypeK as KvCacheType | null,
            cacheTypeV: c.cacheTypeV as KvCacheType | null,
            flashAttention: c.flashAttention ? 'on' : 'off',
            parallel: c.sequences,
            kvUnified: c.kvUnified,
            batchSize: c.batchSize,
            ubatchSize: c.ubatchSize,
            threads: c.threads,
            threadsBatch: c.threadsBatch,
            seed: this.#seed,
            warnings: this.#warnings,
        };
    }

    /**
     * What this context has allocated, read from llama.cpp's buffers and KV cache
     * tensors: KV cache (K and V), weights, compute buffers and output buffer, in total
     * and per device. Throws BUSY while an operation runs on the context.
     */
    memoryReport(): MemoryReport {
        try {
            const native = this.#requireNative().memoryReport();
            return toMemoryReport(native, { placement: modelWeightPlacement(this.#model), gguf: modelPlacement(this.#model).header });
        } catch (error) {
            throw fromNative(error, captureStack());
        }
    }

    /**
     * Decodes `tokens` (reusing the longest prefix already in the cache) and returns
     * the logits of the last position, one float per vocabulary entry. `signal` stops the
     * decode between two batches: the promise then rejects with ABORTED.
     */
    evaluate(tokens: ArrayLike<number>, options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
        const stack = captureStack();
        let ids: Int32Array;
        let signal: AbortSignal | undefined;
        try {
            ids = this.#tokenIds(tokens);
            signal = parseOptions(signalOptionsSchema, options, 'evaluate()').signal;
        } catch (error) {
            return Promise.reject(error);
        }
        return this.#enqueue(async () => {
            if (signal?.aborted) throw new LlamaAbortError('evaluate() was aborted before it started');
            const native = this.#requireNative();
            const abort = () => native.abort();
            signal?.addEventListener('abort', abort, { once: true });
            try {
                return await native.evaluate(ids);
            } catch (error) {
                const e = fromNative(error, stack);
                if (e.code === 'ABORTED' && signal?.aborted) throw new LlamaAbortError(undefined, { cause: e });
                // Aborted because the context (or its model) was disposed meanwhile.
                if (e.code === 'ABORTED' && this.#native === null) throw new LlamaDisposedError('context');
                throw e;
            } finally {
                signal?.removeEventListener('abort', abort);
            }
        });
    }

    /**
     * Scores a token sequence position by position: the log-probability of each next token
     * (for perplexity), the most likely token, and with `reference`, the KL divergence
     * from the reference context's distribution. The sequence is decoded from an empty
     * cache with logits at every position (in chunks of at most `batchSize` positions,
     * fewer for large vocabularies) and is in the cache afterwards. With a reference,
     * both contexts are held for the call: it runs after the operations queued on either.
     *
     * @example
     * const scores = await ctx.scoreTokens(model.tokenize(text), { reference: f16Ctx });
     * const meanKl = scores.reference!.kl.reduce((a, b) => a + b, 0) / scores.reference!.kl.length;
     */
    scoreTokens(tokens: ArrayLike<number>, options: ScoreOptions = {}): Promise<TokenScores> {
        const stack = captureStack();
        let ids: Int32Array;
        try {
            ids = this.#tokenIds(tokens);
        } catch (error) {
            return Promise.reject(error);
        }
        const reference = options.reference;
        if (reference !== undefined && !(reference instanceof LlamaContext)) {
            return Promise.reject(new LlamaConfigError('scoreTokens(): expected a LlamaContext for options.reference', 'INVALID_ARGUMENT', ['reference']));
        }
        const signal = options.signal;
        if (signal !== undefined && !(signal instanceof AbortSignal)) {
            return Promise.reject(new LlamaConfigError('scoreTokens(): expected an AbortSignal for options.signal', 'INVALID_ARGUMENT', ['signal']));
        }
        const task = async () => {
            if (signal?.aborted) throw new LlamaAbortError();
            const native = this.#requireNative();
            const other = reference === undefined ? undefined : reference.#requireNative();
            const abort = () => {
                native.abort();
                other?.abort();
            };
            signal?.addEventListener('abort', abort, { once: true });
            try {
                return await native.score(ids, other);
            } catch (error) {
                const e = fromNative(error, stack);
                if (e.code === 'ABORTED' && signal?.aborted) throw new LlamaAbortError(undefined, { cause: e });
                if (e.code === 'ABORTED' && (this.#native === null || (reference !== undefined && reference.#native === null))) {
                    throw new LlamaDisposedError(this.#native === null ? 'context' : 'reference context');
                }
                throw e;
            } finally {
                signal?.removeEventListener('abort', abort);
            }
        };
        if (reference === undefined || reference === this) return this.#enqueue(task);
        // Entered in creation order, so that two scores with their contexts swapped cannot wait on each other.
        const [first, second] = this.#id < reference.#id ? [this, reference] : [reference, this];
        return first.#enqueue(() => second.#enqueue(task));
    }

    /**
     * Streams generated tokens. The token loop runs in native code; tokens reach JS
     * in batches. Breaking out of the loop stops generation.
     *
     * @example
     * for await (const { text } of ctx.generate('Hello', { maxTokens: 16 })) process.stdout.write(text);
     */
    generate(prompt: Prompt, options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, CompletionResult, undefined> {
        const handle: { abort?: () => void } = {};
        const stream = this.#stream(prompt, options, handle);
        // Dropped without return(): the GC ends its generation (the handle does not reference the stream).
        dropped.register(stream, handle);
        return stream;
    }

    async *#stream(prompt: Prompt, options: GenerateOptions, handle: { abort?: () => void }): AsyncGenerator<GeneratedToken, CompletionResult, undefined> {
        const run = this.#start(prompt, options);
        handle.abort = run.abort;
        let finished = false;
        try {
            for (;;) {
                const event = await run.next();
                if (event === null) break;
                yield event;
            }
            const result = await run.result;
            finished = true;
            return result;
        } finally {
            handle.abort = undefined;
            if (!finished) {
                run.abort();
                await run.result.catch(() => undefined);
            }
        }
    }

    /** Generates to the end and returns the text, the tokens, why it ended and timings. */
    async complete(prompt: Prompt, options: GenerateOptions = {}): Promise<CompletionResult> {
        const run = this.#start(prompt, options);
        while ((await run.next()) !== null) {
            // drain: complete() only needs the result
        }
        return run.result;
    }

    /** The LoRA adapters active on this context, with their scales. */
    get loras(): readonly Readonly<LoraUse>[] {
        return this.#loras;
    }

    /**
     * Makes `adapters` the active LoRA set for the following decodes, without recreating
     * the context: `[]` returns to the base model. Runs after the operations already
     * queued on the context. The KV cache is cleared when the set changes (it was computed
     * with the previous adapters). An adapter loaded for another model, a disposed one or
     * one listed twice is rejected.
     *
     * @example
     * await ctx.setLoras([{ lora: styleA, scale: 1 }]);  // swap per request
     * await ctx.setLoras([]);                           // back to the base model
     */
    setLoras(adapters: readonly LoraUse[], options: { signal?: AbortSignal } = {}): Promise<void> {
        const stack = captureStack();
        let list: LoraUse[];
        let signal: AbortSignal | undefined;
        try {
            list = parseArgument(loraListSchema, adapters, 'adapters');
            signal = parseOptions(signalOptionsSchema, options, 'setLoras()').signal;
        } catch (error) {
            return Promise.reject(error);
        }
        return this.#enqueue(async () => {
            // It waits for the calls queued before it; once it runs it is one quick native call.
            if (signal?.aborted) throw new LlamaAbortError('setLoras() was aborted before it ran');
            try {
                this.#applyLoras(list);
            } catch (error) {
                throw fromNative(error, stack);
            }
        });
    }

    #applyLoras(list: readonly LoraUse[]): void {
        this.#requireNative().setLoras(list.map(({ lora, scale }) => ({ lora: lora.requireNative(), scale })));
        this.#loras = Object.freeze(list.map(({ lora, scale }) => Object.freeze({ lora, scale })));
    }

    /** Frees the context (KV cache, buffers, threadpool). Work in flight is aborted first. Idempotent. */
    dispose(): void {
        if (this.#native === null) return;
        const native = this.#native;
        this.#native = null;
        this.#release();
        this.#untrackForExit();
        native.dispose();
    }

    [Symbol.dispose](): void {
        this.dispose();
    }

    async [Symbol.asyncDispose](): Promise<void> {
        this.dispose();
        await this.#queue.catch(() => undefined);
    }

    /** Token ids as an Int32Array, each in the model's vocabulary (INVALID_ARGUMENT otherwise, as llama.cpp would be asked to read past its tables). */
    #tokenIds(tokens: ArrayLike<number>): Int32Array {
        const ids = toTokenArray(tokens);
        const n = this.#model.metadata.vocabSize;
        for (let i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= n) {
                throw new LlamaConfigError(`token id ${ids[i]} at index ${i} is outside the vocabulary [0, ${n})`, 'INVALID_ARGUMENT', ['tokens']);
            }
        }
        return ids;
    }

    #requireNative(): NativeContext {
        if (this.#native === null) throw new LlamaDisposedError('context');
        return this.#native;
    }

    /** Runs `task` after every earlier call on this context has settled. */
    #enqueue<T>(task: () => Promise<T>): Promise<T> {
        this.#waiting++;
        const start = () => {
            this.#waiting--;
            return task();
        };
        const next = this.#queue.then(start, start);
        this.#queue = next.catch(() => undefined);
        this.#preemptStalled();
        return next;
    }

    /** A generation whose reader stopped reading does not hold the context while a call waits. */
    #preemptStalled(): void {
        if (this.#waiting > 0 && this.#running?.stalled()) this.#running.preempt();
    }

    #start(prompt: Prompt, options: GenerateOptions) {
        const stack = captureStack();
        const opts = parseOptions(generateOptionsSchema, options, 'generate()');
        const index = this.#requests++;
        const promptInput = typeof prompt === 'string' ? prompt : this.#tokenIds(prompt);
        const stops = opts.stop === undefined ? [] : typeof opts.stop === 'string' ? [opts.stop] : opts.stop;
        const request = {
            prompt: promptInput,
            addSpecial: opts.addSpecial ?? defaults.generate.addSpecial,
            parseSpecial: opts.parseSpecial ?? defaults.generate.parseSpecial,
            maxTokens: opts.maxTokens ?? defaults.generate.maxTokens,
            temperature: opts.temperature ?? defaults.generate.temperature,
            topK: opts.topK ?? defaults.generate.topK,
            topP: opts.topP ?? defaults.generate.topP,
            minP: opts.minP ?? defaults.generate.minP,
            repeatPenalty: opts.repeatPenalty ?? defaults.generate.repeatPenalty,
            repeatLastN: opts.repeatLastN ?? defaults.generate.repeatLastN,
            seed: opts.seed ?? (this.#seed === null ? randomSeed() : requestSeed(this.#seed, index)),
            stop: stops,
            unreadLimit: UNREAD_LIMIT,
        };
        // llama.cpp's penalty sampler keeps a ring of repeatLastN tokens of one sequence's context.
        const perSequence = this.#contextPerSequence;
        if (request.repeatLastN > perSequence) {
            throw new LlamaConfigError(
                `Expected an integer up to ${perSequence} (the context of one sequence) for repeatLastN but received ${describe(request.repeatLastN)}`,
                'INVALID_CONFIG',
                ['repeatLastN'],
            );
        }
        const signal = opts.signal;
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
        let native: NativeContext | null = null;
        let cancelled = false;
        let preempted = false;
        const abort = () => {
            cancelled = true;
            native?.abort();
        };
        // Backpressure: tokens the reader has taken, and the count last told to the native loop.
        let read = 0;
        let reported = 0;
        const report = () => {
            if (done || read === reported) return;
            reported = read;
            native?.tokensRead(read);
        };
        const running = {
            // As the native loop counts: it waits once UNREAD_LIMIT tokens are delivered beyond the last report.
            stalled: () => !done && tokens.length - reported >= UNREAD_LIMIT,
            preempt: () => {
                preempted = true;
                abort();
            },
        };

        const result = this.#enqueue(async (): Promise<CompletionResult> => {
            try {
                native = this.#requireNative();
                this.#running = running;
                let raw: NativeGenerateResult;
                if (signal?.aborted || cancelled) {
                    raw = { finishReason: 'abort', promptTokens: 0, reusedTokens: 0, promptMs: 0, generatedTokens: 0, generationMs: 0, stopOffset: null };
                } else {
                    signal?.addEventListener('abort', abort, { once: true });
                    try {
                        raw = await native.generate(request, (ids, pieces) => {
                            for (let i = 0; i < ids.length; i++) {
                                tokens.push(ids[i]);
                                pending.push({ token: ids[i], text: stream.push(pieces[i]) });
                            }
                            notify();
                            this.#preemptStalled();
                        });
                    } finally {
                        signal?.removeEventListener('abort', abort);
                    }
                }
                // Stopped because the context (or its model) was disposed, not by the caller.
                if (raw.finishReason === 'abort' && this.#native === null && !signal?.aborted && !cancelled) {
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
                    seed: request.seed,
                    timings: {
                        promptTokens: raw.promptTokens,
                        reusedTokens: raw.reusedTokens,
                        promptMs: raw.promptMs,
                        generatedTokens: raw.generatedTokens,
                        generationMs: raw.generationMs,
                    },
                };
            } catch (error) {
                throw fromNative(error, stack);
            } finally {
                if (this.#running === running) this.#running = null;
                done = true;
                notify();
            }
        });
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
                report(); // about to wait: the native loop must know everything was read
                await new Promise<void>((resolve) => (wake = resolve));
            }
        };
        return { next, result, abort };
    }
}

declare module '../model/model.js' {
    interface LlamaModel {
        /** Sugar for `new LlamaContext({ model: this, ...options })`. */
        createContext(options?: ContextOptionsWithoutModel): LlamaContext;
    }
}

// model/ sits below context/ and never imports it: the method that makes a context
// for a model is added where contexts are defined (non-enumerable, like a class method).
Object.defineProperty(LlamaModel.prototype, 'createContext', {
    value: function createContext(this: LlamaModel, options: ContextOptionsWithoutModel = {}): LlamaContext {
        return new LlamaContext({ ...options, model: this });
    },
    writable: true,
    configurable: true,
});

/**
 * INSUFFICIENT_MEMORY before llama.cpp allocates, when the header-level estimate of
 * this context exceeds the memory there is. Skipped where that estimate is not exact
 * for the KV cache (sliding-window, MLA, recurrent models), so it never refuses a
 * context on a guess.
 */
function checkContextFits(model: LlamaModel, resolved: ReturnType<typeof resolveContextParams>): void {
    const placement = modelPlacement(model);
    const facts = placement.facts;
    // A header the estimator does not understand (llama.cpp loaded it: let it decide), or a KV layout it only approximates.
    if (facts === null || !facts.denseKv) return;
    checkContextMemory(estimateResolved(placement.header, facts, resolved, KV_ONLY_LOAD), {
        layerCount: facts.layerCount,
        gpuLayers: placement.gpuLayers,
        devices: placement.devices,
        offloadKqv: resolved.native.offloadKqv,
    });
}

/**
 * Contexts not yet disposed. On process.exit() Node joins its threadpool, which waits for
 * every native decode in flight, and runs no cleanup hook that would abort them first: a
 * generation would hold the exit until it ended. The 'exit' handler aborts them instead.
 * Held weakly: a context that nobody references (and no native work holds) is the GC's to
 * free, with its model (the native objects hold their model, so the order is always right).
 */
const liveContexts = new IterableWeakSet<NativeContext>();
let exitHook = false;

/** Tracks a context for the exit handler; returns the function that stops tracking it. */
function trackForExit(native: NativeContext): () => void {
    if (!exitHook) {
        exitHook = true;
        process.once('exit', () => {
            for (const c of liveContexts) c.abort();
        });
    }
    return liveContexts.add(native);
}
