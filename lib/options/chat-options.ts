/** Options of chat templates (applyChatTemplate, tokenizeChat) and chat sessions. */
import { z } from 'zod';
import { bool, fn, signal } from './validate.js';
import { generateOptionsSchema, type GenerateOptions } from './generate-options.js';

/** A tool call in a message: `arguments` is JSON text (an object is serialized). */
export interface ChatToolCall {
    /** The call's id, when the model's format has one. */
    id?: string;
    /** The tool's name. */
    name: string;
    /** The arguments as JSON text (an object passed in is serialized). */
    arguments: string;
}

/** One message of a conversation. */
export interface ChatMessage {
    role: 'system' | 'user' | 'assistant' | 'tool';
    /** The text (for 'tool': the tool's result). */
    content: string;
    /** An assistant message's reasoning ("thinking"), rendered as the template renders `reasoning_content`. */
    reasoning?: string;
    /** The tools an assistant message called. */
    toolCalls?: ChatToolCall[];
    /** A tool message: the id of the call it answers. */
    toolCallId?: string;
    /** A tool message: the tool's name. */
    name?: string;
}

/** A tool the model may call: what the template shows it, and (in a session) the function that runs it. */
export interface ChatTool {
    /** What the tool does, for the model. */
    description?: string;
    /** A JSON schema of the arguments object. Defaults to `{ type: 'object', properties: {} }`. */
    parameters?: Record<string, unknown>;
    /**
     * Runs the call with the parsed arguments; its result (a string, or a value serialized as
     * JSON) goes back to the model as the tool's message. A handler that throws sends the
     * error's message back as the result (`{ "error": ... }`). Only sessions call handlers.
     */
    handler?: (args: Record<string, unknown>, call: { id?: string; name: string; signal?: AbortSignal }) => unknown;
}

/** How deeply a JSON text's arrays and objects nest (brackets outside strings). */
export function argumentsNesting(text: string): number {
    let depth = 0;
    let max = 0;
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (c === '"') {
            for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
        } else if (c === '[' || c === '{') {
            max = Math.max(max, ++depth);
        } else if (c === ']' || c === '}') {
            depth = Math.max(0, depth - 1);
        }
    }
    return max;
}

const jsonObject = () => z.record(z.string(), z.unknown(), { error: 'a JSON schema (an object)' });

export const chatToolCallSchema = z.strictObject({
    id: z.string({ error: 'a string' }).optional(),
    name: z.string({ error: 'a tool name (string)' }).min(1, { error: 'a non-empty tool name' }),
    arguments: z.union([z.string(), z.record(z.string(), z.unknown())], { error: 'JSON text or an object' })
        .transform((v) => (typeof v === 'string' ? v : JSON.stringify(v)))
        // llama.cpp parses the arguments and converts them recursively for the template.
        .refine((v) => argumentsNesting(v) <= 64, { error: 'JSON arguments nested at most 64 levels deep' }),
});

export const chatMessageSchema = z.strictObject({
    role: z.enum(['system', 'user', 'assistant', 'tool'], { error: "one of 'system', 'user', 'assistant', 'tool'" }),
    content: z.string({ error: 'a string' }),
    reasoning: z.string({ error: 'a string' }).optional(),
    toolCalls: z.array(chatToolCallSchema, { error: 'an array of { name, arguments, id? }' }).optional(),
    toolCallId: z.string({ error: 'a string' }).optional(),
    name: z.string({ error: 'a string' }).optional(),
});

export const chatMessagesSchema = z.array(chatMessageSchema, { error: 'an array of messages { role, content }' });

export const chatToolSchema = z.strictObject({
    description: z.string({ error: 'a string' }).optional(),
    parameters: jsonObject().optional(),
    handler: fn<NonNullable<ChatTool['handler']>>().optional(),
});

const toolsSchema = z.record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, { error: 'a tool name of letters, digits, _ . - (at most 64)' }),
    chatToolSchema,
    { error: 'an object of tools { name: { description?, parameters?, handler? } }' },
);

const templateSource = () => z.string({ error: 'a Jinja chat template (string)' }).min(1, { error: 'a non-empty Jinja chat template' });

export const applyChatTemplateOptionsSchema = z.strictObject({
    addGenerationPrompt: bool().optional(),
    tools: toolsSchema.optional(),
    toolChoice: z.enum(['auto', 'required', 'none'], { error: "one of 'auto', 'required', 'none'" }).optional(),
    enableThinking: bool().optional(),
    template: templateSource().optional(),
    now: z.date({ error: 'a Date' }).optional(),
    signal: signal().optional(),
});

/** Options of {@link LlamaModel.applyChatTemplate} and {@link LlamaModel.tokenizeChat}. */
export interface ApplyChatTemplateOptions {
    /** End with the start of the assistant's turn (the template's `add_generation_prompt`). Defaults to `true`. */
    addGenerationPrompt?: boolean;
    /** Tools the template shows the model (their handlers are not called here). Defaults to none. */
    tools?: Record<string, ChatTool>;
    /** 'required': the model must call a tool; 'none': it may not (the tools are still shown). Defaults to `'auto'`. */
    toolChoice?: 'auto' | 'required' | 'none';
    /** For templates with a thinking mode: whether it is on (`enable_thinking`). Defaults to `true`. */
    enableThinking?: boolean;
    /** A Jinja template to use instead of the model's (llama.cpp `--chat-template-file`'s contents). Defaults to the model's. */
    template?: string;
    /** The date templates see (`strftime_now`). Defaults to now. */
    now?: Date;
    /** Aborts rendering: rejects with ABORTED. Defaults to none. */
    signal?: AbortSignal;
}

export const chatSessionOptionsSchema = z.strictObject({
    context: z.custom<object>((v) => typeof v === 'object' && v !== null, { error: 'a LlamaContext' }).optional(),
    sequence: z.custom<object>((v) => typeof v === 'object' && v !== null, { error: 'a LlamaSequence' }).optional(),
    systemPrompt: z.string({ error: 'a string' }).optional(),
    template: templateSource().optional(),
});

const { addSpecial: _a, parseSpecial: _p, keep: _k, ...generateShape } = generateOptionsSchema.shape;

export const chatPromptOptionsSchema = z.strictObject({
    ...generateShape,
    tools: toolsSchema.optional(),
    toolChoice: z.enum(['auto', 'required', 'none'], { error: "one of 'auto', 'required', 'none'" }).optional(),
    enableThinking: bool().optional(),
    maxToolRounds: z.number({ error: 'a positive integer' }).int({ error: 'a positive integer' }).min(1, { error: 'a positive integer' }).max(1000, { error: 'a positive integer up to 1000' }).optional(),
});

/** Options of {@link LlamaChatSession.prompt} and {@link LlamaChatSession.promptStream}. */
export interface ChatPromptOptions extends Omit<GenerateOptions, 'addSpecial' | 'parseSpecial' | 'keep'> {
    /**
     * Tools the model may call: the template shows them, a grammar that starts at the
     * template's tool-call marker keeps each call well-formed, llama.cpp's parser extracts
     * the calls, their handlers run and the results go back to the model, until it answers.
     * Tools without a handler end the prompt with the calls in the result. Defaults to none.
     */
    tools?: Record<string, ChatTool>;
    /** 'required': the model must call a tool (in the first round); 'none': it may not. Defaults to `'auto'`. */
    toolChoice?: 'auto' | 'required' | 'none';
    /** For templates with a thinking mode: whether it is on. Defaults to `true`. */
    enableThinking?: boolean;
    /** Model turns of one prompt that may call tools; the next must answer. Defaults to `8`. */
    maxToolRounds?: number;
}
