/**
 * The resumable download of one remote file: bytes go to `<name>.partial` (with a sidecar
 * saying what they are of), a later attempt resumes with `Range` + `If-Range`, the sha256 is
 * computed as the bytes arrive, and the file is renamed to its final name only when it is
 * complete and verified.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { LlamaAbortError, LlamaError } from '../errors.js';
import { hashFile, sourceSha256, type ExpectedSha256 } from './checksum.js';
import { Attempt, parseContentRange, readBody, RetryableError, send, sizeHeader, statusError, type HttpRequest } from './http.js';
import { downloadDefaults, type DownloadProgress, type FetchFunction } from './options.js';
import { fileSize, ifRangeValue, partialPaths, readPartialInfo, removePartial, writePartialInfo, type PartialInfo } from './partial.js';
import { displayUrl, type RemoteSource } from './uri.js';

/** One file to download. */
export interface DownloadJob {
    source: RemoteSource;
    /** The final path (its folder exists). */
    path: string;
    /** The sha256 the caller asked for (lower case), checked instead of the source's. */
    sha256?: string;
    onProgress?: (progress: DownloadProgress) => void;
    signal?: AbortSignal;
    stallTimeoutMs: number;
    retries: number;
    fetch: FetchFunction;
    /** For messages, e.g. 'resolveModelFile()'. */
    what: string;
}

/** Calls onProgress at most every 100 ms, and always at the start and the end. */
class Progress {
    private last = 0;

    constructor(
        private readonly onProgress: ((progress: DownloadProgress) => void) | undefined,
        private readonly totalBytes: number | undefined,
        private readonly resumedFromBytes: number,
    ) {
        this.report(resumedFromBytes);
    }

    tick(downloadedBytes: number): void {
        if (Date.now() - this.last >= downloadDefaults.progressIntervalMs) this.report(downloadedBytes);
    }

    report(downloadedBytes: number): void {
        this.last = Date.now();
        this.onProgress?.({ downloadedBytes, totalBytes: this.totalBytes, resumedFromBytes: this.resumedFromBytes });
    }
}

/** Downloads `job.source` to `job.path`, retrying dropped connections, stalls and 5xx/429 (each retry resumes). */
export async function download(job: DownloadJob): Promise<void> {
    let failures = 0;
    let restarts = 0;
    for (;;) {
        try {
            if ((await attemptOnce(job)) === 'done') return;
            // The remote file changed under a partial download: start over, at most twice.
            if (++restarts > 2) throw new LlamaError('DOWNLOAD_FAILED', `${job.what}: ${job.source.uri} kept changing while it downloaded; try again later`);
        } catch (error) {
            if (!(error instanceof RetryableError) || failures >= job.retries) throw await finalError(error, job, failures);
            failures += 1;
            try {
                await sleep(downloadDefaults.retryDelayMs * failures, undefined, { signal: job.signal });
            } catch (abort) {
                throw await finalError(new LlamaAbortError(`${job.what} was aborted`, { cause: abort }), job, failures);
            }
        }
    }
}

/** The error the caller gets: plain LlamaError / LlamaAbortError, saying whether the partial download is kept. */
async function finalError(error: unknown, job: DownloadJob, retries: number): Promise<unknown> {
    if (!(error instanceof LlamaError)) {
        // The file system's (EACCES, ENOSPC, ...): the download folder is at fault.
        const message = error instanceof Error ? error.message : String(error);
        return new LlamaError('DOWNLOAD_FAILED', `${job.what}: cannot write ${job.path} (${message}): free space or give another dir`, { cause: error });
    }
    const kept = await fileSize(partialPaths(job.path).data);
    const tail = kept > 0 ? `; the ${kept} bytes downloaded are kept in ${partialPaths(job.path).data}: call again to resume` : '';
    if (error instanceof LlamaAbortError) return new LlamaAbortError(`${error.message}${tail}`, { cause: error.cause });
    if (!(error instanceof RetryableError)) return error;
    const tries = retries > 0 ? ` (after ${retries} ${retries === 1 ? 'retry' : 'retries'})` : '';
    return new LlamaError(error.code, `${error.message}${tries}${tail}`, { cause: error.cause });
}

/** Whether the partial file may be resumed: same URL, a validator for If-Range, no conflicting size or checksum. */
function resumable(have: number, info: PartialInfo | undefined, job: DownloadJob): info is PartialInfo {
    return (
        have > 0 &&
        info !== undefined &&
        info.url === job.source.url &&
        ifRangeValue(info) !== undefined &&
        (info.totalBytes === undefined || have <= info.totalBytes) &&
        (job.sha256 === undefined || info.sha256 === undefined || info.sha256 === job.sha256)
    );
}

/** One request: 'done' when the final file is in place, 'restart' when the partial was dropped because the remote file changed. */
async function attemptOnce(job: DownloadJob): Promise<'done' | 'restart'> {
    const paths = partialPaths(job.path);
    const info = await readPartialInfo(paths.info);
    let have = await fileSize(paths.data);
    if (!resumable(have, info, job)) have = 0;
    let hash = createHash('sha256');
    // On resume, the bytes already on disk are hashed first (no network I/O yet: no stall timer).
    if (have > 0) await hashFile(hash, paths.data, have, job.signal, job.what);
    const attempt = new Attempt(job.stallTimeoutMs, job.signal);
    const req: HttpRequest = { source: job.source, fetch: job.fetch, attempt, what: job.what };
    try {
        const ifRange = info && have > 0 ? ifRangeValue(info) : undefined;
        const exchange = await send({ ...req, headers: ifRange ? { range: `bytes=${have}-`, 'if-range': ifRange } : {} });
        const res = exchange.response;
        const cancel = () => res.body?.cancel().catch(() => undefined);
        // The checksum: the caller's, else this response's, else (resuming) the one recorded when the download began.
        const expected: ExpectedSha256 | undefined = job.sha256
            ? { sha256: job.sha256, from: 'the sha256 option' }
            : sourceSha256(job.source, exchange) ?? (have > 0 && info?.sha256 ? { sha256: info.sha256, from: 'the checksum the server gave when the download began' } : undefined);
        const etag = res.headers.get('etag') ?? undefined;
        let start: number;
        let total: number | undefined;
        if (res.status === 416 && have > 0 && info) {
            await cancel();
            // The partial is complete already (an earlier run stopped before the rename).
            const range = parseContentRange(res.headers.get('content-range'));
            if (range?.total === have && (info.totalBytes === undefined || info.totalBytes === have)) {
                await finish(job, hash, expected, have);
                return 'done';
            }
            await removePartial(paths);
            return 'restart';
        }
        if (res.status === 206) {
            const raw = res.headers.get('content-range');
            const range = parseContentRange(raw);
            if (have === 0 || !range || range.start !== have || range.total === undefined || (range.end !== undefined && range.end !== range.total - 1)) {
                await cancel();
                await removePartial(paths);
                throw new LlamaError(
                    'DOWNLOAD_FAILED',
                    `${job.what}: asked ${displayUrl(exchange.url)} for ${have > 0 ? `bytes ${have}-` : 'the whole file'} and it answered 206 with Content-Range ${JSON.stringify(raw)}; ` +
                        'the partial download was deleted: call again to start over',
                );
            }
            const changed =
                (info?.totalBytes !== undefined && range.total !== info.totalBytes) ||
                (etag !== undefined && info?.etag !== undefined && etag !== info.etag) ||
                (expected !== undefined && info?.sha256 !== undefined && expected.sha256 !== info.sha256);
            if (changed) {
                await cancel();
                await removePartial(paths);
                return 'restart';
            }
            start = have;
            total = range.total;
        } else if (res.status === 200) {
            // A full reply (also to a range request whose If-Range no longer matched): start from zero.
            if (have > 0) hash = createHash('sha256');
            start = 0;
            total = res.headers.get('content-encoding') ? undefined : sizeHeader(res.headers, 'content-length');
        } else {
            await cancel();
            throw statusError(req, exchange);
        }
        await writePartialInfo(paths.info, {
            url: job.source.url,
            ...(etag !== undefined ? { etag } : {}),
            ...(res.headers.get('last-modified') ? { lastModified: res.headers.get('last-modified') as string } : {}),
            ...(total !== undefined ? { totalBytes: total } : {}),
            ...(expected ? { sha256: expected.sha256 } : {}),
        });
        const progress = new Progress(job.onProgress, total, start);
        let written = start;
        const handle = await open(paths.data, start === 0 ? 'w' : 'a');
        try {
            await readBody(
                req,
                exchange,
                async (chunk) => {
                    if (total !== undefined && written + chunk.length > total) {
                        throw new RetryableError('DOWNLOAD_FAILED', `${job.what}: ${displayUrl(exchange.url)} sent more than the ${total} bytes it announced`);
                    }
                    await handle.write(chunk);
                    hash.update(chunk);
                    written += chunk.length;
                    progress.tick(written);
                },
                () => ` after ${written}${total !== undefined ? ` of ${total}` : ''} bytes`,
            );
        } finally {
            await handle.close();
        }
        if (total !== undefined && written !== total) {
            throw new RetryableError('DOWNLOAD_FAILED', `${job.what}: the connection to ${displayUrl(exchange.url)} closed after ${written} of ${total} bytes`);
        }
        progress.report(written);
        attempt.pause();
        await finish(job, hash, expected, written);
        return 'done';
    } finally {
        attempt.dispose();
    }
}

/** Checks the sha256 (a mismatch deletes the partial download) and renames the file into place. */
async function finish(job: DownloadJob, hash: Hash, expected: ExpectedSha256 | undefined, bytes: number): Promise<void> {
    const paths = partialPaths(job.path);
    const digest = hash.digest('hex');
    if (expected && digest !== expected.sha256) {
        await removePartial(paths);
        throw new LlamaError(
            'DOWNLOAD_FAILED',
            `${job.what}: the sha256 of ${job.source.uri} (${bytes} bytes) is ${digest} but ${expected.from} says ${expected.sha256}; ` +
                'the download was deleted (a corrupted transfer, or the file changed on the server: call again)',
        );
    }
    await rename(paths.data, job.path);
    await rm(paths.info, { force: true });
}
