// resolveModelFile() against a local HTTP server: whole downloads, interruption and resume,
// remote changes between attempts, checksums, statuses, stalls and aborts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LlamaAbortError, LlamaError } from '../../../lib/errors.js';
import { resolveModelFile, type DownloadProgress } from '../../../lib/index.js';
import { modelBytes, serveFile, sha256, TestServer } from './support.js';

const FILE = modelBytes(1);
const OTHER = modelBytes(2);
let server: TestServer;
let dir: string;

beforeEach(async () => {
    server = await new TestServer().start();
    dir = mkdtempSync(join(tmpdir(), 'llama-kv-download-'));
});
afterEach(async () => {
    await server.stop();
});

async function failure(promise: Promise<unknown>): Promise<LlamaError> {
    const error = await promise.then(
        () => new Error('resolved'),
        (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LlamaError);
    return error as LlamaError;
}

const same = (path: string, bytes: Uint8Array) => expect(Buffer.compare(readFileSync(path), Buffer.from(bytes))).toBe(0);

describe('resolveModelFile() downloads', () => {
    it('a URL into dir under its last path segment, reporting progress, leaving no partial file', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
        const progress: DownloadProgress[] = [];
        const path = await resolveModelFile(server.url('/files/model.gguf'), { dir, onProgress: (p) => progress.push(p) });
        expect(path).toBe(join(dir, 'model.gguf'));
        same(path, FILE);
        expect(readdirSync(dir)).toEqual(['model.gguf']);
        expect(progress[0]).toEqual({ downloadedBytes: 0, totalBytes: FILE.length, resumedFromBytes: 0 });
        expect(progress.at(-1)).toEqual({ downloadedBytes: FILE.length, totalBytes: FILE.length, resumedFromBytes: 0 });
        // Throttled: far fewer calls than chunks (at most every 100 ms, a local transfer takes a few).
        expect(progress.length).toBeLessThan(20);
        expect(server.gets()[0].headers['accept-encoding']).toBe('identity');
    });

    it('under fileName when given, and returns a file that is there without a GET (a HEAD gives its size)', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
        const path = await resolveModelFile(server.url('/m.gguf'), { dir, fileName: 'mine.gguf' });
        expect(path).toBe(join(dir, 'mine.gguf'));
        const before = server.seen.length;
        expect(await resolveModelFile(server.url('/m.gguf'), { dir, fileName: 'mine.gguf' })).toBe(path);
        expect(server.seen.slice(before).map((s) => s.method)).toEqual(['HEAD']);
    });

    it('again when the file there has another size than the server says; returns it as is when the server is down', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
        writeFileSync(join(dir, 'model.gguf'), 'stale');
        const path = await resolveModelFile(server.url('/model.gguf'), { dir });
        same(path, FILE);
        const url = server.url('/model.gguf');
        await server.stop();
        expect(await resolveModelFile(url, { dir })).toBe(path);
        server = await new TestServer().start();
    });

    it('returns a local path as is, and says MODEL_NOT_FOUND for a missing one', async () => {
        const local = join(dir, 'here.gguf');
        writeFileSync(local, FILE);
        expect(await resolveModelFile(local)).toBe(local);
        const error = await failure(resolveModelFile(join(dir, 'missing.gguf')));
        expect(error.code).toBe('MODEL_NOT_FOUND');
        expect(error.message).toContain('missing.gguf');
        expect(server.seen).toEqual([]);
    });

    it('a URL with no file name needs fileName', async () => {
        const error = await failure(resolveModelFile(server.url('/'), { dir }));
        expect(error.code).toBe('INVALID_CONFIG');
        expect(error.message).toContain('give fileName');
    });
});

describe('resolveModelFile() resumes', () => {
    it('an interrupted download with Range and If-Range, into a byte-identical file', async () => {
        const cut = 300_000;
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', cutAfter: cut });
        const error = await failure(resolveModelFile(server.url('/model.gguf'), { dir, retries: 0 }));
        expect(error.code).toBe('DOWNLOAD_FAILED');
        expect(error.message).toMatch(/connection .* (failed|closed)/);
        expect(error.message).toContain('call again to resume');
        expect(existsSync(join(dir, 'model.gguf'))).toBe(false);
        expect(statSync(join(dir, 'model.gguf.partial')).size).toBe(cut);
        expect(JSON.parse(readFileSync(join(dir, 'model.gguf.partial.json'), 'utf8'))).toMatchObject({ etag: '"v1"', totalBytes: FILE.length });

        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
        const progress: DownloadProgress[] = [];
        const path = await resolveModelFile(server.url('/model.gguf'), { dir, onProgress: (p) => progress.push(p) });
        const resume = server.gets().at(-1);
        expect(resume?.headers.range).toBe(`bytes=${cut}-`);
        expect(resume?.headers['if-range']).toBe('"v1"');
        same(path, FILE);
        expect(progress[0]).toEqual({ downloadedBytes: cut, totalBytes: FILE.length, resumedFromBytes: cut });
        expect(readdirSync(dir)).toEqual(['model.gguf']);
    });

    it('by itself within one call: a dropped connection is retried from where it stopped', async () => {
        let requests = 0;
        server.handler = (req, res) => serveFile(req, res, FILE, { lastModified: 'Wed, 21 Oct 2015 07:28:00 GMT', ...(requests++ === 0 ? { cutAfter: 200_000 } : {}) });
        const path = await resolveModelFile(server.url('/model.gguf'), { dir });
        same(path, FILE);
        expect(server.gets().map((s) => s.headers.range)).toEqual([undefined, 'bytes=200000-']);
        // No ETag: Last-Modified is the validator.
        expect(server.gets()[1].headers['if-range']).toBe('Wed, 21 Oct 2015 07:28:00 GMT');
    });

    it('from zero when the remote file changed (If-Range no longer matches: 200)', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', cutAfter: 100_000 });
        await failure(resolveModelFile(server.url('/model.gguf'), { dir, retries: 0 }));
        server.handler = (req, res) => serveFile(req, res, OTHER, { etag: '"v2"' });
        const path = await resolveModelFile(server.url('/model.gguf'), { dir });
        expect(server.gets().at(-1)?.headers.range).toBe('bytes=100000-');
        same(path, OTHER);
    });

    it('from zero when a server that ignores If-Range answers 206 with another ETag', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', cutAfter: 100_000 });
        await failure(resolveModelFile(server.url('/model.gguf'), { dir, retries: 0 }));
        server.handler = (req, res) => serveFile(req, res, OTHER, { etag: '"v2"', honorIfRange: false });
        const path = await resolveModelFile(server.url('/model.gguf'), { dir });
        expect(server.gets().slice(-2).map((s) => s.headers.range)).toEqual(['bytes=100000-', undefined]);
        same(path, OTHER);
    });

    it('from zero when the server answers a range request with 200 (no range support)', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', cutAfter: 100_000 });
        await failure(resolveModelFile(server.url('/model.gguf'), { dir, retries: 0 }));
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', ranges: false });
        const progress: DownloadProgress[] = [];
        const path = await resolveModelFile(server.url('/model.gguf'), { dir, onProgress: (p) => progress.push(p) });
        expect(server.gets().at(-1)?.headers.range).toBe('bytes=100000-');
        expect(progress[0].resumedFromBytes).toBe(0);
        same(path, FILE);
    });

    it('not at all without a validator (no ETag, no Last-Modified): the next attempt starts over', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { cutAfter: 100_000 });
        await failure(resolveModelFile(server.url('/model.gguf'), { dir, retries: 0 }));
        server.handler = (req, res) => serveFile(req, res, FILE);
        same(await resolveModelFile(server.url('/model.gguf'), { dir }), FILE);
        expect(server.gets().at(-1)?.headers.range).toBeUndefined();
    });

    it('a 206 with the wrong Content-Range is an error, and the partial file is dropped', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', cutAfter: 100_000 });
        await failure(resolveModelFile(server.url('/model.gguf'), { dir, retries: 0 }));
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', contentRange: `bytes 0-${FILE.length - 1}/${FILE.length}` });
        const error = await failure(resolveModelFile(server.url('/model.gguf'), { dir }));
        expect(error.code).toBe('DOWNLOAD_FAILED');
        expect(error.message).toContain('for bytes 100000- and it answered 206 with Content-Range "bytes 0-');
        expect(readdirSync(dir)).toEqual([]);
    });

    it('a partial file that is complete already (416) is verified and renamed', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', headers: { 'x-linked-etag': `"${sha256(FILE)}"` } });
        writeFileSync(join(dir, 'model.gguf.partial'), FILE);
        writeFileSync(join(dir, 'model.gguf.partial.json'), JSON.stringify({ url: server.url('/model.gguf'), etag: '"v1"', totalBytes: FILE.length }));
        same(await resolveModelFile(server.url('/model.gguf'), { dir }), FILE);
        expect(server.gets().map((s) => s.headers.range)).toEqual([`bytes=${FILE.length}-`]);
    });
});

describe('resolveModelFile() checks', () => {
    it("the sha256 of the server's X-Linked-ETag: a wrong one is DOWNLOAD_FAILED and leaves no file", async () => {
        const wrong = sha256(OTHER);
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', headers: { 'x-linked-etag': `"${wrong}"` } });
        const error = await failure(resolveModelFile(server.url('/model.gguf'), { dir }));
        expect(error.code).toBe('DOWNLOAD_FAILED');
        expect(error.message).toContain(`is ${sha256(FILE)} but the server's X-Linked-ETag says ${wrong}`);
        expect(readdirSync(dir)).toEqual([]);
    });

    it('the sha256 option (any case), over the server\'s; a resumed download hashes the bytes already on disk', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', cutAfter: 150_000 });
        await failure(resolveModelFile(server.url('/model.gguf'), { dir, retries: 0, sha256: sha256(FILE).toUpperCase() }));
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
        same(await resolveModelFile(server.url('/model.gguf'), { dir, sha256: sha256(FILE) }), FILE);
        expect(server.gets().at(-1)?.headers.range).toBe('bytes=150000-');
        const error = await failure(resolveModelFile(server.url('/model.gguf'), { dir, fileName: 'b.gguf', sha256: sha256(OTHER) }));
        expect(error.message).toContain(`but the sha256 option says ${sha256(OTHER)}`);
        expect(existsSync(join(dir, 'b.gguf'))).toBe(false);
    });

    it('an existing file against the sha256 option: a mismatch downloads it again', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
        const bogus = Buffer.alloc(FILE.length, 7);
        writeFileSync(join(dir, 'model.gguf'), bogus);
        same(await resolveModelFile(server.url('/model.gguf'), { dir, sha256: sha256(FILE) }), FILE);
    });

    it('a generic server\'s ETag is never taken as a sha256, even when it looks like one', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: `"${sha256(OTHER)}"` });
        same(await resolveModelFile(server.url('/model.gguf'), { dir }), FILE);
    });

    it('options strictly', async () => {
        const error = await failure(resolveModelFile(server.url('/model.gguf'), { dir, sha256: 'abc' }));
        expect(error.code).toBe('INVALID_CONFIG');
        expect(error.message).toBe('Expected a sha256 of 64 hex digits for sha256 but received "abc" (string)');
        const misspelt = await failure(resolveModelFile(server.url('/model.gguf'), { dri: dir } as never));
        expect(misspelt.message).toBe('Unknown option "dri" for resolveModelFile(); did you mean "dir"?');
        expect((await failure(resolveModelFile(server.url('/m.gguf'), { fileName: '../x.gguf' }))).message).toContain('a file name without folders');
    });
});

describe('resolveModelFile() fails clearly', () => {
    it('on a folder that cannot be made', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
        const file = join(dir, 'a-file');
        writeFileSync(file, '');
        const error = await failure(resolveModelFile(server.url('/model.gguf'), { dir: join(file, 'sub') }));
        expect(error.code).toBe('DOWNLOAD_FAILED');
        expect(error.message).toContain(`cannot create the folder ${join(file, 'sub')}`);
    });

    it('on a 404, naming the URL and the status', async () => {
        server.handler = (_req, res) => {
            res.writeHead(404);
            res.end('not here');
        };
        const error = await failure(resolveModelFile(server.url('/nope.gguf'), { dir }));
        expect(error.code).toBe('DOWNLOAD_FAILED');
        expect(error.message).toBe(`resolveModelFile(): GET ${server.url('/nope.gguf')} answered 404 Not Found: check the URL`);
        expect(readdirSync(dir)).toEqual([]);
    });

    it('on a 401', async () => {
        server.handler = (_req, res) => {
            res.writeHead(401);
            res.end();
        };
        const error = await failure(resolveModelFile(server.url('/private.gguf'), { dir }));
        expect(error.message).toContain('answered 401 Unauthorized: the server refuses the request without credentials');
    });

    it('on a 5xx after the retries', async () => {
        server.handler = (_req, res) => {
            res.writeHead(503);
            res.end();
        };
        const error = await failure(resolveModelFile(server.url('/busy.gguf'), { dir, retries: 1 }));
        expect(error.message).toContain('answered 503 Service Unavailable: the server failed; try again later (after 1 retry)');
        expect(server.gets().length).toBe(2);
    });

    it('on a server that stalls, keeping the partial file', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', stallAfter: 50_000 });
        const error = await failure(resolveModelFile(server.url('/slow.gguf'), { dir, stallTimeoutMs: 300, retries: 0 }));
        expect(error.code).toBe('DOWNLOAD_FAILED');
        expect(error.message).toContain('sent nothing for 300 ms after 50000 of');
        expect(error.message).toContain('raise stallTimeoutMs');
        expect(statSync(join(dir, 'slow.gguf.partial')).size).toBe(50_000);
    });

    it('on a server that never answers', async () => {
        server.handler = () => undefined;
        const error = await failure(resolveModelFile(server.url('/mute.gguf'), { dir, stallTimeoutMs: 200, retries: 0 }));
        expect(error.message).toContain('sent nothing for 200 ms');
    });

    it('on an abort (ABORTED), keeping the partial file for a resume', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"', stallAfter: 70_000 });
        const controller = new AbortController();
        const promise = resolveModelFile(server.url('/model.gguf'), { dir, signal: controller.signal });
        // Aborted while the server holds the connection open after 70000 bytes (the stall timeout is 30 s).
        setTimeout(() => controller.abort(), 300);
        const error = await failure(promise);
        expect(error).toBeInstanceOf(LlamaAbortError);
        expect(error.code).toBe('ABORTED');
        expect(error.message).toContain('call again to resume');
        expect(error.message).toContain('the 70000 bytes downloaded are kept');
        expect(statSync(join(dir, 'model.gguf.partial')).size).toBe(70_000);
        const already = new AbortController();
        already.abort();
        expect((await failure(resolveModelFile(server.url('/model.gguf'), { dir, signal: already.signal }))).code).toBe('ABORTED');
    });
});

describe('resolveModelFile() one download at a time', () => {
    it('calls in one process for the same file share one download', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
        const url = server.url('/m.gguf');
        const paths = await Promise.all([resolveModelFile(url, { dir }), resolveModelFile(url, { dir }), resolveModelFile(url, { dir })]);
        expect(new Set(paths)).toEqual(new Set([join(dir, 'm.gguf')]));
        expect(server.gets()).toHaveLength(1);
        same(paths[0], FILE);
        expect(readdirSync(dir)).toEqual(['m.gguf']);
    });

    it('another live process holding the lock is an error naming it; a lock left by a process that is gone is taken over', async () => {
        server.handler = (req, res) => serveFile(req, res, FILE, { etag: '"v1"' });
        const url = server.url('/m.gguf');
        // The parent of this test process is alive and is not us.
        writeFileSync(join(dir, 'm.gguf.partial.lock'), `${process.ppid}\n`);
        const error = await failure(resolveModelFile(url, { dir }));
        expect(error.code).toBe('DOWNLOAD_FAILED');
        expect(error.message).toContain(`another process (pid ${process.ppid}) is downloading this file`);
        expect(server.gets()).toHaveLength(0);
        const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
        writeFileSync(join(dir, 'm.gguf.partial.lock'), `${gone}\n`);
        same(await resolveModelFile(url, { dir }), FILE);
        expect(readdirSync(dir)).toEqual(['m.gguf']);
    });
});
