// `llama-kv pull`, and `memory` / `fit` of a URL, run in this process against the local server
// (test/model/cli-pull.test.ts runs the built CLI).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fit } from '../../../lib/cli/commands/fit.js';
import { memory } from '../../../lib/cli/commands/memory.js';
import { pull } from '../../../lib/cli/commands/pull.js';
import { UsageError } from '../../../lib/cli/flags/args.js';
import { LlamaError } from '../../../lib/errors.js';
import { parseGguf } from '../../../lib/gguf/reader.js';
import { estimateMemory } from '../../../lib/index.js';
import { modelBytes, serveFile, sha256, TestServer } from './support.js';

const FILE = modelBytes(5);
let server: TestServer;
let dir: string;

/** Runs a command with stdout and stderr captured. */
async function capture(main: (argv: readonly string[]) => Promise<number>, argv: string[], tty = false): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
    const wasTty = process.stderr.isTTY;
    process.stderr.isTTY = tty;
    try {
        return { code: await main(argv), stdout, stderr };
    } finally {
        process.stderr.isTTY = wasTty;
        out.mockRestore();
        err.mockRestore();
    }
}

beforeEach(async () => {
    server = await new TestServer().start();
    server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', headers: { 'x-linked-etag': sha256(FILE) } });
    dir = mkdtempSync(join(tmpdir(), 'llama-kv-pull-'));
});
afterEach(async () => {
    await server.stop();
});

describe('llama-kv pull', () => {
    it('prints the path on stdout and nothing on stderr when it is not a terminal', async () => {
        const r = await capture(pull, [server.url('/x/model.gguf'), '--dir', dir]);
        expect(r).toEqual({ code: 0, stdout: `${join(dir, 'model.gguf')}\n`, stderr: '' });
        expect(Buffer.compare(readFileSync(join(dir, 'model.gguf')), Buffer.from(FILE))).toBe(0);
    });

    it('--json: { uri, path, bytes }; a second pull finds the file there', async () => {
        const uri = server.url('/model.gguf');
        const first = await capture(pull, [uri, '--dir', dir, '--json']);
        expect(JSON.parse(first.stdout)).toEqual({ uri, path: join(dir, 'model.gguf'), bytes: FILE.length });
        const gets = server.gets().length;
        expect((await capture(pull, [uri, '--dir', dir])).stdout).toBe(`${join(dir, 'model.gguf')}\n`);
        expect(server.gets().length).toBe(gets);
    });

    it('draws a one-line bar on stderr when it is a terminal, and erases it', async () => {
        const r = await capture(pull, [server.url('/model.gguf'), '--dir', dir], true);
        expect(r.stdout).toBe(`${join(dir, 'model.gguf')}\n`);
        expect(r.stderr).toMatch(/^\r\[[#.]{30}\] +\d+% [\d.]+ (KiB|MiB|B) \/ 1\.\d\d MiB/);
        expect(r.stderr.endsWith('\r\x1b[K')).toBe(true);
        expect(r.stderr).not.toContain('\n');
    });

    it('--sha256 checks the file; a wrong one fails with DOWNLOAD_FAILED', async () => {
        const error = await capture(pull, [server.url('/model.gguf'), '--dir', dir, '--sha256', 'cd'.repeat(32)]).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LlamaError);
        expect((error as LlamaError).code).toBe('DOWNLOAD_FAILED');
        expect((error as Error).message).toContain(`is ${sha256(FILE)} but the sha256 option says ${'cd'.repeat(32)}`);
    });

    it('needs exactly one URI', async () => {
        await expect(capture(pull, ['--dir', dir])).rejects.toThrow(UsageError);
        await expect(capture(pull, ['a', 'b'])).rejects.toThrow('unexpected argument "b": pull takes one URI');
    });
});

describe('llama-kv memory and fit of a URL', () => {
    it('memory --json estimates from the remote header, as estimateMemory() of the header', async () => {
        const url = server.url('/model.gguf');
        const r = await capture(memory, [url, '-c', '1024', '--no-repack', '--json']);
        expect(r.code).toBe(0);
        const { model, estimate } = JSON.parse(r.stdout) as { model: string; estimate: unknown };
        expect(model).toBe(url);
        expect(estimate).toEqual(JSON.parse(JSON.stringify(await estimateMemory({ model: parseGguf(FILE), contextSize: 1024, repack: false }))));
        expect(server.gets().every((s) => s.headers.range === 'bytes=0-4194303')).toBe(true);
    });

    it('memory --live and --simulate need a local file', async () => {
        await expect(capture(memory, [server.url('/model.gguf'), '--live'])).rejects.toThrow('--live needs a local model file: download it first with `llama-kv pull');
        await expect(capture(memory, [server.url('/model.gguf'), '--simulate'])).rejects.toThrow('simulate: true needs the model as a local GGUF file');
    });

    it('fit plans from the remote header and says how to run it', async () => {
        const url = server.url('/model.gguf');
        const r = await capture(fit, ['-m', url, '--budget', '64MiB', '--no-repack']);
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(`run: llama-kv run -m "$(llama-kv pull ${url})" --no-repack -c `);
        expect(r.stdout).toContain('estimated total');
    });
});
