// Conversations for the chat template tests, and the OpenAI-style request bodies llama.cpp's
// server reads for them (written here from the OpenAI format, not with the library's converter).
import type { ChatMessage, ChatTool } from '../../../lib/index.js';

/** The date the templates see (strftime_now): fixed, and not the templates' own default dates. */
export const NOW = new Date(Date.UTC(2025, 2, 14, 15, 9, 26));

/** The tool of the tool cases. */
export const TOOLS: Record<string, ChatTool> = {
    get_weather: {
        description: 'Get the current weather in a city',
        parameters: {
            type: 'object',
            properties: {
                city: { type: 'string', description: 'The name of the city' },
                unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
            },
            required: ['city'],
        },
    },
};

/** system, user, assistant, user. */
export const CONVERSATION: ChatMessage[] = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is the capital of France?' },
    { role: 'assistant', content: 'The capital of France is Paris.' },
    { role: 'user', content: 'And of Germany?' },
];

/** A rendering to compare: messages and the options of applyChatTemplate (besides template and now). */
export interface ChatCase {
    name: string;
    messages: ChatMessage[];
    options: { tools?: Record<string, ChatTool>; addGenerationPrompt?: boolean; enableThinking?: boolean };
}

export const CASES: ChatCase[] = [
    { name: 'conversation', messages: CONVERSATION, options: { addGenerationPrompt: true } },
    { name: 'conversation with a tool', messages: CONVERSATION, options: { addGenerationPrompt: true, tools: TOOLS } },
    {
        name: 'a tool call and its result',
        messages: [
            { role: 'system', content: 'You are a helpful assistant.' },
            { role: 'user', content: 'What is the weather in Paris?' },
            { role: 'assistant', content: '', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
            { role: 'tool', content: '{"temperature":21,"unit":"celsius"}', toolCallId: 'call_1', name: 'get_weather' },
        ],
        options: { addGenerationPrompt: true, tools: TOOLS },
    },
    {
        name: 'reasoning, thinking off, no generation prompt',
        messages: [
            { role: 'user', content: 'Hello!' },
            { role: 'assistant', content: 'Hi! How can I help?', reasoning: 'The user greets me.' },
        ],
        options: { addGenerationPrompt: false, enableThinking: false },
    },
];

/** A message as an OpenAI chat completion request has it. */
function openAiMessage(m: ChatMessage): object {
    return {
        role: m.role,
        content: m.content,
        ...(m.reasoning !== undefined ? { reasoning_content: m.reasoning } : {}),
        ...(m.toolCalls !== undefined
            ? { tool_calls: m.toolCalls.map((c) => ({ type: 'function', ...(c.id !== undefined ? { id: c.id } : {}), function: { name: c.name, arguments: c.arguments } })) }
            : {}),
        ...(m.toolCallId !== undefined ? { tool_call_id: m.toolCallId } : {}),
        ...(m.name !== undefined ? { name: m.name } : {}),
    };
}

/** The request body of a case for llama-kv-chat-reference. */
export function referenceBody(c: ChatCase, now: Date = NOW): object {
    const tools = c.options.tools;
    return {
        messages: c.messages.map(openAiMessage),
        ...(tools !== undefined
            ? { tools: Object.entries(tools).map(([name, t]) => ({ type: 'function', function: { name, description: t.description, parameters: t.parameters } })) }
            : {}),
        add_generation_prompt: c.options.addGenerationPrompt ?? true,
        enable_thinking: c.options.enableThinking ?? true,
        now: now.getTime(),
    };
}
