import { loadModel } from '../flags/load-model.js';
import '../../embedding/embedding-context.js'; // adds model.createEmbeddingContext()
import { setLogger } from '../../logger.js';
import { formatCosineMatrix, formatEmbeddings, MAX_MATRIX_TEXTS, type EmbeddedText } from '../embed/format.js';
import { textsFromFlags } from '../embed/texts.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { embedderFlags, embeddingOptionsFromFlags, poolingFlags } from '../flags/embedding-flags.js';
import { modelFlags, modelOptionsFromFlags } from '../flags/model-flags.js';
import { inFlagNames } from '../format/flag-names.js';
import { progressBar } from '../format/progress.js';

export const embedFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'string', help: 'GGUF model file (required)' },
    { names: ['-p', '--prompt'], key: 'prompt', type: 'string', help: "texts, split at --embd-separator (llama-embedding's -p); instead of arguments" },
    { names: ['-f', '--file'], key: 'file', type: 'string', help: 'file of texts, one per line (split at --embd-separator; empty ones skipped); instead of arguments' },
    { names: ['--embd-separator'], key: 'separator', type: 'string', help: 'what separates the texts of -p and -f (default: a line break)' },
    ...poolingFlags,
    ...embedderFlags,
    ...modelFlags,
    {
        names: ['--json'],
        key: 'json',
        type: 'bool',
        help: 'print one JSON object: { model, pooling, normalize, embeddings: [{ index, text, embedding }] }',
        suggestedFor: ['--embd-output-format'],
    },
    { names: ['--verbose'], key: 'verbose', type: 'bool', help: "show llama.cpp's info log on stderr" },
];

export const embedUsage =
    'usage: llama-kv embed -m model.gguf (TEXT... | -f FILE | -p TEXTS) [--pooling none|mean|cls|last|model] [--embd-normalize 2] ' +
    `[-c N] [-b N] [-np N] [-t N] [--truncate] [--json]\n${flagHelp(embedFlags)}`;

/** `llama-kv embed`: the embedding of each text, as a list with the cosine similarity matrix, or as JSON. */
export async function embed(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, embedFlags);
    if (typeof flags.model !== 'string') throw new UsageError('-m/--model is required');
    const texts = await textsFromFlags(flags, positional, 'texts');
    const options = embeddingOptionsFromFlags(flags);
    setLogger((level, message) => process.stderr.write(`[${level}] ${inFlagNames(message, embedFlags)}\n`), { level: flags.verbose ? 'info' : 'warn' });

    const path = flags.model;
    const model = await loadModel({ path, ...modelOptionsFromFlags(flags) });
    try {
        const ctx = model.createEmbeddingContext(options);
        const config = ctx.config;
        const truncate = flags.truncate === true;
        const controller = new AbortController();
        const onSigint = () => controller.abort();
        process.once('SIGINT', onSigint);
        // On a terminal, a bar on stderr (with --json too: stdout holds the JSON only); nothing otherwise.
        const bar = progressBar();
        const started = performance.now();
        let vectors: (Float32Array | Float32Array[])[];
        try {
            vectors = await ctx.embedBatch(texts, {
                truncate,
                signal: controller.signal,
                onProgress: texts.length > 1 ? (done, total) => bar.update(done / total, `embedded ${done}/${total}`) : undefined,
            });
        } finally {
            process.off('SIGINT', onSigint);
            bar.clear();
        }
        const ms = performance.now() - started;
        if (flags.json) {
            const embeddings = texts.map((text, index) => {
                const v = vectors[index];
                return { index, text, embedding: Array.isArray(v) ? v.map((t) => Array.from(t)) : Array.from(v) };
            });
            process.stdout.write(JSON.stringify({ model: path, pooling: config.pooling, normalize: config.normalize, embeddings }) + '\n');
            return 0;
        }
        const tokenized = texts.map((text) => ctx.tokenize(text));
        const tokens = tokenized.map((t) => Math.min(t.length, config.maxTokens));
        const items: EmbeddedText[] = texts.map((text, i) => ({ text, tokens: tokens[i], embedding: vectors[i] }));
        // Each token's text (pooling none); not for a truncated text, whose last embedded token may be its final SEP/EOS.
        const pieces = (i: number) => (tokenized[i].length > config.maxTokens ? [] : Array.from(tokenized[i], (t) => model.detokenize([t], { renderSpecial: true })));
        process.stdout.write(formatEmbeddings(items, config.normalize, pieces));
        if (config.pooling !== 'none' && texts.length >= 2 && texts.length <= MAX_MATRIX_TEXTS) process.stdout.write(`\n${formatCosineMatrix(items)}`);
        const total = tokens.reduce((a, b) => a + b, 0);
        process.stderr.write(
            `${texts.length} texts, ${total} tokens in ${ms.toFixed(1)} ms (${((texts.length * 1000) / ms).toFixed(1)} texts/s, ${((total * 1000) / ms).toFixed(1)} tokens/s) | ` +
                `pooling ${config.pooling}, normalize ${config.normalize}, ${config.embeddingSize} floats | -c ${config.contextSize} -b ${config.batchSize} -np ${config.parallel} -t ${config.threads}\n`,
        );
        return 0;
    } finally {
        model.dispose();
    }
}
