/**
 * The library's messages name its options (contextSize, gpu: false); the CLI says them
 * with its own flags (-c, --gpu none), so that a warning tells a CLI user what to type.
 */
import type { FlagSpec } from '../flags/args.js';

/** Phrases of the library that have no one-to-one flag. */
const PHRASES: [RegExp, string][] = [[/\bgpu: false\b/g, '--gpu none']];

/**
 * `message` with each option name that is a flag's key replaced by the flag (its first name):
 * camelCase names anywhere (contextSize -> -c), one-word names before a value (threads 8 -> -t 8).
 */
export function inFlagNames(message: string, specs: readonly FlagSpec[]): string {
    let out = message;
    for (const [pattern, text] of PHRASES) out = out.replace(pattern, text);
    const byKey = new Map(specs.map((s) => [s.key, s.names[0]]));
    return out.replace(/\b([a-z][A-Za-z]+)\b(?=( \d)?)/g, (word, _name, value) => (/[A-Z]/.test(word) || value ? (byKey.get(word) ?? word) : word));
}
