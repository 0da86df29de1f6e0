#!/usr/bin/env node
// npm install hook. An installed llama-kv compiles nothing: its binaries come from the
// platform package @llama-kv/<platform>-<arch> (an optional dependency), found at import.
// This hook builds from source only when asked:
//
//   npm rebuild llama-kv --build-from-source     (npm sets npm_config_build_from_source)
//   LLAMA_KV_BUILD_FROM_SOURCE=1 npm rebuild llama-kv
//
// and in a git checkout of llama-kv itself, where the build from source is what `npm test`
// runs against (LLAMA_KV_BUILD_FROM_SOURCE=0 skips it there). A build from source needs
// cmake >= 3.18, a C++17 compiler and the optional peer dependencies cmake-js and
// node-addon-api; its addon (build/Release) is loaded before the platform package.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function log(message) {
    process.stderr.write(`[llama-kv install] ${message}\n`);
}

function wanted() {
    const env = process.env.LLAMA_KV_BUILD_FROM_SOURCE;
    if (env === '1' || env === 'true') return 'LLAMA_KV_BUILD_FROM_SOURCE';
    if (env === '0' || env === 'false') return null;
    const flag = process.env.npm_config_build_from_source;
    if (flag === 'true' || flag === 'llama-kv') return '--build-from-source';
    return existsSync(join(root, '.git')) ? 'a git checkout' : null;
}

const reason = wanted();
if (reason !== null) {
    try {
        log(`building from source (${reason})`);
        const { build } = await import('./build.mjs');
        build(process.argv.slice(2));
    } catch (error) {
        log(`failed: ${error.message}`);
        log('building from source needs cmake >= 3.18, a C++17 compiler (g++ or clang++) and the packages cmake-js and node-addon-api; see docs/backends.md');
        process.exit(1);
    }
}
