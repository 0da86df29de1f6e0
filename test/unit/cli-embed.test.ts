// The pure parts of `llama-kv embed` / `rerank` and of the embedding benchmark: reading the
// texts, the flags' translation to options, the printed vectors and matrix, the seeded texts
// and llama-embedding's log.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { llamaEmbeddingArgv, parseLlamaEmbeddingLog } from '../../lib/cli/bench/embed-llama.js';
import { benchTexts, mulberry32 } from '../../lib/cli/bench/embed-texts.js';
import { embedFlags } from '../../lib/cli/commands/embed.js';
import { abbreviate, cosine, formatCosineMatrix, formatEmbeddings, formatVector } from '../../lib/cli/embed/format.js';
import { splitTexts, textsFromFlags } from '../../lib/cli/embed/texts.js';
import { parseFlags, UsageError } from '../../lib/cli/flags/args.js';
import { embeddingOptionsFromFlags } from '../../lib/cli/flags/embedding-flags.js';

describe('embed: the texts', () => {
    it('splits at line breaks (LF, CRLF, CR) or the separator given, leaving out empty parts', () => {
        expect(splitTexts('a\n\nb\r\nc\rd\n')).toEqual(['a', 'b', 'c', 'd']);
        expect(splitTexts('a<#sep#>b<#sep#><#sep#> c \n', '<#sep#>')).toEqual(['a', 'b', ' c \n']);
        expect(() => splitTexts('a', '')).toThrow(UsageError);
    });

    it('takes the arguments, -p or -f, one way only', async () => {
        const file = join(mkdtempSync(join(tmpdir(), 'llama-kv-embed-unit-')), 'texts.txt');
        writeFileSync(file, 'one\n\ntwo\n');
        expect(await textsFromFlags({}, ['x', 'y'], 'texts')).toEqual(['x', 'y']);
        expect(await textsFromFlags({ prompt: 'x\ny' }, [], 'texts')).toEqual(['x', 'y']);
        expect(await textsFromFlags({ file }, [], 'texts')).toEqual(['one', 'two']);
        await expect(textsFromFlags({ prompt: 'x' }, ['y'], 'texts')).rejects.toThrow('give the texts one way: arguments or -p/--prompt, not both');
        await expect(textsFromFlags({}, [], 'documents')).rejects.toThrow('no documents');
        await expect(textsFromFlags({ prompt: '\n\n' }, [], 'texts')).rejects.toThrow('-p/--prompt held no texts');
        await expect(textsFromFlags({}, ['x', ''], 'texts')).rejects.toThrow('argument 2 is empty');
        await expect(textsFromFlags({ file: join(file, 'missing') }, [], 'texts')).rejects.toThrow('-f/--file: cannot read');
    });

    it('--embd-normalize and --normalize: an integer as llama.cpp takes it, or the API\'s names', () => {
        const options = (...argv: string[]) => embeddingOptionsFromFlags(parseFlags(argv, embedFlags).flags);
        expect(options('--embd-normalize', '-1')).toEqual({ normalize: -1 });
        expect(options('--normalize', '2', '--pooling', 'cls', '-c', '512', '-np', '8', '-t', '2')).toEqual({ normalize: 2, pooling: 'cls', contextSize: 512, parallel: 8, threads: 2 });
        expect(options('--normalize', 'l2')).toEqual({ normalize: 'l2' });
        // Anything else goes to the API as typed, whose validation names it.
        expect(options('--normalize', 'x2')).toEqual({ normalize: 'x2' });
        expect(options()).toEqual({});
    });
});

describe('embed: what it prints', () => {
    it('the first and last three values as llama-embedding prints them', () => {
        expect(formatVector([0.5, -0.25, 0.125, 1, 2, 3, -0.0625], 2)).toBe(' 0.500000 -0.250000  0.125000 …  2.000000  3.000000 -0.062500');
        expect(formatVector([1234, -5], 0)).toBe('  1234     -5');
        expect(abbreviate('a\tb\nc', 10)).toBe('a b c');
        expect(abbreviate('abcdefghijkl', 6)).toBe('abcde…');
    });

    it("cosine similarity as llama.cpp's common_embd_similarity_cos, and the matrix", () => {
        expect(cosine([1, 0], [0, 2])).toBe(0);
        expect(cosine([1, 1], [2, 2])).toBeCloseTo(1, 12);
        expect(cosine([0, 0], [0, 0])).toBe(1);
        expect(cosine([0, 0], [1, 0])).toBe(0);
        const items = [
            { text: 'first', tokens: 2, embedding: Float32Array.of(1, 0) },
            { text: 'second', tokens: 3, embedding: Float32Array.of(0, 1) },
        ];
        expect(formatCosineMatrix(items)).toBe('cosine similarity matrix:\n          0      1\n  0    1.00   0.00  first\n  1    0.00   1.00  second\n');
        expect(formatEmbeddings(items, 2)).toBe('0  [ 1.000000  0.000000]  norm 1.0000     2 tokens  first\n1  [ 0.000000  1.000000]  norm 1.0000     3 tokens  second\n');
        const perToken = [{ text: 'ab', tokens: 2, embedding: [Float32Array.of(3, 4), Float32Array.of(0, 1)] }];
        expect(formatEmbeddings(perToken, -1, () => ['a', 'b'])).toBe('0  2 tokens  ab\n   0  [ 3.000000  4.000000]  norm 5.0000  "a"\n   1  [ 0.000000  1.000000]  norm 1.0000  "b"\n');
    });
});

describe('bench --embed: the texts and llama-embedding', () => {
    // One token per word plus two special tokens, as a BERT tokenizer gives for these words.
    const tokenize = (text: string) => ({ length: text.split(' ').length + 2 });

    it('seeded texts: the same for a seed, each of a token count in the range', () => {
        const a = benchTexts(tokenize, 50, 64, 256, 1);
        expect(benchTexts(tokenize, 50, 64, 256, 1)).toEqual(a);
        expect(benchTexts(tokenize, 50, 64, 256, 2).texts).not.toEqual(a.texts);
        expect(a.tokens).toEqual(a.texts.map((t) => tokenize(t).length));
        for (const n of a.tokens) expect(n >= 64 && n <= 256, String(n)).toBe(true);
        expect(new Set(a.tokens).size).toBeGreaterThan(25);
        expect(a.texts.every((t) => !t.includes('\n') && !t.includes('<#sep#>'))).toBe(true);
        const random = mulberry32(1);
        expect([random(), random()]).toEqual([0.6270739405881613, 0.002735721180215478]);
    });

    it("the command line and the figures of llama-embedding's log", () => {
        const argv = llamaEmbeddingArgv({ model: 'm.gguf', file: 't.txt', separator: '<#sep#>', contextSize: 512, batchSize: 512, ubatchSize: 512, threads: 2, pooling: 'mean', normalize: 2 });
        expect(argv.join(' ')).toBe('-m m.gguf -f t.txt --embd-separator <#sep#> -c 512 -b 512 -ub 512 -np 1 -t 2 --pooling mean --embd-normalize 2 --embd-output-format none -lv 4');
        const log = [
            '0.00.153.293 I llama_context: n_seq_max             = 256',
            '0.00.153.293 I llama_context: n_ctx                 = 512',
            '0.00.153.293 I llama_context: n_ctx_seq             = 512',
            '0.00.153.294 I llama_context: n_batch               = 512',
            '0.00.153.294 I llama_context: n_ubatch              = 512',
            '0.00.160.692 I batch_decode: n_tokens = 399, n_seq = 3',
            '0.01.120.669 I batch_decode: n_tokens = 86, n_seq = 1',
            '0.00.169.164 I llama_perf_context_print: prompt eval time =     801.26 ms /   485 tokens (    0.59 ms per token,  1694.92 tokens per second)',
            '0.00.169.167 I llama_perf_context_print:       total time =     910.43 ms /   486 tokens',
        ].join('\n');
        expect(parseLlamaEmbeddingLog(log)).toEqual({
            totalMs: 910.43, promptEvalMs: 801.26, decodes: 2, texts: 4, tokens: 485, cpuBackend: null, context: { contextSize: 512, batchSize: 512, ubatchSize: 512 },
        });
        expect(() => parseLlamaEmbeddingLog('batch_decode: n_tokens = 1, n_seq = 1')).toThrow('printed no "total time" line');
    });
});
