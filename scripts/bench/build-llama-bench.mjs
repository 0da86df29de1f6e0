// Builds llama.cpp's llama-bench, llama-batched-bench (the reference of `llama-kv bench -npl`),
// llama-embedding (the reference of `llama-kv bench --embed`)
// and the reference program (test/support/reference/greedy.cpp) in build-bench/, from our own CMakeLists.txt with LLAMA_KV_BENCH=ON: the same ggml
// and llama targets as the addon's, so the same compile flags by construction. The
// addon's build/ is only read (its CMakeCache.txt, for the options and compilers it was
// configured with, and its build.ninja, to check the flags), never built.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';

// What build/ was configured with, mirrored into build-bench/ so that it is configured as
// build/ is: the options of our CMakeLists.txt, the compilers and their flags (cmake-js's
// -DBUILDING_NODE_EXTENSION in CMAKE_CXX_FLAGS included), and what cmake-js passes for the
// addon target: node's headers (CMAKE_JS_INC: the node-api-headers package, not a system
// include folder, which a machine may not have), its sources and libraries, the runtime.
// Not CMAKE_LIBRARY_OUTPUT_DIRECTORY: build-bench/ has its own output folder.
const MIRRORED = [
    'CMAKE_BUILD_TYPE', 'CMAKE_C_COMPILER', 'CMAKE_CXX_COMPILER', 'CMAKE_C_FLAGS', 'CMAKE_CXX_FLAGS',
    'CMAKE_SHARED_LINKER_FLAGS', 'CMAKE_OSX_ARCHITECTURES', 'CMAKE_OSX_DEPLOYMENT_TARGET', 'CMAKE_MSVC_RUNTIME_LIBRARY',
    'CMAKE_JS_INC', 'CMAKE_JS_SRC', 'CMAKE_JS_LIB', 'CMAKE_JS_VERSION', 'NODE_RUNTIME', 'NODE_RUNTIMEVERSION', 'NODE_ARCH',
    'LLAMA_KV_NATIVE', 'LLAMA_KV_CPU_VARIANT', 'LLAMA_KV_CPU_ALL_VARIANTS', 'LLAMA_KV_GPU_BACKENDS',
];

/**
 * The CMake -D options that configure build-bench/ as build/ was configured (its
 * CMakeCache.txt), plus LLAMA_KV_BENCH. Throws when build/ has not been configured by
 * cmake-js (no CMAKE_JS_INC): without node's headers build-bench/ would differ from it.
 */
export function mirroredDefines(root) {
    const addon = cacheEntries(join(root, 'build', 'CMakeCache.txt'));
    if (!addon.has('CMAKE_JS_INC')) {
        throw new Error('build/ is not configured by cmake-js (its CMakeCache.txt has no CMAKE_JS_INC): run `npm run build` first');
    }
    const wanted = ['-DLLAMA_KV_BENCH=ON'];
    for (const name of MIRRORED) {
        const entry = addon.get(name);
        if (!entry) continue;
        wanted.push(`-D${name}:${entry.type === 'UNINITIALIZED' ? 'STRING' : entry.type}=${entry.value}`);
    }
    if (!addon.has('CMAKE_BUILD_TYPE')) wanted.push('-DCMAKE_BUILD_TYPE=Release');
    return wanted;
}

/** The ggml CPU variant build/ compiles its one CPU backend as (e.g. sapphirerapids), or null (all variants, not x86, not configured). */
export function builtCpuVariant(root) {
    return cacheEntries(join(root, 'build', 'CMakeCache.txt')).get('LLAMA_KV_CPU_VARIANT_IN_FORCE')?.value || null;
}

function cacheEntries(file) {
    const out = new Map();
    if (!existsSync(file)) return out;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
        const m = /^([A-Za-z0-9_]+):([A-Z]+)=(.*)$/.exec(line);
        if (m) out.set(m[1], { type: m[2], value: m[3] });
    }
    return out;
}

function which(name) {
    return spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * The DEFINES, INCLUDES and FLAGS of every ggml, libllama and addon object in a
 * build.ninja, by object path, with the build folder itself (in the include directories of
 * generated headers) written as <build>. build-bench/ builds no addon, but its build.ninja
 * has the addon's compile commands: where they match build/'s, so do node's headers and the
 * defines.
 */
function objectFlags(ninjaFile) {
    const out = new Map();
    if (!existsSync(ninjaFile)) return out;
    const buildDir = dirname(ninjaFile);
    const includes = (list) => list.split(' ').map((i) => (i === `-I${buildDir}` || i.startsWith(`-I${buildDir}/`) ? `-I<build>${i.slice(2 + buildDir.length)}` : i)).join(' ');
    let current = null;
    for (const line of readFileSync(ninjaFile, 'utf8').split('\n')) {
        const b = /^build ((?:llama\.cpp\/(?:ggml\/src|src)\/CMakeFiles\/(?:ggml[^/]*|llama)|CMakeFiles\/llama_kv)\.dir\/\S+\.o):/.exec(line);
        if (b) {
            current = { defines: '', includes: '', flags: '' };
            out.set(b[1], current);
            continue;
        }
        if (current && line.startsWith('  DEFINES = ')) current.defines = line.slice(12);
        else if (current && line.startsWith('  INCLUDES = ')) current.includes = includes(line.slice(13));
        else if (current && line.startsWith('  FLAGS = ')) current.flags = line.slice(10);
        else if (!line.startsWith('  ')) current = null;
    }
    return out;
}

/**
 * Compares the compile flags (defines, include directories, flags) of ggml, libllama and
 * the addon in build/ and build-bench/: { compared, addon (of them, the addon's objects),
 * differing: [object paths] }, or null when build/ has no build.ninja to compare with.
 */
export function compareFlags(root) {
    const ours = objectFlags(join(root, 'build', 'build.ninja'));
    const bench = objectFlags(join(root, 'build-bench', 'build.ninja'));
    if (ours.size === 0 || bench.size === 0) return null;
    const differing = [];
    let compared = 0;
    let addon = 0;
    for (const [object, a] of bench) {
        const b = ours.get(object);
        if (!b) continue;
        compared++;
        if (object.startsWith('CMakeFiles/llama_kv.dir/')) addon++;
        if (a.defines !== b.defines || a.includes !== b.includes || a.flags !== b.flags) differing.push(object);
    }
    return { compared, addon, differing };
}

/**
 * Whether the ggml libraries (ggml-base, ggml and the CPU backend modules) of build/Release
 * and build-bench/Release are byte-identical: { identical: [names], differing: [names] }, or
 * null when build/Release has none.
 */
export function compareLibraries(root) {
    const a = join(root, 'build', 'Release');
    const b = join(root, 'build-bench', 'Release');
    if (!existsSync(a) || !existsSync(b)) return null;
    const names = readdirSync(b).filter((f) => /^lib(llama-kv-ggml(-base)?|ggml-cpu[^.]*)\.so$/.test(f) && existsSync(join(a, f)));
    if (names.length === 0) return null;
    const hash = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
    const identical = names.filter((f) => hash(join(a, f)) === hash(join(b, f)));
    return { identical, differing: names.filter((f) => !identical.includes(f)) };
}

/**
 * Configures build-bench/ when needed and builds llama-bench and llama-kv-reference
 * (incremental: a no-op when up to date). Returns their paths.
 */
export function buildLlamaBench(root, log) {
    const [llamaBench, reference] = buildBenchTargets(root, log, ['llama-bench', 'llama-kv-reference'], 'llama.cpp\'s llama-bench and the reference program');
    return { llamaBench, reference };
}

/**
 * Configures build-bench/ when needed and builds llama.cpp's llama-batched-bench
 * (tools/batched-bench: N sequences decoded in one llama_batch per step), the reference of
 * `llama-kv bench -npl`. Returns its path.
 */
export function buildBatchedBench(root, log) {
    return buildBenchTargets(root, log, ['llama-batched-bench'], 'llama.cpp\'s llama-batched-bench')[0];
}

/**
 * Configures build-bench/ when needed and builds llama.cpp's llama-embedding
 * (examples/embedding: texts packed into batches, as embedBatch() packs them), the reference
 * of `llama-kv bench --embed`. Returns its path.
 */
export function buildLlamaEmbedding(root, log) {
    try {
        return buildBenchTargets(root, log, ['llama-embedding'], 'llama.cpp\'s llama-embedding')[0];
    } catch (error) {
        if (/unknown target/.test(error.message)) {
            throw new Error(
                'build-bench/ has no llama-embedding target: CMakeLists.txt must add llama.cpp\'s examples/embedding under if(LLAMA_KV_BENCH) ' +
                    '(add_subdirectory("${LLAMA_KV_LLAMA_DIR}/examples/embedding" llama.cpp/examples/embedding EXCLUDE_FROM_ALL)), or pass --llama-embedding PATH',
            );
        }
        throw error;
    }
}

/**
 * Configures build-bench/ when needed and builds `targets` (incremental: a no-op when up to
 * date). Returns the paths of the executables, in the order of `targets`.
 */
export function buildBenchTargets(root, log, targets, what) {
    const buildDir = join(root, 'build-bench');
    const out = join(buildDir, 'Release');
    const files = targets.map((t) => join(out, t));
    const wanted = mirroredDefines(root);
    // The executables land in build-bench/Release (our CMakeLists.txt's layout, as cmake-js's
    // build/Release) beside ggml's libraries and the CPU backend modules, which
    // ggml_backend_load_all() looks for in the executable's folder.

    const have = cacheEntries(join(buildDir, 'CMakeCache.txt'));
    const stale = have.size === 0 || wanted.some((d) => {
        const m = /^-D([^:=]+)(?::[A-Z]+)?=(.*)$/.exec(d);
        return have.get(m[1])?.value !== m[2];
    });
    if (stale) {
        log(`configuring build-bench/ (${wanted.join(' ')})`);
        const generator = have.size === 0 && which('ninja') ? ['-G', 'Ninja'] : [];
        execFileSync('cmake', ['-S', root, '-B', buildDir, ...generator, ...wanted], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
    const missing = files.some((f) => !existsSync(f));
    const jobs = process.env.LLAMA_KV_BUILD_JOBS || String(availableParallelism());
    if (missing) log(`building ${what} in build-bench/ (the first build takes several minutes)`);
    const started = Date.now();
    // A first build prints megabytes of compiler warnings (GCC 12 on ggml's AMX code):
    // spawnSync's default 1 MiB output limit would kill it part way.
    const r = spawnSync('cmake', ['--build', buildDir, '--target', ...targets, '--parallel', jobs], { encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.error) throw new Error(`building ${targets.join(', ')} failed: ${r.error.message}`);
    if (r.status !== 0) {
        // From the first failed step on: the tail alone is often the warnings of another job.
        const lines = `${r.stdout}\n${r.stderr}`.trim().split('\n');
        const failed = lines.findIndex((l) => l.startsWith('FAILED:'));
        const shown = failed >= 0 ? lines.slice(failed, failed + 30) : lines.slice(-30);
        throw new Error(`building ${targets.join(', ')} failed:\n${shown.join('\n')}`);
    }
    if (missing) log(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return files;
}
