/** The interactive loop of `llama-kv chat` on a terminal: read a line, stream the reply, repeat. */
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { ReadStream, WriteStream } from 'node:tty';
import type { LlamaChatSession } from '../../chat/session.js';
import type { ChatPromptOptions } from '../../options/chat-options.js';
import { LlamaConfigError, LlamaError } from '../../errors.js';
import { finishNote, note, ReplyWriter, type ReplySink } from './reply.js';

export const chatCommandsHelp = [
    '/reset, /clear   start over (only the system prompt stays)',
    '/save FILE       write the conversation (its messages) to FILE as JSON',
    '/exit            exit (so do Ctrl-D, and Ctrl-C at an empty prompt)',
    '/help            this help',
    '//TEXT           send /TEXT as a message',
    'Ctrl-C while a reply is generated stops it; a second Ctrl-C exits.',
].join('\n');

/** One line read at the prompt: a line, Ctrl-C on a line being typed (cancel), Ctrl-C at an empty prompt, or Ctrl-D. */
type Input = { kind: 'line'; text: string } | { kind: 'cancel' } | { kind: 'interrupt' } | { kind: 'eof' };

/**
 * Runs the conversation on the terminal until the person exits; returns the exit code (0).
 * Errors of one reply are printed and the loop goes on, except those every reply would meet
 * (a bad option value, a grammar that does not parse), which end it.
 */
export async function chatInteractively(
    session: LlamaChatSession,
    options: ChatPromptOptions,
    io: { input: ReadStream; output: WriteStream; errors: NodeJS.WritableStream; banner: string },
): Promise<number> {
    const out: ReplySink = { stream: io.output, terminal: true };
    const say = (text: string) => io.output.write(note(out, text) + '\n');
    say(io.banner);
    const reader = new LineReader(io.input, io.output);
    for (;;) {
        const input = await reader.read();
        if (input.kind === 'eof' || input.kind === 'interrupt') return 0;
        if (input.kind === 'cancel') continue;
        const line = input.text;
        if (line.trim() === '') continue;
        if (line.startsWith('/') && !line.startsWith('//')) {
            const [name] = line.trim().split(/\s+/, 1);
            const rest = line.trim().slice(name.length).trim();
            if (name === '/exit' || name === '/quit') return 0;
            if (name === '/reset' || name === '/clear') {
                session.reset();
                say('(the conversation is cleared)');
            } else if (name === '/save') {
                if (rest === '') say('usage: /save FILE');
                else {
                    try {
                        await writeFile(rest, JSON.stringify(session.messages, null, 2) + '\n');
                        say(`(saved ${session.messages.length} messages to ${rest})`);
                    } catch (error) {
                        io.errors.write(`cannot write "${rest}": ${(error as Error).message}\n`);
                    }
                }
            } else {
                say(`${name === '/help' ? '' : `unknown command ${name}\n`}${chatCommandsHelp}`);
            }
            continue;
        }
        const text = line.startsWith('//') ? line.slice(1) : line;
        const quit = await reply(session, text, options, io, out);
        if (quit) return 0;
    }
}

/**
 * Streams one reply. The terminal stays in raw mode while it is generated, so that Ctrl-C
 * reaches the process as a byte (not as a signal to the whole process group): the first
 * stops the reply, a second also ends the chat (returns true). A SIGINT sent by other
 * means (kill -INT) counts as a Ctrl-C too.
 */
async function reply(
    session: LlamaChatSession,
    text: string,
    options: ChatPromptOptions,
    io: { input: ReadStream; output: WriteStream; errors: NodeJS.WritableStream },
    out: ReplySink,
): Promise<boolean> {
    const controller = new AbortController();
    let interrupts = 0;
    const interrupt = () => {
        interrupts++;
        controller.abort();
    };
    // Other keys typed while the reply is generated are dropped (raw mode does not echo them).
    const onData = (data: Buffer | string) => {
        for (const byte of Buffer.from(data)) if (byte === 0x03) interrupt();
    };
    process.on('SIGINT', interrupt);
    io.input.setRawMode(true);
    io.input.on('data', onData);
    io.input.resume();
    const writer = new ReplyWriter(out, out);
    try {
        const stream = session.promptStream(text, { ...options, signal: controller.signal });
        for await (const delta of stream) writer.push(delta);
        const result = await stream.result;
        writer.end('if-needed');
        const why = finishNote(result);
        if (why !== undefined) io.output.write(note(out, why) + '\n');
    } catch (error) {
        writer.end('if-needed');
        // Every reply would fail the same way: end the chat with the CLI's message for it.
        if (error instanceof LlamaConfigError || (error instanceof LlamaError && error.code === 'INVALID_GRAMMAR')) throw error;
        if (!(error instanceof LlamaError)) throw error;
        io.errors.write(`error: ${error.message} [${error.code}]\n`);
    } finally {
        process.off('SIGINT', interrupt);
        io.input.off('data', onData);
        io.input.setRawMode(false);
        io.input.pause();
    }
    return interrupts > 1;
}

/**
 * Reads lines at the "> " prompt with node:readline (editing, history with the arrow keys).
 * One readline interface per line, closed before the reply is generated, so that the
 * reply owns the terminal; the history carries over.
 */
class LineReader {
    private history: string[] = [];

    constructor(
        private readonly input: ReadStream,
        private readonly output: WriteStream,
    ) {}

    read(): Promise<Input> {
        return new Promise((resolve) => {
            const rl = createInterface({
                input: this.input,
                output: this.output,
                terminal: true,
                prompt: '> ',
                history: this.history,
                historySize: 1000,
                removeHistoryDuplicates: true,
            });
            let done = false;
            const finish = (input: Input) => {
                if (done) return;
                done = true;
                rl.close();
                resolve(input);
            };
            rl.on('history', (history: string[]) => {
                this.history = [...history];
            });
            rl.on('line', (text) => finish({ kind: 'line', text }));
            rl.on('SIGINT', () => {
                const typed = rl.line !== '';
                this.output.write('^C\n');
                finish(typed ? { kind: 'cancel' } : { kind: 'interrupt' });
            });
            rl.on('close', () => {
                // Ctrl-D at an empty prompt (or the end of the input): leave the shell's prompt on a line of its own.
                if (!done) this.output.write('\n');
                finish({ kind: 'eof' });
            });
            rl.prompt();
        });
    }
}
