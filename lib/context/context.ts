import { basename } from 'node:path';
import { binding, type NativeContext, type NativeRequestResult } from '../native/binding.js';
import { captureStack, fromNative, LlamaAbortError, LlamaConfigError, LlamaDisposedError, LlamaError } from '../errors.js';
import { log } from '../logger.js';
import { warning, type LlamaWarning } from '../warnings.js';
import { resolveContextParams } from '../options/context-params.js';
import type { ContextFullPolicy } from '../options/context-options.js';
import { flashAttentionDeviceWarning, type KvCacheType } from '../options/kv-cache.js';
import { deviceFlashAttention } from './flash-attention-devices.js';
import { toMemoryReport, type MemoryReport } from '../memory/report.js';
import { stateSizeOf } from '../memory/state-size.js';
import { adoptChild, modelGpuLayers, modelPlacement, modelWeightPlacement, nativeModel, toTokenArray, LlamaModel } from '../model/model.js';
import type { ModelPlacement } from '../model/placement.js';
import { estimateResolved, KV_ONLY_LOAD } from '../memory/estimate.js';
import { checkContextMemory, devicesFree, type DeviceFree } from '../memory/guard.js';
import { defaults, randomSeed, requestSeed } from '../options/defaults.js';
import { generateOptionsSchema, signalOptionsSchema, type GenerateOptions } from '../options/generate-options.js';
import { chatRequestExtras } from '../options/grammar-options.js';
import { compileGrammar } from '../model/grammar.js';
import type { NativeGrammar } from '../native/binding.js';

/** @internal */
interface ChatRequestExtras {
    grammar?: NativeGrammar;
    renderSpecial?: number[];
}
import { describe, parseArgument, parseOptions } from '../options/validate.js';
import { statePathSchema } from '../options/state-options.js';
import { contextOptionsSchema, loraListSchema, type ContextOptionsWithoutModel, type LlamaContextOptions, type LoraUse } from './options.js';
import { startGeneration, tokensOnFailure, UNREAD_LIMIT, type CompletionResult, type FinishReason, type GeneratedToken, type RunningStream, type RunPlace } from './generation.js';
import { pickByPrefix, pickEmptiest, SequencePool, type Slot } from './sequence-pool.js';
import { LlamaSequence, type SequenceHost } from './sequence.js';
import type { ScoreOptionsOf, TokenScores } from './scores.js';
import { IterableWeakSet } from '../weak-set.js';
import { modelIdentity } from '../model/identity.js';
import { PromptCache, type PromptCacheStats } from './prompt-cache.js';
import { checkSignalBeforeStart, prepareNativeContext } from './prepare.js';
import { llamaCppCommit, loadSequences, readCheckedHeader, saveSequences, stateWriter, type StateTarget } from './state.js';

export type { ContextOptionsWithoutModel, LlamaContextOptions, LoraUse };
export type { CompletionResult, FinishReason, GeneratedToken, TokenScores };
export { UNREAD_LIMIT, LlamaSequence };

/** What is really in force, read back from llama.cpp. */
export interface ContextConfig {
    /** Context size after llama.cpp's padding (all sequences together). */
    contextSize: number;
    /** The cells one sequence may use: contextSize / parallel, or contextSize with kvUnified. */
    contextSizePerSequence: number;
    /** Element type of the K cache, or null for a model without a KV cache (recurrent). */
    cacheTypeK: KvCacheType | null;
    /** Element type of the V cache, or null for a model without a KV cache. */
    cacheTypeV: KvCacheType | null;
    /** Flash attention as resolved by llama.cpp ('auto' has become 'on' or 'off'). */
    flashAttention: 'on' | 'off';
    /** Sequences the context holds (n_seq_max): that many requests run at once. */
    parallel: number;
    kvUnified: boolean;
    batchSize: number;
    ubatchSize: number;
    threads: number;
    threadsBatch: number;
    /** The context's `seed` option: its requests use seed + request index (see {@link GenerateOptions.seed}); `null`: a fresh random seed per request. */
    seed: number | null;
    /** The requests' default when a sequence is full. */
    onContextFull: ContextFullPolicy;
    /** Whether llama.cpp can shift this context's cache (llama_memory_can_shift): onContextFull 'shift' needs it. */
    canShift: boolean;
    /** What is allowed but probably not meant (contextSize above the trained context, a batch cut by a tiny contextSize, ...), also logged at 'warn'. */
    warnings: readonly LlamaWarning[];
}

/** What a sequence is doing: 'prompt' (decoding a prompt, an evaluate or a score), 'generating', 'waiting' (a stream whose reader is behind), or 'idle'. */
export type SequenceState = 'idle' | 'prompt' | 'generating' | 'waiting';

/** One sequence of a context, from {@link LlamaContext.sequences}. */
export interface SequenceInfo {
    id: number;
    state: SequenceState;
    /** KV cells it holds (its cached tokens), as of the engine's last step. */
    cells: number;
    /** Held by an {@link LlamaSequence} from {@link LlamaContext.acquireSequence}. */
    acquired: boolean;
}

/** Cumulative figures of the context's batch engine since its creation. */
export interface EngineStats {
    /** llama_decode calls of the engine (each carries every active sequence's tokens). */
    steps: number;
    /** Tokens decoded in those steps. */
    tokens: number;
    /** Milliseconds inside llama_decode. */
    decodeMs: number;
    /** Milliseconds of whole steps: decode, sampling, stop strings and the hand-off to JS. */
    stepMs: number;
}

/** Options of {@link LlamaContext.scoreTokens}. */
export type ScoreOptions = ScoreOptionsOf<LlamaContext>;

/** Stops the generation of a generate() stream that was dropped, unfinished, without return(). */
const dropped = new FinalizationRegistry<{ abort?: () => void }>((run) => run.abort?.());

type Prompt = string | ArrayLike<number>;

/** A generation once started: its token events, its result, and how to end it. */
interface StartedRun {
    next(): Promise<GeneratedToken | null>;
    result: Promise<CompletionResult>;
    abort(): void;
}

let nextContextId = 0;

/** A state call's path (when it has one) and `{ signal? }`, checked. */
function parseStateCall<P extends string | undefined>(path: P, options: unknown, what: string): { path: P; signal: AbortSignal | undefined } {
    const checked = (path === undefined ? undefined : parseArgument(statePathSchema, path, 'path')) as P;
    return { path: checked, signal: parseOptions(signalOptionsSchema, options, what).signal };
}

/** Waits for `before`, or rejects with ABORTED when `signal` fires first. */
function raceAbort(before: Promise<void>, signal: AbortSignal | undefined, what: string): Promise<void> {
    if (signal === undefined) return before;
    if (signal.aborted) return Promise.reject(new LlamaAbortError(`${what} was aborted before it started`));
    return new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new LlamaAbortError(`${what} was aborted before it started`));
        signal.addEventListener('abort', onAbort, { once: true });
        before.then(() => {
            signal.removeEventListener('abort', onAbort);
            resolve();
        }, reject);
    });
}

/**
 * A llama.cpp context (KV cache, compute buffers, a persistent threadpool) on a model, with
 * `parallel` sequences. Requests run at the same time, one per sequence, batched by one native
 * engine into one llama_decode per step; more requests than sequences wait in call order.
 *
 * @example
 * const ctx = new LlamaContext({ model, contextSize: 2048 });
 * const { text } = await ctx.complete('Once upon a time', { maxTokens: 32, temperature: 0 });
 */
export class LlamaContext {
    #native: NativeContext | null;
    readonly #model: LlamaModel;
    readonly #seed: number | null;
    readonly #onContextFull: ContextFullPolicy;
    readonly #canShift: boolean;
    /** generate()/complete() calls so far: the index of the next request. */
    #requests = 0;
    readonly #untrackForExit: () => void;
    /** llama_n_ctx_seq: one sequence's share of the context (repeatLastN may not exceed it). */
    readonly #contextPerSequence: number;
    readonly #warnings: readonly LlamaWarning[];
    readonly #release: () => void;
    readonly #pool: SequencePool;
    /** What each busy sequence is doing. */
    readonly #activity = new Map<number, () => SequenceState>();
    /** Generations on sequences the pool hands out: preempted when stalled while requests wait. */
    readonly #streams = new Set<RunningStream>();
    #loras: readonly Readonly<LoraUse>[] = Object.freeze([]);
    /** Creation order: two contexts' sequences are always taken in this order (see scoreTokens). */
    readonly #id = nextContextId++;
    readonly #host: SequenceHost;
    readonly #promptCache: PromptCache | null = null;
    /** What a saved state must match here, computed once per LoRA set (#applyLoras resets it). */
    #target: StateTarget | null = null;

    constructor(options: LlamaContextOptions) {
        // A context that LlamaContext.create() made on a worker: adopted, its memory already checked.
        const prepared = adopting;
        adopting = null;
        const opts = parseOptions(contextOptionsSchema, options, 'LlamaContext');
        const model = opts.model as LlamaModel;
        const native = nativeModel(model);
        const resolved = resolveContextParams(opts, model.metadata);
        const { kv, native: params } = resolved;
        if (prepared === null && (opts.checkMemory ?? defaults.context.checkMemory)) checkContextFits(model, resolved);
        const warnings = [...resolved.warnings];
        const fa = params.offloadKqv && modelGpuLayers(model) !== 0 ? flashAttentionDeviceWarning(kv, deviceFlashAttention(model, kv, params.contextSize)) : null;
        if (fa) warnings.push(warning('FLASH_ATTENTION_KV_PAIR', fa, ['cacheTypeK', 'cacheTypeV', 'flashAttention']));
        let created: NativeContext | undefined;
        let config: ReturnType<NativeContext['config']>;
        const onContextFull = opts.onContextFull ?? defaults.context.onContextFull;
        try {
            created = new (binding().NativeContext)(native, params, prepared ?? undefined);
            config = created.config();
            if (onContextFull === 'shift' && !config.canShift) throw cannotShift('onContextFull');
            if (opts.loras && opts.loras.length > 0) {
                created.setLoras(opts.loras.map(({ lora, scale }) => ({ lora: lora.requireNative(), scale })));
            }
        } catch (error) {
            created?.dispose();
            throw fromNative(error, captureStack());
        }
        this.#native = created;
        this.#untrackForExit = trackForExit(created);
        this.#contextPerSequence = config.contextSizePerSequence;
        this.#canShift = config.canShift;
        this.#onContextFull = onContextFull;
        this.#pool = new SequencePool(config.sequences);
        this.#pool.onBlocked = () => this.#preemptStalled();
        this.#warnings = Object.freeze(warnings);
        for (const w of warnings) log('warn', w.message);
        this.#loras = Object.freeze((opts.loras ?? []).map(({ lora, scale }) => Object.freeze({ lora, scale })));
        this.#model = model;
        this.#seed = opts.seed ?? null;
        this.#release = adoptChild(model, this);
        this.#host = this.#sequenceHost();
        if (opts.promptCache !== undefined) {
            this.#promptCache = new PromptCache(opts.promptCache, {
                target: () => this.#stateTarget(),
                cells: (id) => this.#requireNative().sequenceCells()[id],
                save: (id, path) => saveSequences(this.#requireNative(), this.#stateTarget(), 'sequence', [{ id, tokens: this.#pool.slots[id].cached.length }], path, undefined),
                load: async (id, source) => {
                    const read = await readCheckedHeader(source, this.#stateTarget());
                    return (await loadSequences(this.#requireNative(), source, read, [id], undefined))[0];
                },
            });
        }
    }

    /**
     * Creates the context as `new LlamaContext(options)` does, with the same checks and errors,
     * but allocates it off the JS thread: the KV cache, the compute buffers and llama.cpp's
     * graph reservation take a worker, not the event loop (on a GPU, the driver's work; over
     * RPC, the round trips to the servers). `signal` aborts the wait: the context made
     * meanwhile is freed and the call rejects with ABORTED.
     *
     * @example
     * const ctx = await LlamaContext.create({ model, contextSize: 8192 });
     */
    static async create(options: LlamaContextOptions & { signal?: AbortSignal }): Promise<LlamaContext> {
        const { signal, ...rest } = (options ?? {}) as LlamaContextOptions & { signal?: AbortSignal };
        checkSignalBeforeStart(signal, 'LlamaContext.create()', 'LlamaContext.create()');
        const opts = parseOptions(contextOptionsSchema, rest, 'LlamaContext');
        const model = opts.model as LlamaModel;
        const resolved = resolveContextParams(opts, model.metadata);
        if (opts.checkMemory ?? defaults.context.checkMemory) checkContextFits(model, resolved);
        // Not adopted (aborted, or the constructor throws): the handle's finalizer frees the context.
        const handle = await prepareNativeContext(model, resolved.native, signal, 'LlamaContext.create()');
        adopting = handle;
        try {
            return new LlamaContext(rest);
        } finally {
            adopting = null;
        }
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
            contextSizePerSequence: c.contextSizePerSequence,
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
            onContextFull: this.#onContextFull,
            canShift: c.canShift,
            warnings: this.#warnings,
        };
    }

    /** Every sequence of the context: what it does, the cells it holds, whether it is acquired. */
    get sequences(): SequenceInfo[] {
        const cells = this.#requireNative().sequenceCells();
        return this.#pool.slots.map((slot) => ({
            id: slot.id,
            state: slot.busy ? (this.#activity.get(slot.id)?.() ?? 'prompt') : 'idle',
            cells: cells[slot.id],
            acquired: slot.owner !== null,
        }));
    }

    /** The prompt cache's figures (entries, bytes in RAM and on disk, hits, misses), or null without the `promptCache` option. */
    get promptCache(): PromptCacheStats | null {
        return this.#promptCache?.stats ?? null;
    }

    /** Waits for the prompt cache's state files being written after the last requests (before the process exits). */
    flushPromptCache(): Promise<void> {
        return this.#promptCache?.flush() ?? Promise.resolve();
    }

    /** The batch engine's cumulative figures (steps, tokens, time in and around llama_decode). */
    get engineStats(): EngineStats {
        return this.#requireNative().engineStats();
    }

    /**
     * What this context has allocated, read from llama.cpp's buffers and KV cache
     * tensors: KV cache (K and V, and the cells each sequence holds), weights, compute buffers
     * and output buffer, in total and per device. While requests run it waits for the
     * engine's current step (milliseconds) to read between two steps.
     */
    memoryReport(): MemoryReport {
        try {
            const nativeContext = this.#requireNative();
            const report = toMemoryReport(nativeContext.memoryReport(), { placement: modelWeightPlacement(this.#model), gguf: modelPlacement(this.#model).header });
            const layout = nativeContext.stateLayout();
            if (layout.unsupported === null) report.kv.state = stateSizeOf(report.kv, layout.cellExt);
            report.promptCache = { bytes: this.#promptCache?.stats.ramBytes ?? 0 };
            report.total.bytes += report.promptCache.bytes;
            return report;
        } catch (error) {
            throw fromNative(error, captureStack());
        }
    }

    /**
     * Saves every sequence's KV cache and tokens to `path` (a temporary file renamed when
     * complete), after the requests running now; requests made meanwhile wait. The file
     * says what it belongs to (docs/api.md, "State files"). Resolves with the bytes written.
     */
    saveStateFile(path: string, options: { signal?: AbortSignal } = {}): Promise<number> {
        let signal: AbortSignal | undefined;
        try {
            ({ path, signal } = parseStateCall(path, options, 'saveStateFile()'));
        } catch (error) {
            return Promise.reject(error);
        }
        return this.#pool.exclusive(async () => {
            const target = this.#stateTarget();
            const sequences = this.#pool.slots.map((slot) => ({ id: slot.id, tokens: slot.cached.length }));
            return (await saveSequences(this.#requireNative(), target, 'context', sequences, path, signal)) as number;
        });
    }

    /**
     * Restores every sequence from a file of {@link saveStateFile}, after the requests running
     * now: each saved sequence into the sequence of the same id, the others emptied. The header
     * is checked first (STATE_MISMATCH names the field that differs; INVALID_STATE_FILE for a
     * damaged file), then each sequence's bytes; on failure every sequence is left empty.
     */
    loadStateFile(path: string, options: { signal?: AbortSignal } = {}): Promise<void> {
        let signal: AbortSignal | undefined;
        try {
            ({ path, signal } = parseStateCall(path, options, 'loadStateFile()'));
        } catch (error) {
            return Promise.reject(error);
        }
        return this.#pool.exclusive(async () => {
            const native = this.#requireNative();
            const read = await readCheckedHeader(path, this.#stateTarget());
            if (read.header.kind !== 'context') {
                throw new LlamaError('INVALID_ARGUMENT', `${path} holds one sequence (seq.saveState): load it with seq.loadStateFile()`);
            }
            const ids = read.header.sequences.map((s) => s.id);
            const outside = ids.find((id) => id >= this.#pool.slots.length);
            if (outside !== undefined) {
                throw new LlamaError('STATE_MISMATCH', `${path} was saved with sequence ${outside}, this context has ${this.#pool.slots.length} (parallel): create it with parallel: ${Math.max(...ids) + 1} or more`);
            }
            for (const slot of this.#pool.slots) {
                native.clearSequence(slot.id);
                slot.cached = new Int32Array(0);
            }
            let tokens: Int32Array[];
            try {
                tokens = await loadSequences(native, path, read, ids, signal);
            } catch (error) {
                for (const slot of this.#pool.slots) if (!this.#host.disposed()) native.clearSequence(slot.id);
                throw error;
            }
            for (const [i, id] of ids.entries()) this.#pool.slots[id].cached = tokens[i];
        });
    }

    /** What a saved state must match to load here. */
    #stateTarget(): StateTarget {
        this.#target ??= this.#computeStateTarget();
        return this.#target;
    }

    #computeStateTarget(): StateTarget {
        const native = this.#requireNative();
        const layout = native.stateLayout();
        if (layout.unsupported !== null) throw new LlamaError('INVALID_ARGUMENT', `this context's state cannot be saved or loaded: ${layout.unsupported}`);
        const config = this.config;
        return {
            writer: stateWriter(),
            llamaCpp: llamaCppCommit(),
            model: { ...modelIdentity(modelPlacement(this.#model).header), file: basename(this.#model.path) },
            cache: {
                typeK: config.cacheTypeK ?? '',
                typeV: config.cacheTypeV ?? '',
                vTransposed: layout.vTransposed,
                rotateK: layout.rotateK,
                rotateV: layout.rotateV,
                cellExt: layout.cellExt,
                caches: layout.caches,
            },
            loras: this.#loras
                .map(({ lora, scale }) => ({ name: basename(lora.path), identity: lora.metadata.identity, scale }))
                .sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : a.scale - b.scale)),
            cellsPerSequence: config.contextSizePerSequence,
        };
    }

    /** Saves one sequence's state (seq.saveState / saveStateFile) in its turn. */
    async #saveSequenceState(place: RunPlace, path: string | undefined, options: { signal?: AbortSignal }): Promise<Buffer | number> {
        let signal: AbortSignal | undefined;
        try {
            ({ path, signal } = parseStateCall(path, options, path === undefined ? 'saveState()' : 'saveStateFile()'));
        } catch (error) {
            place.cancel();
            throw error;
        }
        const slot = await place.acquire(signal);
        try {
            return await saveSequences(place.native(), this.#stateTarget(), 'sequence', [{ id: slot.id, tokens: slot.cached.length }], path, signal);
        } finally {
            place.release(slot, slot.cached);
        }
    }

    /** Loads one sequence's state (seq.loadState / loadStateFile) in its turn. */
    async #loadSequenceState(place: RunPlace, source: Buffer | string, options: { signal?: AbortSignal }): Promise<void> {
        let signal: AbortSignal | undefined;
        try {
            if (typeof source === 'string') source = parseArgument(statePathSchema, source, 'path');
            else if (!Buffer.isBuffer(source)) throw new LlamaConfigError(`loadState(): expected a Buffer but received ${describe(source)}`, 'INVALID_ARGUMENT', ['state']);
            signal = parseOptions(signalOptionsSchema, options, typeof source === 'string' ? 'loadStateFile()' : 'loadState()').signal;
        } catch (error) {
            place.cancel();
            throw error;
        }
        const slot = await place.acquire(signal);
        let cached: Int32Array | null = slot.cached;
        try {
            const native = place.native();
            const read = await readCheckedHeader(source, this.#stateTarget());
            if (read.header.kind !== 'sequence') {
                throw new LlamaError('INVALID_ARGUMENT', `${typeof source === 'string' ? source : 'the state'} holds a whole context (ctx.saveStateFile): load it with ctx.loadStateFile()`);
            }
            try {
                cached = (await loadSequences(native, source, read, [slot.id], signal))[0];
            } catch (error) {
                // Refused before llama.cpp read it: the sequence is as it was; after: it is empty.
                if (!place.disposed() && native.sequenceCells()[slot.id] === 0) cached = null;
                throw error;
            }
        } finally {
            place.release(slot, cached);
        }
    }

    /**
     * Holds one of the context's sequences for the caller: requests on the returned
     * {@link LlamaSequence} run on it, one after another, and reuse its cache; the pool does not
     * hand it to other requests until `release()`. Waits (FIFO, with the other requests) for a
     * free sequence; `signal` aborts the wait.
     */
    async acquireSequence(options: { signal?: AbortSignal } = {}): Promise<LlamaSequence> {
        const { signal } = parseOptions(signalOptionsSchema, options, 'acquireSequence()');
        const holder = {};
        const slot = await this.#pool.take(pickEmptiest, { signal, own: holder });
        return new LlamaSequence(this.#host, slot);
    }

    /**
     * Decodes `tokens` on a free sequence (the one that shares the longest prefix with them, which
     * is reused) and returns the logits of the last position, one float per vocabulary entry.
     * `signal` stops the decode between two steps: the promise then rejects with ABORTED.
     */
    evaluate(tokens: ArrayLike<number>, options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
        return this.#evaluateOn(null, tokens, options);
    }

    /**
     * Scores a token sequence position by position: the log-probability of each next token
     * (for perplexity), the most likely token, and with `reference`, the KL divergence
     * from the reference context's distribution. The tokens are decoded on a free sequence from
     * an empty cache with logits at every position (in chunks of at most `batchSize` positions,
     * fewer for large vocabularies) and are in that sequence's cache afterwards. With a
     * reference, a free sequence of each context is held for the call; other sequences decode
     * between its chunks.
     *
     * @example
     * const scores = await ctx.scoreTokens(model.tokenize(text), { reference: f16Ctx });
     * const meanKl = scores.reference!.kl.reduce((a, b) => a + b, 0) / scores.reference!.kl.length;
     */
    scoreTokens(tokens: ArrayLike<number>, options: ScoreOptions = {}): Promise<TokenScores> {
        return this.#scoreOn(null, tokens, options);
    }

    /**
     * Streams generated tokens. The token loop runs in native code; tokens reach JS
     * in batches. Breaking out of the loop stops generation.
     *
     * @example
     * for await (const { text } of ctx.generate('Hello', { maxTokens: 16 })) process.stdout.write(text);
     */
    generate(prompt: Prompt, options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, CompletionResult, undefined> {
        return this.#generateOn(null, prompt, options);
    }

    /** Generates to the end and returns the text, the tokens, why it ended and timings. */
    complete(prompt: Prompt, options: GenerateOptions = {}): Promise<CompletionResult> {
        return this.#completeOn(null, prompt, options);
    }

    /** The LoRA adapters active on this context, with their scales. */
    get loras(): readonly Readonly<LoraUse>[] {
        return this.#loras;
    }

    /**
     * Makes `adapters` the active LoRA set for the following decodes, without recreating
     * the context: `[]` returns to the base model. It waits for the requests running on the
     * context to end, and requests made meanwhile wait for it. The KV cache of every sequence
     * is cleared when the set changes (it was computed with the previous adapters). An adapter
     * loaded for another model, a disposed one or one listed twice is rejected.
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
        return this.#pool.exclusive(() => {
            if (signal?.aborted) throw new LlamaAbortError('setLoras() was aborted before it ran');
            try {
                this.#applyLoras(list);
            } catch (error) {
                throw fromNative(error, stack);
            }
        });
    }

    #applyLoras(list: readonly LoraUse[]): void {
        const native = this.#requireNative();
        const before = this.#loras;
        native.setLoras(list.map(({ lora, scale }) => ({ lora: lora.requireNative(), scale })));
        this.#loras = Object.freeze(list.map(({ lora, scale }) => Object.freeze({ lora, scale })));
        this.#target = null;
        const same = before.length === list.length && before.every((u, i) => u.lora === list[i].lora && u.scale === list[i].scale);
        if (!same) for (const slot of this.#pool.slots) slot.cached = new Int32Array(0); // the native side cleared every sequence
    }

    /** Frees the context (KV cache, buffers, threadpool). Work in flight is aborted first; waiting requests reject with DISPOSED. Idempotent. */
    dispose(): void {
        if (this.#native === null) return;
        const native = this.#native;
        this.#native = null;
        this.#pool.close(new LlamaDisposedError('context'));
        this.#release();
        this.#untrackForExit();
        native.dispose();
    }

    [Symbol.dispose](): void {
        this.dispose();
    }

    async [Symbol.asyncDispose](): Promise<void> {
        this.dispose();
    }

    // ---- requests on a place: a sequence from the pool (null) or an acquired one ----------

    /** Where a request without a sequence runs: the free sequence that suits `prompt` best. */
    #poolPlace(prompt: () => ArrayLike<number>): RunPlace {
        return {
            acquire: (signal) => this.#pool.take((free) => pickByPrefix(free, prompt), { signal }),
            release: (slot, cached) => this.#leave(slot, cached),
            native: () => this.#requireNative(),
            disposed: () => this.#native === null,
            onTokens: () => this.#preemptStalled(),
            cancel: () => undefined,
        };
    }

    /** A request on `slot` ended. With a prompt cache folder, the sequence stays held while its state is written there. */
    #leave(slot: Slot, cached: Int32Array | null): Promise<void> | null {
        this.#activity.delete(slot.id);
        const now = cached ?? new Int32Array(0);
        slot.cached = now;
        const write = this.#native === null ? null : (this.#promptCache?.persist(slot.id, now) ?? null);
        if (write === null) {
            this.#pool.leave(slot, now);
            return null;
        }
        return write.finally(() => this.#pool.leave(slot, now));
    }

    /** Before a request runs `prompt` on `slot`: the prompt cache keeps what it would overwrite and restores a longer cached prefix. */
    async #fromPromptCache(slot: Slot, prompt: () => ArrayLike<number>): Promise<void> {
        if (this.#promptCache === null) return;
        slot.cached = await this.#promptCache.prepare(slot.id, slot.cached, prompt());
    }

    /** The functions a LlamaSequence runs its calls with. */
    #sequenceHost(): SequenceHost {
        return {
            context: () => this,
            generate: (place, prompt, options) => this.#generateOn(place, prompt, options),
            complete: (place, prompt, options) => this.#completeOn(place, prompt, options),
            evaluate: (place, tokens, options) => this.#evaluateOn(place, tokens, options),
            scoreTokens: (place, tokens, options) => this.#scoreOn(place, tokens, options as ScoreOptions),
            place: (slot, before, done, isReleased) => ({
                acquire: async (signal) => {
                    try {
                        await raceAbort(before, signal, 'the request');
                        if (isReleased()) throw this.#native === null ? new LlamaDisposedError('context') : new LlamaError('DISPOSED', `sequence ${slot.id} was released`);
                        await this.#pool.enter(slot);
                        return slot;
                    } catch (error) {
                        done();
                        throw error;
                    }
                },
                release: (s, cached) => {
                    const write = this.#leave(s, cached);
                    if (write === null) done();
                    else void write.finally(done);
                },
                native: () => this.#requireNative(),
                disposed: () => this.#native === null,
                cancel: done,
            }),
            fork: (slot, place, options) => this.#fork(slot, place, options),
            saveState: (place, path, options) => this.#saveSequenceState(place, path, options),
            loadState: (place, source, options) => this.#loadSequenceState(place, source, options),
            clear: async (slot) => {
                if (this.#promptCache !== null) await this.#promptCache.keep(slot.id, slot.cached);
                this.#requireNative().clearSequence(slot.id);
            },
            disown: (slot) => this.#pool.disown(slot),
            disposed: () => this.#native === null,
        };
    }

    async #fork(source: Slot, place: RunPlace, options: { signal?: AbortSignal }): Promise<LlamaSequence> {
        let target: LlamaSequence;
        try {
            target = await this.acquireSequence(options);
        } catch (error) {
            place.cancel();
            throw error;
        }
        let slot: Slot;
        try {
            slot = await place.acquire(options.signal);
        } catch (error) {
            target.release();
            throw error;
        }
        try {
            this.#requireNative().copySequence(source.id, target.id);
        } catch (error) {
            target.release();
            throw fromNative(error, captureStack());
        } finally {
            place.release(slot, slot.cached);
        }
        const targetSlot = this.#pool.slots[target.id];
        targetSlot.cached = slot.cached.slice();
        return target;
    }

    #generateOn(place: RunPlace | null, prompt: Prompt, options: GenerateOptions): AsyncGenerator<GeneratedToken, CompletionResult, undefined> {
        const handle: { abort?: () => void } = {};
        // On a sequence the request takes its turn now, in call order (its place already holds
        // the turn); on the pool it starts at the first next(), as it always did.
        let eager: StartedRun | null = null;
        if (place !== null) {
            try {
                eager = this.#start(place, prompt, options);
                handle.abort = eager.abort;
            } catch (error) {
                eager = null;
                const failed = (async function* (): AsyncGenerator<GeneratedToken, CompletionResult, undefined> {
                    throw error;
                })();
                return failed;
            }
        }
        const stream = this.#stream(() => eager ?? this.#start(place, prompt, options), handle);
        // return() before the first next() never runs the generator's body: end the request here.
        const done = stream.return.bind(stream);
        stream.return = (value) => {
            handle.abort?.();
            return done(value);
        };
        // Dropped without return(): the GC ends its generation (the handle does not reference the stream).
        dropped.register(stream, handle);
        return stream;
    }

    async *#stream(begin: () => StartedRun, handle: { abort?: () => void }): AsyncGenerator<GeneratedToken, CompletionResult, undefined> {
        const run = begin();
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

    async #completeOn(place: RunPlace | null, prompt: Prompt, options: GenerateOptions): Promise<CompletionResult> {
        const run = this.#start(place, prompt, options);
        while ((await run.next()) !== null) {
            // drain: complete() only needs the result
        }
        return run.result;
    }

    #start(place: RunPlace | null, prompt: Prompt, options: GenerateOptions): StartedRun {
        const stack = captureStack();
        let request;
        let opts: ReturnType<typeof parseOptions<typeof generateOptionsSchema>>;
        let promptInput: string | Int32Array;
        try {
            opts = parseOptions(generateOptionsSchema, options, 'generate()');
            promptInput = typeof prompt === 'string' ? prompt : this.#tokenIds(prompt);
            request = this.#generateRequest(opts, promptInput, (options as { [chatRequestExtras]?: ChatRequestExtras })[chatRequestExtras]);
        } catch (error) {
            place?.cancel();
            throw error;
        }
        const index = this.#requests++;
        const seed = opts.seed ?? (this.#seed === null ? randomSeed() : requestSeed(this.#seed, index));
        const tokensOf = () => (typeof promptInput === 'string' ? this.#model.tokenize(promptInput, { addSpecial: request.addSpecial, parseSpecial: request.parseSpecial }) : promptInput);
        const where = place ?? this.#poolPlace(tokensOf);
        const tracked: RunPlace = {
            ...where,
            acquire: async (signal) => {
                const slot = await where.acquire(signal);
                try {
                    await this.#fromPromptCache(slot, tokensOf);
                } catch (error) {
                    where.release(slot, slot.cached);
                    throw error;
                }
                // Read when asked, after startGeneration has returned `run`.
                this.#activity.set(slot.id, () => (run.stream.stalled() ? 'waiting' : run.stream.delivered() > 0 ? 'generating' : 'prompt'));
                return slot;
            },
        };
        const run = startGeneration({ ...request, seed }, request.stop, seed, tracked, opts.signal, stack);
        if (place === null) {
            this.#streams.add(run.stream);
            void run.result.finally(() => this.#streams.delete(run.stream)).catch(() => undefined);
        }
        return { next: run.next, result: run.result, abort: run.abort };
    }

    /** The engine request of generate() options (defaults applied, checked against the context). */
    #generateRequest(opts: ReturnType<typeof parseOptions<typeof generateOptionsSchema>>, prompt: string | Int32Array, extras?: ChatRequestExtras) {
        const stops = opts.stop === undefined ? [] : typeof opts.stop === 'string' ? [opts.stop] : opts.stop;
        const onContextFull = opts.onContextFull ?? this.#onContextFull;
        if (onContextFull === 'shift' && !this.#canShift) throw cannotShift('onContextFull');
        const request = {
            prompt,
            addSpecial: opts.addSpecial ?? defaults.generate.addSpecial,
            parseSpecial: opts.parseSpecial ?? defaults.generate.parseSpecial,
            maxTokens: opts.maxTokens ?? defaults.generate.maxTokens,
            temperature: opts.temperature ?? defaults.generate.temperature,
            topK: opts.topK ?? defaults.generate.topK,
            topP: opts.topP ?? defaults.generate.topP,
            minP: opts.minP ?? defaults.generate.minP,
            repeatPenalty: opts.repeatPenalty ?? defaults.generate.repeatPenalty,
            repeatLastN: opts.repeatLastN ?? defaults.generate.repeatLastN,
            stop: stops,
            unreadLimit: UNREAD_LIMIT,
            onContextFull,
            keep: opts.keep ?? defaults.generate.keep,
            grammar: extras?.grammar ?? compileGrammar(nativeModel(this.#model), opts),
            renderSpecial: extras?.renderSpecial,
            logitBias: opts.logitBias === undefined ? undefined : (Array.isArray(opts.logitBias) ? opts.logitBias : Object.entries(opts.logitBias).map(([t, b]) => [Number(t), b] as const)).flat(),
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
        return request;
    }

    async #evaluateOn(place: RunPlace | null, tokens: ArrayLike<number>, options: { signal?: AbortSignal }): Promise<Float32Array> {
        const stack = captureStack();
        let ids: Int32Array;
        let signal: AbortSignal | undefined;
        try {
            ids = this.#tokenIds(tokens);
            signal = parseOptions(signalOptionsSchema, options, 'evaluate()').signal;
        } catch (error) {
            place?.cancel();
            throw error;
        }
        const where = place ?? this.#poolPlace(() => ids);
        if (signal?.aborted) {
            where.cancel();
            throw new LlamaAbortError('evaluate() was aborted before it started');
        }
        const slot = await where.acquire(signal);
        this.#activity.set(slot.id, () => 'prompt');
        try {
            await this.#fromPromptCache(slot, () => ids);
        } catch (error) {
            where.release(slot, slot.cached);
            throw error;
        }
        let cached: Int32Array | null = null;
        let raw: NativeRequestResult;
        const abort = { run: () => undefined as void };
        const onAbort = () => abort.run();
        signal?.addEventListener('abort', onAbort, { once: true });
        try {
            const handle = where.native().submit({ kind: 'evaluate', sequence: slot.id, prompt: ids }, () => undefined);
            abort.run = () => handle.abort();
            if (signal?.aborted) handle.abort();
            raw = await handle.promise;
            cached = raw.cached;
        } catch (error) {
            cached = tokensOnFailure(error);
            throw fromNative(error, stack);
        } finally {
            signal?.removeEventListener('abort', onAbort);
            where.release(slot, cached);
        }
        if (raw.finishReason === 'abort') {
            if (signal?.aborted) throw new LlamaAbortError();
            throw new LlamaDisposedError('context'); // aborted because the context (or its model) was disposed meanwhile
        }
        return raw.logits!;
    }

    async #scoreOn(place: RunPlace | null, tokens: ArrayLike<number>, options: ScoreOptions): Promise<TokenScores> {
        const stack = captureStack();
        let ids: Int32Array;
        const reference = options.reference;
        const signal = options.signal;
        try {
            ids = this.#tokenIds(tokens);
            if (reference !== undefined && !(reference instanceof LlamaContext)) {
                throw new LlamaConfigError('scoreTokens(): expected a LlamaContext for options.reference', 'INVALID_ARGUMENT', ['reference']);
            }
            if (signal !== undefined && !(signal instanceof AbortSignal)) {
                throw new LlamaConfigError('scoreTokens(): expected an AbortSignal for options.signal', 'INVALID_ARGUMENT', ['signal']);
            }
        } catch (error) {
            place?.cancel();
            throw error;
        }
        if (reference === this) {
            place?.cancel();
            throw new LlamaConfigError('scoreTokens(): the reference must be another context, not this one', 'INVALID_ARGUMENT', ['reference']);
        }
        const own = place ?? this.#poolPlace(() => ids);
        const other = reference === undefined ? null : reference.#poolPlace(() => ids);
        if (signal?.aborted) {
            own.cancel();
            throw new LlamaAbortError();
        }
        // Sequences of two contexts are always taken in creation order, so that two scores with
        // their contexts swapped cannot each hold one and wait for the other.
        let slot: Slot | null = null;
        let refSlot: Slot | null = null;
        try {
            if (other !== null && reference!.#id < this.#id) {
                refSlot = await other.acquire(signal);
                slot = await own.acquire(signal);
            } else {
                slot = await own.acquire(signal);
                if (other !== null) refSlot = await other.acquire(signal);
            }
        } catch (error) {
            if (slot !== null) own.release(slot, slot.cached);
            else own.cancel();
            if (refSlot !== null) other!.release(refSlot, refSlot.cached);
            throw error;
        }
        this.#activity.set(slot.id, () => 'prompt');
        let ok = false;
        const onAbort: { run: () => void } = { run: () => undefined };
        const abortListener = () => onAbort.run();
        signal?.addEventListener('abort', abortListener, { once: true });
        try {
            const native = own.native();
            const refNative = reference === undefined ? undefined : other!.native();
            const call = native.score(ids, slot.id, refNative, refSlot?.id);
            onAbort.run = () => call.abort();
            if (signal?.aborted) call.abort();
            const scores = await call.promise;
            ok = true;
            return scores;
        } catch (error) {
            const e = fromNative(error, stack);
            if (e.code === 'ABORTED' && signal?.aborted) throw new LlamaAbortError(undefined, { cause: e });
            if (e.code === 'ABORTED' && (this.#native === null || (reference !== undefined && reference.#native === null))) {
                throw new LlamaDisposedError(this.#native === null ? 'context' : 'reference context');
            }
            throw e;
        } finally {
            signal?.removeEventListener('abort', abortListener);
            // On success both sequences hold the tokens; a failed score leaves them empty.
            own.release(slot, ok ? ids.slice() : null);
            if (refSlot !== null) other!.release(refSlot, ok ? ids.slice() : null);
        }
    }

    /** A stream whose reader stopped reading does not hold a sequence while a request waits for one. */
    #preemptStalled(): void {
        if (this.#pool.waiting === 0) return;
        for (const stream of this.#streams) {
            if (stream.stalled()) {
                stream.preempt();
                return;
            }
        }
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
}

/** onContextFull 'shift' where llama.cpp cannot shift the cache. */
function cannotShift(option: string): LlamaConfigError {
    return new LlamaConfigError(
        `${option} 'shift' needs a KV cache that llama.cpp can shift, and this context's cannot (llama_memory_can_shift is false: e.g. a recurrent or M-RoPE model): use onContextFull 'error'`,
        'INVALID_CONFIG',
        [option],
    );
}

declare module '../model/model.js' {
    interface LlamaModel {
        /** Sugar for `new LlamaContext({ model: this, ...options })`. */
        createContext(options?: ContextOptionsWithoutModel): LlamaContext;
        /** Sugar for `LlamaContext.create({ model: this, ...options })`: the context allocated off the JS thread. */
        createContextAsync(options?: ContextOptionsWithoutModel & { signal?: AbortSignal }): Promise<LlamaContext>;
    }
}

/** The handle of a context LlamaContext.create() made, for the constructor it calls (set and read synchronously). */
let adopting: unknown = null;

// model/ sits below context/ and never imports it: the method that makes a context
// for a model is added where contexts are defined (non-enumerable, like a class method).
Object.defineProperty(LlamaModel.prototype, 'createContext', {
    value: function createContext(this: LlamaModel, options: ContextOptionsWithoutModel = {}): LlamaContext {
        return new LlamaContext({ ...options, model: this });
    },
    writable: true,
    configurable: true,
});
Object.defineProperty(LlamaModel.prototype, 'createContextAsync', {
    value: function createContextAsync(this: LlamaModel, options: ContextOptionsWithoutModel & { signal?: AbortSignal } = {}): Promise<LlamaContext> {
        return LlamaContext.create({ ...options, model: this });
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
    const { devices, free } = guardDevices(placement);
    checkContextMemory(estimateResolved(placement.header, facts, resolved, KV_ONLY_LOAD), {
        layerCount: facts.layerCount,
        gpuLayers: placement.gpuLayers,
        devices,
        offloadKqv: resolved.native.offloadKqv,
    }, undefined, free);
}

/**
 * The devices a context guard counts offloaded layers against, and their free memory:
 * layers (and their KV cache) offloaded over RPC are in the remote devices' memory, not the
 * host's. `free` undefined: the guard's own lookup (no remote devices). @internal
 */
export function guardDevices(placement: ModelPlacement): { devices: string[]; free?: (names: readonly string[]) => DeviceFree } {
    const remote = placement.remoteDevices;
    const devices = [...remote.map((d) => d.name), ...placement.devices];
    return remote.length === 0 ? { devices } : { devices, free: (names) => withRemoteFree(names, remote) };
}

/**
 * The free memory of a context's devices, the remote ones as their servers reported it at the
 * load (no round trip here, on the JS thread: LlamaContext.create() must not wait for the
 * network before it reaches its worker).
 */
function withRemoteFree(names: readonly string[], remote: ModelPlacement['remoteDevices']): DeviceFree {
    const local = names.filter((n) => !remote.some((d) => d.name === n));
    const localFree = local.length > 0 ? devicesFree(local).freeBytes : 0;
    const remoteFree = remote.filter((d) => names.includes(d.name)).map((d) => d.freeBytes);
    const unknown = localFree === null || remoteFree.some((f) => f === null);
    return { names: [...names], freeBytes: unknown ? null : localFree + remoteFree.reduce<number>((sum, f) => sum + f!, 0) };
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
export function trackForExit(native: NativeContext): () => void {
    if (!exitHook) {
        exitHook = true;
        process.once('exit', () => {
            for (const c of liveContexts) c.abort();
        });
    }
    return liveContexts.add(native);
}
