/**
 * The partial download beside the final file: `<name>.partial` holds the bytes so far and
 * `<name>.partial.json` what they are of (URL, validators, size, checksum), so that a resume
 * only appends to bytes of the same remote file.
 */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';

/** What a partial file's bytes are of. */
export interface PartialInfo {
    /** The source URL (the one given, before redirects). */
    url: string;
    /** The ETag of the response that gave the bytes (If-Range sends it back when strong). */
    etag?: string;
    lastModified?: string;
    totalBytes?: number;
    /** The sha256 the source gave (or the caller asked for), when any. */
    sha256?: string;
}

/** The partial file's and its sidecar's paths. */
export function partialPaths(finalPath: string): { data: string; info: string } {
    return { data: `${finalPath}.partial`, info: `${finalPath}.partial.json` };
}

/** Reads the sidecar; undefined when missing or unreadable (then the partial is not resumed). */
export async function readPartialInfo(path: string): Promise<PartialInfo | undefined> {
    try {
        const raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
        if (typeof raw.url !== 'string') return undefined;
        const str = (k: string) => (typeof raw[k] === 'string' ? { [k]: raw[k] as string } : {});
        return {
            url: raw.url,
            ...str('etag'),
            ...str('lastModified'),
            ...str('sha256'),
            ...(typeof raw.totalBytes === 'number' && Number.isSafeInteger(raw.totalBytes) ? { totalBytes: raw.totalBytes } : {}),
        };
    } catch {
        return undefined;
    }
}

/** Writes the sidecar (before the first byte of a response is appended). */
export async function writePartialInfo(path: string, info: PartialInfo): Promise<void> {
    await writeFile(path, JSON.stringify(info) + '\n');
}

/** Size of the file, 0 when missing. */
export async function fileSize(path: string): Promise<number> {
    try {
        return (await stat(path)).size;
    } catch {
        return 0;
    }
}

/** Removes the partial file and its sidecar. */
export async function removePartial(paths: { data: string; info: string }): Promise<void> {
    await rm(paths.data, { force: true });
    await rm(paths.info, { force: true });
}

/**
 * The If-Range value for resuming these bytes: a strong ETag, else Last-Modified;
 * undefined when neither (the partial cannot be resumed safely).
 */
export function ifRangeValue(info: PartialInfo): string | undefined {
    if (info.etag && !info.etag.startsWith('W/')) return info.etag;
    return info.lastModified;
}
