// The built CLI's `llama-kv pull` against a local HTTP server: the path on stdout, no progress
// when stderr is not a terminal, a resume after an interrupted download, the exit codes.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { modelBytes, serveFile, sha256, TestServer } from '../unit/download/support.js';

const FILE = modelBytes(6);
let server: TestServer;

/** Runs the CLI without blocking this process's event loop (the server answers from it). */
function llamaKv(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
        execFile(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
            resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
        });
    });
}

beforeAll(async () => {
    server = await new TestServer().start();
});
afterAll(async () => {
    await server.stop();
});

describe('llama-kv pull (built CLI)', () => {
    it('downloads hf: through LLAMA_KV_HF_ENDPOINT, prints the path, and resumes an interrupted download', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'llama-kv-cli-pull-'));
        let requests = 0;
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', headers: { 'x-linked-etag': `"${sha256(FILE)}"` }, ...(requests++ === 0 ? { cutAfter: 123_456 } : {}) });
        const r = await llamaKv(['pull', 'hf:o/r/model.gguf', '--dir', dir], { LLAMA_KV_HF_ENDPOINT: server.origin });
        expect(r).toEqual({ code: 0, stdout: `${join(dir, 'huggingface', 'o', 'r', 'model.gguf')}\n`, stderr: '' });
        expect(server.gets().map((s) => s.headers.range)).toEqual([undefined, 'bytes=123456-']);
        expect(Buffer.compare(readFileSync(join(dir, 'huggingface', 'o', 'r', 'model.gguf')), Buffer.from(FILE))).toBe(0);
        const json = await llamaKv(['pull', 'hf:o/r/model.gguf', '--dir', dir, '--json'], { LLAMA_KV_HF_ENDPOINT: server.origin });
        expect(JSON.parse(json.stdout)).toEqual({ uri: 'hf:o/r/model.gguf', path: join(dir, 'huggingface', 'o', 'r', 'model.gguf'), bytes: FILE.length });
    });

    it('exits 1 with the error code on a 404, and 2 with the usage on a bad flag', async () => {
        server.handler = (_req, res) => {
            res.writeHead(404);
            res.end();
        };
        const missing = await llamaKv(['pull', server.url('/missing.gguf'), '--dir', mkdtempSync(join(tmpdir(), 'llama-kv-cli-pull-'))]);
        expect(missing.code).toBe(1);
        expect(missing.stderr).toBe(`llama-kv pull: resolveModelFile(): GET ${server.url('/missing.gguf')} answered 404 Not Found: check the URL [DOWNLOAD_FAILED]\n`);
        const bad = await llamaKv(['pull', server.url('/m.gguf'), '--sha256', 'xyz']);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toContain('Expected a sha256 of 64 hex digits for sha256 but received "xyz" (string)');
        expect(bad.stderr).toContain('usage: llama-kv pull URI');
    });
});
