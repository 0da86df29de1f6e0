// A local HTTP server for the download tests (127.0.0.1, port 0) and a small GGUF model to serve.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GGUF_VALUE_TYPE as T } from '../../../lib/gguf/types.js';
import { serializeGguf } from '../../../lib/gguf/writer.js';

/** A llama-architecture GGUF whose header is about 300 KB (a 20000-token vocabulary) and whose data is 1 MiB. */
export function modelBytes(seed = 1, vocab = 20_000): Uint8Array {
    const data = new Uint8Array(64 * 4096 * 4);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < data.length; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        data[i] = x >>> 24;
    }
    return serializeGguf({
        kv: [
            { key: 'general.architecture', type: T.STRING, value: 'llama' },
            { key: 'general.name', type: T.STRING, value: `download-test-${seed}` },
            { key: 'llama.block_count', type: T.UINT32, value: 2 },
            { key: 'llama.embedding_length', type: T.UINT32, value: 128 },
            { key: 'llama.feed_forward_length', type: T.UINT32, value: 128 },
            { key: 'llama.attention.head_count', type: T.UINT32, value: 4 },
            { key: 'llama.attention.head_count_kv', type: T.UINT32, value: 2 },
            { key: 'llama.context_length', type: T.UINT32, value: 2048 },
            { key: 'tokenizer.ggml.model', type: T.STRING, value: 'llama' },
            { key: 'tokenizer.ggml.tokens', type: T.ARRAY, arrayType: T.STRING, value: Array.from({ length: vocab }, (_, i) => `token-${i}`) },
        ],
        tensors: [{ name: 'output.weight', type: 'F32', shape: [64, 4096], data }],
    });
}

export const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** How a file is served. */
export interface FileOptions {
    etag?: string;
    lastModified?: string;
    /** Headers added to the reply. */
    headers?: Record<string, string>;
    /** Answer Range requests with 206 (default true); false: always 200 with the whole file. */
    ranges?: boolean;
    /** Compare If-Range with the ETag / Last-Modified (default true); false: resume regardless. */
    honorIfRange?: boolean;
    /** Send this many body bytes, then destroy the socket. */
    cutAfter?: number;
    /** Send this many body bytes, then nothing more (the connection stays open). */
    stallAfter?: number;
    /** Override the Content-Range of a 206. */
    contentRange?: string;
}

/** Serves `body` as a static server would: Content-Length, ETag, Range and If-Range. */
export function serveFile(req: IncomingMessage, res: ServerResponse, body: Uint8Array, o: FileOptions = {}): void {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'accept-ranges': o.ranges === false ? 'none' : 'bytes', ...o.headers };
    if (o.etag) headers.etag = o.etag;
    if (o.lastModified) headers['last-modified'] = o.lastModified;
    let start = 0;
    let end = body.length - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    const rangeApplies = range && o.ranges !== false && (o.honorIfRange === false || ifRange === undefined || ifRange === o.etag || ifRange === o.lastModified);
    if (rangeApplies) {
        start = Number(range[1]);
        end = range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
        if (start >= body.length) {
            res.writeHead(416, { ...headers, 'content-range': `bytes */${body.length}` });
            res.end();
            return;
        }
        status = 206;
        headers['content-range'] = o.contentRange ?? `bytes ${start}-${end}/${body.length}`;
    }
    headers['content-length'] = String(end - start + 1);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
        res.end();
        return;
    }
    const part = body.subarray(start, end + 1);
    if (o.cutAfter !== undefined) {
        // The reader gets time to take every byte sent: a stream that errors drops what it still queues.
        res.write(part.subarray(0, o.cutAfter), () => setTimeout(() => res.socket?.destroy(), 100));
        return;
    }
    if (o.stallAfter !== undefined) {
        res.write(part.subarray(0, o.stallAfter));
        return;
    }
    res.end(part);
}

/** One request the server saw. */
export interface Seen {
    method: string;
    url: string;
    headers: IncomingMessage['headers'];
}

/** A server on 127.0.0.1 whose handler the test sets; it records every request. */
export class TestServer {
    readonly seen: Seen[] = [];
    handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
        res.writeHead(500);
        res.end();
    };
    private readonly server: Server = createServer((req, res) => {
        this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
        this.handler(req, res);
    });

    async start(): Promise<this> {
        await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
        return this;
    }

    get origin(): string {
        return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    }

    url(path: string): string {
        return `${this.origin}${path}`;
    }

    /** The GET requests (HEAD ones left out). */
    gets(): Seen[] {
        return this.seen.filter((s) => s.method === 'GET');
    }

    async stop(): Promise<void> {
        this.server.closeAllConnections();
        await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
}
