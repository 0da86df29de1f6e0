// estimateMemory / planFit / `llama-kv memory` of a fixture model served over HTTP: the same
// figures as for the file on disk (repack on: the CPU's extra buffer types come from the addon),
// with only the header's bytes transferred.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, planFit, readGgufMetadata } from '../../lib/index.js';
import { cli } from '../support/cli.js';
import { fixtures } from '../support/fixtures.js';
import { serveFile, TestServer } from '../unit/download/support.js';

let server: TestServer;
let bytesSent = 0;

beforeAll(async () => {
    const file = readFileSync(fixtures.f16);
    server = await new TestServer().start();
    server.handler = (req, res) => {
        const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
        bytesSent += range ? Math.min(Number(range[2]) + 1, file.length) - Number(range[1]) : file.length;
        serveFile(req, res, file, { etag: '"f16"' });
    };
});
afterAll(async () => {
    await server.stop();
});

describe('a model URL', () => {
    it('estimates as the file on disk, reading only its header', async () => {
        const url = server.url('/tiny-f16.gguf');
        const options = { contextSize: 2048, parallel: 2, kvPreset: 'balanced' } as const;
        expect(await estimateMemory({ model: url, ...options })).toEqual(await estimateMemory({ model: fixtures.f16, ...options }));
        const header = await readGgufMetadata(fixtures.f16);
        expect(bytesSent).toBeLessThan(header.dataOffset + 4 * 2 ** 20);
        expect(bytesSent).toBeLessThan(readFileSync(fixtures.f16).length);
    });

    it('plans as its header does', async () => {
        const url = server.url('/tiny-f16.gguf');
        const header = await readGgufMetadata(fixtures.f16);
        expect(await planFit({ model: url, budgetBytes: 256 * 2 ** 20 })).toEqual(await planFit({ model: header, budgetBytes: 256 * 2 ** 20 }));
    });

    it('llama-kv memory URL --json prints the estimate of the file', async () => {
        const url = server.url('/tiny-f16.gguf');
        const stdout = await new Promise<string>((resolve, reject) =>
            execFile(process.execPath, [cli, 'memory', url, '-c', '1024', '--json'], { timeout: 60_000 }, (error, out, err) => (error ? reject(new Error(err)) : resolve(out))),
        );
        const { estimate } = JSON.parse(stdout) as { estimate: unknown };
        expect(estimate).toEqual(JSON.parse(JSON.stringify(await estimateMemory({ model: fixtures.f16, contextSize: 1024 }))));
    });
});
