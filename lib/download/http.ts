/**
 * HTTP for the downloads: one request with its redirects followed by hand (so that the
 * first response's headers stay visible: Hugging Face sends X-Linked-ETag there, before
 * redirecting to its CDN), a stall watchdog, the body read chunk by chunk, and the errors.
 */
import { LlamaAbortError, LlamaError } from '../errors.js';
import { downloadDefaults, type FetchFunction } from './options.js';
import { displayUrl, type RemoteSource } from './uri.js';

/** A request's final (non-redirect) response, with the first response's headers. */
export interface HttpExchange {
    response: Response;
    /** The URL that gave `response`. */
    url: string;
    /** The headers of the first response (the redirect, when there was one). */
    first: Headers;
}

/** One attempt's abort: the caller's signal or the stall watchdog, whichever comes first. */
export class Attempt {
    readonly controller = new AbortController();
    /** Set when the watchdog fired. */
    stalled = false;
    private timer: NodeJS.Timeout | undefined;
    private readonly onAbort = () => this.controller.abort(this.userSignal?.reason);

    constructor(
        /** No byte for this long fails the attempt. */
        readonly stallTimeoutMs: number,
        private readonly userSignal: AbortSignal | undefined,
    ) {
        if (userSignal?.aborted) this.controller.abort(userSignal.reason);
        userSignal?.addEventListener('abort', this.onAbort, { once: true });
        this.kick();
    }

    get signal(): AbortSignal {
        return this.controller.signal;
    }

    /** Bytes (or a reply) arrived: restart the stall timer. */
    kick(): void {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => {
            this.stalled = true;
            this.controller.abort(new Error(`no data for ${this.stallTimeoutMs} ms`));
        }, this.stallTimeoutMs);
    }

    /** Stop the timer while the attempt does no network I/O. */
    pause(): void {
        clearTimeout(this.timer);
    }

    /** The caller aborted (not a stall). */
    get aborted(): boolean {
        return this.userSignal?.aborted === true;
    }

    /** Ends the attempt: a request or body still open is torn down. */
    dispose(): void {
        clearTimeout(this.timer);
        this.userSignal?.removeEventListener('abort', this.onAbort);
        this.controller.abort();
    }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Everything a request needs. */
export interface HttpRequest {
    source: RemoteSource;
    method?: 'GET' | 'HEAD';
    headers?: Record<string, string>;
    fetch: FetchFunction;
    attempt: Attempt;
    /** For messages: what the request is for, e.g. 'resolveModelFile()'. */
    what: string;
}

/**
 * Sends the request and follows redirects (at most 10). Authorization goes to the source's
 * own origin only, never to the host it redirects to (a CDN's signed URL needs none).
 */
export async function send(req: HttpRequest): Promise<HttpExchange> {
    let url = req.source.url;
    let first: Headers | undefined;
    for (let hop = 0; hop <= downloadDefaults.maxRedirects; hop++) {
        // No compression: the byte ranges and lengths are the file's own.
        const headers: Record<string, string> = { 'accept-encoding': 'identity', ...req.headers };
        if (req.source.authorization && new URL(url).origin === req.source.authOrigin) headers.authorization = req.source.authorization;
        let response: Response;
        try {
            response = await req.fetch(url, { method: req.method ?? 'GET', headers, redirect: 'manual', signal: req.attempt.signal });
        } catch (error) {
            throw networkError(req, error, url);
        }
        req.attempt.kick();
        first ??= response.headers;
        if (!REDIRECTS.has(response.status)) return { response, url, first };
        await response.body?.cancel().catch(() => undefined);
        const location = response.headers.get('location');
        if (!location) throw new LlamaError('DOWNLOAD_FAILED', `${req.what}: ${displayUrl(url)} answered ${response.status} without a Location header`);
        url = new URL(location, url).href;
    }
    throw new LlamaError('DOWNLOAD_FAILED', `${req.what}: ${req.source.uri} redirected more than ${downloadDefaults.maxRedirects} times`);
}

/** A failed attempt that may be retried: the connection dropped, the server stalled, or it answered 5xx/429. */
export class RetryableError extends LlamaError {}

/** The error for a fetch or body read that threw: ABORTED, a stall, or a dropped connection. */
export function networkError(req: Pick<HttpRequest, 'attempt' | 'what' | 'source'>, error: unknown, url: string, detail = ''): LlamaError {
    if (error instanceof LlamaError) return error;
    if (req.attempt.aborted) return new LlamaAbortError(`${req.what} was aborted${detail}`, { cause: error });
    if (req.attempt.stalled) {
        return new RetryableError('DOWNLOAD_FAILED', `${req.what}: ${displayUrl(url)} sent nothing for ${stallSeconds(req.attempt)}${detail}; raise stallTimeoutMs for a slow server`, { cause: error });
    }
    const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
    const reason = cause?.code ?? cause?.message ?? (error as Error)?.message ?? String(error);
    return new RetryableError('DOWNLOAD_FAILED', `${req.what}: the connection to ${displayUrl(url)} failed (${reason})${detail}`, { cause: error });
}

function stallSeconds(attempt: Attempt): string {
    const ms = attempt.stallTimeoutMs;
    return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}

/** The error for a response status that is not the content (4xx, 5xx, ...), naming the URL and saying what to change. */
export function statusError(req: Pick<HttpRequest, 'what' | 'source'>, exchange: HttpExchange): LlamaError {
    const { response, url } = exchange;
    const status = `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
    const from = url === req.source.url ? '' : ` (redirected from ${displayUrl(req.source.url)})`;
    const where = `${req.what}: GET ${displayUrl(url)}${from} answered ${status}`;
    const hf = req.source.huggingFace;
    if (response.status === 401 || response.status === 403) {
        const token = process.env.HF_TOKEN ? 'HF_TOKEN is set: check that its token can read this repository' : 'set HF_TOKEN to a Hugging Face access token that can read it';
        return new LlamaError('DOWNLOAD_FAILED', hf ? `${where}: the repository is gated or private: ${token} (and accept the model's terms on its page)` : `${where}: the server refuses the request without credentials`);
    }
    if (response.status === 404 || response.status === 410) {
        return new LlamaError('DOWNLOAD_FAILED', hf ? `${where}: check the owner, the repository, the revision and the file's path in it` : `${where}: check the URL`);
    }
    if (response.status >= 500 || response.status === 429) return new RetryableError('DOWNLOAD_FAILED', `${where}: the server failed; try again later`);
    return new LlamaError('DOWNLOAD_FAILED', `${where}: expected 200 or 206 with the file's bytes`);
}

/**
 * Reads the body chunk by chunk, restarting the stall timer on each; `onChunk` returns
 * false to stop early (the rest of the body is cancelled).
 */
export async function readBody(
    req: Pick<HttpRequest, 'attempt' | 'what' | 'source'>,
    exchange: HttpExchange,
    onChunk: (chunk: Uint8Array) => Promise<boolean | void> | boolean | void,
    detail: () => string = () => '',
): Promise<void> {
    const body = exchange.response.body;
    if (!body) return;
    const reader = body.getReader();
    try {
        for (;;) {
            let result: Awaited<ReturnType<typeof reader.read>>;
            try {
                result = await reader.read();
            } catch (error) {
                throw networkError(req, error, exchange.url, detail());
            }
            if (result.done) return;
            req.attempt.kick();
            let more: boolean | void;
            try {
                more = await onChunk(result.value);
            } catch (error) {
                await reader.cancel().catch(() => undefined);
                throw error;
            }
            if (more === false) {
                await reader.cancel().catch(() => undefined);
                return;
            }
        }
    } finally {
        reader.releaseLock();
    }
}

/** `Content-Range: bytes 100-199/1000` (or `bytes * /1000` of a 416). */
export interface ContentRange {
    start: number | undefined;
    end: number | undefined;
    total: number | undefined;
}

/** Parses a Content-Range header; undefined when absent or malformed. */
export function parseContentRange(value: string | null): ContentRange | undefined {
    if (!value) return undefined;
    const m = /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)\s*$/i.exec(value);
    if (!m) return undefined;
    const num = (s: string | undefined) => (s === undefined || s === '*' ? undefined : Number(s));
    return { start: num(m[1]), end: num(m[2]), total: num(m[3]) };
}

/** A non-negative integer header (Content-Length, X-Linked-Size); undefined when absent or malformed. */
export function sizeHeader(headers: Headers, name: string): number | undefined {
    const value = headers.get(name);
    return value !== null && /^\s*\d+\s*$/.test(value) ? Number(value) : undefined;
}
