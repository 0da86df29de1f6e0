import { binding, type NativeModel } from '../native/binding.js';
import { cpuExtraBufferTypes } from '../backends/backends.js';
import { log, userCallback } from '../logger.js';
import { warning, type LlamaWarning } from '../warnings.js';
import { IterableWeakSet } from '../weak-set.js';
import {
    captureStack,
    fromNative,
    LlamaAbortError,
    LlamaConfigError,
    LlamaDisposedError,
    LlamaError,
} from '../errors.js';
import { LlamaLora, loraFacts } from './lora.js';
import { inspectModel } from './inspect-model.js';
import { inspectFile, inspectLoraFile } from './inspect-file.js';
import { toMetadata, type ModelMetadata } from './metadata.js';
import { headerFacts, type ModelPlacement } from './placement.js';
import { modelLayerCount, resolvePlacement } from '../backends/placement.js';
import type { GgufValue } from '../gguf/types.js';
import { checkModelMemory } from '../memory/guard.js';
import { CPU_TENSOR_ALIGNMENT, firstMisalignedTensor, type WeightPlacement } from '../memory/weight-buffers.js';
import { defaults } from '../options/defaults.js';
import { modelLoadOptionsSchema, tokenizeAsyncOptionsSchema, tokenizeOptionsSchema, type ModelLoadOptions, type TokenizeAsyncOptions, type TokenizeOptions } from '../options/model-options.js';
import { parseArgument, parseOptions } from '../options/validate.js';
import { applyChatTemplateOptionsSchema, chatMessagesSchema, type ApplyChatTemplateOptions, type ChatMessage } from '../options/chat-options.js';
import { ModelChat } from './model-chat.js';
import type { ChatTemplateInfo } from './chat-template.js';
import { nativeFilePath } from '../native/asar-path.js';

/** Anything that a model disposes before itself. @internal */
export interface ModelChild {
    dispose(): void;
}

let nativeOf: (model: LlamaModel) => NativeModel;
let placementOf: (model: LlamaModel) => ModelPlacement;
let childrenOf: (model: LlamaModel) => IterableWeakSet<ModelChild>;
let chatOf: (model: LlamaModel) => ModelChat;

/**
 * A GGUF model loaded by llama.cpp. Create with {@link LlamaModel.load}; free with
 * {@link LlamaModel.dispose} (or `using`), which disposes its contexts first.
 */
export class LlamaModel {
    #native: NativeModel | null;
    /** Held weakly: a context or adapter nobody references is the GC's to free (its native part holds the model). */
    readonly #children = new IterableWeakSet<ModelChild>();
    readonly #placement: ModelPlacement;
    #chat: ModelChat | null = null;
    /** Path the model was loaded from. */
    readonly path: string;
    /** Metadata of the model. */
    readonly metadata: Readonly<ModelMetadata>;

    static {
        nativeOf = (model) => model.#requireNative();
        childrenOf = (model) => model.#children;
        placementOf = (model) => model.#placement;
        chatOf = (model) => model.#requireChat();
    }

    private constructor(native: NativeModel, path: string, gguf: Record<string, GgufValue>, placement: ModelPlacement) {
        // `new LlamaModel(...)` from JavaScript, where TypeScript's `private` does not reach.
        if (!(native instanceof binding().NativeModel)) {
            throw new LlamaConfigError('LlamaModel cannot be constructed with new: use `await LlamaModel.load({ path })`', 'INVALID_ARGUMENT');
        }
        this.#native = native;
        this.#placement = placement;
        this.path = path;
        this.metadata = Object.freeze(toMetadata(native.metadata(), gguf));
    }

    /**
     * Loads a GGUF model off the JS thread. A missing file, a directory, a file that
     * is not GGUF or a truncated one reject with a LlamaModelLoadError saying which.
     */
    static async load(options: ModelLoadOptions): Promise<LlamaModel> {
        const stack = captureStack();
        const opts = parseOptions(modelLoadOptionsSchema, options, 'LlamaModel.load()');
        const gguf = await inspectFile(opts.path);
        if (opts.isolation === 'process') await inspectModel(opts.path);
        if (opts.signal?.aborted) throw new LlamaAbortError('Model loading was aborted before it started');
        const warnings: LlamaWarning[] = [];
        const placement = resolvePlacement(opts, gguf.kv, warnings);
        // ggml asserts that memory-mapped tensor data sits at 32-byte boundaries (a file
        // whose general.alignment is 1 or 8 would abort the process): read such a file.
        let useMmap = opts.useMmap ?? defaults.model.useMmap;
        const misaligned = firstMisalignedTensor(gguf);
        if (useMmap && misaligned) {
            useMmap = false;
            warnings.push(warning(
                'MMAP_MISALIGNED',
                `${opts.path}: tensor ${misaligned.name} is not at a ${CPU_TENSOR_ALIGNMENT}-byte boundary of the file (general.alignment ${gguf.alignment}); loading without mmap`,
                ['useMmap'],
            ));
        }
        logModelWarnings(warnings);
        const vocabOnly = opts.vocabOnly ?? defaults.model.vocabOnly;
        const repack = opts.repack ?? defaults.model.repack;
        if (!vocabOnly && (opts.checkMemory ?? defaults.model.checkMemory)) {
            // The servers' devices take the offloaded layers, as GPUs do; their memory is known
            // only once they answer, so only the host's share is checked here.
            const remote = opts.rpcServers ?? [];
            checkModelMemory(gguf, {
                layerCount: modelLayerCount(gguf.kv),
                gpuLayers: placement.gpuLayers,
                devices: [...remote, ...(placement.devices ?? [])],
                overrides: placement.tensorOverrides ?? [],
                useMmap,
                extraBufferTypes: repack ? cpuExtraBufferTypes() : [],
            }, undefined, remote.length > 0 ? (names) => ({ names: [...names], freeBytes: null }) : undefined);
        }
        const { promise, abort } = call(() =>
            binding().loadModel(
                nativeFilePath(opts.path),
                {
                    ...placement,
                    useMmap,
                    extraBufferTypes: repack,
                    useMlock: opts.useMlock ?? defaults.model.useMlock,
                    vocabOnly,
                    checkTensors: opts.checkTensors ?? defaults.model.checkTensors,
                    ...(opts.rpcServers ? { rpcServers: opts.rpcServers, rpcTimeoutMs: opts.rpcTimeoutMs ?? defaults.model.rpcTimeoutMs } : {}),
                },
                opts.onProgress ? userCallback(opts.onProgress, 'LlamaModel.load() onProgress') : undefined,
            ),
        );
        const onAbort = () => abort();
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        let model: LlamaModel;
        try {
            const native = await promise;
            model = new LlamaModel(native, opts.path, gguf.kv, {
                gpuLayers: placement.gpuLayers,
                devices: placement.devices ?? [],
                remoteDevices: (native.remoteDevices ?? []).map((d) => ({ name: d.name, endpoint: d.endpoint, freeBytes: d.freeBytes ?? null })),
                header: gguf,
                facts: headerFacts(gguf),
                useMmap,
                repack,
                weights: null,
                warnings: Object.freeze(warnings),
            });
        } catch (error) {
            throw fromNative(error, stack);
        } finally {
            opts.signal?.removeEventListener('abort', onAbort);
        }
        if (model.#native!.metadata().vocabType !== 0) { // LLAMA_VOCAB_TYPE_NONE: no tokenizer
            const fileTemplate = gguf.kv['tokenizer.chat_template'];
            try {
                model.#chat = await ModelChat.create(() => model.#requireNative(), typeof fileTemplate === 'string' ? fileTemplate : undefined, opts.chatTemplate, opts.signal);
            } catch (error) {
                model.dispose();
                throw error;
            }
        }
        return model;
    }

    /**
     * The model's chat template: its source and where it came from (the file's
     * `tokenizer.chat_template`, the `chatTemplate` load option, or llama.cpp's ChatML
     * fallback when the file has none); null for a model without a tokenizer.
     */
    get chatTemplate(): Readonly<ChatTemplateInfo> | null {
        return this.#chat?.info ?? null;
    }

    /**
     * Renders a conversation with the model's chat template (or `template`) exactly as
     * llama.cpp's server renders it for this model: its Jinja engine and chat layer, tools
     * and thinking mode included; the model's BOS is left out of the text when the tokenizer
     * adds it (as the server does). Off the JS thread, with bounds on what the template may
     * do: a template that fails, or runs too long, too deep or too large, rejects with
     * TEMPLATE_FAILED.
     */
    async applyChatTemplate(messages: readonly ChatMessage[], options: ApplyChatTemplateOptions = {}): Promise<string> {
        const msgs = parseArgument(chatMessagesSchema, messages, 'messages');
        const opts = parseOptions(applyChatTemplateOptionsSchema, options, 'applyChatTemplate()');
        const { params } = await this.#requireChat().render(ModelChat.input(msgs, opts), opts.template, false, opts.signal);
        return params.prompt;
    }

    /**
     * The tokens of {@link applyChatTemplate}'s text as llama.cpp's server tokenizes it
     * (special tokens parsed, BOS added as the model says), except that the text of a
     * control token inside a message's content stays text: user text cannot inject
     * `<|im_end|>` or the like.
     */
    async tokenizeChat(messages: readonly ChatMessage[], options: ApplyChatTemplateOptions = {}): Promise<Int32Array> {
        const msgs = parseArgument(chatMessagesSchema, messages, 'messages');
        const opts = parseOptions(applyChatTemplateOptionsSchema, options, 'tokenizeChat()');
        const { tokens } = await this.#requireChat().render(ModelChat.input(msgs, opts), opts.template, true, opts.signal);
        return tokens!;
    }

    /**
     * What the load allowed but probably not as meant: gpu 'auto' found no GPU (`NO_GPU`), a file
     * that could not be memory-mapped (`MMAP_MISALIGNED`). Also logged at 'warn' (NO_GPU once per process).
     */
    get warnings(): readonly LlamaWarning[] {
        return this.#placement.warnings;
    }

    /** Whether {@link dispose} was called. */
    get disposed(): boolean {
        return this.#native === null;
    }

    /** Text to token ids, on the JS thread: for short text. See {@link tokenizeAsync} for large inputs. */
    tokenize(text: string, options: TokenizeOptions = {}): Int32Array {
        const [addSpecial, parseSpecial] = tokenizeArgs(text, options, 'tokenize()');
        return call(() => this.#requireNative().tokenize(text, addSpecial, parseSpecial));
    }

    /** Text to token ids on a worker thread: for large inputs (the event loop keeps running). */
    async tokenizeAsync(text: string, options: TokenizeAsyncOptions = {}): Promise<Int32Array> {
        const stack = captureStack();
        const { signal, ...rest } = parseOptions(tokenizeAsyncOptionsSchema, options, 'tokenizeAsync()');
        const [addSpecial, parseSpecial] = tokenizeArgs(text, rest, 'tokenizeAsync()');
        if (signal?.aborted) throw new LlamaAbortError('tokenizeAsync() was aborted before it started');
        let tokens: Int32Array;
        try {
            tokens = await this.#requireNative().tokenizeAsync(text, addSpecial, parseSpecial);
        } catch (error) {
            throw fromNative(error, stack);
        }
        if (signal?.aborted) throw new LlamaAbortError('tokenizeAsync() was aborted');
        return tokens;
    }

    /** Token ids to text. Special tokens (BOS, EOS) are not rendered unless `renderSpecial` is set. */
    detokenize(tokens: ArrayLike<number>, options: { renderSpecial?: boolean } = {}): string {
        const ids = toTokenArray(tokens);
        const renderSpecial = options.renderSpecial ?? defaults.detokenize.renderSpecial;
        return call(() => this.#requireNative().detokenize(ids, renderSpecial !== true, renderSpecial === true).toString('utf8'));
    }

    /**
     * Loads a LoRA adapter for this model (llama.cpp's llama_adapter_lora_init, off the JS
     * thread). A file that is not a LoRA GGUF, an adapter for another architecture or
     * other shapes, or a missing file rejects with LORA_LOAD_FAILED saying which.
     * Apply it with `ctx.setLoras([{ lora, scale }])`. `signal` is checked before and
     * after the load (llama.cpp's adapter load cannot be interrupted).
     */
    async loadLora(path: string, options: { signal?: AbortSignal } = {}): Promise<LlamaLora> {
        const stack = captureStack();
        if (typeof path !== 'string' || path.length === 0) {
            throw new LlamaConfigError(`Expected a file path (non-empty string) for path but received ${typeof path}`, 'INVALID_ARGUMENT', ['path']);
        }
        const native = this.#requireNative();
        const gguf = await inspectLoraFile(path, this.metadata.architecture);
        if (options.signal?.aborted) throw new LlamaAbortError('Loading the LoRA adapter was aborted before it started');
        let adapter;
        try {
            adapter = await binding().loadLora(native, nativeFilePath(path));
        } catch (error) {
            throw fromNative(error, stack);
        }
        if (options.signal?.aborted || this.#native === null) {
            adapter.dispose();
            if (this.#native === null) throw new LlamaDisposedError('model');
            throw new LlamaAbortError('Loading the LoRA adapter was aborted');
        }
        let release = () => {};
        let lora: LlamaLora;
        try {
            lora = new LlamaLora(adapter, path, loraFacts(path, gguf), () => release());
        } catch (error) {
            adapter.dispose();
            throw fromNative(error, stack);
        }
        release = adoptChild(this, lora);
        return lora;
    }

    /** Disposes the model's contexts, then frees the weights. Idempotent. */
    dispose(): void {
        if (this.#native === null) return;
        for (const child of this.#children) child.dispose();
        this.#children.clear();
        const native = this.#native;
        this.#native = null;
        native.dispose();
    }

    [Symbol.dispose](): void {
        this.dispose();
    }

    async [Symbol.asyncDispose](): Promise<void> {
        this.dispose();
    }

    #requireNative(): NativeModel {
        if (this.#native === null) throw new LlamaDisposedError('model');
        return this.#native;
    }

    #requireChat(): ModelChat {
        this.#requireNative();
        if (this.#chat === null) {
            throw new LlamaError('TOKENIZE_FAILED', 'This model has no tokenizer (tokenizer.ggml.model is none): it cannot chat');
        }
        return this.#chat;
    }
}

/** The chat templates of a model (DISPOSED, or an error for a model without a tokenizer). @internal */
export function modelChat(model: LlamaModel): ModelChat {
    return chatOf(model);
}

/** @internal */
export function nativeModel(model: LlamaModel): NativeModel {
    if (!(model instanceof LlamaModel)) {
        throw new LlamaConfigError(`Expected a LlamaModel for model but received ${model === null ? 'null' : typeof model}`);
    }
    return nativeOf(model);
}

/** @internal */
export function modelPlacement(model: LlamaModel): ModelPlacement {
    return placementOf(model);
}

/** Where each weight of the model went (buffer type per tensor), read once. @internal */
export function modelWeightPlacement(model: LlamaModel): WeightPlacement {
    const placement = placementOf(model);
    placement.weights ??= nativeOf(model).weightPlacement();
    return placement.weights;
}

/** Layers requested on a GPU at load (-1: all). @internal */
export function modelGpuLayers(model: LlamaModel): number {
    return placementOf(model).gpuLayers;
}

let warnedNoGpu = false;

/** Logs a load's warnings; 'auto''s CPU fallback once per process, as most machines have no GPU. */
function logModelWarnings(warnings: readonly LlamaWarning[]): void {
    for (const w of warnings) {
        if (w.code === 'NO_GPU') {
            if (warnedNoGpu) continue;
            warnedNoGpu = true;
        }
        log('warn', w.message);
    }
}

/** Registers a child (a context) that the model disposes first. @internal */
export function adoptChild(model: LlamaModel, child: ModelChild): () => void {
    return childrenOf(model).add(child);
}

/** Converts token ids to an Int32Array, checking they are 32-bit integers. @internal */
export function toTokenArray(tokens: ArrayLike<number>): Int32Array {
    if (tokens instanceof Int32Array) return tokens;
    if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
        throw new LlamaConfigError('Expected an array of token ids (numbers)', 'INVALID_ARGUMENT');
    }
    const out = new Int32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i];
        if (!Number.isInteger(t) || t < -0x80000000 || t > 0x7fffffff) {
            throw new LlamaConfigError(`Expected an integer token id at index ${i} but received ${String(t)}`, 'INVALID_ARGUMENT');
        }
        out[i] = t;
    }
    return out;
}

/** Validates tokenize()'s arguments; returns [addSpecial, parseSpecial]. */
function tokenizeArgs(text: unknown, options: TokenizeOptions, what: string): [boolean, boolean] {
    if (typeof text !== 'string') {
        throw new LlamaConfigError(`Expected a string for text but received ${typeof text}`, 'INVALID_ARGUMENT');
    }
    const opts = parseOptions(tokenizeOptionsSchema, options, what);
    return [opts.addSpecial ?? defaults.tokenize.addSpecial, opts.parseSpecial ?? defaults.tokenize.parseSpecial];
}

function call<T>(fn: () => T): T {
    try {
        return fn();
    } catch (error) {
        throw fromNative(error, captureStack());
    }
}



