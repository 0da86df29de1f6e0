import { loadModel } from '../flags/load-model.js';
import '../../embedding/ranking-context.js'; // adds model.createRankingContext()
import { setLogger } from '../../logger.js';
import { formatRanked } from '../embed/rerank-format.js';
import { textsFromFlags } from '../embed/texts.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { embedderFlags, embedderOptionsFromFlags } from '../flags/embedding-flags.js';
import { modelFlags, modelOptionsFromFlags } from '../flags/model-flags.js';
import { inFlagNames } from '../format/flag-names.js';

export const rerankFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'string', help: 'GGUF reranker model file (required)' },
    { names: ['-q', '--query'], key: 'query', type: 'string', help: 'the query the documents are scored against (required)' },
    { names: ['-f', '--file'], key: 'file', type: 'string', help: 'file of documents, one per line (empty ones skipped); instead of arguments' },
    { names: ['--embd-separator'], key: 'separator', type: 'string', help: 'what separates the documents of -f (default: a line break)' },
    { names: ['--top'], key: 'top', type: 'int', help: 'print only the N most relevant documents (default: all)', suggestedFor: ['--top-n', '--top_n'] },
    ...embedderFlags,
    ...modelFlags,
    { names: ['--json'], key: 'json', type: 'bool', help: 'print one JSON object: { model, query, results: [{ index, document, score }] }, most relevant first' },
    { names: ['--verbose'], key: 'verbose', type: 'bool', help: "show llama.cpp's info log on stderr" },
];

export const rerankUsage =
    'usage: llama-kv rerank -m reranker.gguf -q QUERY (DOCUMENT... | -f FILE) [--top N] [-c N] [-b N] [-np N] [-t N] [--truncate] [--json]\n' +
    flagHelp(rerankFlags);

/** `llama-kv rerank`: the documents sorted by a reranker's score for the query. */
export async function rerank(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, rerankFlags);
    if (typeof flags.model !== 'string') throw new UsageError('-m/--model is required');
    if (typeof flags.query !== 'string') throw new UsageError('-q/--query is required');
    if (flags.query === '') throw new UsageError('-q/--query is empty');
    const top = flags.top as number | undefined;
    if (top !== undefined && top < 1) throw new UsageError(`--top expects a positive integer but received ${top}`);
    const documents = await textsFromFlags(flags, positional, 'documents');
    setLogger((level, message) => process.stderr.write(`[${level}] ${inFlagNames(message, rerankFlags)}\n`), { level: flags.verbose ? 'info' : 'warn' });

    const path = flags.model;
    const model = await loadModel({ path, ...modelOptionsFromFlags(flags) });
    try {
        const ranker = model.createRankingContext(embedderOptionsFromFlags(flags));
        const controller = new AbortController();
        const onSigint = () => controller.abort();
        process.once('SIGINT', onSigint);
        let ranked;
        try {
            ranked = await ranker.rankAndSort(flags.query, documents, { truncate: flags.truncate === true, signal: controller.signal });
        } finally {
            process.off('SIGINT', onSigint);
        }
        const shown = top === undefined ? ranked : ranked.slice(0, top);
        if (flags.json) {
            process.stdout.write(JSON.stringify({ model: path, query: flags.query, results: shown.map(({ index, document, score }) => ({ index, document, score })) }) + '\n');
            return 0;
        }
        process.stdout.write(formatRanked(shown));
        return 0;
    } finally {
        model.dispose();
    }
}
