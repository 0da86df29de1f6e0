/** The prompts file of `llama-kv run --prompts-file`: one prompt per line, as llama.cpp's llama-parallel reads `-f`. */
import { readFile } from 'node:fs/promises';
import { UsageError } from '../flags/args.js';

/** One prompt of the file. */
export interface FilePrompt {
    /** The line it is on, from 1 (blank lines are skipped, so it can differ from the prompt's position). */
    line: number;
    /** The line as written, without its line break (LF, CRLF or CR). */
    text: string;
}

/** The prompts of a file's text: every line that is not empty or whitespace only, kept as written. */
export function parsePromptLines(content: string): FilePrompt[] {
    const body = content.startsWith('\uFEFF') ? content.slice(1) : content;
    return body.split(/\r\n|\n|\r/).flatMap((text, i) => (text.trim() === '' ? [] : [{ line: i + 1, text }]));
}

/** Reads and splits a prompts file; a file that cannot be read or holds no prompt is a usage error. */
export async function readPromptsFile(path: string): Promise<FilePrompt[]> {
    let content: string;
    try {
        content = await readFile(path, 'utf8');
    } catch (error) {
        throw new UsageError(`--prompts-file: cannot read "${path}": ${(error as Error).message}`);
    }
    const prompts = parsePromptLines(content);
    if (prompts.length === 0) throw new UsageError(`--prompts-file: "${path}" holds no prompt (one prompt per line; blank lines are skipped)`);
    return prompts;
}
