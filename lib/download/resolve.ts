/** resolveModelFile(): a model URI to a local file, downloaded when needed. */
import { createHash } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { LlamaAbortError, LlamaConfigError, LlamaError, LlamaModelLoadError } from '../errors.js';
import { parseOptions } from '../options/validate.js';
import { hashFile } from './checksum.js';
import { download } from './download.js';
import { downloadOnce } from './lock.js';
import { Attempt, send, sizeHeader } from './http.js';
import { downloadDefaults, resolveModelFileSchema, type FetchFunction, type ResolveModelFileOptions } from './options.js';
import { parseModelUri, type RemoteSource } from './uri.js';

const WHAT = 'resolveModelFile()';

/**
 * Returns a local path for a model URI, downloading the file when it is remote and not yet
 * in `dir`.
 *
 * - `hf:owner/repo/path/file.gguf` (revision `main`) or `hf:owner/repo@revision/path/file.gguf`:
 *   a file of a Hugging Face repository (`$LLAMA_KV_HF_ENDPOINT` replaces `https://huggingface.co`;
 *   `$HF_TOKEN`, when set, is sent as `Authorization: Bearer` to it, never to the CDN it redirects to).
 * - `https://...` or `http://...`: the file at that URL.
 * - anything else: a local path (or `file:` URL), returned as is when it exists.
 *
 * A file already in `dir` is returned without downloading when its size is the one the server
 * gives (or the server cannot be reached). A download goes to `<name>.partial` and resumes
 * where an earlier attempt stopped (HTTP Range, only while the remote file is unchanged);
 * its sha256 is checked when the source gives one (Hugging Face's X-Linked-ETag) or `sha256`
 * asks for one; the file gets its final name only when complete and verified.
 *
 * @example
 * const path = await resolveModelFile('hf:owner/repo/model-Q4_K_M.gguf', { onProgress: (p) => console.log(p.downloadedBytes) });
 * @throws LlamaError DOWNLOAD_FAILED (the status, a checksum mismatch, a stall, a dropped
 *   connection after the retries), ABORTED, MODEL_NOT_FOUND for a local path that does not
 *   exist, INVALID_ARGUMENT for a malformed URI, INVALID_CONFIG for bad options.
 */
export async function resolveModelFile(uri: string, options: ResolveModelFileOptions = {}): Promise<string> {
    const opts = parseOptions(resolveModelFileSchema, options, WHAT);
    const source = parseModelUri(uri);
    if (source.kind === 'file') return localFile(source.path);
    if (opts.signal?.aborted) throw new LlamaAbortError(`${WHAT} was aborted before it started`);
    const fileName = opts.fileName ?? source.fileName;
    if (fileName === '') {
        throw new LlamaConfigError(`${uri} has no file name in its path: give fileName (e.g. fileName: 'model.gguf')`, 'INVALID_CONFIG', ['fileName']);
    }
    const dir = resolve(opts.dir ?? downloadDefaults.dir());
    const path = join(dir, fileName);
    const fetch = opts.fetch ?? globalThis.fetch;
    const stallTimeoutMs = opts.stallTimeoutMs ?? downloadDefaults.stallTimeoutMs;
    if (await isCurrent(path, source, { fetch, stallTimeoutMs, signal: opts.signal, sha256: opts.sha256 })) return path;
    try {
        await mkdir(dirname(path), { recursive: true });
    } catch (error) {
        throw new LlamaError('DOWNLOAD_FAILED', `${WHAT}: cannot create the folder ${dirname(path)}: ${(error as Error).message}; give another dir`, { cause: error });
    }
    await downloadOnce(path, WHAT, () => download({
        source,
        path,
        ...(opts.sha256 ? { sha256: opts.sha256 } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        stallTimeoutMs,
        retries: opts.retries ?? downloadDefaults.retries,
        fetch,
        what: WHAT,
    }));
    return path;
}

async function localFile(path: string): Promise<string> {
    try {
        const info = await stat(path);
        if (info.isDirectory()) throw new LlamaModelLoadError('INVALID_MODEL_FILE', `${path} is a directory, not a GGUF file`);
        return path;
    } catch (error) {
        if (error instanceof LlamaError) throw error;
        throw new LlamaModelLoadError(
            'MODEL_NOT_FOUND',
            `GGUF file not found: ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'}); give an existing file, an hf:owner/repo/file.gguf URI or an https:// URL`,
            { cause: error },
        );
    }
}

/**
 * Whether the file already at `path` is the one to return: it exists and the server gives
 * its size (a HEAD request), or cannot be reached, or does not say. With `sha256` the file's
 * own hash is checked too. A size or hash that differs means it is downloaded again.
 */
async function isCurrent(
    path: string,
    source: RemoteSource,
    o: { fetch: FetchFunction; stallTimeoutMs: number; signal: AbortSignal | undefined; sha256: string | undefined },
): Promise<boolean> {
    let size: number;
    try {
        const info = await stat(path);
        if (!info.isFile()) return false;
        size = info.size;
    } catch {
        return false;
    }
    const attempt = new Attempt(o.stallTimeoutMs, o.signal);
    let remoteSize: number | undefined;
    try {
        const exchange = await send({ source, method: 'HEAD', fetch: o.fetch, attempt, what: WHAT });
        await exchange.response.body?.cancel().catch(() => undefined);
        if (exchange.response.ok) remoteSize = sizeHeader(exchange.first, 'x-linked-size') ?? sizeHeader(exchange.response.headers, 'content-length');
    } catch (error) {
        if (error instanceof LlamaAbortError) throw error;
        // Offline, or a server that refuses HEAD: the file on disk is the one.
    } finally {
        attempt.dispose();
    }
    if (remoteSize !== undefined && remoteSize !== size) return false;
    if (o.sha256 === undefined) return true;
    const hash = createHash('sha256');
    await hashFile(hash, path, size, o.signal, WHAT);
    return hash.digest('hex') === o.sha256;
}
