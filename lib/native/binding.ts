/**
 * Loads the native addon (the only module that does). Internal: the public classes hold
 * native handles in private fields and nothing else imports from here.
 * @internal
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendSearchDirs } from './backend-packages.js';
import { LlamaError } from '../errors.js';
import type { NativeBinding } from './types.js';

export type * from './types.js';

/** The package root (holds package.json), from lib/ under vitest or dist/ when built. */
export function packageRoot(): string {
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
        if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'CMakeLists.txt'))) return dir;
        const parent = dirname(dir);
        if (parent === dir) throw new Error('llama-kv: cannot find the package root');
        dir = parent;
    }
}

let cached: NativeBinding | undefined;

/**
 * Loads the addon once (build/Release, or prebuilds/<platform>-<arch> via
 * node-gyp-build), then ggml's backends: from the addon's folder, the GPU packages and
 * LLAMA_KV_BACKEND_PATH.
 *
 * For testing, `LLAMA_KV_ADDON_PATH` names another llama_kv.node to load instead (e.g.
 * build-asan/Release/llama_kv.node of scripts/test-asan.mjs); its folder must hold its
 * own ggml libraries, since the CPU backend is loaded from beside the addon.
 */
export function binding(): NativeBinding {
    if (cached) return cached;
    const require = createRequire(import.meta.url);
    const root = packageRoot();
    try {
        const override = process.env.LLAMA_KV_ADDON_PATH;
        const load = require('node-gyp-build') as { path(dir: string): string };
        const native = require(override ? resolve(override) : load.path(root)) as NativeBinding;
        native.loadBackends(backendSearchDirs(root));
        cached = native;
    } catch (error) {
        throw new LlamaError(
            'BINDING_LOAD_FAILED',
            `Could not load the llama-kv native addon for ${process.platform}-${process.arch} (Node ${process.version}, ` +
                `N-API): ${(error as Error).message}. Run \`npm rebuild llama-kv\` (needs cmake and a C++17 compiler) ` +
                'or install a version with a prebuilt binary for this platform.',
            { cause: error },
        );
    }
    return cached;
}
