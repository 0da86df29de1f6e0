#!/usr/bin/env node
// llama-kv against llama.cpp's own llama-bench, on the generated bench model (npm run bench).
//
//   npm run bench [-- FLAGS]
//
// Builds llama-bench and the reference program in build-bench/ when they are missing (our
// CMakeLists.txt with LLAMA_KV_BENCH=ON: the addon's ggml/llama settings; see
// scripts/bench/build-llama-bench.mjs), generates the bench model into the fixture cache,
// then runs `llama-kv bench` (lib/cli/commands/bench.ts) with these defaults, each overridden by
// the flags given:
//   -m bench-f16   -t 1,2   --kv f16/f16,q8_0/q8_0,q8_0/q4_0   -fa on   -p 512 -n 128 -r 5
//   --out bench-results/bench-<date>.json
// `-m bench-q8_0` is the bench model quantized to Q8_0 (made once, into the cache).
// --parallel [LIST] (LIST default 1,2,4,8) is the parallel mode, `llama-kv bench -npl LIST`:
// ours with N concurrent requests on one context of N sequences against llama.cpp's
// llama-batched-bench (built into build-bench/ instead of llama-bench), defaults
//   -m bench-f16   -t 2   --kv f16/f16,q8_0/q4_0   -fa on   -p 128 -n 128 -r 3
//   --out bench-results/bench-parallel-<date>.json
// (`llama-kv bench` itself names it -npl, as llama-batched-bench does: -np/--parallel is the
// context flag of `llama-kv run` and `memory`, one number of sequences.)
// --embed is the embedding mode, `llama-kv bench --embed`: embedBatch() of 256 texts of 64-256
// tokens against llama.cpp's llama-embedding (examples/embedding, built into build-bench/)
// on the same texts and settings, and one embed() per text, defaults
//   -m bench-embed-bert-f16   -c 512 -b 512 -r 5   --out bench-results/bench-embed-<date>.json
// --quick: -p 64 -n 16 -r 2 -t 1 (the test suite's smoke run). --compare prev.json exits 1
// when a figure got more than 5% (--threshold) worse. --addon PATH runs our side from
// another built addon (a .node file, or a folder holding one with its ggml libraries:
// prebuilds/linux-x64, build-prebuild/cpu/Release) instead of build/'s, e.g. to compare a
// build from source with the prebuilt package. The full flag list: --help.
// Needs the addon (npm install) and dist/ (npm run build:ts; `npm run bench` does it).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildBatchedBench, buildLlamaBench, buildLlamaEmbedding, builtCpuVariant, compareFlags, compareLibraries } from './bench/build-llama-bench.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (line) => process.stderr.write(`[llama-kv bench] ${line}\n`);
const dist = join(root, 'dist');
const has = (argv, ...names) => argv.some((a) => names.includes(a) || names.some((n) => a.startsWith(`${n}=`)));

/** --addon PATH: the .node file itself, or the one .node file of a folder. */
function addonFile(path) {
    const full = resolve(path);
    if (!existsSync(full)) throw new Error(`--addon: ${path} does not exist`);
    if (!statSync(full).isDirectory()) return full;
    const nodes = readdirSync(full).filter((f) => f.endsWith('.node'));
    if (nodes.length !== 1) throw new Error(`--addon: ${path} holds ${nodes.length} .node files; name one`);
    return join(full, nodes[0]);
}

/**
 * Takes `--parallel [LIST]` (or --parallel=LIST) out of argv: [LIST, '1,2,4,8' when bare, or
 * null when absent; the other arguments]. A bare --parallel is followed by a flag or nothing.
 */
function takeParallel(argv) {
    const rest = [];
    let list = null;
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--parallel') list = argv[i + 1] !== undefined && !argv[i + 1].startsWith('-') ? argv[++i] : '1,2,4,8';
        else if (argv[i].startsWith('--parallel=')) list = argv[i].slice(11);
        else rest.push(argv[i]);
    }
    return [list, rest];
}

/** Takes `--addon PATH` (or --addon=PATH) out of argv: [the path or null, the other arguments]. */
function takeAddon(argv) {
    const rest = [];
    let addon = null;
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--addon') addon = argv[++i] ?? '';
        else if (argv[i].startsWith('--addon=')) addon = argv[i].slice(8);
        else rest.push(argv[i]);
    }
    return [addon, rest];
}

async function main(argvIn) {
    const [addonArg, withParallel] = takeAddon(argvIn);
    const [parallelList, argvRest] = takeParallel(withParallel);
    const argv = parallelList === null ? argvRest : ['-npl', parallelList, ...argvRest];
    const parallel = has(argv, '-npl');
    const embed = has(argv, '--embed');
    const addon = addonArg === null ? null : addonFile(addonArg);
    // Read by lib/native/binding.ts when the addon is first loaded (below, not yet), and inherited
    // by the child processes of the peak-RSS measurement.
    if (addon !== null) process.env.LLAMA_KV_ADDON_PATH = addon;
    if (!existsSync(join(dist, 'cli', 'commands', 'bench.js'))) {
        log('dist/ is not built: run `npm run build:ts` first (npm run bench does)');
        return 1;
    }
    const { bench, benchUsage } = await import(pathToFileURL(join(dist, 'cli', 'commands', 'bench.js')).href);
    const { UsageError } = await import(pathToFileURL(join(dist, 'cli', 'flags', 'args.js')).href);
    const { LlamaConfigError, LlamaError } = await import(pathToFileURL(join(dist, 'index.js')).href);
    if (has(argv, '-h', '--help')) {
        process.stdout.write(`npm run bench -- [flags]: llama-kv bench with llama-bench built in build-bench/ and these defaults:\n` +
            '  -m bench-f16 -t 1,2 --out bench-results/bench-<date>.json (-m bench-q8_0: the bench model in Q8_0)\n' +
            '  --parallel [1,2,4,8]: the parallel mode (llama-kv bench -npl LIST) against llama-batched-bench built in build-bench/,\n' +
            '    with -t 2 --out bench-results/bench-parallel-<date>.json\n' +
            '  --embed: the embedding mode (llama-kv bench --embed) against llama-embedding built in build-bench/,\n' +
            '    with -m bench-embed-bert-f16 --out bench-results/bench-embed-<date>.json\n' +
            '  --addon PATH: our side from another built addon (a .node file or its folder, e.g. prebuilds/linux-x64) instead of build/\n\n' + benchUsage + '\n');
        return 0;
    }
    const args = [...argv];
    const notes = [];
    const comparingOnly = has(argv, '--current');
    if (!comparingOnly) {
        if (addon !== null) {
            notes.push(`ours: the addon ${addon} (--addon), not build/'s`);
        } else {
            const variant = builtCpuVariant(root);
            if (variant !== null) notes.push(`ours: build/ compiles its one CPU backend (libggml-cpu) as ggml's ${variant} CPU variant`);
        }
        const building = embed
            ? !has(argv, '--ours-only', '--llama-embedding')
            : parallel ? !has(argv, '--ours-only', '--batched-bench') : !has(argv, '--ours-only', '--llama-bench');
        if (building) {
            if (embed) {
                args.push('--llama-embedding', buildLlamaEmbedding(root, log));
            } else if (parallel) {
                args.push('--batched-bench', buildBatchedBench(root, log));
            } else {
                const built = buildLlamaBench(root, log);
                args.push('--llama-bench', built.llamaBench);
                if (!has(argv, '--reference')) args.push('--reference', built.reference);
            }
            // Our side from build-bench/'s own addon (`--addon build-bench/Release`, after
            // `cmake --build build-bench --target llama_kv`): the reference's ggml libraries by
            // construction, so build/ says nothing about it.
            const ownAddon = addon !== null && dirname(addon) === join(root, 'build-bench', 'Release');
            const flags = ownAddon ? null : compareFlags(root);
            const note = ownAddon
                ? 'ours: build-bench/\'s own addon, which loads the same ggml libraries as the llama.cpp programs beside it (build/ not compared)'
                : flags === null
                ? 'the compile flags of build-bench/ were not compared with the addon\'s (build/ has no build.ninja)'
                : flags.differing.length > 0
                  ? `WARNING: ${flags.differing.length} of ${flags.compared} objects of build-bench/ are compiled with other flags than in the addon's build/, e.g. ${flags.differing[0]}`
                  : `build-bench/ compiles with the same defines, include directories and flags as the addon's build/ (${flags.compared} objects compared: ${flags.compared - flags.addon} ggml/llama, ${flags.addon} of the addon)`;
            log(note);
            notes.push(note);
            const libs = ownAddon ? null : compareLibraries(root);
            if (libs !== null) {
                const libNote = libs.differing.length === 0
                    ? `the ggml libraries of build/ and build-bench/ are byte-identical (${libs.identical.join(', ')})`
                    : `the ggml libraries of build/ and build-bench/ differ: ${libs.differing.join(', ')} (build/ built from other sources or at another time?)`;
                log(libNote);
                notes.push(libNote);
            }
        }
        if (!has(argv, '-m', '--model')) args.push('-m', embed ? 'bench-embed-bert-f16' : 'bench-f16');
        if (!has(argv, '-t', '--threads') && !has(argv, '--quick') && !embed) args.push('-t', parallel ? '2' : '1,2');
        const mode = embed ? 'embed-' : parallel ? 'parallel-' : '';
        if (!has(argv, '--out')) args.push('--out', join(root, 'bench-results', `bench-${mode}${new Date().toISOString().replace(/[:.]/g, '-')}.json`));
        // bench-q8_0: the bench model quantized once into the fixture cache.
        for (let i = 0; i < args.length; i++) {
            if ((args[i] === '-m' || args[i] === '--model') && args[i + 1] === 'bench-q8_0' && !existsSync('bench-q8_0')) {
                args[i + 1] = await benchQ8(dist);
            }
        }
    }
    try {
        return await bench(args, { notes });
    } catch (error) {
        if (error instanceof UsageError || error instanceof LlamaConfigError) {
            process.stderr.write(`npm run bench: ${error.message}\n${benchUsage}\n`);
            return 2;
        }
        if (error instanceof LlamaError) {
            process.stderr.write(`npm run bench: ${error.message} [${error.code}]\n`);
            return 1;
        }
        throw error;
    }
}

async function benchQ8(distDir) {
    const { ensureFixtureModel, quantizeModel } = await import(pathToFileURL(join(distDir, 'index.js')).href);
    const f16 = await ensureFixtureModel('bench-f16');
    const out = f16.replace(/bench-f16/, 'bench-q8_0');
    if (!existsSync(out)) {
        log(`quantizing the bench model to Q8_0: ${out}`);
        await quantizeModel({ input: f16, output: out, type: 'Q8_0' });
    }
    return out;
}

process.exitCode = await main(process.argv.slice(2));
