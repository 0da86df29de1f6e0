import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { packageRoot } from '../../native/binding.js';
import { findBatchedBench } from '../bench/batched-bench.js';
import { benchEmbed, EMBED_ONLY } from '../bench/embed-command.js';
import { findLlamaBench } from '../bench/llama-bench.js';
import { formatParallelReport, isParallelReport, parallelFigures, type ParallelBenchReport } from '../bench/parallel-report.js';
import { DEFAULT_PARALLEL_CONFIGS, runParallelBench } from '../bench/parallel-run.js';
import { formatEmbedReport, type EmbedBenchReport } from '../bench/embed-report.js';
import { BENCH_REPORT_VERSION, compareFigures, compareReports, formatComparison, formatReport, type BenchReport, type Comparison, type KvPair } from '../bench/report.js';
import { DEFAULT_BENCH_CONFIGS, runBench } from '../bench/run.js';
import { ensureFixtureModel, FIXTURE_MODELS, type FixtureModelName } from '../../demo/models.js';
import { KV_CACHE_TYPES, type KvCacheType } from '../../options/kv-cache.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { progressBar, type ProgressBar } from '../format/progress.js';

/** The flags of `llama-kv bench`, named as llama-bench names them where it has them. */
export const benchFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'list', help: 'GGUF model file, or a fixture name such as bench-f16 (repeatable; required)' },
    { names: ['-t', '--threads'], key: 'threads', type: 'string', help: 'comma-separated thread counts (default: the number of CPUs)' },
    { names: ['-npl'], key: 'parallel', type: 'string', help: "parallel mode: comma-separated numbers of sequences, e.g. 1,2,4,8 (llama-batched-bench's -npl): N concurrent requests on a context of N sequences against llama-batched-bench" },
    { names: ['--kv'], key: 'kv', type: 'string', help: 'K/V cache pairs, e.g. f16/f16,q8_0/q4_0 (default f16/f16,q8_0/q8_0,q8_0/q4_0; -npl: f16/f16,q8_0/q4_0)' },
    { names: ['-ctk', '--cache-type-k'], key: 'cacheTypeK', type: 'string', help: 'one K cache type (with -ctv: a single pair instead of --kv)' },
    { names: ['-ctv', '--cache-type-v'], key: 'cacheTypeV', type: 'string', help: 'one V cache type' },
    { names: ['-fa', '--flash-attn'], key: 'flashAttention', type: 'string', help: 'on | off | auto, both sides (default on)' },
    { names: ['-p', '--n-prompt', '-npp'], key: 'promptTokens', type: 'int', help: 'prompt tokens of the pp test (default 512; -npl: of each sequence, default 128)' },
    { names: ['-n', '--n-gen', '-ntg'], key: 'generatedTokens', type: 'int', help: 'generated tokens of the tg test (default 128; -npl: generation steps of each sequence, default 128)' },
    { names: ['-b', '--batch-size'], key: 'batchSize', type: 'int', help: "batch size (default 2048, llama-bench's)" },
    { names: ['-ub', '--ubatch-size'], key: 'ubatchSize', type: 'int', help: "micro-batch size (default 512, llama-bench's)" },
    { names: ['-r', '--repetitions'], key: 'reps', type: 'int', help: 'interleaved repetitions per configuration (default 5; -npl: 3)' },
    { names: ['--quick'], key: 'quick', type: 'bool', help: 'a smoke run: -p 64 -n 16 -r 2 -t 1 unless given (-npl: -p 16 -n 8 -r 1 -t 1; --embed: 16 texts of 8-32 tokens, -c 256 -b 256 -r 1 -t 1)' },
    { names: ['--llama-bench'], key: 'llamaBench', type: 'string', help: "llama.cpp's llama-bench to compare with (default: build-bench/'s of a clone, if built)" },
    { names: ['--batched-bench'], key: 'batchedBench', type: 'string', help: "with -npl: llama.cpp's llama-batched-bench to compare with (default: build-bench/'s of a clone, if built)" },
    { names: ['--reference'], key: 'reference', type: 'string', help: "program that times llama.cpp's model load (default: build-bench/'s llama-kv-reference, if built)" },
    { names: ['--ours-only'], key: 'oursOnly', type: 'bool', help: 'measure llama-kv only, no llama.cpp comparison' },
    { names: ['--no-memory'], key: 'noMemory', type: 'bool', help: 'skip the peak RSS comparison' },
    { names: ['--no-load'], key: 'noLoad', type: 'bool', help: 'skip the model load time comparison' },
    { names: ['--out'], key: 'out', type: 'string', help: 'write the report as JSON to this file' },
    { names: ['--compare'], key: 'compare', type: 'string', help: 'previous report (JSON): flag figures more than --threshold % worse; exit 1 if any' },
    { names: ['--current'], key: 'current', type: 'string', help: 'with --compare: compare this saved report instead of running' },
    { names: ['--threshold'], key: 'threshold', type: 'float', help: 'regression threshold in percent (default 5)' },
    { names: ['--json'], key: 'json', type: 'bool', help: 'print the report as one JSON document on stdout instead of the table (what --out writes; --compare\'s comparison goes to stderr)' },
    { names: ['-q', '--quiet'], key: 'quiet', type: 'bool', help: 'nothing on stderr: no progress bar (a terminal only), no notes' },
    { names: ['--embed'], key: 'embed', type: 'bool', help: "embedding mode: texts/s of embedBatch() against llama.cpp's llama-embedding, and of one embed() per text (-m: an embedding model)" },
    { names: ['--llama-embedding'], key: 'llamaEmbedding', type: 'string', help: "with --embed: llama.cpp's llama-embedding to compare with (default: build-bench/'s of a clone, if built)" },
    { names: ['-c', '--ctx-size'], key: 'contextSize', type: 'int', help: 'with --embed: context size, both sides (default 512; -b defaults to 512 there)' },
    { names: ['--texts'], key: 'texts', type: 'int', help: 'with --embed: number of texts, of 64-256 tokens each (default 256)' },
    { names: ['--pooling'], key: 'pooling', type: 'string', help: "with --embed: none | mean | cls | last | model (default model: the model's own)" },
];

/** The usage text of `llama-kv bench`. */
export const benchUsage =
    'usage: llama-kv bench -m model.gguf [-t 1,2] [--kv f16/f16,q8_0/q4_0] [-p 512] [-n 128] [-r 5] [--llama-bench PATH] [--out r.json] [--compare prev.json] [--json]\n' +
    '       llama-kv bench -m model.gguf -npl 1,2,4,8 [-t 2] [--kv f16/f16,q8_0/q4_0] [-p 128] [-n 128] [-r 3] [--batched-bench PATH] [--out r.json]\n' +
    '       llama-kv bench --embed -m embedding-model.gguf [-t 2] [-c 512] [-b 512] [--texts 256] [-r 5] [--llama-embedding PATH] [--out r.json]\n' +
    '  Prompt processing and generation tokens/s of llama-kv against llama.cpp\'s llama-bench on the same model and settings\n' +
    '  (interleaved, medians, ratio ours/llama.cpp), time to first token, event-loop lag, peak RSS and load time.\n' +
    '  With -npl (the parallel mode): N concurrent requests on one context of N sequences against llama-batched-bench\n' +
    '  (S_TG and S, as it defines them), how ours scales with N, the event-loop lag and the engine\'s time outside llama_decode.\n' +
    '  With --embed: texts/s and tokens/s of embedBatch() against llama-embedding on the same texts and settings, and of one embed() per text.\n' +
    '  Exit codes: 0 done; 1 a failure, or --compare found a regression; 2 bad flags.\n' +
    flagHelp(benchFlags);

function list(flag: string, raw: string): string[] {
    const items = raw.split(',').map((s) => s.trim());
    if (items.some((s) => s === '')) throw new UsageError(`${flag} expects a comma-separated list but received "${raw}"`);
    return items;
}

function cacheType(flag: string, raw: string): KvCacheType {
    const type = raw.toLowerCase(); // 'Q8_0' is 'q8_0', as in the API
    if (!(KV_CACHE_TYPES as readonly string[]).includes(type)) throw new UsageError(`${flag} expects one of ${KV_CACHE_TYPES.join(', ')} but received "${raw}"`);
    return type as KvCacheType;
}

function positive(flag: string, n: number | undefined): number | undefined {
    if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new UsageError(`${flag} expects a positive integer but received ${n}`);
    return n;
}

function configsFrom(flags: Record<string, unknown>, fallback: readonly KvPair[]): readonly KvPair[] {
    const k = flags.cacheTypeK as string | undefined;
    const v = flags.cacheTypeV as string | undefined;
    if (k !== undefined || v !== undefined) {
        if (flags.kv !== undefined) throw new UsageError('give either --kv or -ctk/-ctv, not both');
        return [{ cacheTypeK: cacheType('-ctk', k ?? 'f16'), cacheTypeV: cacheType('-ctv', v ?? 'f16') }];
    }
    if (typeof flags.kv !== 'string') return fallback;
    return list('--kv', flags.kv).map((pair) => {
        const [kt, vt, extra] = pair.split('/');
        if (vt === undefined || extra !== undefined) throw new UsageError(`--kv expects K/V pairs such as q8_0/q4_0 but received "${pair}"`);
        return { cacheTypeK: cacheType('--kv', kt), cacheTypeV: cacheType('--kv', vt) };
    });
}

/** A model argument: an existing file, else the name of a built-in fixture (generated into the cache). */
async function modelPath(arg: string): Promise<string> {
    if (existsSync(arg)) return resolve(arg);
    if (Object.prototype.hasOwnProperty.call(FIXTURE_MODELS, arg)) return ensureFixtureModel(arg as FixtureModelName);
    throw new UsageError(`-m: ${arg} is neither a file nor a fixture name (${Object.keys(FIXTURE_MODELS).join(', ')})`);
}

function beside(file: string | null, name: string): string | null {
    if (file === null) return null;
    const candidate = join(dirname(file), name);
    return existsSync(candidate) ? candidate : null;
}

function findReference(): string | null {
    try {
        const file = join(packageRoot(), 'build-bench', 'Release', 'llama-kv-reference');
        return existsSync(file) ? file : null;
    } catch {
        return null;
    }
}

async function readReport(path: string): Promise<BenchReport | ParallelBenchReport> {
    let parsed: unknown;
    try {
        parsed = JSON.parse(await readFile(path, 'utf8'));
    } catch (error) {
        throw new UsageError(`cannot read the report ${path}: ${(error as Error).message}`);
    }
    const r = parsed as Partial<BenchReport>;
    if (r.version !== BENCH_REPORT_VERSION || !Array.isArray(r.rows)) {
        throw new UsageError(`${path} is not a llama-kv bench report (version ${BENCH_REPORT_VERSION})`);
    }
    return r as BenchReport | ParallelBenchReport;
}

/** -npl: the numbers of sequences, positive integers. */
function parallelList(raw: string): number[] {
    return list('-npl', raw).map((n) => {
        const value = Number(n);
        if (!Number.isInteger(value) || value < 1) throw new UsageError(`-npl expects a comma-separated list of positive integers but received "${raw}"`);
        return value;
    });
}

/**
 * `-np`/`--parallel` name a context's number of sequences (one integer) in `llama-kv run` and
 * `memory`; the parallel mode here takes a list, so it has llama-batched-bench's name, -npl.
 */
function refuseContextParallelFlag(argv: readonly string[]): void {
    const given = argv.find((a) => a === '-np' || a === '--parallel' || a.startsWith('--parallel='));
    if (given !== undefined) {
        throw new UsageError(
            `${given.split('=')[0]} is the context flag of run and memory (the sequences of one context); the parallel mode of bench is -npl 1,2,4,8 (llama-batched-bench's name)`,
        );
    }
}

/**
 * `llama-kv bench`: runs the benchmark (or, with --current, only compares two saved
 * reports) and returns the exit code. `notes` go into the report (scripts/bench.mjs adds
 * what it knows about the llama-bench build).
 */
export async function bench(argv: readonly string[], extra: { notes?: string[] } = {}): Promise<number> {
    const bar = progressBar();
    try {
        return await benchWith(argv, extra, bar);
    } finally {
        bar.clear();
    }
}

/** What bench says on stderr: `say`, notes (on any stream); `progress`, the step under way (a bar on a terminal, else nothing). */
interface BenchVoice {
    say: (line: string) => void;
    progress: (line: string) => void;
}

function voice(bar: ProgressBar, quiet: boolean): BenchVoice {
    return {
        say: (line) => {
            if (!quiet) bar.log(`[llama-kv bench] ${line}\n`);
        },
        progress: (line) => {
            if (!quiet) bar.update(null, `[llama-kv bench] ${line}`);
        },
    };
}

/** The report on stdout: the table, or with --json the JSON document. */
function printReport(bar: ProgressBar, json: boolean, report: BenchReport | ParallelBenchReport | EmbedBenchReport, table: string): void {
    bar.clear();
    process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : table);
}

async function benchWith(argv: readonly string[], extra: { notes?: string[] }, bar: ProgressBar): Promise<number> {
    refuseContextParallelFlag(argv);
    const { flags, positional } = parseFlags(argv, benchFlags);
    if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}"`);
    const json = flags.json === true;
    if (flags.embed === true) {
        const models = (flags.model as string[] | undefined) ?? [];
        if (models.length !== 1) throw new UsageError(`--embed takes one -m/--model (an embedding model) but received ${models.length}`);
        const threads = typeof flags.threads === 'string' ? list('-t', flags.threads).map((t) => positive('-t', Number(t))!) : [flags.quick === true ? 1 : availableParallelism()];
        const { say, progress } = voice(bar, flags.quiet === true);
        const report = await benchEmbed(flags, await modelPath(models[0]), threads, positive, { notes: extra.notes, say, progress });
        printReport(bar, json, report, formatEmbedReport(report));
        await writeOut(flags.out, report, say);
        return 0;
    }
    for (const [key, name] of Object.entries(EMBED_ONLY)) {
        if (flags[key] !== undefined) throw new UsageError(`${name} is a flag of the embedding benchmark: give --embed too`);
    }

    const threshold = (flags.threshold as number | undefined) ?? 5;
    if (!(threshold >= 0)) throw new UsageError(`--threshold expects a percentage >= 0 but received ${threshold}`);
    const previous = typeof flags.compare === 'string' ? await readReport(flags.compare) : null;
    if (previous !== null && typeof flags.current !== 'string' && isParallelReport(previous) !== (typeof flags.parallel === 'string')) {
        throw new UsageError(`--compare: ${flags.compare} is a ${isParallelReport(previous) ? 'parallel (-npl)' : 'single-sequence'} report; run ${isParallelReport(previous) ? 'with' : 'without'} -npl to compare with it`);
    }

    let report: BenchReport | ParallelBenchReport;
    if (typeof flags.current === 'string') {
        if (previous === null) throw new UsageError('--current needs --compare');
        report = await readReport(flags.current);
        if (json) printReport(bar, json, report, ''); // the report compared; without --json only the comparison is printed
    } else {
        const models = (flags.model as string[] | undefined) ?? [];
        if (models.length === 0) throw new UsageError('-m/--model is required');
        const quick = flags.quick === true;
        const threads = typeof flags.threads === 'string'
            ? list('-t', flags.threads).map((t) => positive('-t', Number(t))!)
            : quick ? [1] : [availableParallelism()];
        const fa = (flags.flashAttention as string | undefined) ?? 'on';
        if (!['on', 'off', 'auto'].includes(fa)) throw new UsageError(`-fa expects on, off or auto but received "${fa}"`);
        const { say, progress } = voice(bar, flags.quiet === true);
        const oursOnly = flags.oursOnly === true;
        if (typeof flags.parallel === 'string') {
            for (const [key, name] of [['llamaBench', '--llama-bench'], ['reference', '--reference']] as const) {
                if (flags[key] !== undefined) throw new UsageError(`${name} is not used by the parallel mode (-npl): its reference is --batched-bench`);
            }
            const parallel = parallelList(flags.parallel);
            const batchedBench = oursOnly ? null : ((flags.batchedBench as string | undefined) ?? findBatchedBench());
            if (batchedBench !== null && !existsSync(batchedBench)) throw new UsageError(`--batched-bench: ${batchedBench} does not exist`);
            if (batchedBench === null && !oursOnly) say('no llama-batched-bench found (build it with `npm run bench -- --parallel` in a clone, or pass --batched-bench): measuring llama-kv only');
            const paths = [];
            for (const m of models) paths.push(await modelPath(m));
            report = await runParallelBench({
                models: paths,
                threads,
                parallel,
                configs: configsFrom(flags, DEFAULT_PARALLEL_CONFIGS),
                flashAttention: fa as 'on' | 'off' | 'auto',
                promptTokens: positive('-p', flags.promptTokens as number | undefined) ?? (quick ? 16 : 128),
                generatedTokens: positive('-n', flags.generatedTokens as number | undefined) ?? (quick ? 8 : 128),
                batchSize: positive('-b', flags.batchSize as number | undefined),
                ubatchSize: positive('-ub', flags.ubatchSize as number | undefined),
                reps: positive('-r', flags.reps as number | undefined) ?? (quick ? 1 : 3),
                batchedBench,
                notes: extra.notes,
                onProgress: progress,
            });
            printReport(bar, json, report, formatParallelReport(report));
            await writeOut(flags.out, report, say);
            return compareWith(previous, report, flags.compare as string | undefined, threshold, json);
        }
        if (flags.batchedBench !== undefined) throw new UsageError('--batched-bench is the reference of the parallel mode: give -npl too');
        const llamaBench = oursOnly ? null : ((flags.llamaBench as string | undefined) ?? findLlamaBench());
        if (llamaBench !== null && !existsSync(llamaBench)) throw new UsageError(`--llama-bench: ${llamaBench} does not exist`);
        const reference = oursOnly ? null : ((flags.reference as string | undefined) ?? beside(llamaBench, 'llama-kv-reference') ?? findReference());
        if (reference !== null && !existsSync(reference)) throw new UsageError(`--reference: ${reference} does not exist`);
        if (llamaBench === null && !oursOnly) say('no llama-bench found (build it with `npm run bench` in a clone, or pass --llama-bench): measuring llama-kv only');
        const paths = [];
        for (const m of models) paths.push(await modelPath(m));
        report = await runBench({
            models: paths,
            threads,
            configs: configsFrom(flags, DEFAULT_BENCH_CONFIGS),
            flashAttention: fa as 'on' | 'off' | 'auto',
            promptTokens: positive('-p', flags.promptTokens as number | undefined) ?? (quick ? 64 : 512),
            generatedTokens: positive('-n', flags.generatedTokens as number | undefined) ?? (quick ? 16 : 128),
            batchSize: positive('-b', flags.batchSize as number | undefined),
            ubatchSize: positive('-ub', flags.ubatchSize as number | undefined),
            reps: positive('-r', flags.reps as number | undefined) ?? (quick ? 2 : 5),
            llamaBench,
            reference,
            memory: flags.noMemory !== true,
            load: flags.noLoad !== true,
            notes: extra.notes,
            onProgress: progress,
        });
        printReport(bar, json, report, formatReport(report));
        await writeOut(flags.out, report, say);
    }
    return compareWith(previous, report, flags.compare as string | undefined, threshold, json);
}

async function writeOut(out: unknown, report: BenchReport | ParallelBenchReport | EmbedBenchReport, log: (line: string) => void): Promise<void> {
    if (typeof out !== 'string') return;
    await mkdir(dirname(resolve(out)), { recursive: true });
    await writeFile(out, JSON.stringify(report, null, 2) + '\n');
    log(`report written to ${out}`);
}

/** With --compare: prints the comparison (on stderr with --json, whose stdout is the report) and returns 1 on a regression; else 0. */
function compareWith(previous: BenchReport | ParallelBenchReport | null, report: BenchReport | ParallelBenchReport, name: string | undefined, threshold: number, json: boolean): number {
    if (previous === null) return 0;
    let comparison: Comparison;
    if (isParallelReport(previous) && isParallelReport(report)) comparison = compareFigures(parallelFigures(previous), parallelFigures(report), threshold);
    else if (!isParallelReport(previous) && !isParallelReport(report)) comparison = compareReports(previous, report, threshold);
    else throw new UsageError(`--compare: ${name} is a ${isParallelReport(previous) ? 'parallel (-npl)' : 'single-sequence'} report and this one is not`);
    (json ? process.stderr : process.stdout).write(`${json ? '' : '\n'}compared with ${name}:\n${formatComparison(comparison, threshold)}`);
    return comparison.regressions.length > 0 ? 1 : 0;
}
