import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, llamaKv } from '../support/cli.js';
import { fixtures } from '../support/fixtures.js';

describe('llama-kv run --prompts-file', () => {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-cli-parallel-'));
    afterAll(() => rmSync(work, { recursive: true, force: true }));
    const prompts = ['Once upon a time', 'The llama said', 'Hello world'];
    const file = join(work, 'prompts.txt');
    // A blank line and a CRLF line too: the prompts are on lines 1, 3 and 4.
    writeFileSync(file, `${prompts[0]}\n\n${prompts[1]}\r\n${prompts[2]}\n`);
    const greedy = ['-m', fixtures.f16, '-n', '12', '--temp', '0', '-t', '2', '--gpu', 'none'];

    // What `run -p` prints for each prompt alone: stdout, and the prompt tokens of its timing line.
    let alone: { stdout: string; promptTokens: number }[] = [];
    beforeAll(() => {
        alone = prompts.map((prompt) => {
            const r = llamaKv('run', '-p', prompt, ...greedy);
            expect(r.code, r.stderr).toBe(0);
            return { stdout: r.stdout, promptTokens: Number(/prompt: (\d+) tokens/.exec(r.stderr)![1]) };
        });
    });

    /** The blocks of a batch's stdout: each header line and what follows it, up to the blank line before the next. */
    function blocks(stdout: string): { header: string; text: string }[] {
        const headers = [...stdout.matchAll(/^=== prompt .*$/gm)];
        return headers.map((m, i) => {
            const end = i + 1 < headers.length ? headers[i + 1].index - 1 : stdout.length;
            return { header: m[0], text: stdout.slice(m.index + m[0].length + 1, end) };
        });
    }

    it('3 prompts on 2 sequences: the results in input order, each what run -p prints for it alone, then the summary', () => {
        expect(new Set(alone.map((a) => a.stdout)).size).toBe(3);
        const r = llamaKv('run', '--prompts-file', file, '-np', '2', ...greedy);
        expect(r.code, r.stderr).toBe(0);
        expect(blocks(r.stdout)).toEqual(prompts.map((prompt, i) => ({ header: `=== prompt ${i + 1}/3 (length, 12 tokens): ${prompt}`, text: alone[i].stdout })));
        const promptTokens = alone.reduce((n, a) => n + a.promptTokens, 0);
        const summary = new RegExp(
            `^batch: 3 prompts on 2 sequences in ([\\d.]+) s \\| prompt: ${promptTokens} tokens, ([\\d.]+) t/s \\| generation: 36 tokens, ([\\d.]+) t/s \\| finish: 3 length \\| kv: f16/f16, flash attention (on|off)$`,
            'm',
        ).exec(r.stderr);
        expect(summary, r.stderr).not.toBeNull();
        const [, wall, promptRate, generationRate] = summary!.map(Number);
        expect(wall).toBeGreaterThan(0);
        expect(promptRate).toBeGreaterThan(0);
        expect(generationRate).toBeGreaterThan(0);
    });

    it('--json: one object with every result in input order and the summary; -np defaults to 1 and a -s seed gives prompt i seed + i', () => {
        const r = llamaKv('run', '--prompts-file', file, '--json', '-s', '100', ...greedy);
        expect(r.code, r.stderr).toBe(0);
        const { model, results, summary } = JSON.parse(r.stdout);
        expect(model).toBe(fixtures.f16);
        expect(results.map((x: { index: number; line: number; prompt: string; text: string; tokenCount: number; finishReason: string; seed: number }) => [x.index, x.line, x.prompt, x.text + '\n', x.tokenCount, x.finishReason, x.seed])).toEqual(
            prompts.map((prompt, i) => [i + 1, [1, 3, 4][i], prompt, alone[i].stdout, 12, 'length', 100 + i]),
        );
        for (const [i, x] of results.entries()) {
            expect(x.timings).toMatchObject({ promptTokens: alone[i].promptTokens, generatedTokens: 12 });
        }
        expect(summary).toMatchObject({ prompts: 3, sequences: 1, generatedTokens: 36, finishReasons: { length: 3 } });
        expect(summary.promptTokens).toBe(alone.reduce((n, a) => n + a.promptTokens, 0));
        // The aggregate rates are over the batch's wall time.
        expect(summary.wallMs).toBeGreaterThan(0);
        expect(summary.generationTokensPerSecond).toBeCloseTo((36 * 1000) / summary.wallMs, -1);
        expect(summary.promptTokensPerSecond).toBeCloseTo(((summary.promptTokens - summary.reusedTokens) * 1000) / summary.wallMs, -1);
        expect(r.stderr).toMatch(/^batch: 3 prompts on 1 sequence in /m);
    });

    it('SIGINT aborts every prompt: the results so far, finishReason abort, exit code 0', async () => {
        // Long generations (4000 tokens each); the signal is sent once the context exists (its log line) and the handler is set.
        const child = spawn(process.execPath, [cli, 'run', '--prompts-file', file, '-np', '2', '-m', fixtures.f16, '-c', '8192', '-n', '4000', '--gpu', 'none', '--json', '--verbose'], {
            env: { ...process.env, LLAMA_KV_CACHE_DIR: fixtures.cacheDir },
        });
        let stdout = '';
        let stderr = '';
        let sent = false;
        child.stdout.on('data', (d: Buffer) => (stdout += d));
        child.stderr.on('data', (d: Buffer) => {
            stderr += d;
            if (!sent && /llama_context/.test(stderr)) {
                sent = true;
                setTimeout(() => child.kill('SIGINT'), 300);
            }
        });
        const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
        expect(sent, stderr).toBe(true);
        expect(code, stderr).toBe(0);
        const { results, summary } = JSON.parse(stdout);
        expect(results.map((x: { prompt: string }) => x.prompt)).toEqual(prompts);
        expect(results.at(-1).finishReason).toBe('abort');
        expect(summary.generatedTokens).toBeLessThan(3 * 4000);
    });

    it('a missing, unreadable or empty file, and -p with it, are usage errors (exit code 2); -f suggests --prompts-file', () => {
        const empty = join(work, 'empty.txt');
        writeFileSync(empty, '\n  \n');
        const missing = join(work, 'missing.txt');
        const cases: [string[], string][] = [
            [['--prompts-file', missing], `--prompts-file: cannot read "${missing}": ENOENT`],
            [['--prompts-file', work], `--prompts-file: cannot read "${work}": EISDIR`],
            [['--prompts-file', empty], `--prompts-file: "${empty}" holds no prompt (one prompt per line; blank lines are skipped)`],
            [['--prompts-file', file, '-p', 'Hi'], '-p/--prompt and --prompts-file cannot be used together'],
            [['-f', file, '--prompts-file', file], '-f/--file'],
            [[], '-p/--prompt or --prompts-file is required'],
        ];
        for (const [args, message] of cases) {
            const r = llamaKv('run', ...args, '-m', fixtures.f16);
            expect(r.code, args.join(' ')).toBe(2);
            expect(r.stderr).toContain(`llama-kv run: ${message}`);
            expect(r.stderr).toContain('usage: llama-kv run');
            expect(r.stdout).toBe('');
        }
    });
});
