/**
 * A streamed reply as deltas of answer text and reasoning: the generated text parsed (as
 * partial) with llama.cpp's parser for the template's format after each token, and what
 * each part grew by handed out. Where a partial parse takes something back (a marker that
 * turned out to be text), the delta waits until the part grows past what was handed out.
 */
import { parseReply, type ChatParams, type ParsedReply } from '../model/chat-template.js';

/** A piece of a streamed reply: answer text or reasoning ("thinking"). */
export interface ChatDelta {
    type: 'text' | 'reasoning';
    text: string;
}

/** @internal */
export class DeltaTracker {
    readonly #params: ChatParams;
    readonly #tools: boolean;
    #text = '';
    #reasoning = '';
    #calls = 0;

    constructor(params: ChatParams, tools: boolean) {
        this.#params = params;
        this.#tools = tools;
    }

    /** The deltas since the last call, for the generated text so far. */
    update(generated: string, partial: boolean): ChatDelta[] {
        // Parsing is linear in the text: a long reply is parsed every few tokens, not every token.
        if (partial && ++this.#calls % (1 + Math.floor(generated.length / 4096)) !== 0) return [];
        const parsed = parseReply(generated, this.#params, partial, this.#tools) ?? (partial ? null : { content: generated, reasoning: '', toolCalls: [] });
        if (parsed === null) return [];
        const out: ChatDelta[] = [];
        if (parsed.reasoning.startsWith(this.#reasoning) && parsed.reasoning.length > this.#reasoning.length) {
            out.push({ type: 'reasoning', text: parsed.reasoning.slice(this.#reasoning.length) });
            this.#reasoning = parsed.reasoning;
        }
        if (parsed.content.startsWith(this.#text) && parsed.content.length > this.#text.length) {
            out.push({ type: 'text', text: parsed.content.slice(this.#text.length) });
            this.#text = parsed.content;
        }
        return out;
    }

    /** The reply as a whole: parsed, or (when llama.cpp's parser fails on it) all content. */
    final(generated: string): ParsedReply {
        return parseReply(generated, this.#params, false, this.#tools) ?? { content: generated, reasoning: '', toolCalls: [] };
    }
}
