/** The sha256 a source gives for a file, and hashing what is already on disk. */
import { createReadStream } from 'node:fs';
import type { Hash } from 'node:crypto';
import { LlamaAbortError } from '../errors.js';
import type { HttpExchange } from './http.js';
import type { RemoteSource } from './uri.js';

/** The sha256 in an ETag-like header value (`"<64 hex>"` or bare), lower case; undefined for a weak or other ETag. */
export function sha256FromEtag(value: string | null | undefined): string | undefined {
    if (!value) return undefined;
    const v = value.trim();
    if (v.startsWith('W/')) return undefined;
    const bare = v.replace(/^"(.*)"$/, '$1');
    return /^[0-9a-f]{64}$/i.test(bare) ? bare.toLowerCase() : undefined;
}

/** Where an expected sha256 came from (for messages). */
export interface ExpectedSha256 {
    sha256: string;
    from: string;
}

/**
 * The sha256 the source gives: Hugging Face's X-Linked-ETag (first response, or the final
 * one), else, for a Hugging Face source only, an ETag that is a sha256 (LFS files served
 * without a redirect). Other servers' ETags are opaque and never taken as a checksum.
 */
export function sourceSha256(source: RemoteSource, exchange: HttpExchange): ExpectedSha256 | undefined {
    const linked = sha256FromEtag(exchange.first.get('x-linked-etag')) ?? sha256FromEtag(exchange.response.headers.get('x-linked-etag'));
    if (linked) return { sha256: linked, from: "the server's X-Linked-ETag" };
    if (!source.huggingFace) return undefined;
    const etag = sha256FromEtag(exchange.first.get('etag'));
    return etag ? { sha256: etag, from: "Hugging Face's ETag" } : undefined;
}

/** Feeds the first `length` bytes of the file at `path` into `hash`; checks `signal` between chunks. */
export async function hashFile(hash: Hash, path: string, length: number, signal: AbortSignal | undefined, what: string): Promise<void> {
    if (length === 0) return;
    const stream = createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1024 * 1024 });
    for await (const chunk of stream) {
        if (signal?.aborted) {
            stream.destroy();
            throw new LlamaAbortError(`${what} was aborted`);
        }
        hash.update(chunk as Buffer);
    }
}
