import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../lib/cli/flags/args.js';
import { formatResults, formatSummary, type BatchResult, type BatchSummary } from '../../lib/cli/run/batch.js';
import { parsePromptLines, readPromptsFile } from '../../lib/cli/run/prompts-file.js';

async function usageError(work: Promise<unknown>): Promise<string> {
    try {
        await work;
    } catch (error) {
        expect(error).toBeInstanceOf(UsageError);
        return (error as Error).message;
    }
    throw new Error('did not throw');
}

describe('run --prompts-file: the file', () => {
    it('is one prompt per line (LF, CRLF or CR), blank lines skipped, each line kept as written, with its line number', () => {
        expect(parsePromptLines('\uFEFFOnce upon a time\r\n\r\n  two  \n \t \nthree\rfour\n')).toEqual([
            { line: 1, text: 'Once upon a time' },
            { line: 3, text: '  two  ' },
            { line: 5, text: 'three' },
            { line: 6, text: 'four' },
        ]);
        expect(parsePromptLines('no line break at the end')).toEqual([{ line: 1, text: 'no line break at the end' }]);
        expect(parsePromptLines('')).toEqual([]);
    });

    it('is a usage error when it cannot be read or holds no prompt', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'llama-kv-prompts-'));
        const missing = join(dir, 'missing.txt');
        expect(await usageError(readPromptsFile(missing))).toMatch(new RegExp(`^--prompts-file: cannot read "${missing}": ENOENT`));
        expect(await usageError(readPromptsFile(dir))).toMatch(/^--prompts-file: cannot read ".*": EISDIR/);
        const blank = join(dir, 'blank.txt');
        writeFileSync(blank, '\n  \r\n\n');
        expect(await usageError(readPromptsFile(blank))).toBe(`--prompts-file: "${blank}" holds no prompt (one prompt per line; blank lines are skipped)`);
        const two = join(dir, 'two.txt');
        writeFileSync(two, 'a\n\nb\n');
        expect(await readPromptsFile(two)).toEqual([{ line: 1, text: 'a' }, { line: 3, text: 'b' }]);
    });
});

describe('run --prompts-file: the output', () => {
    const timings = { promptTokens: 5, reusedTokens: 1, promptMs: 10, generatedTokens: 2, generationMs: 20, contextShifts: 0 };
    const results: BatchResult[] = [
        { index: 1, line: 1, prompt: 'Hi', text: ' there', tokenCount: 2, finishReason: 'length', seed: 7, timings },
        { index: 2, line: 3, prompt: 'Bye', text: '', tokenCount: 0, finishReason: 'eos', seed: 8, timings: { ...timings, generatedTokens: 0 } },
    ];

    it('is one block per prompt in input order: a header line, then the text and a line break as run -p prints it', () => {
        expect(formatResults(results)).toBe('=== prompt 1/2 (length, 2 tokens): Hi\n there\n\n=== prompt 2/2 (eos, 0 tokens): Bye\n\n');
    });

    it('ends with a summary line: counts, wall time, aggregate t/s, finish reasons and the K/V settings', () => {
        const summary: BatchSummary = {
            prompts: 3, sequences: 1, promptTokens: 15, reusedTokens: 2, generatedTokens: 48, wallMs: 1234.5,
            promptTokensPerSecond: 10.53, generationTokensPerSecond: 38.88, finishReasons: { length: 2, eos: 1 },
        };
        expect(formatSummary(summary, 'kv: f16/f16, flash attention on')).toBe(
            'batch: 3 prompts on 1 sequence in 1.23 s | prompt: 15 tokens, 10.53 t/s | generation: 48 tokens, 38.88 t/s | finish: 2 length, 1 eos | kv: f16/f16, flash attention on\n',
        );
    });
});
