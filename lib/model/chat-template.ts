/**
 * Chat templates through llama.cpp's common/chat, off the JS thread and bounded: a model's
 * own template (or an override) initialized once, conversations rendered as llama.cpp's
 * server renders them, generated text parsed back into content, reasoning and tool calls.
 */
import { binding, type NativeChatTemplates, type NativeModel } from '../native/binding.js';
import { withSignal } from '../native/abortable.js';
import { captureStack, fromNative, LlamaAbortError } from '../errors.js';
import { defaults } from '../options/defaults.js';
import type { ChatMessage, ChatTool } from '../options/chat-options.js';

/** Where a model's chat template came from. */
export type ChatTemplateOrigin = 'file' | 'override' | 'fallback';

/** A model's chat template, as llama.cpp initialized it. */
export interface ChatTemplateInfo {
    /** The Jinja source in use (for 'fallback': llama.cpp's built-in ChatML template). */
    source: string;
    /**
     * 'file': the model's `tokenizer.chat_template`; 'override': the `chatTemplate` load option;
     * 'fallback': the file has none, and llama.cpp uses ChatML.
     */
    origin: ChatTemplateOrigin;
    /** The file's separate tool-use template (`tokenizer.chat_template.tool_use`), if it has one. */
    toolUseSource: string | null;
    /** Whether the template has a thinking mode that `enableThinking` switches. */
    supportsThinking: boolean;
    /** What llama.cpp found the template supports (`supports_tools`, `supports_system_role`, ...). */
    capabilities: Readonly<Record<string, boolean>>;
}

/** common_chat_params as the native layer returns it. @internal */
export interface ChatParams {
    prompt: string;
    format: number;
    formatName: string;
    grammar: string;
    grammarLazy: boolean;
    grammarTriggers: { type: 'token' | 'word' | 'pattern' | 'pattern_full'; value: string; token: number }[];
    preservedTokens: string[];
    additionalStops: string[];
    generationPrompt: string;
    parser: string;
    supportsThinking: boolean;
    thinkingStartTag: string;
    thinkingEndTags: string[];
    /** Whether the prompt's user text could be told apart (for tokenization). */
    inputMarks?: boolean;
    /** Where the tokens start in the prompt (a byte offset): 0 for all of it, else the length of the prefix given. */
    tokensFrom?: number;
}

/** A parsed assistant message. @internal */
export interface ParsedReply {
    content: string;
    reasoning: string;
    toolCalls: { name: string; arguments: string; id: string }[];
}

/** Initialized templates. @internal */
export interface ChatTemplates {
    handle: NativeChatTemplates;
    info: Omit<ChatTemplateInfo, 'origin'> & { explicit: boolean };
}


/** Initializes the templates of `model`, or `override` when not empty (TEMPLATE_FAILED when they do not parse). @internal */
export async function initChatTemplates(model: NativeModel, override: string, signal?: AbortSignal): Promise<ChatTemplates> {
    const { handle, info } = await withSignal(() => binding().chatInit(model, override, defaults.chat.templateLimits), signal, captureStack(), 'Initializing the chat template');
    const parsed = JSON.parse(info) as { source: string; toolUseSource: string; explicit: boolean; supportsThinking: boolean; caps: Record<string, boolean> };
    return {
        handle,
        info: {
            source: parsed.source,
            toolUseSource: parsed.toolUseSource === '' ? null : parsed.toolUseSource,
            explicit: parsed.explicit,
            supportsThinking: parsed.supportsThinking,
            capabilities: Object.freeze({ ...parsed.caps }),
        },
    };
}

/** The OpenAI-style messages llama.cpp's server reads (common_chat_msgs_parse_oaicompat). @internal */
export function toOpenAiMessages(messages: readonly ChatMessage[]): object[] {
    return messages.map((m) => ({
        role: m.role,
        content: m.content,
        ...(m.reasoning !== undefined && m.reasoning !== '' ? { reasoning_content: m.reasoning } : {}),
        ...(m.toolCalls && m.toolCalls.length > 0
            ? {
                  tool_calls: m.toolCalls.map((c) => ({
                      type: 'function',
                      ...(c.id ? { id: c.id } : {}),
                      function: { name: c.name, arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments) },
                  })),
              }
            : {}),
        ...(m.toolCallId !== undefined ? { tool_call_id: m.toolCallId } : {}),
        ...(m.name !== undefined ? { name: m.name } : {}),
    }));
}

/** The OpenAI-style tools array. @internal */
export function toOpenAiTools(tools: Readonly<Record<string, ChatTool>>): object[] {
    return Object.entries(tools).map(([name, t]) => ({
        type: 'function',
        function: {
            name,
            ...(t.description !== undefined ? { description: t.description } : {}),
            parameters: t.parameters ?? { type: 'object', properties: {} },
        },
    }));
}

/** What a render needs besides the messages. @internal */
export interface RenderInput {
    messages: readonly ChatMessage[];
    addGenerationPrompt: boolean;
    tools?: Readonly<Record<string, ChatTool>>;
    toolChoice: 'auto' | 'required' | 'none';
    enableThinking: boolean;
    now?: Date;
    /** A grammar or schema the reply follows (the template may wrap it, e.g. around a thinking block). */
    grammar?: string;
    jsonSchema?: unknown;
}

/** The request body llama.cpp's server would build (tools/server/server-common.cpp). @internal */
export function renderBody(input: RenderInput): object {
    const tools = input.tools && Object.keys(input.tools).length > 0 ? toOpenAiTools(input.tools) : undefined;
    return {
        messages: toOpenAiMessages(input.messages),
        ...(tools ? { tools, tool_choice: input.toolChoice } : {}),
        add_generation_prompt: input.addGenerationPrompt,
        enable_thinking: input.enableThinking,
        reasoning_format: 'deepseek',
        ...(input.grammar !== undefined ? { grammar: input.grammar } : {}),
        ...(input.jsonSchema !== undefined ? { json_schema: input.jsonSchema } : {}),
        ...(input.now ? { now: input.now.getTime() } : {}),
    };
}

/** Renders a conversation; with `tokenize`, also its tokens. @internal */
export async function renderChat(
    model: NativeModel,
    templates: ChatTemplates,
    input: RenderInput,
    tokenize: boolean,
    signal?: AbortSignal,
    prefix?: string,
): Promise<{ params: ChatParams; tokens?: Int32Array }> {
    const body = JSON.stringify(renderBody(input));
    const out = await withSignal(
        () => binding().chatApply(model, templates.handle, body, defaults.chat.templateLimits, tokenize, prefix),
        signal,
        captureStack(),
        'Rendering the chat template',
    );
    return { params: JSON.parse(out.params) as ChatParams, tokens: out.tokens };
}

/** Parses generated text with the format of `params` (null when llama.cpp's parser fails). @internal */
export function parseReply(text: string, params: ChatParams, isPartial: boolean, parseToolCalls: boolean): ParsedReply | null {
    const out = JSON.parse(binding().chatParse(text, isPartial, JSON.stringify({
        format: params.format,
        generationPrompt: params.generationPrompt,
        parser: params.parser,
        reasoningFormat: 'deepseek',
        parseToolCalls,
    }))) as ParsedReply | { error: string };
    return 'error' in out ? null : out;
}
