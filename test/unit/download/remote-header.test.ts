// The header of a remote GGUF read with range requests, and estimateMemory / planFit of a URL:
// equal to the same file's on disk, with only the header's bytes transferred.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LlamaError } from '../../../lib/errors.js';
import { parseGguf } from '../../../lib/gguf/reader.js';
import { estimateMemory, planFit, readGgufMetadata, readRemoteGgufMetadata } from '../../../lib/index.js';
import { modelBytes, serveFile, TestServer } from './support.js';

const FILE = modelBytes(4);
const HEADER = parseGguf(FILE);
let server: TestServer;

beforeEach(async () => {
    server = await new TestServer().start();
    server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
});
afterEach(async () => {
    await server.stop();
});

/** Bytes the server sent for the GETs so far (from the ranges asked for). */
const rangesAsked = () => server.gets().map((s) => s.headers.range);

describe('readRemoteGgufMetadata()', () => {
    it('reads a header larger than the first range with growing range requests, never the tensor data', async () => {
        expect(HEADER.dataOffset).toBeGreaterThan(256 * 1024); // the 20000-token vocabulary
        const gguf = await readRemoteGgufMetadata(server.url('/model.gguf'), { initialChunkSize: 64 * 1024 });
        expect(gguf).toEqual(HEADER);
        const ranges = rangesAsked();
        expect(ranges[0]).toBe('bytes=0-65535');
        expect(ranges.length).toBeGreaterThan(1);
        // Each later range starts where the bytes so far end, and none reaches the tensor data's end.
        const ends = ranges.map((r) => Number(/-(\d+)$/.exec(r ?? '')?.[1]));
        ranges.slice(1).forEach((r, i) => expect(r).toBe(`bytes=${ends[i] + 1}-${ends[i + 1]}`));
        expect(ends.at(-1)).toBeLessThan(FILE.length - 1);
    });

    it('with the default first range (4 MiB), one request for a file smaller than it', async () => {
        expect(await readRemoteGgufMetadata(server.url('/model.gguf'))).toEqual(HEADER);
        expect(rangesAsked()).toEqual(['bytes=0-4194303']);
    });

    it('from a server without range support (200: the first bytes are read, the rest left)', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { ranges: false });
        expect(await readRemoteGgufMetadata(server.url('/model.gguf'), { initialChunkSize: 64 * 1024 })).toEqual(HEADER);
    });

    it('through hf: and LLAMA_KV_HF_ENDPOINT', async () => {
        const saved = process.env.LLAMA_KV_HF_ENDPOINT;
        process.env.LLAMA_KV_HF_ENDPOINT = server.origin;
        try {
            expect(await readRemoteGgufMetadata('hf:o/r/model.gguf', { initialChunkSize: 100_000 })).toEqual(HEADER);
            expect(server.gets()[0].url).toBe('/o/r/resolve/main/model.gguf');
        } finally {
            if (saved === undefined) delete process.env.LLAMA_KV_HF_ENDPOINT;
            else process.env.LLAMA_KV_HF_ENDPOINT = saved;
        }
    });

    it('says INVALID_MODEL_FILE for a file that is not GGUF, and a truncated header is the file\'s own error', async () => {
        server.handler = (req, res) => serveFile(req, res, new TextEncoder().encode('<html>not a model</html>'));
        const error = (await readRemoteGgufMetadata(server.url('/page.html')).catch((e: unknown) => e)) as LlamaError;
        expect(error.code).toBe('INVALID_MODEL_FILE');
        expect(error.message).toContain('not a GGUF file');
        const cut = FILE.subarray(0, 100_000);
        server.handler = (req, res) => serveFile(req, res, cut);
        const truncated = (await readRemoteGgufMetadata(server.url('/cut.gguf'), { initialChunkSize: 30_000 }).catch((e: unknown) => e)) as LlamaError;
        expect(truncated.code).toBe('INVALID_MODEL_FILE');
        // parseGguf's own truncation (the counts exceed the file), not a request for more bytes.
        expect(truncated.message).toMatch(/^truncated GGUF: element count of array 'tokenizer.ggml.tokens' .* more than the \d+ bytes left in the file \(file size 100000\)/);
        expect(server.gets().map((s) => s.url)).toEqual(['/page.html', '/cut.gguf']); // one request each
    });

    it('refuses a header larger than maxHeaderBytes, and reports statuses', async () => {
        const big = (await readRemoteGgufMetadata(server.url('/model.gguf'), { initialChunkSize: 64 * 1024, maxHeaderBytes: 100_000 }).catch((e: unknown) => e)) as LlamaError;
        expect(big.message).toContain('needs more than 100000 bytes; refusing to read it');
        server.handler = (_req, res) => {
            res.writeHead(404);
            res.end();
        };
        const missing = (await readRemoteGgufMetadata(server.url('/nope.gguf')).catch((e: unknown) => e)) as LlamaError;
        expect(missing.code).toBe('DOWNLOAD_FAILED');
        expect(missing.message).toContain('answered 404 Not Found');
        await expect(readRemoteGgufMetadata('model.gguf')).rejects.toThrow('use readGgufMetadata() for a local file');
    });

    it('stops on an abort (ABORTED) and on a stall', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { stallAfter: 1000 });
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 200);
        const aborted = (await readRemoteGgufMetadata(server.url('/model.gguf'), { signal: controller.signal }).catch((e: unknown) => e)) as LlamaError;
        expect(aborted.code).toBe('ABORTED');
        const stalled = (await readRemoteGgufMetadata(server.url('/model.gguf'), { stallTimeoutMs: 200 }).catch((e: unknown) => e)) as LlamaError;
        expect(stalled.code).toBe('DOWNLOAD_FAILED');
        expect(stalled.message).toContain('sent nothing for 200 ms');
    });
});

describe('estimateMemory() and planFit() of a URL', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llama-kv-remote-'));
    const local = join(dir, 'model.gguf');
    writeFileSync(local, FILE);

    it('estimate exactly what the same file on disk gives (the header level; repack: false needs no addon)', async () => {
        const options = { contextSize: 1024, parallel: 2, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0', repack: false } as const;
        const remote = await estimateMemory({ model: server.url('/model.gguf'), ...options });
        expect(remote).toEqual(await estimateMemory({ model: local, ...options }));
        expect(remote.weights.bytes).toBe(FILE.length - HEADER.dataOffset);
        expect(remote.kv.bytes).toBeGreaterThan(0);
        expect(await readGgufMetadata(local)).toEqual(HEADER);
        // Only the header was transferred.
        expect(rangesAsked()).toEqual(['bytes=0-4194303']);
    });

    it('plan with the header estimate (no dry run)', async () => {
        const plan = await planFit({ model: server.url('/model.gguf'), budgetBytes: 64 * 2 ** 20, repack: false });
        expect(plan).toEqual(await planFit({ model: HEADER, budgetBytes: 64 * 2 ** 20, repack: false }));
        expect(plan.reason).toContain('estimated total');
    });

    it('simulate: true with a URL is INVALID_CONFIG, before any request', async () => {
        const error = (await estimateMemory({ model: server.url('/model.gguf'), simulate: true }).catch((e: unknown) => e)) as LlamaError;
        expect(error.code).toBe('INVALID_CONFIG');
        expect(error.message).toContain('simulate: true needs the model as a local GGUF file');
        expect(error.message).toContain('resolveModelFile()');
        expect(server.seen).toEqual([]);
    });
});
