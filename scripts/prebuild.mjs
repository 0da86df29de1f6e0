#!/usr/bin/env node
// Builds one prebuilt artifact (npm run prebuild -- --variant cpu|cuda|rocm|vulkan) into
// the per-platform package whose manifest is committed in npm/:
//
//   cpu     npm/<platform>-<arch>/bin/: the addon (llama_kv.node), ggml's two shared
//           libraries and every instruction-set variant of the CPU backend
//           (GGML_CPU_ALL_VARIANTS), and ggml's RPC server (llama-kv-rpc-server with
//           libggml-rpc), stripped, finding each other through an rpath of $ORIGIN.
//           The package @llama-kv/<platform>-<arch>.
//   cuda    npm/<platform>-<arch>-<variant>/bin/: the backend library only
//   rocm    (libggml-cuda.so, libggml-hip.so, libggml-vulkan.so). The package
//   vulkan  @llama-kv/<platform>-<arch>-<variant>.
//
// Each package also gets LICENSE and THIRD_PARTY_NOTICES.md. A platform or variant without a
// committed manifest is not released, and is refused here; a manifest whose version is not
// llama-kv's is refused too.
//
// Options: --build-dir DIR (default build-prebuild/<variant>), --check (only check the
// toolchain and say what is missing), --force (build even so, to see how far it gets),
// --CDNAME=VALUE (extra CMake options, e.g. --CDCMAKE_CUDA_ARCHITECTURES=90).
// LLAMA_KV_BUILD_JOBS sets the parallelism.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from './build.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const VARIANTS = ['cpu', 'cuda', 'rocm', 'vulkan'];
/** ggml's backend name (library libggml-<name>) for each GPU variant. */
const GGML_NAMES = { cuda: 'cuda', rocm: 'hip', vulkan: 'vulkan' };
const platformKey = `${process.platform}-${process.arch}`;

function log(message) {
    process.stderr.write(`[llama-kv prebuild] ${message}\n`);
}

function fail(message) {
    const error = new Error(message);
    error.userFacing = true;
    throw error;
}

function parseArgs(argv) {
    const valueOf = (flag) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
    const variant = valueOf('--variant');
    if (variant === undefined && process.env.npm_lifecycle_event === 'prebuild') {
        // npm also runs a "prebuild" script before "build" (npm run build), without arguments.
        return null;
    }
    if (!VARIANTS.includes(variant)) fail(`--variant must be one of ${VARIANTS.join(', ')} (got ${variant ?? 'nothing'})`);
    return {
        variant,
        buildDir: resolve(root, valueOf('--build-dir') ?? join('build-prebuild', variant)),
        check: argv.includes('--check'),
        force: argv.includes('--force'),
        cmake: argv.filter((a) => a.startsWith('--CD')),
    };
}

function which(command) {
    const r = spawnSync(process.platform === 'win32' ? 'where' : 'which', [command], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.split('\n')[0].trim() : null;
}

// --- toolchains ------------------------------------------------------------------

function findFile(dirs, names) {
    for (const dir of dirs) {
        for (const name of names) {
            if (existsSync(join(dir, name))) return join(dir, name);
        }
    }
    return null;
}

/** What each GPU toolchain needs, found or missing; CMake options that point at it. */
function checkToolchain(variant) {
    const found = [];
    const missing = [];
    const cmake = [];
    if (variant === 'cuda') {
        const nvcc = which('nvcc') ?? findFile(['/usr/local/cuda/bin'], ['nvcc']);
        if (nvcc) {
            const version = spawnSync(nvcc, ['--version'], { encoding: 'utf8' }).stdout.match(/release ([\d.]+)/)?.[1];
            found.push(`nvcc ${version ?? '?'} (${nvcc})`);
            cmake.push(`--CDCMAKE_CUDA_COMPILER=${realpathSync(nvcc)}`);
        } else {
            missing.push('nvcc (the CUDA toolkit, 12.x or 13.x): put its bin/ in PATH');
        }
        const cudaRoot = process.env.CUDA_PATH ?? process.env.CUDAToolkit_ROOT ?? '/usr/local/cuda';
        const include = [join(cudaRoot, 'include'), '/usr/local/cuda/include', '/usr/include', ...extraDirs('CUBLAS_INCLUDE_DIR')];
        const lib = [join(cudaRoot, 'lib64'), join(cudaRoot, 'lib'), '/usr/local/cuda/lib64', '/usr/lib/x86_64-linux-gnu', ...extraDirs('CUBLAS_LIB_DIR')];
        const header = findFile(include, ['cublas_v2.h']);
        const library = findFile(lib, ['libcublas.so']);
        if (findFile(include, ['cuda_runtime.h'])) found.push('cuda_runtime.h');
        else missing.push('cuda_runtime.h (the CUDA runtime headers, cuda-cudart-dev)');
        if (header && library) {
            found.push(`cuBLAS (${header}, ${library})`);
        } else {
            missing.push(
                'cuBLAS: cublas_v2.h and libcublas.so (the cuda-cublas-dev-<version> package of the CUDA repository, or the ' +
                    'nvidia-cublas wheel with CUBLAS_INCLUDE_DIR / CUBLAS_LIB_DIR pointing at its include/ and lib/ and an ' +
                    'unversioned libcublas.so link there)',
            );
        }
    } else if (variant === 'rocm') {
        const hipcc = which('hipcc') ?? findFile(['/opt/rocm/bin'], ['hipcc']);
        if (hipcc) found.push(`hipcc (${hipcc})`);
        else missing.push('hipcc (ROCm 6.x)');
        const rocm = process.env.ROCM_PATH ?? '/opt/rocm';
        for (const [what, file] of [['hipBLAS', 'hipblas/hipblas.h'], ['rocBLAS', 'rocblas/rocblas.h']]) {
            if (findFile([join(rocm, 'include'), '/usr/include'], [file])) found.push(what);
            else missing.push(`${what} (${file}: the ${what.toLowerCase()}-dev package of ROCm)`);
        }
        const clang = findFile([join(rocm, 'llvm/bin'), '/usr/lib/llvm-17/bin'], ['clang++']);
        if (clang) cmake.push(`--CDCMAKE_HIP_COMPILER=${clang}`);
    } else if (variant === 'vulkan') {
        if (which('glslc')) found.push('glslc');
        else missing.push('glslc (the shaderc compiler: Debian package glslc, or the Vulkan SDK)');
        if (findFile(['/usr/include', join(process.env.VULKAN_SDK ?? '/nonexistent', 'include')], ['vulkan/vulkan.h'])) found.push('Vulkan headers');
        else missing.push('Vulkan headers and loader (Debian package libvulkan-dev, or the Vulkan SDK)');
    }
    if (!which('cmake')) missing.push('cmake >= 3.18');
    return { found, missing, cmake };
}

function extraDirs(env) {
    return (process.env[env] ?? '').split(':').filter(Boolean);
}

// --- staging ---------------------------------------------------------------------

function strip(file) {
    if (process.platform === 'win32' || !which('strip')) return;
    const args = process.platform === 'darwin' ? ['-x', file] : ['--strip-unneeded', file];
    execFileSync('strip', args, { stdio: 'inherit' });
}

/** Copies a library under its soname (the name the loader looks for), following links. */
function copyLibrary(from, toDir, name) {
    const target = join(toDir, name);
    copyFileSync(realpathSync(from), target);
    strip(target);
    return target;
}

/** The shared libraries in a build's output folder, by the name other files link them by. */
function libraries(outDir) {
    const files = readdirSync(outDir);
    const pick = (re) => files.filter((f) => re.test(f));
    // ggml-base and ggml: the soname (lib...so.0 on Linux); backends are modules without one.
    const versioned = pick(/^libllama-kv-ggml(-base)?\.so\.\d+$/);
    const dylibs = pick(/^libllama-kv-ggml(-base)?(\.\d+)?\.dylib$/);
    const dlls = pick(/^(lib)?llama-kv-ggml(-base)?\.dll$/);
    const backends = pick(/^(lib)?ggml-[\w.-]+\.(so|dll)$/);
    return [...versioned, ...dylibs, ...dlls, ...backends];
}

/** Fails unless npm/<key>/package.json is committed: only released packages are built. */
function requireManifest(key) {
    if (!existsSync(join(root, 'npm', key, 'package.json'))) {
        fail(`there is no npm/${key}/package.json: ${key} is not a released package (add its manifest, the workflow job and lib/native/backend-packages.ts together)`);
    }
}

/** The committed package folder npm/<key>, checked to be llama-kv's version; its bin/ emptied. */
export function packageFolder(key) {
    const dir = join(root, 'npm', key);
    const manifestPath = join(dir, 'package.json');
    requireManifest(key);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    const main = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    if (manifest.version !== main.version) fail(`npm/${key}/package.json is version ${manifest.version}, llama-kv is ${main.version}: they must match`);
    const bin = join(dir, 'bin');
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin, { recursive: true });
    for (const f of ['LICENSE', 'THIRD_PARTY_NOTICES.md']) copyFileSync(join(root, f), join(dir, f));
    return { dir, bin };
}

function stageCpu(outDir) {
    const { dir, bin } = packageFolder(platformKey);
    const addon = join(bin, 'llama_kv.node');
    copyFileSync(join(outDir, 'llama_kv.node'), addon);
    strip(addon);
    const libs = libraries(outDir).filter((f) => !/ggml-(cuda|hip|vulkan)\./.test(f));
    for (const f of libs) copyLibrary(join(outDir, f), bin, f);
    if (!libs.some((f) => /ggml-cpu/.test(f))) fail(`no CPU backend library was built in ${outDir}`);
    // `llama-kv rpc-server`: ggml's RPC server, with libggml-rpc (one of the libraries above).
    const server = process.platform === 'win32' ? 'llama-kv-rpc-server.exe' : 'llama-kv-rpc-server';
    if (!existsSync(join(outDir, server)) || !libs.some((f) => /ggml-rpc/.test(f))) fail(`the RPC server (${server} and ggml-rpc) was not built in ${outDir}`);
    copyLibrary(join(outDir, server), bin, server);
    return dir;
}

function stageGpu(variant, outDir) {
    const name = GGML_NAMES[variant];
    const file = readdirSync(outDir).find((f) => f === `libggml-${name}.so` || f === `ggml-${name}.dll`);
    if (!file) fail(`the build finished but ${outDir} holds no ggml-${name} library`);
    const { dir, bin } = packageFolder(`${platformKey}-${variant}`);
    copyLibrary(join(outDir, file), bin, file);
    return dir;
}

// --- main ------------------------------------------------------------------------

export function prebuild(argv) {
    const opts = parseArgs(argv);
    if (opts === null) return true;
    const toolchain = checkToolchain(opts.variant);
    if (opts.variant !== 'cpu') {
        for (const f of toolchain.found) log(`found ${f}`);
        for (const m of toolchain.missing) log(`missing ${m}`);
    }
    const key = opts.variant === 'cpu' ? platformKey : `${platformKey}-${opts.variant}`;
    requireManifest(key);
    if (opts.check) return toolchain.missing.length === 0;
    if (toolchain.missing.length > 0 && !opts.force) {
        fail(`cannot build the ${opts.variant} variant here; missing: ${toolchain.missing.join('; ')}`);
    }
    const defines =
        opts.variant === 'cpu'
            ? ['--CDLLAMA_KV_CPU_ALL_VARIANTS=ON', '--CDLLAMA_KV_NATIVE=OFF']
            : [`--CDLLAMA_KV_GPU_BACKENDS=${GGML_NAMES[opts.variant]}`, '--CDLLAMA_KV_NATIVE=OFF'];
    const started = Date.now();
    // A GPU package holds the backend library only: build that target, not the addon.
    const target = opts.variant === 'cpu' ? [] : ['--target', `ggml-${GGML_NAMES[opts.variant]}`];
    const built = build(['--build-dir', opts.buildDir, ...target, ...defines, ...toolchain.cmake, ...opts.cmake]);
    const outDir = opts.variant === 'cpu' ? dirname(built) : built;
    const dest = opts.variant === 'cpu' ? stageCpu(outDir) : stageGpu(opts.variant, outDir);
    const files = readdirSync(join(dest, 'bin'));
    const bytes = files.reduce((s, f) => s + statSync(join(dest, 'bin', f)).size, 0);
    log(`${opts.variant}: ${files.length} files, ${(bytes / 1048576).toFixed(1)} MiB in ${join(dest, 'bin')} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    return dest;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    try {
        const result = prebuild(process.argv.slice(2));
        if (result === false) process.exit(1);
    } catch (error) {
        log(`failed: ${error.message}`);
        process.exit(error.userFacing ? 2 : 1);
    }
}
