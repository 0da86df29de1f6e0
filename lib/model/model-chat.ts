/**
 * A model's chat templates: its own (or the `chatTemplate` load option's), initialized at
 * load, and the `template` overrides of calls, initialized on first use and kept a while.
 */
import type { NativeModel } from '../native/binding.js';
import { LlamaError } from '../errors.js';
import { defaults } from '../options/defaults.js';
import type { ApplyChatTemplateOptions, ChatMessage } from '../options/chat-options.js';
import { initChatTemplates, renderChat, type ChatParams, type ChatTemplateInfo, type ChatTemplates, type RenderInput } from './chat-template.js';

/** @internal */
export class ModelChat {
    readonly #native: () => NativeModel;
    readonly #own: ChatTemplates | null;
    readonly #ownError: unknown;
    readonly info: Readonly<ChatTemplateInfo>;
    /** Overrides by source, most recently used last. */
    readonly #overrides = new Map<string, Promise<ChatTemplates>>();

    private constructor(native: () => NativeModel, own: ChatTemplates | null, ownError: unknown, info: ChatTemplateInfo) {
        this.#native = native;
        this.#own = own;
        this.#ownError = ownError;
        this.info = Object.freeze(info);
    }

    /**
     * Initializes the model's own template; one that fails (it does not parse, or goes over the
     * template limits) makes the model's chat calls reject with that error, not the load.
     */
    static async create(native: () => NativeModel, fileSource: string | undefined, override: string | undefined, signal?: AbortSignal): Promise<ModelChat> {
        const origin = override !== undefined ? 'override' : fileSource !== undefined && fileSource !== '' ? 'file' : 'fallback';
        try {
            const own = await initChatTemplates(native(), override ?? '', signal);
            return new ModelChat(native, own, undefined, { ...infoOf(own), origin });
        } catch (error) {
            if (error instanceof LlamaError && error.code === 'ABORTED') throw error;
            const source = override ?? fileSource ?? '';
            return new ModelChat(native, null, error, { source, origin, toolUseSource: null, supportsThinking: false, capabilities: Object.freeze({}) });
        }
    }

    /** The templates of a call: the model's, or those of `template`. */
    async templates(template: string | undefined, signal?: AbortSignal): Promise<ChatTemplates> {
        if (template === undefined) {
            if (this.#own === null) throw this.#ownError;
            return this.#own;
        }
        let entry = this.#overrides.get(template);
        if (entry === undefined) {
            entry = initChatTemplates(this.#native(), template, signal);
            // A failed init is not kept: the next call tries again (and says why again).
            entry.catch(() => this.#overrides.delete(template));
            if (this.#overrides.size >= defaults.chat.templateCache) {
                this.#overrides.delete(this.#overrides.keys().next().value!);
            }
        } else {
            this.#overrides.delete(template);
        }
        this.#overrides.set(template, entry);
        return entry;
    }

    /** Renders (and with `tokenize`, tokenizes) a conversation. */
    async render(input: RenderInput, template: string | undefined, tokenize: boolean, signal?: AbortSignal): Promise<{ params: ChatParams; tokens?: Int32Array }> {
        const templates = await this.templates(template, signal);
        return renderChat(this.#native(), templates, input, tokenize, signal);
    }

    /** The render input of applyChatTemplate's options. */
    static input(messages: readonly ChatMessage[], opts: ApplyChatTemplateOptions): RenderInput {
        return {
            messages,
            addGenerationPrompt: opts.addGenerationPrompt ?? defaults.chat.addGenerationPrompt,
            tools: opts.tools,
            toolChoice: opts.toolChoice ?? defaults.chat.toolChoice,
            enableThinking: opts.enableThinking ?? defaults.chat.enableThinking,
            now: opts.now,
        };
    }
}

function infoOf(t: ChatTemplates): Omit<ChatTemplateInfo, 'origin'> {
    return { source: t.info.source, toolUseSource: t.info.toolUseSource, supportsThinking: t.info.supportsThinking, capabilities: t.info.capabilities };
}
