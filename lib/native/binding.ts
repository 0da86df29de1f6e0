/**
 * Loads the native addon (the only module that does). Internal: the public classes hold
 * native handles in private fields and nothing else imports from here.
 * @internal
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asarUnpackHint, isInsideAsar, unpackedPath } from './asar-path.js';
import { backendSearchDirs, ownVersion, platformKey, platformPackageName, RELEASED_PLATFORMS } from './backend-packages.js';
import { LlamaError } from '../errors.js';
import type { NativeBinding } from './types.js';

export type * from './types.js';

/** The package root (holds llama-kv's package.json), from lib/ under vitest or dist/ when built. */
export function packageRoot(): string {
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
        if (readPackageName(join(dir, 'package.json')) === 'llama-kv') return dir;
        const parent = dirname(dir);
        if (parent === dir) throw new Error('llama-kv: cannot find the package root');
        dir = parent;
    }
}

function readPackageName(file: string): string | undefined {
    try {
        return (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name;
    } catch {
        return undefined;
    }
}

let cached: NativeBinding | undefined;

/** Where the addon was loaded from, and what the platform package lookup found. @internal */
export interface AddonSource {
    /** The llama_kv.node file. */
    file: string;
    /** 'override' (LLAMA_KV_ADDON_PATH), 'source' (a build from source in build/Release) or 'package'. */
    from: 'override' | 'source' | 'package';
}

/**
 * The addon to load: LLAMA_KV_ADDON_PATH, else a build from source (build/Release of the
 * package, as `npm rebuild llama-kv --build-from-source` or a checkout's `npm install`
 * leaves it), else the platform package @llama-kv/<platform>-<arch>. Throws the
 * BINDING_LOAD_FAILED message when none exists.
 */
function findAddon(root: string): AddonSource {
    const override = process.env.LLAMA_KV_ADDON_PATH;
    if (override) return { file: unpackedPath(resolve(override)), from: 'override' };
    const source = join(root, 'build', 'Release', 'llama_kv.node');
    if (existsSync(unpackedPath(source))) return { file: unpackedPath(source), from: 'source' };
    const name = platformPackageName();
    if (!RELEASED_PLATFORMS.includes(platformKey)) {
        throw new Error(`llama-kv has no prebuilt package for ${platformKey} (there are: ${RELEASED_PLATFORMS.join(', ')}). ${buildHint()}`);
    }
    const version = ownVersion(root);
    let manifest: string;
    try {
        manifest = createRequire(join(root, 'package.json')).resolve(`${name}/package.json`);
    } catch {
        // Only on this path: a process report costs milliseconds, and npm installs no glibc package on another libc.
        if (process.platform === 'linux' && !(process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime) {
            throw new Error(`llama-kv's prebuilt packages are for glibc, and this Linux uses another C library (musl?). ${buildHint()}`);
        }
        throw new Error(
            `the platform package ${name} is not installed. npm installs it as an optional dependency of llama-kv on ${platformKey}; ` +
                `it is missing after an install with --omit=optional (or --no-optional), or from a lockfile made on another platform. ` +
                `Install it with \`npm install ${name}@${version}\`, or ${buildHint()}`,
        );
    }
    const installed = (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version;
    if (installed !== version) {
        throw new Error(`${name}@${installed} is installed, but llama-kv is ${version} and the two must match: install ${name}@${version}`);
    }
    const file = unpackedPath(join(dirname(manifest), 'bin', 'llama_kv.node'));
    if (!existsSync(file)) {
        throw new Error(`${file} does not exist${isInsideAsar(join(dirname(manifest), 'bin')) ? ` (${asarUnpackHint(dirname(manifest))})` : `: reinstall ${name}`}`);
    }
    return { file, from: 'package' };
}

/** How to build the addon from source instead. */
function buildHint(): string {
    return (
        'build it from source: `npm rebuild llama-kv --build-from-source` (or LLAMA_KV_BUILD_FROM_SOURCE=1 npm rebuild llama-kv), ' +
        'which needs cmake >= 3.18, a C++17 compiler and the optional peer dependencies cmake-js and node-addon-api (docs/backends.md)'
    );
}

let source: AddonSource | undefined;

/** Where the loaded addon came from (undefined before it is loaded). @internal */
export function addonSource(): AddonSource | undefined {
    return source;
}

/**
 * Loads the addon once (see findAddon), then ggml's backends: from the addon's folder, the
 * GPU packages and LLAMA_KV_BACKEND_PATH.
 *
 * For testing, `LLAMA_KV_ADDON_PATH` names another llama_kv.node to load instead (e.g.
 * build-asan/Release/llama_kv.node of scripts/test-asan.mjs); its folder must hold its
 * own ggml libraries, since the CPU backend is loaded from beside the addon.
 */
export function binding(): NativeBinding {
    if (cached) return cached;
    const require = createRequire(import.meta.url);
    let found: AddonSource | undefined;
    try {
        const root = packageRoot();
        found = findAddon(root);
        const native = require(found.file) as NativeBinding;
        native.loadBackends(backendSearchDirs(root).map(unpackedPath));
        cached = native;
        source = found;
    } catch (error) {
        const what = found ? `Could not load the llama-kv native addon ${found.file}` : 'Could not find the llama-kv native addon';
        throw new LlamaError(
            'BINDING_LOAD_FAILED',
            `${what} for ${process.platform}-${process.arch} (Node ${process.version}, N-API): ${(error as Error).message}` +
                (found?.from === 'package' ? `. If ${platformPackageName()} is damaged, reinstall it, or ${buildHint()}` : ''),
            { cause: error },
        );
    }
    return cached;
}

/**
 * The folder the addon is (or would be) loaded from, without loading it: ggml's libraries and
 * llama-kv's executables are beside it; and the folders it loads GPU backends from. For the
 * processes that load backends as the addon does (llama-kv-rpc-server). @internal
 */
export function nativeFolders(): { addon: string; backends: string[] } {
    const root = packageRoot();
    return { addon: dirname(findAddon(root).file), backends: backendSearchDirs(root).map(unpackedPath) };
}
