/** What a command reads besides its flags: the files flags name, and the prompt on stdin. */
import { readFile } from 'node:fs/promises';
import { UsageError } from './args.js';

/** The text of the file a flag names; one that cannot be read is a usage error naming the flag. */
export async function readFlagFile(flag: string, path: string): Promise<string> {
    try {
        return await readFile(path, 'utf8');
    } catch (error) {
        throw new UsageError(`${flag}: cannot read "${path}": ${(error as Error).message}`);
    }
}

/** `text` without one final line break, as llama.cpp's -f reads a prompt file (an editor or `echo` adds it). */
export function withoutFinalNewline(text: string): string {
    return text.replace(/\r?\n$/, '');
}

/** All of stdin, as UTF-8 text. */
export async function readStdin(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
}

/**
 * The prompt given by -p (key `prompt`) or -f (key `file`, llama.cpp's -f/--file: the file's text without
 * its final line break); undefined when neither is. Both at once are a usage error.
 */
export async function promptFromFlags(flags: { prompt?: unknown; file?: unknown }): Promise<string | undefined> {
    if (typeof flags.prompt === 'string' && typeof flags.file === 'string') throw new UsageError('-p/--prompt and -f/--file cannot be used together');
    if (typeof flags.file === 'string') return withoutFinalNewline(await readFlagFile('-f/--file', flags.file));
    return typeof flags.prompt === 'string' ? flags.prompt : undefined;
}

/**
 * The prompt given as the one argument (`run "Hello"`; after `--` it may start with a dash:
 * `run -- -p`), by -p or by -f; undefined when none is. Two of them, or more than one argument
 * (an unquoted prompt), is a usage error; `what` names the text in it ('prompt', 'message').
 */
export async function promptFromArgs(flags: { prompt?: unknown; file?: unknown }, positional: readonly string[], what = 'prompt'): Promise<string | undefined> {
    if (positional.length > 1) {
        throw new UsageError(`unexpected argument "${positional[1]}": the ${what} is one argument (quote it: "${positional.join(' ')}")`);
    }
    if (positional.length === 0) return promptFromFlags(flags);
    const other = typeof flags.prompt === 'string' ? '-p/--prompt' : typeof flags.file === 'string' ? '-f/--file' : null;
    if (other !== null) throw new UsageError(`give the ${what} one way: as an argument or with ${other}, not both`);
    return positional[0];
}
