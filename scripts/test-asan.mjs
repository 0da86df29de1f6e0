#!/usr/bin/env node
// Builds the addon and llama.cpp/ggml with AddressSanitizer + UndefinedBehaviorSanitizer
// (clang) in build-asan/, then runs the model tests against that build. Not part of
// `npm test`: run it with `npm run test:asan` (which builds dist/ first, as the CLI and
// child-process tests load dist/).
//
//   node scripts/test-asan.mjs [--build-only] [--keep-going] [--CDNAME=VALUE ...] [-- VITEST_FILTER ...]
//
// Fails when a test fails or when a sanitizer reports anything in any process of the
// run (the vitest workers, their children, worker threads): every report is written to
// build-asan/sanitizer-reports/ (ASAN_OPTIONS/UBSAN_OPTIONS log_path) and printed at the
// end. --keep-going lets a process go on after a UBSan report (to collect all of them in
// one run; the run still fails). Arguments after `--` replace the list of test files (and
// skip the stress run). LLAMA_KV_ASAN_CLANG names the clang to use (default: the first of
// clang, clang-20 ... clang-14 on PATH); clang++ is the one beside it. Extra --CD options
// go to CMake as in scripts/build.mjs (e.g. --CDLLAMA_KV_NATIVE=OFF).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from './build.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const buildDir = join(root, 'build-asan');
const reportDir = join(buildDir, 'sanitizer-reports');
const suppressions = join(root, 'test', 'support', 'asan');

function log(message) {
    process.stderr.write(`[llama-kv test:asan] ${message}\n`);
}

class SetupError extends Error {}

// --- the compiler and its runtime ---------------------------------------------------
// node is not instrumented, so the addon cannot carry a static ASan runtime (it must be
// initialised before the first malloc of the process): it links the shared runtime
// (-shared-libasan) and node runs with that runtime in LD_PRELOAD.
const INSTALL_HINT = 'install clang and its sanitizer runtime (Debian/Ubuntu: apt-get install clang libclang-rt-dev; ' +
    'on Debian 12: apt-get install clang-14 libclang-rt-14-dev), or name one with LLAMA_KV_ASAN_CLANG=/path/to/clang';

function run(file, args) {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

// A program on PATH (or a path), as its absolute path; null when there is none.
function which(name) {
    if (name.includes('/')) return existsSync(name) ? resolve(name) : null;
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
        if (dir && existsSync(join(dir, name))) return join(dir, name);
    }
    return null;
}

function findClang() {
    const named = process.env.LLAMA_KV_ASAN_CLANG;
    const candidates = named ? [named] : ['clang', ...Array.from({ length: 7 }, (_, i) => `clang-${20 - i}`)];
    for (const name of candidates) {
        const cc = which(name);
        if (!cc) continue;
        const version = run(cc, ['--version']).split('\n')[0];
        const cxx = which(join(dirname(cc), basename(cc).replace(/^clang/, 'clang++')));
        if (!cxx) throw new SetupError(`${cc} was found but not the clang++ beside it: ${INSTALL_HINT}`);
        const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch] ?? process.arch;
        const runtime = run(cc, [`-print-file-name=libclang_rt.asan-${arch}.so`]);
        if (!runtime.startsWith('/') || !existsSync(runtime)) {
            throw new SetupError(`${cc} (${version}) has no shared AddressSanitizer runtime (libclang_rt.asan-${arch}.so): ${INSTALL_HINT}`);
        }
        const symbolizer = run(cc, ['-print-prog-name=llvm-symbolizer']);
        return { cc, cxx, version, runtime, symbolizer: symbolizer.startsWith('/') && existsSync(symbolizer) ? symbolizer : null };
    }
    throw new SetupError(`no clang found${named ? ` at LLAMA_KV_ASAN_CLANG=${named}` : ' (clang, clang-20 ... clang-14)'}: ${INSTALL_HINT}`);
}

// --- the flags ----------------------------------------------------------------------
// Every target (ggml-base, ggml, the CPU backend module, libllama and the addon) is built
// with the same flags through CMAKE_<LANG>_FLAGS_RELEASE (below). ggml's GGML_SANITIZE_*
// and llama.cpp's LLAMA_SANITIZE_* options add the same -fsanitize= flags, but only to
// their own targets (ggml's, and llama.cpp's src/), not to the addon, and without
// -g, -fno-optimize-sibling-calls or the shared runtime; with the flags set for every
// target they would add nothing, so they stay off.
//
// UBSan checks: all of -fsanitize=undefined, vptr and function included. Both were tried
// off and on: vptr (dynamic types of polymorphic objects; node-addon-api's ObjectWrap,
// llama.cpp's classes) reports nothing here although our classes are hidden; function
// (indirect calls against the callee's type, C++ only in clang 14) reports one deliberate
// cast in ggml's type-traits tables, suppressed in test/support/asan/ubsan.supp with the two
// other known benign reports inside llama.cpp.
// The UBSan checks are compiled recoverable (clang's default) and UBSAN_OPTIONS has
// halt_on_error=1, so the first report still ends the process, as ASan's does: unlike
// -fno-sanitize-recover=all this lets test/support/asan/ubsan.supp suppress a known benign report
// (runtime suppressions apply to recoverable checks only), and --keep-going collect every
// report of a run at once.
const SANITIZE = '-fsanitize=address,undefined';
const COMPILE_FLAGS = `${SANITIZE} -fno-omit-frame-pointer -fno-optimize-sibling-calls -g`;
const LINK_FLAGS = `${SANITIZE} -shared-libasan`;

// The flags go in CMAKE_<LANG>_FLAGS_RELEASE (with CMake's own -O3 -DNDEBUG), not in
// CMAKE_<LANG>_FLAGS: cmake-js passes its own -DCMAKE_CXX_FLAGS=-DBUILDING_NODE_EXTENSION
// after ours, which would silently leave every C++ file uninstrumented.
function cmakeOptions(clang) {
    return [
        `--CDCMAKE_C_COMPILER=${clang.cc}`,
        `--CDCMAKE_CXX_COMPILER=${clang.cxx}`,
        `--CDCMAKE_C_FLAGS_RELEASE=-O3 -DNDEBUG ${COMPILE_FLAGS}`,
        `--CDCMAKE_CXX_FLAGS_RELEASE=-O3 -DNDEBUG ${COMPILE_FLAGS}`,
        // The addon and ggml-base/ggml are SHARED libraries, the backends (GGML_BACKEND_DL)
        // MODULE ones; no executable is built here (the reference program uses build/).
        `--CDCMAKE_SHARED_LINKER_FLAGS=${LINK_FLAGS}`,
        `--CDCMAKE_MODULE_LINKER_FLAGS=${LINK_FLAGS}`,
        `--CDCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}`,
        '--CDCMAKE_EXPORT_COMPILE_COMMANDS=ON', // checked by checkBuild()
    ];
}

function buildAsan(clang, extra) {
    const options = [...cmakeOptions(clang), ...extra];
    // cmake-js configures only when there is no CMakeCache.txt: start afresh when the
    // compiler or the flags changed since the last configure.
    const stamp = join(buildDir, 'llama-kv-asan-options.json');
    const wanted = JSON.stringify(options);
    if (existsSync(stamp) && readFileSync(stamp, 'utf8') !== wanted) {
        log('compiler or flags changed: reconfiguring build-asan/');
        rmSync(join(buildDir, 'CMakeCache.txt'), { force: true });
        rmSync(join(buildDir, 'CMakeFiles'), { recursive: true, force: true });
    }
    const started = Date.now();
    const addon = build(['--build-dir', buildDir, ...options]);
    writeFileSync(stamp, wanted);
    log(`build finished in ${((Date.now() - started) / 1000).toFixed(0)} s: ${addon}`);
    return addon;
}

// The addon finds ggml's CPU backend beside itself (native/backends.cpp): the ASan folder
// must hold its own libggml-cpu*, instrumented, or the tests would run the normal one.
function checkBuild(addon, clang) {
    // Every object of every target was compiled with the sanitizers.
    const commands = JSON.parse(readFileSync(join(buildDir, 'compile_commands.json'), 'utf8'));
    const bare = commands.filter((c) => !(c.command ?? c.arguments?.join(' ') ?? '').includes('-fsanitize=address,undefined'));
    if (commands.length === 0 || bare.length > 0) {
        throw new Error(`${bare.length} of ${commands.length} files were compiled without the sanitizers, e.g. ${bare[0]?.file}`);
    }
    log(`${commands.length} files compiled with the sanitizers`);
    const dir = dirname(addon);
    const cpu = readdirSync(dir).filter((f) => /^libggml-cpu.*\.so$/.test(f));
    if (cpu.length === 0) throw new Error(`${dir} holds no libggml-cpu*.so`);
    for (const file of [addon, ...cpu.map((f) => join(dir, f))]) {
        const needed = run('readelf', ['-d', file]);
        if (!needed.includes(basename(clang.runtime))) {
            throw new Error(`${file} is not linked against ${basename(clang.runtime)}: is it a sanitizer build?`);
        }
    }
    // In the process itself: the CPU backend that loads is the one in build-asan/.
    const probe = spawnSync(process.execPath, ['-e', `
        const addon = require(${JSON.stringify(addon)});
        addon.loadBackends([]);
        const info = addon.backendInfo(false);
        console.log(JSON.stringify(info.registries.map((r) => r.path)));`], { encoding: 'utf8', env: sanitizerEnv(clang, addon) });
    if (probe.status !== 0) {
        const logged = reports().map((f) => readFileSync(f, 'utf8')).join('\n');
        throw new Error(`the ASan addon does not load (exit ${probe.status ?? probe.signal}): ${probe.stderr.trim()}\n${logged}`);
    }
    const paths = JSON.parse(probe.stdout.trim().split('\n').pop());
    const cpuPath = paths.find((p) => /libggml-cpu/.test(p));
    if (!cpuPath || dirname(cpuPath) !== dir) throw new Error(`the ASan addon loaded its CPU backend from ${cpuPath ?? 'nowhere'}, not ${dir}`);
    log(`CPU backend: ${cpuPath}`);
}

// --- the run ------------------------------------------------------------------------
function sanitizerEnv(clang, addon, keepGoing = false) {
    const preload = [clang.runtime, process.env.LD_PRELOAD].filter(Boolean).join(':');
    const supp = (name) => (existsSync(join(suppressions, name)) ? `:suppressions=${join(suppressions, name)}` : '');
    return {
        ...process.env,
        LD_PRELOAD: preload,
        // detect_leaks=0: with the runtime in LD_PRELOAD, LeakSanitizer checks every process of
        // the run at its exit, the shells, gcc and python that tests and setup start included,
        // and they leak by design; in node, what JS objects hold at exit (napi externals,
        // wraps, promises of work in flight) is referenced only from V8's heap, which is not
        // malloc memory and is not scanned, so it reads as leaked too. Tried: dozens of
        // reports per run, none of them a leak of ours. (vitest's test workers are stopped
        // with SIGTERM and would not be checked anyway.) Leaks are the dispose-leak test's job.
        // abort_on_error=0: a report exits with status 1 (tests that expect a crash of a child
        // look for a signal); halt_on_error=1: the first report ends the process.
        // allocator_may_return_null=1: a malloc that cannot be satisfied returns null as glibc's
        // does (llama.cpp turns that into an error), not an ASan "out of memory" exit.
        // log_path: each process writes its reports to its own file, so that a report in a child
        // whose stderr a test swallows still fails the run.
        ASAN_OPTIONS: [
            'detect_leaks=0', 'halt_on_error=1', 'abort_on_error=0', 'allocator_may_return_null=1', 'print_stacktrace=1',
            'check_initialization_order=1', 'strict_init_order=1', 'detect_stack_use_after_return=0',
            `log_path=${join(reportDir, 'asan')}`,
        ].join(':') + supp('asan.supp'),
        UBSAN_OPTIONS: [`halt_on_error=${keepGoing ? 0 : 1}`, 'print_stacktrace=1', `log_path=${join(reportDir, 'ubsan')}`].join(':') + supp('ubsan.supp'),
        ...(clang.symbolizer ? { ASAN_SYMBOLIZER_PATH: clang.symbolizer } : {}),
        LLAMA_KV_ADDON_PATH: addon,
    };
}

// Model test files left out, each with the reason (printed). Everything else in
// test/model runs.
const EXCLUDED_FILES = {
    'dispose-leak.test.ts':
        'asserts RSS within 10% after each loop, which ASan\'s shadow memory and quarantine (256 MiB of freed memory held back) ' +
        'make meaningless, and runs ~5,000 iterations; its child (test/support/stress/dispose-and-leak.mjs) runs after the tests instead, ' +
        'fewer iterations, no RSS bounds',
    'memory-exhaustion.test.ts':
        'lowers RLIMIT_AS and expects failed allocations to come back as errors: under ASan a failing C++ `new` reports ' +
        '"out of memory" and exits instead of throwing std::bad_alloc, and ASan\'s own allocator fails under the limit ' +
        '("internal allocator is out of memory"); passes or dies depending on which allocation hits the limit first',
};
// Single tests left out (by full name), each with the reason (printed).
const EXCLUDED_TESTS = {
    'isolation process.exit() with live models and contexts, during a generation, exits 0 at once':
        'a timing bound (exit within 20 s, child killed at 30 s): process.exit() waits in libuv\'s threadpool cleanup for ' +
        'the two in-flight generations to run to their end, which instrumented takes longer than that',
};

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function modelTests() {
    return readdirSync(join(root, 'test', 'model')).filter((f) => f.endsWith('.test.ts')).sort();
}

function vitest(env, filters) {
    const bin = join(dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
    // Longer per-test and hook timeouts: instrumented llama.cpp runs several times slower.
    const args = [bin, 'run', '--testTimeout=600000', '--hookTimeout=600000', ...filters];
    log(`vitest ${args.slice(1).join(' ')}`);
    return spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env }).status;
}

// The dispose-during-work stress of dispose-leak.test.ts, without its RSS bounds: a
// use-after-free there is what ASan is for.
async function stress(env) {
    const { ensureFixtureModel } = await import(pathToFileURL(join(root, 'dist', 'demo', 'models.js')).href);
    const { ensureFixtureLora } = await import(pathToFileURL(join(root, 'dist', 'demo', 'loras.js')).href);
    const dir = join(root, '.cache', 'models');
    const model = await ensureFixtureModel('micro-f16', { dir });
    const lora = await ensureFixtureLora('micro-lora-r4-attn', { dir });
    const work = join(buildDir, 'stress-work');
    mkdirSync(work, { recursive: true });
    let failed = false;
    for (const only of ['load', 'evaluate', 'generate', 'quantize', 'lora', 'cycles']) {
        const config = { model, lora, work, iterations: 100, cycles: 300, modelCycles: 30, only };
        const started = Date.now();
        const r = spawnSync(process.execPath, ['--expose-gc', join(root, 'test', 'support', 'stress', 'dispose-and-leak.mjs')], {
            encoding: 'utf8',
            env: { ...env, LLAMA_KV_DIST: pathToFileURL(join(root, 'dist', 'index.js')).href, LLAMA_KV_STRESS: JSON.stringify(config) },
            timeout: 900_000,
            maxBuffer: 16 * 2 ** 20,
        });
        const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
        let outcomes = null;
        try {
            outcomes = JSON.parse(last).outcomes;
        } catch {
            // reported below
        }
        const ok = r.status === 0 && r.signal === null && outcomes !== null;
        log(`stress ${only}: ${ok ? 'ok' : `FAILED (${r.signal ?? `exit ${r.status}`})`} in ${((Date.now() - started) / 1000).toFixed(0)} s ${outcomes ? JSON.stringify(outcomes) : ''}`);
        if (!ok) {
            failed = true;
            process.stderr.write(`${(r.stderr ?? '').slice(-4000)}\n`);
        }
    }
    rmSync(work, { recursive: true, force: true });
    return !failed;
}

function reports() {
    if (!existsSync(reportDir)) return [];
    return readdirSync(reportDir).map((f) => join(reportDir, f));
}

async function main() {
    const argv = process.argv.slice(2);
    const dash = argv.indexOf('--');
    const own = dash < 0 ? argv : argv.slice(0, dash);
    const filters = dash < 0 ? [] : argv.slice(dash + 1);
    if (process.platform !== 'linux') throw new SetupError('test:asan runs on Linux only (LD_PRELOAD of the shared ASan runtime)');
    const clang = findClang();
    log(`compiler: ${clang.cc} (${clang.version}); runtime: ${clang.runtime}`);
    log(`flags: ${COMPILE_FLAGS}; link: ${LINK_FLAGS}`);
    const addon = buildAsan(clang, own.filter((a) => a.startsWith('--CD')));
    rmSync(reportDir, { recursive: true, force: true });
    mkdirSync(reportDir, { recursive: true });
    checkBuild(addon, clang);
    if (own.includes('--build-only')) return 0;
    if (!existsSync(join(root, 'dist', 'index.js'))) throw new SetupError('dist/ is missing: run `npm run build:ts` first (npm run test:asan does)');

    const env = sanitizerEnv(clang, addon, own.includes('--keep-going'));
    const files = modelTests().filter((f) => !(f in EXCLUDED_FILES));
    for (const [file, why] of Object.entries(EXCLUDED_FILES)) log(`excluded test/model/${file}: ${why}`);
    for (const [name, why] of Object.entries(EXCLUDED_TESTS)) log(`excluded test "${name}": ${why}`);
    // vitest has no option to leave a test out by name: match every name but those.
    const namePattern = `^(?!(${Object.keys(EXCLUDED_TESTS).map(escapeRegExp).join('|')})$)`;
    const started = Date.now();
    const testsStatus = vitest(env, [`--testNamePattern=${namePattern}`, ...(filters.length > 0 ? filters : files.map((f) => `test/model/${f}`))]);
    log(`tests finished in ${((Date.now() - started) / 1000).toFixed(0)} s (vitest exit ${testsStatus})`);
    let stressOk = true;
    if (filters.length === 0) {
        const t = Date.now();
        stressOk = await stress(env);
        log(`stress finished in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    }

    const found = reports();
    for (const file of found) {
        process.stderr.write(`\n===== ${file} =====\n${readFileSync(file, 'utf8')}\n`);
    }
    if (found.length > 0) log(`FAILED: ${found.length} sanitizer report(s), above (files in ${reportDir})`);
    if (testsStatus !== 0) log('FAILED: tests failed under the sanitizers');
    if (!stressOk) log('FAILED: the dispose-during-work stress failed under the sanitizers');
    const clean = found.length === 0 && testsStatus === 0 && stressOk;
    if (clean) log('clean: no sanitizer report, every test passed');
    return clean ? 0 : 1;
}

main().then(
    (code) => process.exit(code),
    (error) => {
        log(error instanceof SetupError ? error.message : `failed: ${error.stack ?? error.message}`);
        process.exit(error instanceof SetupError ? 2 : 1);
    },
);
