/**
 * Model URIs: `hf:owner/repo/path/file.gguf`, `hf:owner/repo@revision/path/file.gguf`,
 * `http(s)://` URLs and local paths (`file:` URLs included).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LlamaConfigError } from '../errors.js';
import { describe } from '../options/validate.js';
import { downloadDefaults } from './options.js';

/** Where a remote model file is, and how to ask for it. */
export interface RemoteSource {
    kind: 'hf' | 'url';
    /** What the caller gave (for messages). */
    uri: string;
    /** The URL to GET. */
    url: string;
    /** The default file name in the download folder. */
    fileName: string;
    /** `Bearer <HF_TOKEN>` for Hugging Face sources when HF_TOKEN is set; sent to `authOrigin` only (not to the CDN it redirects to). */
    authorization?: string;
    authOrigin?: string;
    /** A Hugging Face source: its ETag may be the sha256, and a 401/403 means HF_TOKEN. */
    huggingFace: boolean;
}

/** A parsed model URI: a remote source, or a local path. */
export type ModelSource = RemoteSource | { kind: 'file'; uri: string; path: string };

const URI_FORMS = 'hf:owner/repo/file.gguf, hf:owner/repo@revision/file.gguf, an http(s):// URL or a local file path';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Whether `model` names a remote file (hf:, http:, https:) rather than a local path. */
export function isRemoteModel(model: string): boolean {
    return /^(hf:|https?:\/\/)/i.test(model);
}

function badUri(uri: unknown, why: string): LlamaConfigError {
    return new LlamaConfigError(`Expected ${URI_FORMS} for uri but received ${describe(uri)}: ${why}`, 'INVALID_ARGUMENT', ['uri']);
}

/** Characters other than letters, digits and `._@-` become `_` (file names in the download folder). */
function safeName(name: string): string {
    return name.replace(/[^A-Za-z0-9._@-]/g, '_');
}

/** The Hugging Face endpoint without a trailing slash ($LLAMA_KV_HF_ENDPOINT, $HF_ENDPOINT, huggingface.co). */
export function hfEndpoint(): string {
    const endpoint = downloadDefaults.hfEndpoint().replace(/\/+$/, '');
    if (!/^https?:\/\//i.test(endpoint) || !URL.canParse(endpoint)) {
        throw new LlamaConfigError(`Expected an http(s):// URL for LLAMA_KV_HF_ENDPOINT (or HF_ENDPOINT) but it is ${JSON.stringify(endpoint)}: fix or unset it`, 'INVALID_CONFIG', ['LLAMA_KV_HF_ENDPOINT']);
    }
    return endpoint;
}

function hfAuthorization(): string | undefined {
    const token = process.env.HF_TOKEN?.trim();
    return token ? `Bearer ${token}` : undefined;
}

/** `hf:owner/repo[@revision]/path`: the file's resolve URL on the Hugging Face endpoint. */
function parseHf(uri: string): RemoteSource {
    const rest = uri.replace(/^hf:(\/\/)?/i, '');
    const [owner = '', repoPart = '', ...path] = rest.split('/');
    const at = repoPart.indexOf('@');
    const repo = at < 0 ? repoPart : repoPart.slice(0, at);
    let revision = 'main';
    if (at >= 0) {
        try {
            revision = decodeURIComponent(repoPart.slice(at + 1));
        } catch {
            throw badUri(uri, 'the revision after @ has a malformed %-escape');
        }
    }
    if (!NAME.test(owner) || !NAME.test(repo)) {
        const tag = /:/.test(repoPart) ? ' (a quantization tag such as :Q4_K_M is not supported: name the file, e.g. hf:owner/repo/model-Q4_K_M.gguf)' : '';
        throw badUri(uri, `the owner and repository must be letters, digits, '.', '_' or '-'${tag}`);
    }
    if (at >= 0 && revision === '') throw badUri(uri, 'the revision after @ is empty');
    if (path.length === 0 || path.some((p) => p === '' || p === '.' || p === '..')) {
        throw badUri(uri, 'name the file inside the repository after owner/repo, e.g. hf:owner/repo/model-Q4_K_M.gguf');
    }
    const endpoint = hfEndpoint();
    const url = `${endpoint}/${owner}/${repo}/resolve/${encodeURIComponent(revision)}/${path.map(encodeURIComponent).join('/')}`;
    const authorization = hfAuthorization();
    return {
        kind: 'hf',
        uri,
        url,
        // One folder per repository (and revision): names of different repositories never meet.
        fileName: join('huggingface', owner, revision === 'main' ? repo : `${repo}@${safeName(revision)}`, ...path.map(safeName)),
        huggingFace: true,
        ...(authorization ? { authorization, authOrigin: new URL(endpoint).origin } : {}),
    };
}

function parseUrl(uri: string): RemoteSource {
    let url: URL;
    try {
        url = new URL(uri);
    } catch {
        throw badUri(uri, 'it is not a valid URL');
    }
    const last = url.pathname.split('/').filter(Boolean).pop() ?? '';
    let name: string;
    try {
        name = decodeURIComponent(last);
    } catch {
        name = last;
    }
    const hfOrigins = new Set([new URL(hfEndpoint()).origin, 'https://huggingface.co']);
    const huggingFace = hfOrigins.has(url.origin);
    const authorization = huggingFace ? hfAuthorization() : undefined;
    return {
        kind: 'url',
        uri,
        url: url.href,
        fileName: name === '' || name === '.' || name === '..' ? '' : safeName(name),
        huggingFace,
        ...(authorization ? { authorization, authOrigin: url.origin } : {}),
    };
}

/**
 * Parses a model URI. Hugging Face files are `hf:owner/repo/path/file.gguf` (revision `main`)
 * or `hf:owner/repo@revision/path/file.gguf` (a branch, tag or commit; `refs/pr/1` written as
 * `refs%2Fpr%2F1`), resolved to `<endpoint>/owner/repo/resolve/<revision>/path`.
 * @throws LlamaConfigError (INVALID_ARGUMENT) for a malformed URI.
 */
export function parseModelUri(uri: string): ModelSource {
    if (typeof uri !== 'string' || uri === '') throw badUri(uri, 'give a non-empty string');
    if (/^hf:/i.test(uri)) return parseHf(uri);
    if (/^https?:\/\//i.test(uri)) return parseUrl(uri);
    if (/^file:/i.test(uri)) {
        try {
            return { kind: 'file', uri, path: fileURLToPath(uri) };
        } catch (error) {
            throw badUri(uri, (error as Error).message);
        }
    }
    if (/^[a-z][a-z0-9+.-]+:\/\//i.test(uri)) throw badUri(uri, `the scheme ${uri.split(':')[0]}: is not supported`);
    return { kind: 'file', uri, path: uri };
}

/** The URL without its query and fragment (CDN URLs carry signatures), for messages. */
export function displayUrl(url: string): string {
    try {
        const u = new URL(url);
        return `${u.origin}${u.pathname}`;
    } catch {
        return url;
    }
}
