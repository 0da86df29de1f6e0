/**
 * The flags of `embed` and `rerank`, named as llama.cpp's llama-embedding names them: the
 * context flags they share with `run` (-c, -b, -np) with what they mean for an embedding
 * context, and the pooling and normalization of `embed`.
 */
import type { EmbedderSettings, EmbeddingContextOptions, EmbeddingNormalize, EmbeddingPooling } from '../../options/embedding-options.js';
import { defaults } from '../../options/defaults.js';
import type { FlagSpec, ParsedFlags } from './args.js';
import { contextFlags } from './context-flags.js';

/** The spec of a context flag of `run` under another help text (the names and type stay one table's). */
function contextFlag(key: string, help: string): FlagSpec {
    const spec = contextFlags.find((s) => s.key === key);
    if (!spec) throw new Error(`no context flag ${key}`);
    return { ...spec, help };
}

/** Flags of every embedding and ranking context. */
export const embedderFlags: FlagSpec[] = [
    contextFlag('contextSize', `tokens of one decode: the longest text, and the texts of one decode together (default: the trained context, at most ${defaults.embedding.contextSize})`),
    contextFlag('batchSize', 'tokens per llama_decode, at most -c (default: -c)'),
    contextFlag('parallel', `texts decoded together in one llama_decode (default ${defaults.embedding.parallel}, or -b if smaller)`),
    { names: ['-t', '--threads'], key: 'threads', type: 'int', help: 'threads (default: number of CPUs)' },
    { names: ['--truncate'], key: 'truncate', type: 'bool', help: 'cut a text longer than one decode takes to its first tokens (keeping its final SEP/EOS) instead of failing' },
];

/** The pooling and normalization of `embed`. */
export const poolingFlags: FlagSpec[] = [
    { names: ['--pooling'], key: 'pooling', type: 'string', help: "none | mean | cls | last | model: how token vectors become one per text (default model: the model's own)" },
    {
        names: ['--embd-normalize', '--normalize'],
        key: 'normalize',
        type: 'string',
        help: 'normalization: -1 none, 0 max absolute int16, 1 taxicab, 2 euclidean, >2 p-norm; or l2, none (default 2)',
    },
];

/** The embedding or ranking context options given on the command line; the API validates the values. */
export function embedderOptionsFromFlags(flags: ParsedFlags): EmbedderSettings {
    const options: EmbedderSettings = {
        contextSize: flags.contextSize as number | undefined,
        batchSize: flags.batchSize as number | undefined,
        parallel: flags.parallel as number | undefined,
        threads: flags.threads as number | undefined,
    };
    return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as EmbedderSettings;
}

/**
 * The embedding context options: those of {@link embedderOptionsFromFlags}, the pooling, and
 * the normalization (an integer, as llama.cpp's --embd-normalize takes it, or the API's 'l2'/'none').
 */
export function embeddingOptionsFromFlags(flags: ParsedFlags): EmbeddingContextOptions {
    const options: EmbeddingContextOptions = embedderOptionsFromFlags(flags);
    if (typeof flags.pooling === 'string') options.pooling = flags.pooling as EmbeddingPooling;
    if (typeof flags.normalize === 'string') {
        const raw = flags.normalize;
        const n = Number(raw);
        options.normalize = (raw.trim() !== '' && Number.isFinite(n) ? n : raw) as EmbeddingNormalize;
    }
    return options;
}
