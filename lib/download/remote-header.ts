/**
 * The GGUF header of a remote file, read with HTTP range requests: a first range (4 MiB),
 * then larger ones until parseGguf() stops needing more bytes. Only the header's bytes
 * (about as many as its tokenizer arrays take) are transferred, never the weights.
 */
import { LlamaAbortError, LlamaConfigError, LlamaError, LlamaModelLoadError } from '../errors.js';
import { parseGguf } from '../gguf/reader.js';
import type { GgufMetadata } from '../gguf/types.js';
import { defaults } from '../options/defaults.js';
import { parseOptions } from '../options/validate.js';
import { Attempt, parseContentRange, readBody, send, sizeHeader, statusError, type HttpRequest } from './http.js';
import { downloadDefaults, remoteGgufSchema, type RemoteGgufOptions } from './options.js';
import { displayUrl, parseModelUri, type RemoteSource } from './uri.js';

const WHAT = 'readRemoteGgufMetadata()';

/**
 * How parseGguf() says that the bytes given end inside the header (reader.ts's NeedMoreBytes,
 * as its message): the bytes the next read needs. Any other error is the file's own.
 */
const NEED_MORE = /^truncated GGUF: header needs at least (\d+) bytes but only (\d+) were given$/;

/** The bytes parseGguf() asks for, or undefined when the error is not "give me more bytes". */
function bytesNeeded(error: unknown): number | undefined {
    if (!(error instanceof LlamaModelLoadError) || error.code !== 'INVALID_MODEL_FILE') return undefined;
    const m = NEED_MORE.exec(error.message);
    return m ? Number(m[1]) : undefined;
}

/**
 * Reads the metadata of a remote GGUF file (an `hf:` URI or an http(s):// URL, as for
 * resolveModelFile()) with range requests, without downloading its tensor data.
 * The result is what readGgufMetadata() gives for the same file on disk.
 *
 * @throws LlamaError DOWNLOAD_FAILED (a status, a server that does not say the file's size,
 *   a stall), INVALID_MODEL_FILE (not a GGUF file, a malformed header or one larger than
 *   `maxHeaderBytes`), ABORTED; INVALID_ARGUMENT for a URI that is not remote.
 */
export async function readRemoteGgufMetadata(uri: string, options: RemoteGgufOptions = {}): Promise<GgufMetadata> {
    const opts = parseOptions(remoteGgufSchema, options, WHAT);
    const source = parseModelUri(uri);
    if (source.kind === 'file') {
        throw new LlamaConfigError(`Expected an hf: URI or an http(s):// URL for uri but received ${JSON.stringify(uri)}: use readGgufMetadata() for a local file`, 'INVALID_ARGUMENT', ['uri']);
    }
    if (opts.signal?.aborted) throw new LlamaAbortError(`${WHAT} was aborted before it started`);
    const maxHeaderBytes = opts.maxHeaderBytes ?? defaults.gguf.maxHeaderBytes;
    const fetch = opts.fetch ?? globalThis.fetch;
    const stallTimeoutMs = opts.stallTimeoutMs ?? downloadDefaults.stallTimeoutMs;
    let loaded: Uint8Array = new Uint8Array(0);
    let fileSize: number | undefined;
    let want = Math.max(1, opts.initialChunkSize ?? downloadDefaults.initialHeaderBytes);
    for (;;) {
        const attempt = new Attempt(stallTimeoutMs, opts.signal);
        const part = await readRange({ source, fetch, attempt, what: WHAT }, loaded.length, want, fileSize).finally(() => attempt.dispose());
        const size = part.fileSize;
        fileSize = size;
        loaded = part.fromStart ? part.bytes : concat(loaded, part.bytes);
        try {
            return parseGguf(loaded, { fileSize: size });
        } catch (error) {
            const needed = bytesNeeded(error);
            // A truncation inside the whole file is the file's own (parseGguf says so differently).
            if (needed === undefined || loaded.length >= size) throw withUri(error, uri);
            if (needed > maxHeaderBytes) {
                throw new LlamaModelLoadError('INVALID_MODEL_FILE', `GGUF header of ${uri} needs more than ${maxHeaderBytes} bytes; refusing to read it (raise maxHeaderBytes)`);
            }
            want = Math.min(size, Math.max(needed, loaded.length * 2));
        }
    }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
    const out = new Uint8Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
}

function withUri(error: unknown, uri: string): unknown {
    if (error instanceof LlamaError && !error.message.includes(uri)) error.message = `${error.message} (${uri})`;
    return error;
}

/**
 * Bytes [from, to) of the file, and its size. A server that ignores the range (200) gives
 * the file from its start: then the first `to` bytes are read (`fromStart`) and the rest is left unread.
 */
async function readRange(
    req: HttpRequest & { source: RemoteSource },
    from: number,
    to: number,
    knownSize: number | undefined,
): Promise<{ bytes: Uint8Array; fileSize: number; fromStart: boolean }> {
    const exchange = await send({ ...req, headers: { range: `bytes=${from}-${to - 1}` } });
    const res = exchange.response;
    let fileSize: number | undefined;
    let start: number;
    if (res.status === 206) {
        const range = parseContentRange(res.headers.get('content-range'));
        if (!range || range.start !== from || range.total === undefined) {
            await res.body?.cancel().catch(() => undefined);
            throw new LlamaError('DOWNLOAD_FAILED', `${WHAT}: asked ${displayUrl(exchange.url)} for bytes ${from}-${to - 1} and it answered 206 with Content-Range ${JSON.stringify(res.headers.get('content-range'))}`);
        }
        fileSize = range.total;
        start = from;
    } else if (res.status === 200) {
        fileSize = res.headers.get('content-encoding') ? undefined : (sizeHeader(exchange.first, 'x-linked-size') ?? sizeHeader(res.headers, 'content-length'));
        start = 0;
    } else {
        await res.body?.cancel().catch(() => undefined);
        throw statusError(req, exchange);
    }
    if (fileSize === undefined) {
        await res.body?.cancel().catch(() => undefined);
        throw new LlamaError('DOWNLOAD_FAILED', `${WHAT}: ${displayUrl(exchange.url)} does not say the file's size (no Content-Range total or Content-Length), which the header reader needs; download the file with resolveModelFile() instead`);
    }
    if (knownSize !== undefined && fileSize !== knownSize) {
        await res.body?.cancel().catch(() => undefined);
        throw new LlamaError('DOWNLOAD_FAILED', `${WHAT}: ${req.source.uri} changed while its header was read (${knownSize} bytes, now ${fileSize}); try again`);
    }
    const end = Math.min(to, fileSize);
    const bytes = new Uint8Array(end - start);
    let filled = 0;
    await readBody(req, exchange, (chunk) => {
        const n = Math.min(chunk.length, bytes.length - filled);
        bytes.set(chunk.subarray(0, n), filled);
        filled += n;
        return filled < bytes.length;
    });
    if (filled < bytes.length) {
        throw new LlamaError('DOWNLOAD_FAILED', `${WHAT}: ${displayUrl(exchange.url)} closed the connection after ${filled} of the ${bytes.length} bytes asked for`);
    }
    return { bytes, fileSize, fromStart: start === 0 };
}
