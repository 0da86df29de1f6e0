#!/usr/bin/env node
// Builds the native addon (and the llama.cpp/ggml libraries it links) with cmake-js.
// Incremental: a second run reuses build/ and recompiles only what changed.
//
//   node scripts/build.mjs [--debug] [--build-dir DIR] [--out DIR] [--CDNAME=VALUE ...]
//
// --build-dir is CMake's build directory (default build/); --out copies the built
// .node into DIR; --target NAME builds one CMake target only (e.g. ggml-vulkan, for a GPU
// backend package, which needs no addon). Returns the built .node's path, or with --target
// the output folder. Extra --CD options
// are passed to CMake (e.g. --CDLLAMA_KV_NATIVE=OFF). LLAMA_KV_BUILD_JOBS sets the
// parallelism (default: the number of CPUs).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { vendor } from './vendor.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

export function build(argv = []) {
    // The build tools first: before fetching the llama.cpp source, say what is missing.
    let cmakeJs;
    try {
        cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
        require.resolve('node-addon-api');
    } catch {
        throw new Error('a build from source needs the packages cmake-js and node-addon-api (optional peer dependencies of llama-kv): npm install cmake-js@8 node-addon-api@8');
    }
    vendor();
    const jobs = process.env.LLAMA_KV_BUILD_JOBS || String(availableParallelism());
    const debug = argv.includes('--debug');
    const valueOf = (flag) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : null);
    const out = valueOf('--out');
    const buildDir = resolve(root, valueOf('--build-dir') ?? 'build');
    const passthrough = argv.filter((a) => a.startsWith('--CD') || a.startsWith('--runtime') || a.startsWith('--runtime-version') || a.startsWith('--arch'));
    const target = valueOf('--target');
    const args = [cmakeJs, 'build', '--out', buildDir, '--parallel', jobs, ...(debug ? ['--debug'] : []), ...(target ? ['--target', target] : []), ...passthrough];
    const started = Date.now();
    execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
    process.stderr.write(`[llama-kv build] native build finished in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    const built = join(buildDir, debug ? 'Debug' : 'Release', target ? '' : 'llama_kv.node');
    if (out && !target) {
        mkdirSync(out, { recursive: true });
        copyFileSync(built, join(out, 'llama_kv.node'));
    }
    return built;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    try {
        build(process.argv.slice(2));
    } catch (error) {
        process.stderr.write(`[llama-kv build] failed: ${error.message}\n`);
        process.exit(1);
    }
}
