// The CLI's basics end to end: --version, -h as help only where a flag stands, -- before text
// that starts with a dash, --json as the one document on stdout, and progress bars drawn on a
// terminal only.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, llamaKv } from '../support/cli.js';
import { fixtures } from '../support/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'llama-kv-cli-basics-'));
const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };

function json(r: { code: number | null; stdout: string; stderr: string }): Record<string, unknown> {
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Record<string, unknown>; // throws if stdout holds anything but the document
}

describe('llama-kv basics', () => {
    it("--version and -v print package.json's version", () => {
        for (const flag of ['--version', '-v']) expect(llamaKv(flag)).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    });

    it("-h is help where a flag stands, and a flag's value after -p; after --, -p is the prompt", () => {
        for (const args of [['run', '-h'], ['run', '-n', '2', '--help'], ['chat', '-p', 'x', '-h']]) {
            const r = llamaKv(...args);
            expect(r.code, args.join(' ')).toBe(0);
            expect(r.stdout).toMatch(new RegExp(`^usage: llama-kv ${args[0]} `));
        }
        expect(json(llamaKv('run', '-m', fixtures.q8_0, '-p', '-h', '-n', '1', '--json')).prompt).toBe('-h');
        expect(json(llamaKv('run', '-m', fixtures.q8_0, '-n', '1', '--json', '--', '-p')).prompt).toBe('-p');
        expect(json(llamaKv('chat', '-m', fixtures.q8_0, '-n', '1', '--json', '--', '--help')).finishReason).toBeTypeOf('string');
        const two = llamaKv('run', '-m', fixtures.q8_0, '-n', '1', '--', '-p', 'x');
        expect(two.code).toBe(2);
        expect(two.stderr).toContain('unexpected argument "x": the prompt is one argument (quote it: "-p x")');
        const both = llamaKv('run', '-m', fixtures.q8_0, '-p', 'a', '--', 'b');
        expect(both.code).toBe(2);
        expect(both.stderr).toContain('give the prompt one way: as an argument or with -p/--prompt, not both');
    });

    it('quantize --json prints one JSON object on stdout, the summary line on stderr and no bar off a terminal', () => {
        const output = join(dir, 'q8.gguf');
        const r = llamaKv('quantize', fixtures.f16, output, 'q8_0', '-t', '2', '--json');
        expect(json(r)).toMatchObject({ input: fixtures.f16, output, type: 'Q8_0' });
        expect(r.stderr).toMatch(/^quantized .* -> q8\.gguf: Q8_0/m);
        expect(r.stderr).not.toContain('\r');
    });

    it("bench --json prints the report --out writes; --compare's comparison goes to stderr; no progress off a terminal", () => {
        const out = join(dir, 'bench.json');
        const r = llamaKv('bench', '-m', fixtures.q8_0, '--quick', '--ours-only', '--no-memory', '--no-load', '-p', '8', '-n', '4', '--kv', 'f16/f16', '--json', '--out', out);
        expect(json(r)).toEqual(JSON.parse(readFileSync(out, 'utf8')));
        expect(r.stderr).toContain(`[llama-kv bench] report written to ${out}`);
        expect(r.stderr).not.toMatch(/repetition|warm-up/); // progress is a terminal's bar only
        const same = llamaKv('bench', '--compare', out, '--current', out, '--json');
        expect(json(same)).toEqual(JSON.parse(readFileSync(out, 'utf8')));
        expect(same.stderr).toMatch(/compared with .*bench\.json:\n[\s\S]*no regression over 5%/);
    }, 120_000);

    it.runIf(spawnSync('script', ['--version']).status === 0)('embed draws the shared bar on a terminal and erases it', () => {
        const command = [process.execPath, cli, 'embed', '-m', fixtures.embed.bert, '-t', '2', 'one text', 'two texts', 'three texts'].map((a) => `'${a}'`).join(' ');
        const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
        expect(r.status, r.stdout).toBe(0);
        expect(r.stdout).toMatch(/\r\[#{30}\] 100% embedded 3\/3\x1b\[K\r\x1b\[K/);
        const piped = llamaKv('embed', '-m', fixtures.embed.bert, '-t', '2', 'one text', 'two texts', 'three texts');
        expect(piped.code, piped.stderr).toBe(0);
        expect(piped.stderr).not.toContain('\r');
    });
});
