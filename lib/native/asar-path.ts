/**
 * Electron packs an app into `app.asar`, an archive that Node's `fs` patched by Electron can
 * read but the operating system's loader and llama.cpp's `fopen`/`mmap` cannot. Files that
 * native code opens must be unpacked beside it (electron-builder's `asarUnpack`, Forge's
 * `packagerConfig.asar.unpack`), into `app.asar.unpacked/` with the same layout. Every path
 * handed to native code goes through {@link unpackedPath} first. Below the binding.
 */
import { existsSync } from 'node:fs';

/** Matches one archive segment: `<dir>/<name>.asar` followed by a separator or the end. */
const ASAR_SEGMENT = /\.asar(?=[\\/]|$)/g;

/**
 * The path that native code must open for `path`: each `<name>.asar` folder in it becomes
 * `<name>.asar.unpacked`. Paths without an archive segment come back unchanged; an already
 * unpacked path is not rewritten twice.
 *
 * @param path An absolute path, possibly inside an Electron archive.
 */
export function unpackedPath(path: string): string {
    return path.replace(ASAR_SEGMENT, '.asar.unpacked');
}

/**
 * The path of a file (a model, an adapter) for native code to open: its unpacked copy when
 * `path` is inside an Electron archive and the copy exists, else `path` itself (llama.cpp
 * then reports that it cannot open it).
 */
export function nativeFilePath(path: string): string {
    if (!isInsideAsar(path)) return path;
    const unpacked = unpackedPath(path);
    return existsSync(unpacked) ? unpacked : path;
}

/** Whether `path` lies inside an archive (has a `<name>.asar` folder segment). */
export function isInsideAsar(path: string): boolean {
    return new RegExp(ASAR_SEGMENT.source).test(path);
}

/** The hint for an app whose native files stayed inside the archive. */
export function asarUnpackHint(path: string): string {
    return (
        `${path} is inside an Electron archive; native files must be unpacked: add "node_modules/llama-kv/**" and ` +
        '"node_modules/@llama-kv/**" to electron-builder\'s asarUnpack (or Forge\'s packagerConfig.asar.unpack); see docs/electron.md'
    );
}
