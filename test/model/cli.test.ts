import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures } from '../support/fixtures.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'cli', 'index.js');

function llamaKv(...args: string[]) {
    const r = spawnSync(process.execPath, [cli, ...args], {
        encoding: 'utf8',
        env: { ...process.env, LLAMA_KV_CACHE_DIR: fixtures.cacheDir },
        timeout: 60_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('llama-kv CLI', () => {
    it('run with the built-in demo model streams text and ends with a timing line', () => {
        const r = llamaKv('run', '-p', 'Once upon a time', '-n', '32', '--temp', '0');
        expect(r.code).toBe(0);
        expect(r.stdout.trim().length).toBeGreaterThan(10);
        expect(r.stderr).toMatch(/prompt: 5 tokens, [\d.]+ t\/s \| generation: 32 tokens, [\d.]+ t\/s \| finish: length/);
    });

    it('run -m with --json prints the same greedy text as the API', () => {
        const a = llamaKv('run', '-m', fixtures.f16, '-p', 'Once upon a time', '-n', '16', '--temp', '0', '-t', '2', '-c', '256', '--json');
        expect(a.code).toBe(0);
        const parsed = JSON.parse(a.stdout);
        expect(parsed.tokens).toHaveLength(16);
        expect(parsed.finishReason).toBe('length');
        const b = llamaKv('run', '-m', fixtures.f16, '-p', 'Once upon a time', '-n', '16', '--temp', '0', '--json');
        expect(JSON.parse(b.stdout).tokens).toEqual(parsed.tokens);
    });

    it('run takes the K/V cache flags as llama.cpp names them', () => {
        const r = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-n', '4', '-ctk', 'q8_0', '-ctv', 'q4_0', '-fa', 'auto', '-np', '2', '-ub', '256', '--temp', '0');
        expect(r.code).toBe(0);
        expect(r.stderr).toContain('kv: q8_0/q4_0, flash attention on');
        const p = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-n', '4', '--kv-preset', 'extreme', '--temp', '0');
        expect(p.stderr).toContain('kv: q4_0/q4_0, flash attention on');
    });

    it('bad K/V values give the API messages and exit code 2', () => {
        const fa = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-ctv', 'q4_0', '-fa', 'off');
        expect(fa.code).toBe(2);
        expect(fa.stderr).toContain("set flashAttention to 'on' or 'auto', or use an unquantized cacheTypeV");
        const type = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-ctk', 'q3_k');
        expect(type.code).toBe(2);
        expect(type.stderr).toContain("Expected one of 'f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1' for cacheTypeK but received \"q3_k\" (string)");
        const hd = llamaKv('run', '-m', fixtures.hd48, '-p', 'Hi', '-ctk', 'q8_0');
        expect(hd.code).toBe(2);
        expect(hd.stderr).toContain('head dimension 48');
    });

    it('info prints the metadata', () => {
        const r = llamaKv('info', fixtures.q8_0);
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/architecture\s+llama/);
        expect(r.stdout).toMatch(/heads \/ KV heads\s+4 \/ 2/);
        expect(r.stdout).toMatch(/head dim K \/ V\s+64 \/ 64/);
        const json = JSON.parse(llamaKv('info', fixtures.q8_0, '--json').stdout);
        expect(json.gguf['general.file_type']).toBe(7);
    });

    it('bad flags: one-line error, usage, exit code 2', () => {
        for (const args of [['run', '--bogus'], ['run', '-p', 'x', '-n', 'many'], ['run'], ['frobnicate'], ['info']]) {
            const r = llamaKv(...args);
            expect(r.code, args.join(' ')).toBe(2);
            expect(r.stderr).toMatch(/^llama-kv[^\n]*\n/);
            expect(r.stderr).toContain('usage: llama-kv');
        }
    });

    it('ends quietly when its output pipe is closed early (| head)', () => {
        const r = spawnSync('sh', ['-c', `"${process.execPath}" "${cli}" info "${fixtures.f16}" | head -1`], { encoding: 'utf8' });
        expect(r.stdout).toMatch(/^path\s+/);
        expect(r.stderr).not.toContain('EPIPE');
    });

    it('a missing model is an error with its code, exit code 1', () => {
        const r = llamaKv('info', join(root, 'nope.gguf'));
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('[MODEL_NOT_FOUND]');
    });
});
