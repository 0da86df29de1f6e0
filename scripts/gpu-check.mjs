#!/usr/bin/env node
// The gpu project on a real GPU, in one command: builds the backend package of GPU_CHECK_KIND
// (default cuda; also rocm, vulkan) from the pinned tree into npm/<platform>-<arch>-<kind>/
// (npm run prebuild -- --variant <kind>), then runs the gpu project (test/gpu/,
// vitest.gpu.config.ts) with LLAMA_KV_TEST_GPU=<kind>: the same tests CI runs on Mesa's
// llvmpipe Vulkan device. For CUDA it finds cuBLAS in the toolkit or in the nvidia-cublas
// Python wheel, and builds one architecture (CUDA_ARCH, default 90: H100/H200).
// Needs `npm install` done (node_modules, vendor/llama.cpp, the addon in build/Release).
//
//   node scripts/gpu-check.mjs [--no-build] [vitest arguments, e.g. test/gpu/placement.test.ts]
// (on a machine without npm: xz -dc .device/node.xz > /tmp/node && /tmp/node scripts/gpu-check.mjs)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prebuild } from './prebuild.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const kind = process.env.GPU_CHECK_KIND ?? 'cuda';
const args = process.argv.slice(2);
const log = (line) => process.stdout.write(`gpu-check: ${line}\n`);

/** cuBLAS of the nvidia-cublas wheel when the toolkit has none: env and CMake options for the prebuild. */
function cublasFromWheel() {
    if (existsSync('/usr/local/cuda/include/cublas_v2.h') || existsSync('/usr/include/cublas_v2.h')) return [];
    const r = spawnSync('python3', ['-c', 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))'], { encoding: 'utf8' });
    const wheel = r.status === 0 ? r.stdout.trim() : '';
    if (!wheel) return []; // the prebuild's toolchain check says what is missing
    // The wheel has versioned libraries only: unversioned links for the linker.
    const links = join(root, 'build-prebuild', 'cublas-links');
    rmSync(links, { recursive: true, force: true });
    mkdirSync(links, { recursive: true });
    for (const name of ['cublas', 'cublasLt']) {
        const file = readdirSync(join(wheel, 'lib')).find((f) => f.startsWith(`lib${name}.so.`));
        if (file) symlinkSync(join(wheel, 'lib', file), join(links, `lib${name}.so`));
    }
    process.env.CUBLAS_INCLUDE_DIR = join(wheel, 'include');
    process.env.CUBLAS_LIB_DIR = links;
    process.env.LD_LIBRARY_PATH = [join(wheel, 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
    return [
        `--CDCUDA_cublas_LIBRARY=${join(links, 'libcublas.so')}`,
        `--CDCUDA_cublasLt_LIBRARY=${join(links, 'libcublasLt.so')}`,
        `--CDCMAKE_CUDA_FLAGS=-I${join(wheel, 'include')}`,
        `--CDCMAKE_CXX_FLAGS=-I${join(wheel, 'include')}`,
    ];
}

if (kind === 'cuda') {
    try {
        log(execFileSync('nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader'], { encoding: 'utf8' }).trim());
    } catch {
        log('nvidia-smi not found');
    }
}
const extra = kind === 'cuda' ? [`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.CUDA_ARCH ?? '90'}`, ...cublasFromWheel()] : [];
if (!args.includes('--no-build')) {
    process.env.LLAMA_KV_BUILD_JOBS ??= String(availableParallelism());
    const started = Date.now();
    try {
        prebuild(['--variant', kind, ...extra]);
    } catch (error) {
        log(`the ${kind} build failed: ${error.message}`);
        process.exit(2);
    }
    log(`${kind} package built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
// dist/ for the tests that load llama-kv as an installed app does, then the gpu project.
const node = process.execPath;
const steps = [
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    [join(root, 'scripts', 'build-cjs.mjs')],
    [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'vitest.gpu.config.ts', ...args.filter((a) => a !== '--no-build')],
];
for (const step of steps) {
    const r = spawnSync(node, step, { cwd: root, stdio: 'inherit', env: { ...process.env, LLAMA_KV_TEST_GPU: kind } });
    if (r.status !== 0) process.exit(r.status ?? 1);
}
log(`the gpu project passed on ${kind}`);
