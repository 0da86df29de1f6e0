/** Running a model's tool calls: arguments parsed, handlers called, results (or errors) as the tool messages' text. */
import { LlamaAbortError } from '../errors.js';
import type { ChatTool, ChatToolCall } from '../options/chat-options.js';

/** A tool call of a prompt, with what its handler returned. */
export interface ChatToolCallResult extends ChatToolCall {
    /** The call's id (generated when the model's format has none). */
    id: string;
    /** What went back to the model: the handler's result as text, or `{"error": ...}`. Absent for a call no handler ran. */
    result?: string;
    /** Whether the handler threw (or the arguments were not a JSON object). */
    failed?: boolean;
}

/** Runs the calls one after another; a handler's error becomes the call's result. @internal */
export async function runToolCalls(
    calls: readonly { id: string; name: string; arguments: string }[],
    tools: Readonly<Record<string, ChatTool>>,
    signal: AbortSignal | undefined,
): Promise<(ChatToolCallResult & { result: string })[]> {
    const out: (ChatToolCallResult & { result: string })[] = [];
    for (const call of calls) {
        if (signal?.aborted) throw new LlamaAbortError('The prompt was aborted while running its tool calls');
        let args: unknown;
        try {
            args = call.arguments.trim() === '' ? {} : JSON.parse(call.arguments);
        } catch {
            out.push({ ...call, result: JSON.stringify({ error: `the arguments are not valid JSON: ${call.arguments.slice(0, 200)}` }), failed: true });
            continue;
        }
        if (args === null || typeof args !== 'object' || Array.isArray(args)) {
            out.push({ ...call, result: JSON.stringify({ error: 'the arguments must be a JSON object' }), failed: true });
            continue;
        }
        try {
            const value = await tools[call.name].handler!(args as Record<string, unknown>, { id: call.id, name: call.name, signal });
            out.push({ ...call, result: typeof value === 'string' ? value : JSON.stringify(value ?? null) });
        } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            out.push({ ...call, result: JSON.stringify({ error: message }), failed: true });
        }
    }
    return out;
}
