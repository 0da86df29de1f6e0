/** How `llama-kv chat` writes a reply as it streams: the answer, the reasoning, and what ended it. */
import type { ChatPromptResult } from '../../chat/session.js';

/** A stream the reply goes to, and whether a person reads it on a terminal. */
export interface ReplySink {
    stream: NodeJS.WritableStream;
    terminal: boolean;
}

const DIM = '\x1b[2m';
const NORMAL = '\x1b[22m';

/** Colors unless NO_COLOR is set (https://no-color.org). */
function colors(sink: ReplySink): boolean {
    return sink.terminal && !process.env.NO_COLOR;
}

/**
 * The model's text as a terminal should show it: control characters (escape sequences that
 * could move the cursor, retitle the window or write the clipboard, carriage returns that
 * could overwrite a line) are written as visible symbols; line breaks and tabs stay.
 */
export function forTerminal(text: string): string {
    return text.replace(/[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]/g, (c) => {
        const code = c.charCodeAt(0);
        return code < 0x20 ? String.fromCharCode(0x2400 + code) : code === 0x7f ? '\u2421' : '\ufffd';
    });
}

/**
 * Writes the deltas of one reply: the answer to `text`, the reasoning to `reasoning` (on a
 * terminal: dimmed, or between [Start thinking] and [End thinking] lines with NO_COLOR, as
 * llama.cpp's llama-cli shows it, when it shares the answer's stream).
 */
export class ReplyWriter {
    private inReasoning = false;
    private textEnd = '\n';

    constructor(
        private readonly text: ReplySink,
        private readonly reasoning: ReplySink,
    ) {}

    push(delta: { type: 'text' | 'reasoning'; text: string }): void {
        if (delta.text === '') return;
        if (delta.type === 'reasoning') {
            if (!this.inReasoning) {
                this.inReasoning = true;
                if (colors(this.reasoning)) this.reasoning.stream.write(DIM);
                else if (this.shared()) this.write(this.text, '[Start thinking]\n');
            }
            this.write(this.reasoning, delta.text);
            return;
        }
        this.endReasoning();
        this.write(this.text, delta.text);
    }

    /** Ends the reply: the reasoning's style, then a line break (`always`: even after one, so the answer is exactly what precedes it). */
    end(lineBreak: 'always' | 'if-needed'): void {
        this.endReasoning();
        if (lineBreak === 'always' || !this.textEnd.endsWith('\n')) this.text.stream.write('\n');
        this.textEnd = '\n';
    }

    private shared(): boolean {
        return this.text.stream === this.reasoning.stream;
    }

    private endReasoning(): void {
        if (!this.inReasoning) return;
        this.inReasoning = false;
        if (colors(this.reasoning)) this.reasoning.stream.write(NORMAL);
        if (this.shared()) {
            if (!this.textEnd.endsWith('\n')) this.write(this.text, '\n');
            this.write(this.text, colors(this.text) ? '\n' : '[End thinking]\n\n');
        } else {
            this.reasoning.stream.write('\n');
        }
    }

    private write(sink: ReplySink, text: string): void {
        if (text === '') return;
        sink.stream.write(sink.terminal ? forTerminal(text) : text);
        if (sink === this.text || this.shared()) this.textEnd = text;
    }
}

/** A dimmed note on a terminal (a finish reason, a command's answer), plain otherwise. */
export function note(sink: ReplySink, text: string): string {
    return colors(sink) ? `${DIM}${text}${NORMAL}` : text;
}

/** Why a reply ended, said to the person at the terminal; undefined when it simply ended (eos, stop). */
export function finishNote(result: Pick<ChatPromptResult, 'finishReason' | 'timings'>): string | undefined {
    switch (result.finishReason) {
        case 'eos':
        case 'stop':
            return undefined;
        case 'abort':
            return '(stopped)';
        case 'length':
            return `(stopped after ${result.timings.generatedTokens} tokens: -n)`;
        case 'contextFull':
            return '(the context is full: /reset to start over, or a larger -c)';
        default:
            return `(finish: ${result.finishReason})`;
    }
}

/** The timing line of a one-shot reply, as `run` prints it. */
export function formatTimings(result: Pick<ChatPromptResult, 'finishReason' | 'timings'>): string {
    const { timings } = result;
    const rate = (n: number, ms: number) => (ms > 0 ? ((n * 1000) / ms).toFixed(2) : 'n/a');
    return (
        `prompt: ${timings.promptTokens} tokens (${timings.reusedTokens} reused), ${rate(timings.promptTokens - timings.reusedTokens, timings.promptMs)} t/s | ` +
        `generation: ${timings.generatedTokens} tokens, ${rate(timings.generatedTokens, timings.generationMs)} t/s | finish: ${result.finishReason}`
    );
}
