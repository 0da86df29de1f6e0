// hf: URIs through LLAMA_KV_HF_ENDPOINT: the resolve URL, the redirect to a CDN whose first
// response carries X-Linked-ETag, HF_TOKEN sent to the endpoint only, and malformed URIs.
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LlamaError } from '../../../lib/errors.js';
import { parseModelUri } from '../../../lib/download/uri.js';
import { resolveModelFile } from '../../../lib/index.js';
import { modelBytes, serveFile, sha256, TestServer } from './support.js';

const FILE = modelBytes(3);
let hub: TestServer;
let cdn: TestServer;
let dir: string;
const saved = { endpoint: process.env.LLAMA_KV_HF_ENDPOINT, token: process.env.HF_TOKEN };

/** The hub redirects /<owner>/<repo>/resolve/<rev>/<path> to the CDN, with Hugging Face's headers on the redirect. */
function hubRedirects(linkedEtag: string, status = 302) {
    hub.handler = (req, res) => {
        if (!req.url?.includes('/resolve/')) {
            res.writeHead(404);
            res.end();
            return;
        }
        res.writeHead(status, { location: `${cdn.origin}/cas/abc123?signature=secret`, 'x-linked-etag': linkedEtag, 'x-linked-size': String(FILE.length), etag: '"gitoid"' });
        res.end();
    };
    cdn.handler = (req, res) => serveFile(req, res, FILE, { etag: '"cdn-etag"' });
}

beforeEach(async () => {
    hub = await new TestServer().start();
    cdn = await new TestServer().start();
    dir = mkdtempSync(join(tmpdir(), 'llama-kv-hf-'));
    process.env.LLAMA_KV_HF_ENDPOINT = `${hub.origin}/`;
    delete process.env.HF_TOKEN;
});
afterEach(async () => {
    await hub.stop();
    await cdn.stop();
    for (const [key, value] of [['LLAMA_KV_HF_ENDPOINT', saved.endpoint], ['HF_TOKEN', saved.token]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
    }
});

describe('hf: URIs', () => {
    it('resolve to <endpoint>/owner/repo/resolve/main/path, follow the redirect and check the first response\'s X-Linked-ETag', async () => {
        hubRedirects(`"${sha256(FILE)}"`);
        const path = await resolveModelFile('hf:some-owner/Some.Repo_1/sub dir/model-Q8_0.gguf', { dir });
        expect(hub.gets().map((s) => s.url)).toEqual(['/some-owner/Some.Repo_1/resolve/main/sub%20dir/model-Q8_0.gguf']);
        expect(cdn.gets().map((s) => s.url)).toEqual(['/cas/abc123?signature=secret']);
        expect(path).toBe(join(dir, 'huggingface', 'some-owner', 'Some.Repo_1', 'sub_dir', 'model-Q8_0.gguf'));
        expect(Buffer.compare(readFileSync(path), Buffer.from(FILE))).toBe(0);
    });

    it('with @revision', async () => {
        hubRedirects(sha256(FILE), 307);
        const path = await resolveModelFile('hf:o/r@v1.0/m.gguf', { dir });
        expect(hub.gets()[0].url).toBe('/o/r/resolve/v1.0/m.gguf');
        expect(path).toBe(join(dir, 'huggingface', 'o', 'r@v1.0', 'm.gguf'));
        expect(parseModelUri('hf:o/r@refs%2Fpr%2F1/m.gguf')).toMatchObject({ url: `${hub.origin}/o/r/resolve/refs%2Fpr%2F1/m.gguf` });
    });

    it('a wrong X-Linked-ETag on the redirect is DOWNLOAD_FAILED, and no file is left', async () => {
        const wrong = 'ab'.repeat(32);
        hubRedirects(`"${wrong}"`);
        const error = (await resolveModelFile('hf:o/r/m.gguf', { dir }).catch((e: unknown) => e)) as LlamaError;
        expect(error).toBeInstanceOf(LlamaError);
        expect(error.code).toBe('DOWNLOAD_FAILED');
        expect(error.message).toContain(`the sha256 of hf:o/r/m.gguf (${FILE.length} bytes) is ${sha256(FILE)} but the server's X-Linked-ETag says ${wrong}`);
        // The repository's folder may stay; no file does.
        expect(readdirSync(dir, { recursive: true }).filter((f) => statSync(join(dir, String(f))).isFile())).toEqual([]);
    });

    it('send HF_TOKEN to the endpoint, never to the CDN', async () => {
        process.env.HF_TOKEN = 'hf_secret';
        hubRedirects(sha256(FILE));
        await resolveModelFile('hf:o/r/m.gguf', { dir });
        expect(hub.gets()[0].headers.authorization).toBe('Bearer hf_secret');
        expect(cdn.gets()[0].headers.authorization).toBeUndefined();
    });

    it('say to set HF_TOKEN on a 401, and to check the names on a 404', async () => {
        hub.handler = (req, res) => {
            res.writeHead(req.url?.includes('gated') ? 401 : 404);
            res.end();
        };
        const gated = (await resolveModelFile('hf:o/gated/m.gguf', { dir }).catch((e: unknown) => e)) as LlamaError;
        expect(gated.message).toBe(
            `resolveModelFile(): GET ${hub.origin}/o/gated/resolve/main/m.gguf answered 401 Unauthorized: the repository is gated or private: ` +
                "set HF_TOKEN to a Hugging Face access token that can read it (and accept the model's terms on its page)",
        );
        const missing = (await resolveModelFile('hf:o/r/missing.gguf', { dir }).catch((e: unknown) => e)) as LlamaError;
        expect(missing.message).toContain('answered 404 Not Found: check the owner, the repository, the revision and the file\'s path in it');
    });

    it('name the URL that failed after a redirect, without its signature', async () => {
        hubRedirects(sha256(FILE));
        cdn.handler = (_req, res) => {
            res.writeHead(403);
            res.end();
        };
        const error = (await resolveModelFile('hf:o/r/m.gguf', { dir }).catch((e: unknown) => e)) as LlamaError;
        expect(error.message).toContain(`GET ${cdn.origin}/cas/abc123 (redirected from ${hub.origin}/o/r/resolve/main/m.gguf) answered 403 Forbidden`);
        expect(error.message).not.toContain('secret');
    });

    it('that are malformed are INVALID_ARGUMENT saying the forms', () => {
        const message = (uri: string) => {
            try {
                parseModelUri(uri);
            } catch (error) {
                expect((error as LlamaError).code).toBe('INVALID_ARGUMENT');
                return (error as Error).message;
            }
            throw new Error(`${uri} parsed`);
        };
        expect(message('hf:owner/repo')).toContain('name the file inside the repository after owner/repo, e.g. hf:owner/repo/model-Q4_K_M.gguf');
        expect(message('hf:owner/repo:Q4_K_M')).toContain('a quantization tag such as :Q4_K_M is not supported');
        expect(message('hf:o/r@/m.gguf')).toContain('the revision after @ is empty');
        expect(message('hf:o/r/../m.gguf')).toContain('name the file');
        expect(message('ftp://host/m.gguf')).toContain('the scheme ftp: is not supported');
        expect(message('')).toContain('Expected hf:owner/repo/file.gguf, hf:owner/repo@revision/file.gguf, an http(s):// URL or a local file path for uri');
        expect(parseModelUri('file:///tmp/m.gguf')).toEqual({ kind: 'file', uri: 'file:///tmp/m.gguf', path: '/tmp/m.gguf' });
        expect(parseModelUri('C:\\models\\m.gguf')).toMatchObject({ kind: 'file' });
    });

    it('need a valid endpoint', () => {
        process.env.LLAMA_KV_HF_ENDPOINT = 'huggingface.co';
        expect(() => parseModelUri('hf:o/r/m.gguf')).toThrow('Expected an http(s):// URL for LLAMA_KV_HF_ENDPOINT (or HF_ENDPOINT) but it is "huggingface.co"');
    });
});
