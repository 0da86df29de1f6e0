// Builds llama.cpp's llama-bench and the reference program (test/reference/greedy.cpp)
// in build-bench/, from our own CMakeLists.txt with LLAMA_KV_BENCH=ON: the same ggml
// and llama targets as the addon's, so the same compile flags by construction. The
// addon's build/ is only read (its CMakeCache.txt, for the options and compilers it was
// configured with, and its build.ninja, to check the flags), never built.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

// What build/ was configured with that changes the code generated: the options of our
// CMakeLists.txt, the compilers and their flags.
const MIRRORED = [
    'CMAKE_BUILD_TYPE', 'CMAKE_C_COMPILER', 'CMAKE_CXX_COMPILER', 'CMAKE_C_FLAGS', 'CMAKE_CXX_FLAGS',
    'LLAMA_KV_NATIVE', 'LLAMA_KV_CPU_ALL_VARIANTS', 'LLAMA_KV_GPU_BACKENDS',
];

// cmake-js adds -DBUILDING_NODE_EXTENSION to CMAKE_CXX_FLAGS: a macro for node's headers
// that nothing in llama.cpp or ggml reads. Left out of build-bench/ and of the comparison.
const withoutNodeDefine = (flags) => flags.replace(/(^|\s)-DBUILDING_NODE_EXTENSION(?=\s|$)/g, '').trim();

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

/** The DEFINES and FLAGS of every ggml and libllama object in a build.ninja, by object path. */
function objectFlags(ninjaFile) {
    const out = new Map();
    if (!existsSync(ninjaFile)) return out;
    let current = null;
    for (const line of readFileSync(ninjaFile, 'utf8').split('\n')) {
        const b = /^build (llama\.cpp\/(?:ggml\/src|src)\/CMakeFiles\/(?:ggml[^/]*|llama)\.dir\/\S+\.o):/.exec(line);
        if (b) {
            current = { defines: '', flags: '' };
            out.set(b[1], current);
            continue;
        }
        if (current && line.startsWith('  DEFINES = ')) current.defines = withoutNodeDefine(line.slice(12));
        else if (current && line.startsWith('  FLAGS = ')) current.flags = withoutNodeDefine(line.slice(10));
        else if (!line.startsWith('  ')) current = null;
    }
    return out;
}

/**
 * Compares the compile flags of ggml and libllama in build/ (the addon's) and
 * build-bench/: { compared, differing: [object paths] }, or null when build/ has no
 * build.ninja to compare with.
 */
export function compareFlags(root) {
    const ours = objectFlags(join(root, 'build', 'build.ninja'));
    const bench = objectFlags(join(root, 'build-bench', 'build.ninja'));
    if (ours.size === 0 || bench.size === 0) return null;
    const differing = [];
    let compared = 0;
    for (const [object, a] of bench) {
        const b = ours.get(object);
        if (!b) continue;
        compared++;
        if (a.defines !== b.defines || a.flags !== b.flags) differing.push(object);
    }
    return { compared, differing };
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
    const buildDir = join(root, 'build-bench');
    const out = join(buildDir, 'Release');
    const llamaBench = join(out, 'llama-bench');
    const reference = join(out, 'llama-kv-reference');
    const addon = cacheEntries(join(root, 'build', 'CMakeCache.txt'));
    const wanted = ['-DLLAMA_KV_BENCH=ON'];
    for (const name of MIRRORED) {
        const entry = addon.get(name);
        if (!entry) continue;
        const value = name === 'CMAKE_CXX_FLAGS' ? withoutNodeDefine(entry.value) : entry.value;
        wanted.push(`-D${name}:${entry.type === 'UNINITIALIZED' ? 'STRING' : entry.type}=${value}`);
    }
    if (!addon.has('CMAKE_BUILD_TYPE')) wanted.push('-DCMAKE_BUILD_TYPE=Release');
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
    const missing = !existsSync(llamaBench) || !existsSync(reference);
    const jobs = process.env.LLAMA_KV_BUILD_JOBS || String(availableParallelism());
    if (missing) log('building llama.cpp\'s llama-bench and the reference program in build-bench/ (the first build takes several minutes)');
    const started = Date.now();
    const r = spawnSync('cmake', ['--build', buildDir, '--target', 'llama-bench', 'llama-kv-reference', '--parallel', jobs], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building llama-bench failed:\n${(r.stdout + r.stderr).trim().split('\n').slice(-30).join('\n')}`);
    if (missing) log(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return { llamaBench, reference };
}
