/**
 * Prompt sets for {@link calibrate}: the built-in set (code, long-context retrieval,
 * reasoning, creative) and prompt files (JSONL or plain text).
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { LlamaConfigError } from '../errors.js';

/** One prompt of a calibration set. */
export interface CalibrationPrompt {
    /** A short name, shown in the per-prompt results. */
    name: string;
    /** What kind of text it is, e.g. 'code' or 'retrieval'. */
    category?: string;
    /** The text, scored token by token (tokenized with the model's BOS). */
    text: string;
}

const CODE = `// A least-recently-used cache with a fixed capacity, in TypeScript.
export class LruCache<K, V> {
    readonly #entries = new Map<K, V>();

    constructor(readonly capacity: number) {
        if (!Number.isInteger(capacity) || capacity <= 0) {
            throw new RangeError(\`capacity must be a positive integer, received \${capacity}\`);
        }
    }

    get(key: K): V | undefined {
        const value = this.#entries.get(key);
        if (value === undefined) return undefined;
        // Move the key to the end: it is now the most recently used.
        this.#entries.delete(key);
        this.#entries.set(key, value);
        return value;
    }

    set(key: K, value: V): void {
        this.#entries.delete(key);
        this.#entries.set(key, value);
        while (this.#entries.size > this.capacity) {
            const oldest = this.#entries.keys().next().value as K;
            this.#entries.delete(oldest);
        }
    }

    get size(): number {
        return this.#entries.size;
    }
}

def merge_intervals(intervals):
    """Merge overlapping [start, end] intervals and return them sorted."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged
`;

const REASONING = `Question: A train leaves the station at 9:40 and travels 150 kilometres at an average speed of 60 kilometres per hour. A second train leaves the same station at 10:10 on the same line and travels at 90 kilometres per hour. Does the second train catch up with the first before the first train arrives, and if so, when?

Answer: Let us reason step by step. The first train needs 150 / 60 = 2.5 hours, so it arrives at 12:10. When the second train leaves at 10:10, the first train has been travelling for 30 minutes and is 60 * 0.5 = 30 kilometres ahead. The second train gains 90 - 60 = 30 kilometres every hour, so it closes a gap of 30 kilometres in exactly one hour, at 11:10. At that moment both trains are 90 * 1 = 90 kilometres from the station, which is less than 150 kilometres. So yes: the second train catches up at 11:10, 90 kilometres from the station, one hour before the first train arrives.

Question: If all bloops are razzies and some razzies are lazzies, must some bloops be lazzies?

Answer: No. All bloops are razzies, but the razzies that are lazzies need not be among the bloops. For example, there could be three razzies, two of them bloops and the third a lazzie: every bloop is a razzie, some razzie is a lazzie, and no bloop is a lazzie. The conclusion does not follow.`;

const CREATIVE = `The lighthouse keeper had not spoken to anyone in eleven days when the boat appeared, low in the water and painted the colour of old bruises. She watched it from the gallery with her hands wrapped around a mug of tea that had long gone cold. The sea was flat that morning, the kind of grey calm that comes before weather, and the boat moved across it without a sound, as if it were being pulled on a string.

By the time it reached the jetty the fog had come in, and the figure who climbed out was only an outline: a tall coat, a hat pulled low, a small wooden case held carefully against the chest. The keeper went down the spiral stairs two at a time. At the bottom she stopped, because the stranger was already inside, standing by the stove, warming hands that were covered in fine silver dust.

"You keep the light," the stranger said. It was not a question. "I have come to ask you to put it out, for one night only, and I will tell you why."`;

// Names and facts for the retrieval haystack: deterministic, varied enough that the
// needle's answer cannot be guessed from the pattern alone.
const FIRST = ['Ada', 'Bram', 'Chidi', 'Dana', 'Elif', 'Femi', 'Greta', 'Hugo', 'Ines', 'Jonas', 'Kaito', 'Lena', 'Mirela', 'Noor', 'Oskar', 'Priya'];
const LAST = ['Okafor', 'Lindqvist', 'Moreau', 'Tanaka', 'Costa', 'Novak', 'Haddad', 'Brennan', 'Kowalski', 'Reyes', 'Sato', 'Eriksen'];
const CITIES = ['Lisbon', 'Accra', 'Osaka', 'Tallinn', 'Quito', 'Tbilisi', 'Hobart', 'Bergen', 'Cusco', 'Gdansk', 'Nagpur', 'Valletta'];
const ITEMS = ['a brass compass', 'a blue notebook', 'a silver key', 'a wooden flute', 'a glass marble', 'an old map', 'a paper lantern', 'a clay whistle'];

function record(i: number): string {
    // A small linear congruential sequence: the same haystack on every machine.
    const r = (k: number) => ((i + 1) * 2654435761 + k * 40503) >>> 0;
    const name = `${FIRST[r(1) % FIRST.length]} ${LAST[r(2) % LAST.length]}`;
    return `Record ${i + 1}: ${name} lives in ${CITIES[r(3) % CITIES.length]}, keeps ${ITEMS[r(4) % ITEMS.length]} in drawer ${(r(5) % 90) + 10}, and the locker code is ${(r(6) % 9000) + 1000}.`;
}

/**
 * A long-context retrieval prompt: numbered records with one fact asked about at the
 * end. `records` sets its length (about 32 tokens per record with a LLaMA tokenizer);
 * the needle sits a fifth of the way in, so the answer needs the early part of the cache.
 */
export function retrievalPrompt(records: number): string {
    const count = Math.max(4, Math.floor(records));
    const needle = Math.floor(count / 5);
    const lines = Array.from({ length: count }, (_, i) => record(i));
    const code = /locker code is (\d+)/.exec(lines[needle])![1];
    const who = /: (.+?) lives/.exec(lines[needle])![1];
    return (
        'Below is a list of records. Read them carefully; a question about one of them follows.\n\n' +
        lines.join('\n') +
        `\n\nQuestion: what is the locker code in record ${needle + 1}, the one about ${who}?\nAnswer: the locker code in record ${needle + 1} is ${code}.`
    );
}

/**
 * The built-in prompt set: code, long-context retrieval, reasoning and creative text.
 * The retrieval prompt is sized to about `contextSize` tokens (it is cut to the context
 * when scored), so that the last quarter of a long context is covered.
 */
export function builtInPrompts(contextSize: number): CalibrationPrompt[] {
    return [
        { name: 'code', category: 'code', text: CODE },
        { name: 'retrieval', category: 'long-context retrieval', text: retrievalPrompt(Math.ceil(contextSize / 30)) },
        { name: 'reasoning', category: 'reasoning', text: REASONING },
        { name: 'creative', category: 'creative', text: CREATIVE },
    ];
}

/**
 * Reads a prompt file. `.jsonl`: one JSON object per line with `text` (required), `name`
 * and `category`; blank lines are skipped. Any other extension: plain text, split into
 * prompts at lines that are exactly `---` (the whole file is one prompt without them).
 * Throws INVALID_ARGUMENT with the line number for a malformed line, and for a file it cannot read.
 */
export async function readPromptFile(path: string): Promise<CalibrationPrompt[]> {
    let content: string;
    try {
        content = await readFile(path, 'utf8');
    } catch (error) {
        throw new LlamaConfigError(`Cannot read the prompt file ${String(path)}: ${(error as Error).message}`, 'INVALID_ARGUMENT', ['prompts']);
    }
    const base = path.replace(/^.*[\\/]/, '');
    const prompts: CalibrationPrompt[] = [];
    if (extname(path).toLowerCase() === '.jsonl') {
        content.split(/\r?\n/).forEach((line, i) => {
            if (line.trim() === '') return;
            let value: unknown;
            try {
                value = JSON.parse(line);
            } catch (error) {
                throw new LlamaConfigError(`${base} line ${i + 1}: not valid JSON (${(error as Error).message})`, 'INVALID_ARGUMENT', ['prompts']);
            }
            const o = value as Record<string, unknown>;
            if (o === null || typeof o !== 'object' || typeof o.text !== 'string' || o.text === '') {
                throw new LlamaConfigError(`${base} line ${i + 1}: expected an object with a non-empty "text" string`, 'INVALID_ARGUMENT', ['prompts']);
            }
            prompts.push({
                name: typeof o.name === 'string' && o.name !== '' ? o.name : `line ${i + 1}`,
                ...(typeof o.category === 'string' ? { category: o.category } : {}),
                text: o.text,
            });
        });
    } else {
        content
            .split(/^---[ \t]*$/m)
            .map((part) => part.replace(/^\r?\n/, '').replace(/\r?\n$/, ''))
            .forEach((text, i) => {
                if (text.trim() !== '') prompts.push({ name: `${base}#${i + 1}`, text });
            });
    }
    if (prompts.length === 0) throw new LlamaConfigError(`${base}: no prompts found`, 'INVALID_ARGUMENT', ['prompts']);
    return prompts;
}
