/** Options of resolveModelFile() and readRemoteGgufMetadata(); their defaults are `defaults.download` (options/defaults.ts). */
import { z } from 'zod';
import { defaults } from '../options/defaults.js';
import { fn, nonNegativeIntUpTo, positiveInt, signal } from '../options/validate.js';

/** The defaults of the download options. */
export const downloadDefaults = defaults.download;

/** The fetch function the downloads use: the global `fetch` or one with the same signature. */
export type FetchFunction = (input: string, init: RequestInit) => Promise<Response>;

/** Progress of a download, passed to {@link ResolveModelFileOptions.onProgress}. */
export interface DownloadProgress {
    /** Bytes of the file on disk so far, the resumed part included. */
    downloadedBytes: number;
    /** The file's size, when the server says it. */
    totalBytes: number | undefined;
    /** Bytes that were already on disk from an earlier attempt when this one started (0 for a fresh download). */
    resumedFromBytes: number;
}

/** Options of {@link resolveModelFile}. */
export interface ResolveModelFileOptions {
    /** Folder the downloaded files go to (created when missing). Defaults to `$LLAMA_KV_MODELS_DIR`, else `~/.cache/llama-kv/models`. */
    dir?: string;
    /**
     * Name of the file in `dir`. Defaults to `huggingface/<owner>/<repo>/<path>` for an `hf:` URI
     * (`huggingface/<owner>/<repo>@<revision>/<path>` with a revision) and the URL's last path segment for a URL.
     */
    fileName?: string;
    /** The file's sha256 (64 hex digits): checked instead of the one the server gives. Defaults to the server's (Hugging Face's `X-Linked-ETag`), else none. */
    sha256?: string;
    /** Called as bytes arrive (at most every 100 ms, and once at the end). Defaults to none. */
    onProgress?: (progress: DownloadProgress) => void;
    /** Aborts the download (rejects with ABORTED); the partial file is kept for a later call to resume. Defaults to none. */
    signal?: AbortSignal;
    /** A server that sends no byte for this long (waiting for the reply included) fails the attempt; the partial file is kept. Defaults to `30000`. */
    stallTimeoutMs?: number;
    /** Attempts after the first one when the connection drops, stalls or the server answers 5xx or 429; each resumes where the last stopped. Defaults to `3`. */
    retries?: number;
    /** The fetch to use (a proxy agent, a test double). Defaults to the global `fetch`. */
    fetch?: FetchFunction;
}

/** Options of {@link readRemoteGgufMetadata}. */
export interface RemoteGgufOptions {
    /** Bytes of the first range request; later ones grow (at least doubling) until the header parses. Defaults to `4194304` (4 MiB). */
    initialChunkSize?: number;
    /** Refuse headers larger than this many bytes. Defaults to `536870912` (512 MiB, as readGgufMetadata()). */
    maxHeaderBytes?: number;
    /** Aborts the read (rejects with ABORTED). Defaults to none. */
    signal?: AbortSignal;
    /** As for resolveModelFile(). Defaults to `30000`. */
    stallTimeoutMs?: number;
    /** As for resolveModelFile(). Defaults to the global `fetch`. */
    fetch?: FetchFunction;
}

const sha256Hex = () =>
    z.string({ error: 'a sha256 of 64 hex digits' }).regex(/^[0-9a-fA-F]{64}$/, { error: 'a sha256 of 64 hex digits' }).transform((s) => s.toLowerCase());

/** A file name: no folder separators, not `.` or `..`. */
const fileName = () =>
    z.string({ error: 'a file name without folders' }).refine((s) => s.length > 0 && !/[\\/]/.test(s) && s !== '.' && s !== '..', { error: 'a file name without folders' });

/** resolveModelFile()'s options. */
export const resolveModelFileSchema = z.strictObject({
    dir: z.string({ error: 'a folder path (string)' }).min(1, { error: 'a non-empty folder path' }).optional(),
    fileName: fileName().optional(),
    sha256: sha256Hex().optional(),
    onProgress: fn<(progress: DownloadProgress) => void>().optional(),
    signal: signal().optional(),
    stallTimeoutMs: positiveInt().optional(),
    retries: nonNegativeIntUpTo(100).optional(),
    fetch: fn<FetchFunction>().optional(),
});

/** readRemoteGgufMetadata()'s options. */
export const remoteGgufSchema = z.strictObject({
    initialChunkSize: positiveInt().optional(),
    maxHeaderBytes: positiveInt().optional(),
    signal: signal().optional(),
    stallTimeoutMs: positiveInt().optional(),
    fetch: fn<FetchFunction>().optional(),
});
