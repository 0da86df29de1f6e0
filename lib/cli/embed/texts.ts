/** The texts `embed` embeds and the documents `rerank` scores: from the arguments, -p or -f. */
import { UsageError, type ParsedFlags } from '../flags/args.js';
import { readFlagFile } from '../flags/input.js';

/**
 * `text` split at `separator` (llama-embedding's `--embd-separator`; a line break by default,
 * LF, CRLF or CR), empty parts left out: an embedding needs at least one character.
 */
export function splitTexts(text: string, separator = '\n'): string[] {
    if (separator === '') throw new UsageError('--embd-separator expects a non-empty string');
    const parts = separator === '\n' ? text.split(/\r\n|\n|\r/) : text.split(separator);
    return parts.filter((p) => p !== '');
}

/**
 * The texts given one way: each argument one text, or `-p` (key `prompt`) or the file of `-f`
 * (key `file`) split at `--embd-separator` (key `separator`), as llama-embedding splits its
 * prompt. Two ways at once, none, or no text in them is a usage error; `what` names them.
 */
export async function textsFromFlags(flags: ParsedFlags, positional: readonly string[], what: 'texts' | 'documents'): Promise<string[]> {
    const given = [positional.length > 0 ? 'arguments' : null, typeof flags.prompt === 'string' ? '-p/--prompt' : null, typeof flags.file === 'string' ? '-f/--file' : null]
        .filter((g): g is string => g !== null);
    if (given.length > 1) throw new UsageError(`give the ${what} one way: ${given.join(' or ')}, not both`);
    if (given.length === 0) throw new UsageError(`no ${what}: give them as arguments, with -f FILE (one per line)${what === 'texts' ? ' or with -p' : ''}`);
    const separator = typeof flags.separator === 'string' ? flags.separator : '\n';
    let texts: string[];
    if (positional.length > 0) {
        texts = [...positional];
        const empty = texts.findIndex((t) => t === '');
        if (empty >= 0) throw new UsageError(`argument ${empty + 1} is empty: an embedding needs at least one character`);
    } else if (typeof flags.prompt === 'string') {
        texts = splitTexts(flags.prompt, separator);
    } else {
        texts = splitTexts(await readFlagFile('-f/--file', flags.file as string), separator);
    }
    if (texts.length === 0) throw new UsageError(`${given[0]} held no ${what} (empty parts are skipped)`);
    return texts;
}
