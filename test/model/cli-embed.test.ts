// `llama-kv embed` and `llama-kv rerank`: the vectors and scores they print are the API's,
// bit for bit (the same process code path), and their flags fail as the CLI's do.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaModel } from '../../lib/index.js';
import { llamaKv } from '../support/cli.js';
import { fixtures } from '../support/fixtures.js';

const TEXTS = ['The quick brown fox jumps over the lazy dog.', 'hello world', 'Embeddings map text to vectors.'];
const dir = mkdtempSync(join(tmpdir(), 'llama-kv-cli-embed-'));

interface EmbedJson {
    model: string;
    pooling: string;
    normalize: number;
    embeddings: { index: number; text: string; embedding: number[] | number[][] }[];
}

function embedJson(...args: string[]): EmbedJson {
    const r = llamaKv('embed', ...args, '--json');
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as EmbedJson;
}

const norm = (v: readonly number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

describe('llama-kv embed', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16 });
    });
    afterAll(() => model?.dispose());

    it('--json prints the vectors embedBatch() returns for the same options, L2-normalized by default', async () => {
        const out = embedJson('-m', fixtures.f16, '--pooling', 'mean', '-t', '2', TEXTS[0], TEXTS[1]);
        expect(out.model).toBe(fixtures.f16);
        expect(out.pooling).toBe('mean');
        expect(out.normalize).toBe(2);
        expect(out.embeddings.map((e) => [e.index, e.text])).toEqual([[0, TEXTS[0]], [1, TEXTS[1]]]);
        const ctx = model.createEmbeddingContext({ pooling: 'mean', threads: 2 });
        try {
            const expected = await ctx.embedBatch(TEXTS.slice(0, 2));
            expect(out.embeddings.map((e) => e.embedding)).toEqual(expected.map((v) => Array.from(v)));
            for (const e of out.embeddings) {
                expect(e.embedding).toHaveLength(ctx.config.embeddingSize);
                expect(norm(e.embedding as number[])).toBeCloseTo(1, 5);
            }
        } finally {
            ctx.dispose();
        }
    });

    it('--embd-normalize (and its alias --normalize) is passed on as llama.cpp numbers it', async () => {
        const none = embedJson('-m', fixtures.f16, '--pooling', 'mean', '-t', '2', '--normalize', '-1', TEXTS[1]);
        expect(none.normalize).toBe(-1);
        const ctx = model.createEmbeddingContext({ pooling: 'mean', normalize: 'none', threads: 2 });
        try {
            const [expected] = await ctx.embedBatch([TEXTS[1]]);
            expect(none.embeddings[0].embedding).toEqual(Array.from(expected));
            expect(Math.abs(norm(none.embeddings[0].embedding as number[]) - 1)).toBeGreaterThan(1e-3);
        } finally {
            ctx.dispose();
        }
        expect(embedJson('-m', fixtures.f16, '--pooling', 'mean', '--embd-normalize', '1', TEXTS[1]).normalize).toBe(1);
    });

    it('-f reads one text per line, empty lines skipped, and gives what the arguments give', () => {
        const file = join(dir, 'texts.txt');
        writeFileSync(file, `${TEXTS[0]}\n\n${TEXTS[1]}\r\n${TEXTS[2]}\n`);
        const fromFile = embedJson('-m', fixtures.f16, '--pooling', 'mean', '-t', '2', '-f', file);
        expect(fromFile.embeddings.map((e) => e.text)).toEqual(TEXTS);
        const fromArgs = embedJson('-m', fixtures.f16, '--pooling', 'mean', '-t', '2', ...TEXTS);
        expect(fromFile.embeddings).toEqual(fromArgs.embeddings);
        // -p splits at --embd-separator, as llama-embedding's prompt.
        const fromPrompt = embedJson('-m', fixtures.f16, '--pooling', 'mean', '-t', '2', '-p', TEXTS.join('<#sep#>'), '--embd-separator', '<#sep#>');
        expect(fromPrompt.embeddings).toEqual(fromArgs.embeddings);
    });

    it('--pooling none gives one vector per token', async () => {
        const out = embedJson('-m', fixtures.f16, '--pooling', 'none', '-t', '2', TEXTS[0], TEXTS[1]);
        expect(out.pooling).toBe('none');
        const ctx = model.createEmbeddingContext({ pooling: 'none', threads: 2 });
        try {
            const expected = await ctx.embedBatch(TEXTS.slice(0, 2));
            out.embeddings.forEach((e, i) => {
                const perToken = e.embedding as number[][];
                expect(perToken).toHaveLength(ctx.tokenize(TEXTS[i]).length);
                expect(perToken).toEqual(expected[i].map((v) => Array.from(v)));
            });
        } finally {
            ctx.dispose();
        }
    });

    it('prints a line per text and the cosine similarity matrix without --json', () => {
        const r = llamaKv('embed', '-m', fixtures.f16, '--pooling', 'mean', '-t', '2', ...TEXTS);
        expect(r.code, r.stderr).toBe(0);
        const lines = r.stdout.split('\n');
        expect(lines[1]).toMatch(/^1 {2}\[[ \d.-]+ … [ \d.-]+\] {2}norm 1\.0000 +3 tokens {2}hello world$/);
        expect(r.stdout).toContain('cosine similarity matrix:');
        // The diagonal is 1.
        const rows = lines.filter((l) => /^ {2}\d {2}/.test(l));
        expect(rows).toHaveLength(3);
        rows.forEach((row, i) => expect(row.trim().split(/\s+/)[i + 1]).toBe('1.00'));
        expect(r.stderr).toMatch(/3 texts, \d+ tokens in [\d.]+ ms .*pooling mean, normalize 2/);
    });

    it('bad flags and values: the usage error, exit code 2', () => {
        for (const [args, message] of [
            [['--pooling', 'average', 'x'], `Expected one of 'model', 'none', 'mean', 'cls', 'last' for pooling but received "average"`],
            [['--pooling', 'mean', '--embd-normalize', '5000', 'x'], 'for normalize'],
            [['--pooling', 'mean', '-c', 'many', 'x'], '-c expects an integer but received "many"'],
            [['--pooling', 'mean'], 'no texts'],
            [['--pooling', 'mean', '-p', 'x', 'y'], 'give the texts one way'],
            [['--pooling', 'mean', '--embd-output-format', 'json', 'x'], 'did you mean --json?'],
            // A generation model names no pooling: 'model' is refused with the API's message.
            [['x'], "names no pooling in its file"],
        ] as const) {
            const r = llamaKv('embed', '-m', fixtures.f16, ...args);
            expect(r.code, args.join(' ')).toBe(2);
            expect(r.stderr).toContain(message);
            expect(r.stderr).toContain('usage: llama-kv embed');
        }
    });

    it('a text longer than one decode fails with CONTEXT_FULL (exit 1), and --truncate embeds it', () => {
        const long = Array.from({ length: 300 }, () => 'word').join(' ');
        const r = llamaKv('embed', '-m', fixtures.f16, '--pooling', 'mean', '-c', '256', long);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^llama-kv embed: .* \[CONTEXT_FULL\]$/m);
        const t = embedJson('-m', fixtures.f16, '--pooling', 'mean', '-c', '256', '--truncate', long);
        expect(t.embeddings).toHaveLength(1);
    });
});

describe('llama-kv rerank', () => {
    const query = 'what do cats eat?';
    const documents = ['The sky is blue.', 'Cats are carnivores and eat meat.', 'Stock markets fell on Monday.', 'A kitten drinks milk.'];

    it('--json gives every document with its score, most relevant first, as rankAndSort() does', async () => {
        const r = llamaKv('rerank', '-m', fixtures.embed.rerank, '-q', query, '-t', '2', '--json', ...documents);
        expect(r.code, r.stderr).toBe(0);
        const out = JSON.parse(r.stdout) as { model: string; query: string; results: { index: number; document: string; score: number }[] };
        expect(out.query).toBe(query);
        expect(out.results.map((x) => x.index).sort()).toEqual([0, 1, 2, 3]);
        for (const x of out.results) expect(x.document).toBe(documents[x.index]);
        for (let i = 1; i < out.results.length; i++) expect(out.results[i - 1].score).toBeGreaterThanOrEqual(out.results[i].score);
        const model = await LlamaModel.load({ path: fixtures.embed.rerank });
        try {
            const ranker = model.createRankingContext({ threads: 2 });
            expect(out.results).toEqual(await ranker.rankAndSort(query, documents));
        } finally {
            model.dispose();
        }
        const top = JSON.parse(llamaKv('rerank', '-m', fixtures.embed.rerank, '-q', query, '--top', '2', '--json', ...documents).stdout);
        expect(top.results).toEqual(out.results.slice(0, 2));
    });

    it('refuses a model that is not a reranker, and bad flags, with exit code 2', () => {
        const notRanker = llamaKv('rerank', '-m', fixtures.f16, '-q', query, ...documents);
        expect(notRanker.code).toBe(2);
        expect(notRanker.stderr).toContain('is not a reranker');
        for (const args of [['-q', query], [...documents], ['-q', query, '--top', '0', ...documents]]) {
            const r = llamaKv('rerank', '-m', fixtures.f16, ...args);
            expect(r.code, args.join(' ')).toBe(2);
            expect(r.stderr).toContain('usage: llama-kv rerank');
        }
    });
});
