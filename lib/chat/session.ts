/**
 * LlamaChatSession: a conversation on one context (or one of its sequences) rendered with
 * the model's chat template, each turn evaluating only what is new, with constrained
 * output and tool calls run through llama.cpp's own chat layer.
 */
import { LlamaConfigError, LlamaError } from '../errors.js';
import { LlamaContext } from '../context/context.js';
import { LlamaSequence } from '../context/sequence.js';
import type { CompletionResult, FinishReason, GeneratedToken } from '../context/generation.js';
import { modelChat, nativeModel, type LlamaModel } from '../model/model.js';
import { renderChat, type ChatParams, type ParsedReply } from '../model/chat-template.js';
import { checkGrammar, checkJsonSchema, checkOneConstraint, grammarText } from '../model/grammar.js';
import { chatRequestExtras } from '../options/grammar-options.js';
import { defaults } from '../options/defaults.js';
import { chatPromptOptionsSchema, chatSessionOptionsSchema, type ChatMessage, type ChatPromptOptions, type ChatTool } from '../options/chat-options.js';
import { parseOptions } from '../options/validate.js';
import type { NativeGrammar } from '../native/binding.js';
import { runToolCalls, type ChatToolCallResult } from './tools.js';
import { DeltaTracker, type ChatDelta } from './deltas.js';

export type { ChatDelta } from './deltas.js';
export type { ChatToolCallResult } from './tools.js';

/** Options of {@link LlamaChatSession}. */
export interface LlamaChatSessionOptions {
    /** The context to chat on (its sequences are picked per turn, the one holding the conversation first). One of `context` and `sequence` is required. */
    context?: LlamaContext;
    /** A sequence the session uses alone (see {@link LlamaContext.acquireSequence}): several sessions on one parallel context run at once. */
    sequence?: LlamaSequence;
    /** The system message the conversation starts with. Defaults to none. */
    systemPrompt?: string;
    /** A Jinja chat template to use instead of the model's. Defaults to the model's ({@link LlamaModel.chatTemplate}). */
    template?: string;
}

/** A streamed reply: the deltas as they come, and the result when it ends. */
export interface ChatStream extends AsyncIterable<ChatDelta> {
    readonly result: Promise<ChatPromptResult>;
}

/** What one prompt produced. */
export interface ChatPromptResult {
    /** The answer (without reasoning and tool-call markup). */
    text: string;
    /** The reasoning, for templates with a thinking block, when the model wrote one. */
    reasoning?: string;
    /** The tool calls of the prompt, in order, with their results (or, for tools without a handler, the last round's calls). */
    toolCalls?: ChatToolCallResult[];
    /** Why the last model turn ended (see {@link CompletionResult.finishReason}); 'contextFull' also when the conversation no longer fits. */
    finishReason: FinishReason;
    /** Summed over the model turns of this prompt (more than one when tools were called). */
    timings: {
        /** Prompt tokens sent. */
        promptTokens: number;
        /** Of those, tokens already in the sequence's cache (not evaluated again). */
        reusedTokens: number;
        promptMs: number;
        generatedTokens: number;
        generationMs: number;
        /** Model turns (1 + the rounds that called tools). */
        rounds: number;
    };
}

/** The text the sequence holds (rendered prompt and generated text) and its tokens. */
interface CacheText {
    text: string;
    tokens: Int32Array;
}

const decoder = new TextDecoder();

export class LlamaChatSession {
    readonly #context: LlamaContext;
    readonly #sequence: LlamaSequence | null;
    readonly #model: LlamaModel;
    readonly #template: string | undefined;
    readonly #systemPrompt: string | undefined;
    #messages: ChatMessage[] = [];
    /** Index of the first message after the system prompt that still fits the context. */
    #windowStart = 0;
    #cache: CacheText | null = null;
    #turn: Promise<unknown> = Promise.resolve();
    #disposed = false;

    constructor(options: LlamaChatSessionOptions) {
        const opts = parseOptions(chatSessionOptionsSchema, options, 'LlamaChatSession');
        if (opts.sequence !== undefined && !(opts.sequence instanceof LlamaSequence)) {
            throw new LlamaConfigError('Expected a LlamaSequence for sequence but received another object', 'INVALID_CONFIG', ['sequence']);
        }
        if (opts.context !== undefined && !(opts.context instanceof LlamaContext)) {
            throw new LlamaConfigError('Expected a LlamaContext for context but received another object', 'INVALID_CONFIG', ['context']);
        }
        const seq = opts.sequence as LlamaSequence | undefined;
        const ctx = (opts.context as LlamaContext | undefined) ?? (seq?.host as LlamaContext | undefined);
        if (ctx === undefined) throw new LlamaConfigError('LlamaChatSession needs a context or a sequence', 'INVALID_CONFIG', ['context']);
        if (seq !== undefined && opts.context !== undefined && seq.host !== opts.context) {
            throw new LlamaConfigError('The sequence belongs to another context than `context`', 'INVALID_CONFIG', ['sequence']);
        }
        this.#context = ctx;
        this.#sequence = seq ?? null;
        this.#model = ctx.model;
        this.#template = opts.template;
        this.#systemPrompt = opts.systemPrompt;
        this.reset();
    }

    /** The conversation so far (the system prompt first, when there is one). */
    get messages(): readonly Readonly<ChatMessage>[] {
        return this.#messages.map((m) => Object.freeze({ ...m, ...(m.toolCalls ? { toolCalls: m.toolCalls.map((c) => ({ ...c })) } : {}) }));
    }

    /** Starts over from the system prompt. The sequence's cache keeps the system prompt's tokens for the next turn. */
    reset(): void {
        this.#messages = this.#systemPrompt !== undefined ? [{ role: 'system', content: this.#systemPrompt }] : [];
        this.#windowStart = this.#messages.length;
    }

    /** Sends a user message and resolves with the model's answer (after any tool calls). */
    async prompt(text: string, options: ChatPromptOptions = {}): Promise<ChatPromptResult> {
        const stream = this.promptStream(text, options);
        for await (const _ of stream) {
            // the deltas are for promptStream's callers
        }
        return stream.result;
    }

    /**
     * Like {@link prompt}, streaming the answer's text and reasoning as they are generated.
     * Iterate it to the end (or break: the reply is then aborted); `result` resolves when it ends.
     */
    promptStream(text: string, options: ChatPromptOptions = {}): ChatStream {
        if (typeof text !== 'string') throw new LlamaConfigError(`Expected a string for text but received ${typeof text}`, 'INVALID_ARGUMENT', ['text']);
        const opts = parseOptions(chatPromptOptionsSchema, options, 'prompt()');
        if (this.#disposed) throw new LlamaError('DISPOSED', 'This chat session has been disposed');
        const queue = new DeltaQueue();
        const internalAbort = new AbortController();
        const signal = opts.signal ? AbortSignal.any([opts.signal, internalAbort.signal]) : internalAbort.signal;
        const before = this.#turn;
        const result = (async () => {
            await before.catch(() => undefined);
            try {
                return await this.#run(text, { ...opts, signal }, (d) => queue.push(d));
            } finally {
                queue.end();
            }
        })();
        this.#turn = result.catch(() => undefined);
        result.catch((error: unknown) => queue.fail(error));
        return {
            result,
            [Symbol.asyncIterator]: () => queue.iterator(() => internalAbort.abort()),
        };
    }

    /** Ends the session; a running prompt is not interrupted (abort it with its signal). */
    dispose(): void {
        this.#disposed = true;
    }

    [Symbol.dispose](): void {
        this.dispose();
    }

    async #run(text: string, opts: ReturnType<typeof parseOptions<typeof chatPromptOptionsSchema>>, emit: (d: ChatDelta) => void): Promise<ChatPromptResult> {
        const committed = this.#messages.length;
        const windowStart = this.#windowStart;
        this.#messages.push({ role: 'user', content: text });
        const tools = opts.tools && Object.keys(opts.tools).length > 0 ? opts.tools : undefined;
        const maxRounds = opts.maxToolRounds ?? defaults.chat.maxToolRounds;
        const timings = { promptTokens: 0, reusedTokens: 0, promptMs: 0, generatedTokens: 0, generationMs: 0, rounds: 0 };
        const calls: ChatToolCallResult[] = [];
        try {
            for (let round = 0; ; round++) {
                const toolChoice = tools === undefined ? 'auto' : round >= maxRounds ? 'none' : round === 0 ? (opts.toolChoice ?? defaults.chat.toolChoice) : 'auto';
                // After the last round that may call tools, calls are neither constrained nor parsed.
                const turn = await this.#modelTurn(opts, round < maxRounds ? tools : undefined, toolChoice, emit, tools);
                if (turn === null) {
                    if (round === 0) {
                        this.#messages.length = committed;
                        this.#windowStart = windowStart;
                    }
                    // After tool rounds, the calls (whose handlers ran) and their results stay.
                    return { text: '', ...(calls.length > 0 ? { toolCalls: calls } : {}), finishReason: 'contextFull', timings };
                }
                const { reply, completion } = turn;
                timings.rounds++;
                timings.promptTokens += completion.timings.promptTokens;
                timings.reusedTokens += completion.timings.reusedTokens;
                timings.promptMs += completion.timings.promptMs;
                timings.generatedTokens += completion.timings.generatedTokens;
                timings.generationMs += completion.timings.generationMs;
                const toolCalls = reply.toolCalls.map((c, i) => ({ id: c.id || `call_${timings.rounds}_${i}`, name: c.name, arguments: c.arguments }));
                this.#messages.push({
                    role: 'assistant',
                    content: reply.content,
                    ...(reply.reasoning ? { reasoning: reply.reasoning } : {}),
                    ...(toolCalls.length > 0 ? { toolCalls } : {}),
                });
                const ended = completion.finishReason === 'eos' || completion.finishReason === 'stop';
                const runnable = tools !== undefined && round < maxRounds && toolCalls.length > 0 && ended && toolCalls.every((c) => tools[c.name]?.handler !== undefined);
                if (!runnable) {
                    calls.push(...toolCalls.map((c) => ({ ...c })));
                    return {
                        text: reply.content,
                        ...(reply.reasoning ? { reasoning: reply.reasoning } : {}),
                        ...(calls.length > 0 ? { toolCalls: calls } : {}),
                        finishReason: completion.finishReason,
                        timings,
                    };
                }
                const results = await runToolCalls(toolCalls, tools as Record<string, ChatTool>, opts.signal);
                for (const r of results) {
                    calls.push(r);
                    this.#messages.push({ role: 'tool', content: r.result, toolCallId: r.id, name: r.name });
                }
            }
        } catch (error) {
            this.#messages.length = committed;
            this.#windowStart = windowStart;
            throw error;
        }
    }

    /** One model turn on the conversation: render, fit, generate, parse. Null when it cannot fit. */
    async #modelTurn(
        opts: ReturnType<typeof parseOptions<typeof chatPromptOptionsSchema>>,
        tools: Record<string, ChatTool> | undefined,
        toolChoice: 'auto' | 'required' | 'none',
        emit: (d: ChatDelta) => void,
        shown: Record<string, ChatTool> | undefined = tools,
    ): Promise<{ reply: ParsedReply; completion: CompletionResult } | null> {
        const config = this.#context.config;
        const onContextFull = opts.onContextFull ?? config.onContextFull;
        const userGrammar = shown === undefined ? userConstraint(opts) : undefined;
        // llama.cpp compiles these while rendering: the same bounds as for generate()'s jsonSchema.
        if (userGrammar?.kind === 'schema') checkJsonSchema(userGrammar.schema);
        for (const [name, tool] of Object.entries(tools ?? {})) if (tool.parameters) checkJsonSchema(tool.parameters, `parameters of tool ${name}`);
        if (shown !== undefined && userConstraint(opts) !== undefined) {
            throw new LlamaConfigError("grammar, jsonSchema and responseFormat cannot be combined with tools (llama.cpp's server refuses a grammar with tools)", 'INVALID_CONFIG', ['tools']);
        }
        let rendered;
        for (;;) {
            rendered = await this.#render(opts, shown, toolChoice, userGrammar);
            const room = config.contextSizePerSequence - rendered.tokens.length;
            if (room >= Math.min(opts.maxTokens ?? defaults.generate.maxTokens, Math.floor(config.contextSizePerSequence / 4))) break;
            // Short of room: with 'shift', drop the oldest turn after the system prompt and render again.
            if (onContextFull === 'shift' && this.#dropOldestTurn()) continue;
            if (room >= 1) break; // generate what fits; the sequence's policy decides when it is full
            return null;
        }
        const { params, tokens } = rendered;
        const grammar = this.#grammar(params, userGrammar, toolChoice === 'required');
        const stops = [...(opts.stop === undefined ? [] : typeof opts.stop === 'string' ? [opts.stop] : opts.stop), ...params.additionalStops];
        const renderSpecial = this.#preservedTokens(params);
        const { tools: _t, toolChoice: _c, enableThinking: _e, maxToolRounds: _m, grammar: _g, jsonSchema: _j, responseFormat: _r, ...sampling } = opts;
        const generateOptions = {
            ...sampling,
            stop: stops,
            onContextFull,
            ...(onContextFull === 'shift' ? { keep: Math.min(await this.#systemTokens(), Math.floor(config.contextSizePerSequence / 2)) } : {}),
            [chatRequestExtras]: { grammar, renderSpecial },
        };
        const target = this.#sequence ?? this.#context;
        const run = target.generate(tokens, generateOptions);
        const tracker = new DeltaTracker(params, tools !== undefined);
        const pieces: Uint8Array[] = [];
        const native = nativeModel(this.#model);
        const special = new Set(renderSpecial);
        let step: IteratorResult<GeneratedToken, CompletionResult>;
        let generated = '';
        while (!(step = await run.next()).done) {
            const t = step.value;
            pieces.push(native.tokenToPiece(t.token, special.has(t.token)));
            generated += t.text;
            for (const d of tracker.update(generated, true)) emit(d);
        }
        const completion = step.value;
        for (const d of tracker.update(completion.text, false)) emit(d);
        // What the sequence holds now, as text: the next turn sends only what follows it.
        const generatedText = decoder.decode(Buffer.concat(pieces));
        const all = new Int32Array(tokens.length + completion.tokens.length);
        all.set(tokens);
        all.set(completion.tokens, tokens.length);
        this.#cache = completion.timings.contextShifts === 0 ? { text: params.prompt + generatedText, tokens: all } : null;
        return { reply: tracker.final(completion.text), completion };
    }

    async #render(
        opts: ReturnType<typeof parseOptions<typeof chatPromptOptionsSchema>>,
        tools: Record<string, ChatTool> | undefined,
        toolChoice: 'auto' | 'required' | 'none',
        userGrammar: UserConstraint | undefined,
    ): Promise<{ params: ChatParams; tokens: Int32Array }> {
        const chat = modelChat(this.#model);
        const messages = [...this.#messages.slice(0, this.#systemCount()), ...this.#messages.slice(this.#windowStart)];
        const input = {
            messages,
            addGenerationPrompt: true,
            tools,
            toolChoice,
            enableThinking: opts.enableThinking ?? defaults.chat.enableThinking,
            ...(userGrammar?.kind === 'schema' ? { jsonSchema: userGrammar.schema } : {}),
        };
        const templates = await chat.templates(this.#template, opts.signal);
        const cache = this.#cache;
        const out = await renderChat(nativeModel(this.#model), templates, input, true, opts.signal, cache?.text);
        let tokens = out.tokens!;
        if (cache !== null && (out.params.tokensFrom ?? 0) > 0) {
            const joined = new Int32Array(cache.tokens.length + tokens.length);
            joined.set(cache.tokens);
            joined.set(tokens, cache.tokens.length);
            tokens = joined;
        }
        return { params: out.params, tokens };
    }

    /** The sampler grammar of a turn: the template's (tool calls, a JSON response format), else the user's GBNF. */
    #grammar(params: ChatParams, user: UserConstraint | undefined, callFirst: boolean): NativeGrammar | undefined {
        const native = nativeModel(this.#model);
        if (params.grammar !== '') {
            const text = callFirst && !params.grammarLazy ? withoutPreamble(params.grammar) : params.grammar;
            checkGrammar(native, text);
            const patterns: string[] = [];
            const tokens: number[] = [];
            for (const t of params.grammarTriggers) {
                if (t.type === 'token') tokens.push(t.token);
                else if (t.type === 'word') {
                    // As llama.cpp's server: a word that is one preserved token triggers on that token.
                    const ids = params.preservedTokens.includes(t.value) ? this.#model.tokenize(t.value, { addSpecial: false, parseSpecial: true }) : [];
                    if (ids.length === 1) tokens.push(ids[0]);
                    else patterns.push(escapeRegex(t.value));
                }
                else if (t.type === 'pattern') patterns.push(t.value);
                else patterns.push(t.value === '' ? '^$' : `${t.value.startsWith('^') ? '' : '^'}${t.value}${t.value.endsWith('$') ? '' : '$'}`);
            }
            if (params.grammarLazy && patterns.length === 0 && tokens.length === 0) {
                throw new LlamaError('GRAMMAR_FAILED', "The template's tool-call grammar is lazy but has no trigger (llama.cpp's server refuses it too)");
            }
            // As llama.cpp's server: a template's grammar starts at the generation prompt, which the prompt already holds.
            const prefill = !params.grammarLazy && params.generationPrompt !== '' ? this.#prefillTokens(params.generationPrompt) : [];
            return { text, lazy: params.grammarLazy, patterns, tokens, prefill };
        }
        if (user === undefined) return undefined;
        const text = user.kind === 'gbnf' ? user.text : grammarText({ jsonSchema: user.schema as Record<string, unknown> })!;
        checkGrammar(native, text);
        return { text, lazy: false, patterns: [], tokens: [], prefill: [] };
    }

    /**
     * Tokens whose pieces are exactly the generation prompt, for the grammar to accept first
     * (common/sampling.cpp drops a leading space a tokenizer adds; where a SentencePiece
     * tokenizer merged that space into the first piece, the text is tokenized after a
     * newline and the newline's tokens dropped).
     */
    #prefillTokens(generationPrompt: string): number[] {
        const native = nativeModel(this.#model);
        const piecesOf = (ids: ArrayLike<number>) => decoder.decode(Buffer.concat(Array.from(ids, (t) => native.tokenToPiece(t, true))));
        const ids = Array.from(this.#model.tokenize(generationPrompt, { addSpecial: false, parseSpecial: true }));
        if (piecesOf(ids) === generationPrompt) return ids;
        if (ids.length > 0 && /^\s+$/.test(piecesOf([ids[0]])) && piecesOf(ids.slice(1)) === generationPrompt) return ids.slice(1);
        const after = Array.from(this.#model.tokenize(`\n${generationPrompt}`, { addSpecial: false, parseSpecial: true }));
        for (let i = 1; i <= Math.min(after.length, 3); i++) {
            if (/^\s+$/.test(piecesOf(after.slice(0, i))) && piecesOf(after.slice(i)) === generationPrompt) return after.slice(i);
        }
        throw new LlamaError('GRAMMAR_FAILED', `The template's grammar starts with its generation prompt ${JSON.stringify(generationPrompt)}, which this vocabulary cannot tokenize piece for piece`);
    }

    /** The token ids of the format's preserved tokens (their text stays in the output). */
    #preservedTokens(params: ChatParams): number[] {
        const ids: number[] = [];
        for (const text of params.preservedTokens) {
            const t = this.#model.tokenize(text, { addSpecial: false, parseSpecial: true });
            if (t.length === 1) ids.push(t[0]);
        }
        return ids;
    }

    /** Tokens of the system prompt's part of the conversation (what a context shift keeps). */
    async #systemTokens(): Promise<number> {
        const system = this.#messages.slice(0, this.#systemCount());
        if (system.length === 0) return 0;
        const tokens = await this.#model.tokenizeChat(system, { addGenerationPrompt: false, ...(this.#template ? { template: this.#template } : {}) });
        return tokens.length;
    }

    #systemCount(): number {
        return this.#messages.length > 0 && this.#messages[0].role === 'system' ? 1 : 0;
    }

    /** Drops the oldest user turn (and what answered it) from what is rendered; false when none is left to drop. */
    #dropOldestTurn(): boolean {
        const last = this.#messages.length - 1; // the current user message always stays
        let i = this.#windowStart;
        if (i >= last) return false;
        i++;
        while (i < last && this.#messages[i].role !== 'user') i++;
        this.#windowStart = i;
        return true;
    }
}

type UserConstraint = { kind: 'gbnf'; text: string } | { kind: 'schema'; schema: unknown };

/** The user's output constraint: a GBNF grammar, or a schema (jsonSchema, responseFormat) the template may wrap. */
function userConstraint(opts: ChatPromptOptions): UserConstraint | undefined {
    checkOneConstraint(opts);
    if (opts.grammar !== undefined) return { kind: 'gbnf', text: opts.grammar };
    if (opts.jsonSchema !== undefined) return { kind: 'schema', schema: opts.jsonSchema };
    if (opts.responseFormat?.type === 'json_object') return { kind: 'schema', schema: opts.responseFormat.schema ?? {} };
    return undefined;
}

/**
 * toolChoice 'required': llama.cpp's grammar lets free text come before the call (`root ::=
 * ... until-N? tool-calls`), which a model may never leave; without that optional preamble
 * the reply starts with the call (after any reasoning block the root rule keeps).
 */
function withoutPreamble(grammar: string): string {
    return grammar.replace(/^(root ::= .*?) until-\d+\?(?= )/m, '$1');
}

function escapeRegex(s: string): string {
    return s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
}

/** Deltas from the producer to the stream's reader. */
class DeltaQueue {
    #items: ChatDelta[] = [];
    #done = false;
    #error: unknown = undefined;
    #wake: (() => void) | null = null;

    push(d: ChatDelta): void {
        if (d.text === '') return;
        this.#items.push(d);
        this.#wake?.();
    }

    end(): void {
        this.#done = true;
        this.#wake?.();
    }

    fail(error: unknown): void {
        this.#error = error;
        this.end();
    }

    iterator(onReturn: () => void): AsyncIterator<ChatDelta> {
        return {
            next: async () => {
                for (;;) {
                    if (this.#items.length > 0) return { value: this.#items.shift()!, done: false };
                    if (this.#done) {
                        if (this.#error !== undefined) throw this.#error;
                        return { value: undefined, done: true };
                    }
                    await new Promise<void>((r) => (this.#wake = r));
                    this.#wake = null;
                }
            },
            return: async () => {
                onReturn();
                return { value: undefined, done: true };
            },
        };
    }
}
