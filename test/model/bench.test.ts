// The benchmark's quick mode end to end: builds llama.cpp's llama-bench in build-bench/
// when it is not there yet (minutes on 2 cores; reused afterwards), runs it and llama-kv
// on a tiny fixture model, and checks the table, the JSON report and --compare. The same
// for the parallel mode (npm run bench -- --parallel) against llama-batched-bench, and the
// embedding mode (--embed) against llama-embedding. No timing targets: only that every
// figure is there and sane.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ParallelBenchReport } from '../../lib/cli/bench/parallel-report.js';
import type { BenchReport } from '../../lib/cli/bench/report.js';
import type { EmbedBenchReport } from '../../lib/cli/bench/embed-report.js';
import { benchTexts } from '../../lib/cli/bench/embed-texts.js';
import { ensureFixtureModel } from '../../lib/demo/models.js';
import { getBackends, LlamaModel } from '../../lib/index.js';

const root = join(import.meta.dirname, '..', '..');
const cacheDir = join(root, '.cache', 'models');
const dir = mkdtempSync(join(tmpdir(), 'llama-kv-bench-'));
const reportFile = join(dir, 'quick.json');
let model = '';

function node(args: string[], timeout: number) {
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout, env: { ...process.env, LLAMA_KV_CACHE_DIR: cacheDir } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const bench = (...args: string[]) => node([join(root, 'scripts', 'bench.mjs'), ...args], 60 * 60_000);
const cli = (...args: string[]) => node([join(root, 'dist', 'cli', 'index.js'), 'bench', ...args], 10 * 60_000);

beforeAll(async () => {
    model = await ensureFixtureModel('tiny-f16', { dir: cacheDir });
});

describe('npm run bench (quick mode)', () => {
    it('builds llama-bench, runs both sides interleaved and prints the table and the JSON report', () => {
        const r = bench('--quick', '-m', model, '--out', reportFile);
        expect(r.code, r.stderr).toBe(0);
        // The table: one row per K/V pair, both sides and the ratio.
        const header = ['model', 'threads', 'K/V', 'pp64 ours t/s', 'pp64 llama.cpp t/s', 'ratio', 'tg16 ours t/s', 'tg16 llama.cpp t/s', 'ratio'];
        expect(r.stdout).toMatch(new RegExp(`^\\|${header.map((h) => ` *${h.replace(/[./]/g, '\\$&')} *`).join('\\|')}\\|$`, 'm'));
        for (const kv of ['f16/f16', 'q8_0/q8_0', 'q8_0/q4_0']) {
            expect(r.stdout).toMatch(new RegExp(`\\| ${kv.replace('/', '\\/')} +\\| +[\\d.]+ \\| +[\\d.]+ \\| +[\\d.]+( \\*)? \\| +[\\d.]+ \\| +[\\d.]+ \\| +[\\d.]+( \\*)? \\|`));
        }
        expect(r.stdout).toMatch(/TTFT 64-token prompt ms/);
        expect(r.stdout).toMatch(/peak RSS .*ours [\d.]+ MiB, llama-bench [\d.]+ MiB, ratio [\d.]+/);
        expect(r.stdout).toMatch(/model load, mmap .*ours [\d.]+ ms, llama\.cpp [\d.]+ ms, ratio [\d.]+/);

        const report = JSON.parse(readFileSync(reportFile, 'utf8')) as BenchReport;
        expect(report.version).toBe(1);
        expect(report.settings).toMatchObject({ promptTokens: 64, generatedTokens: 16, reps: 2, threads: [1], flashAttention: 'on', batchSize: 2048, ubatchSize: 512 });
        expect(report.rows.map((row) => `${row.cacheTypeK}/${row.cacheTypeV}`)).toEqual(['f16/f16', 'q8_0/q8_0', 'q8_0/q4_0']);
        for (const row of report.rows) {
            expect(row.flashAttention).toBe('on');
            expect(row.threads).toBe(1);
            // llama-bench's pp context: n_ctx = the prompt, which llama.cpp pads to 256 and to
            // which it lowers n_batch (and n_ubatch to n_batch).
            expect(row.context).toEqual({ contextSize: 256, batchSize: 64, ubatchSize: 64 });
            for (const side of [row.pp, row.tg]) {
                expect(side.ours.samples).toHaveLength(2);
                expect(side.llamaCpp?.samples).toHaveLength(2);
                for (const x of [...side.ours.samples, ...side.llamaCpp!.samples]) expect(x).toBeGreaterThan(0);
                expect(Number.isFinite(side.ratio)).toBe(true);
                expect(side.ratio).toBeGreaterThan(0);
                expect(side.ratio).toBeCloseTo(side.ours.median / side.llamaCpp!.median, 10);
            }
            // The native timings lie inside the wall-clock span around generate().
            row.tgNative.samples.forEach((x, i) => expect(x).toBeGreaterThanOrEqual(row.tg.ours.samples[i]));
            expect(row.ttftMs.samples).toHaveLength(2);
            expect(row.ttftMs.median).toBeGreaterThan(0);
            const lag = row.eventLoopLagMs;
            expect(lag.count).toBeGreaterThan(0);
            expect(lag.p50).toBeGreaterThanOrEqual(0);
            expect(lag.p50).toBeLessThanOrEqual(lag.p99);
            expect(lag.p99).toBeLessThanOrEqual(lag.max);
            if (row.contention !== null) expect(row.contention.otherPercent).toBeGreaterThanOrEqual(0);
        }
        expect(r.stdout).toMatch(/CPU taken by others %/);
        const [mem] = report.memory;
        expect(mem.ours.median).toBeGreaterThan(mem.nodeBaseline!);
        expect(mem.llamaBench!.median).toBeGreaterThan(0);
        expect(mem.ratio).toBeGreaterThan(0);
        const [load] = report.load;
        expect(load.ours.median).toBeGreaterThan(0);
        expect(load.llamaCpp!.median).toBeGreaterThan(0);
        expect(load.ratio).toBeGreaterThan(0);
        // Each side's CPU backend module, from its own folder.
        expect(report.llamaCpp.cpuBackend).toMatch(/build-bench\/Release\/libggml-cpu[^/]*\.so$/);
        expect(report.ours.cpuBackend).toMatch(/libggml-cpu[^/]*\.so$/);
        // The CPU a figure comes from: its identity, and the features and variant of our CPU backend.
        expect(report.machine.cpu.length).toBeGreaterThan(0);
        if (process.platform === 'linux') expect(report.machine.cpuId).not.toBeNull();
        for (const feature of report.ours.cpuFeatures) expect(feature).toMatch(/^[A-Z0-9_]+(=\S+)?$/);
        expect(report.ours.cpuVariant).not.toBeNull();
        expect(r.stdout).toContain(
            `(variant ${report.ours.cpuVariant}; features ${report.ours.cpuFeatures.join(' ') || '-'}; extra buffer types ${report.ours.extraBufferTypes?.join(', ') || '-'})`,
        );
        expect(report.ours.extraBufferTypes).toEqual(getBackends().find((b) => b.kind === 'cpu')?.devices[0]?.extraBufferTypes);
        // build-bench/ is configured as build/ is, node's headers (cmake-js's CMAKE_JS_INC) included:
        // the addon's compile commands there are build/'s.
        expect(report.notes).toContainEqual(
            expect.stringMatching(/same defines, include directories and flags as the addon's build\/ \(\d+ objects compared: [1-9]\d* ggml\/llama, [1-9]\d* of the addon\)/),
        );
        expect(report.llamaCpp.llamaBench).toBe(join(root, 'build-bench', 'Release', 'llama-bench'));
        expect(existsSync(report.llamaCpp.llamaBench!)).toBe(true);
    }, 60 * 60_000);

    it('--compare: exit 0 against the same report, 1 against one with a figure more than 5% better', () => {
        const same = bench('--compare', reportFile, '--current', reportFile);
        expect(same.code, same.stderr).toBe(0);
        expect(same.stdout).toMatch(/no regression over 5% \(\d+ figures compared\)/);

        const previous = JSON.parse(readFileSync(reportFile, 'utf8')) as BenchReport;
        previous.rows[1].tg.ours.median *= 1.2; // the current run is 17% slower there
        const doctored = join(dir, 'better.json');
        writeFileSync(doctored, JSON.stringify(previous));
        const worse = bench('--compare', doctored, '--current', reportFile);
        expect(worse.code).toBe(1);
        expect(worse.stdout).toMatch(/q8_0\/q8_0 tg ours t\/s +\| .*-16\.7% \| REGRESSION/);
        expect(worse.stdout).toMatch(/1 regression\(s\) over 5%/);

        // 4% better before: within the threshold; lower figures (TTFT) count the other way.
        const within = JSON.parse(readFileSync(reportFile, 'utf8')) as BenchReport;
        within.rows[0].pp.ours.median *= 1.04;
        within.rows[0].ttftMs.median *= 0.9;
        writeFileSync(doctored, JSON.stringify(within));
        const close = bench('--compare', doctored, '--current', reportFile);
        expect(close.code).toBe(1);
        expect(close.stdout).toMatch(/f16\/f16 TTFT ms .*REGRESSION/);
        expect(close.stdout).not.toMatch(/f16\/f16 pp ours t\/s .*REGRESSION/);
    });

    it('llama-kv bench runs one pair against a given llama-bench; bad flags exit 2', () => {
        const llamaBench = join(root, 'build-bench', 'Release', 'llama-bench');
        const r = cli('-m', model, '--quick', '--kv', 'q8_0/q4_0', '--llama-bench', llamaBench, '--no-memory', '--no-load', '-q');
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/\| q8_0\/q4_0 +\| +[\d.]+ \| +[\d.]+ \| +[\d.]+/);
        expect(r.stdout).not.toMatch(/f16\/f16/);
        for (const args of [['-m', model, '--kv', 'q8_0'], ['-m', model, '-t', 'two'], ['--compare', join(dir, 'missing.json')], []]) {
            const bad = cli(...args);
            expect(bad.code, args.join(' ')).toBe(2);
            expect(bad.stderr).toContain('usage: llama-kv bench');
        }
    });
});

describe('npm run bench -- --parallel (llama-kv against llama-batched-bench)', () => {
    const parallelFile = join(dir, 'parallel.json');
    let buildFailure: string | null = null;

    beforeAll(() => {
        // Built as `npm run bench -- --parallel` builds it (build-bench/, configured from build/).
        const script = `import { buildBatchedBench } from ${JSON.stringify(join(root, 'scripts', 'bench', 'build-llama-bench.mjs'))};\n` +
            `buildBatchedBench(${JSON.stringify(root)}, (line) => process.stderr.write(line + '\\n'));`;
        const r = node(['--input-type=module', '-e', script], 60 * 60_000);
        if (r.code !== 0) buildFailure = r.stderr.trim().split('\n').slice(-15).join('\n');
    }, 60 * 60_000);

    it('runs both sides per npl and K/V pair and prints the table and the JSON report', (ctx) => {
        if (buildFailure !== null) ctx.skip(`llama-batched-bench cannot be built here:\n${buildFailure}`);
        const r = bench('--parallel', '1,2', '-p', '16', '-n', '8', '-r', '1', '-t', '1', '-m', model, '--out', parallelFile);
        expect(r.code, r.stderr).toBe(0);
        const header = ['model', 'threads', 'npl', 'K/V', 'S_TG ours t/s', 'S_TG llama.cpp t/s', 'ratio', 'S ours t/s', 'S llama.cpp t/s', 'ratio'];
        expect(r.stdout).toMatch(new RegExp(`^\\|${header.map((h) => ` *${h.replace(/[./]/g, '\\$&')} *`).join('\\|')}\\|$`, 'm'));
        for (const npl of [1, 2]) {
            for (const kv of ['f16/f16', 'q8_0/q4_0']) {
                expect(r.stdout).toMatch(new RegExp(`\\| 1 +\\| ${npl} +\\| ${kv.replace('/', '\\/')} +\\|( +[\\d.]+( \\*)? \\|){6}$`, 'm'));
            }
        }
        expect(r.stdout).toMatch(/outside llama_decode ms\/step/);

        const report = JSON.parse(readFileSync(parallelFile, 'utf8')) as ParallelBenchReport;
        expect(report).toMatchObject({ version: 1, mode: 'parallel' });
        expect(report.settings).toMatchObject({ promptTokens: 16, generatedTokens: 8, parallel: [1, 2], reps: 1, threads: [1], flashAttention: 'on', kvUnified: false, batchSize: 2048, ubatchSize: 512 });
        expect(report.llamaCpp.batchedBench).toBe(join(root, 'build-bench', 'Release', 'llama-batched-bench'));
        expect(report.rows.map((row) => `${row.parallel} ${row.cacheTypeK}/${row.cacheTypeV}`)).toEqual(['1 f16/f16', '2 f16/f16', '1 q8_0/q4_0', '2 q8_0/q4_0']);
        for (const row of report.rows) {
            // npl sequences of 16 + 8 cells, each share padded to 256, on both sides.
            expect(row.context.contextSize).toBe(256 * row.parallel);
            expect(row.context.perSequence).toBe(256);
            expect(row.flashAttention).toBe('on');
            for (const side of [row.tg, row.total, row.pp]) {
                expect(side.ours.samples).toHaveLength(1);
                expect(side.llamaCpp?.samples).toHaveLength(1);
                for (const x of [...side.ours.samples, ...side.llamaCpp!.samples]) expect(x).toBeGreaterThan(0);
                expect(Number.isFinite(side.ratio)).toBe(true);
                expect(side.ratio).toBeGreaterThan(0);
                expect(side.ratio).toBeCloseTo(side.ours.median / side.llamaCpp!.median, 10);
            }
            // maxTokens = generatedTokens + 1 per sequence: the first token, then 8 generation steps
            // (fewer only where a generation ended on EOS in every try, which the row notes).
            expect(row.sequenceTokens).toHaveLength(1);
            expect(row.sequenceTokens[0]).toHaveLength(row.parallel);
            if (!row.notes.some((n) => n.includes('end-of-generation'))) expect(row.sequenceTokens[0]).toEqual(Array(row.parallel).fill(9));
            expect(row.speedupVs1).toBeGreaterThan(0);
            if (row.parallel === 1) expect(row.speedupVs1).toBe(1);
            expect(row.concurrent).toEqual(row.parallel === 1 ? null : expect.any(Boolean));
            if (row.repetitionContention !== null) {
                expect(row.repetitionContention).toHaveLength(1);
                expect(row.repetitionContention[0]).toBeGreaterThanOrEqual(0);
            }
            const lag = row.eventLoopLagMs;
            expect(lag.resolutionMs).toBe(1);
            if (lag.count > 0) {
                expect(lag.p50).toBeGreaterThanOrEqual(0);
                expect(lag.p50).toBeLessThanOrEqual(lag.p99);
                expect(lag.p99).toBeLessThanOrEqual(lag.max);
            }
            // engineStats comes with the batching engine; without it the column says n/a.
            if (row.engine !== null) {
                expect(row.engine.steps).toBeGreaterThan(0);
                expect(row.engine.stepMs).toBeGreaterThanOrEqual(row.engine.decodeMs);
                expect(row.engine.outsideDecodeMsPerStep).toBeGreaterThanOrEqual(0);
            }
        }
        if (report.rows.every((row) => row.engine === null)) expect(r.stdout).toMatch(/\| +n\/a \|/);
    }, 10 * 60_000);

    it('--compare of two parallel reports; -np/--parallel and the single-sequence report are refused', (ctx) => {
        if (!existsSync(parallelFile)) ctx.skip('no parallel report (the run above was skipped or failed)');
        const same = bench('--compare', parallelFile, '--current', parallelFile);
        expect(same.code, same.stderr).toBe(0);
        expect(same.stdout).toMatch(/S_TG ours t\/s/);
        expect(same.stdout).toMatch(/no regression over 5% \(\d+ figures compared\)/);

        const previous = JSON.parse(readFileSync(parallelFile, 'utf8')) as ParallelBenchReport;
        previous.rows[1].tg.ours.median *= 1.25; // the current run is 20% slower there
        const doctored = join(dir, 'parallel-better.json');
        writeFileSync(doctored, JSON.stringify(previous));
        const worse = bench('--compare', doctored, '--current', parallelFile);
        expect(worse.code).toBe(1);
        expect(worse.stdout).toMatch(/npl=2 f16\/f16 S_TG ours t\/s +\| .*-20\.0% \| REGRESSION/);

        const single = join(dir, 'single.json');
        writeFileSync(single, JSON.stringify({ version: 1, rows: [] }));
        const mixed = bench('--compare', single, '--current', parallelFile);
        expect(mixed.code).toBe(2);
        expect(mixed.stderr).toContain('is a single-sequence report');
        for (const flag of ['-np', '--parallel']) {
            const bad = cli('-m', model, flag, '2');
            expect(bad.code).toBe(2);
            expect(bad.stderr).toContain('the parallel mode of bench is -npl');
        }
    });
});

describe('npm run bench -- --embed (embedBatch against llama-embedding)', () => {
    const embedFile = join(dir, 'embed.json');
    let buildFailure: string | null = null;

    beforeAll(() => {
        // Built as `npm run bench -- --embed` builds it (build-bench/, configured from build/).
        const script = `import { buildLlamaEmbedding } from ${JSON.stringify(join(root, 'scripts', 'bench', 'build-llama-bench.mjs'))};\n` +
            `buildLlamaEmbedding(${JSON.stringify(root)}, (line) => process.stderr.write(line + '\\n'));`;
        const r = node(['--input-type=module', '-e', script], 60 * 60_000);
        if (r.code !== 0) buildFailure = r.stderr.trim().split('\n').slice(-15).join('\n');
    }, 60 * 60_000);

    it('--quick --ours-only: the table, and a report whose texts have the token counts the seeded generator gives', async () => {
        const file = join(dir, 'embed-ours.json');
        const r = cli('--embed', '-m', model, '--quick', '--ours-only', '--pooling', 'mean', '--out', file, '-q');
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/\| ours texts\/s \| ours tokens\/s \| llama\.cpp texts\/s/);
        const report = JSON.parse(readFileSync(file, 'utf8')) as EmbedBenchReport;
        expect(report.mode).toBe('embed');
        expect(report.settings).toMatchObject({ texts: 16, tokenRange: [8, 32], contextSize: 256, batchSize: 256, pooling: 'mean', normalize: 2, reps: 1, threads: [1] });
        const { counts, total, min, max } = report.settings.tokens;
        expect(counts).toHaveLength(16);
        expect(total).toBe(counts.reduce((a, b) => a + b, 0));
        expect([min, max]).toEqual([Math.min(...counts), Math.max(...counts)]);
        for (const n of counts) expect(n >= 8 && n <= 32, String(n)).toBe(true);
        const m = await LlamaModel.load({ path: model });
        try {
            const ctx = m.createEmbeddingContext({ pooling: 'mean', contextSize: 256, batchSize: 256, threads: 1 });
            expect(benchTexts((t) => ctx.tokenize(t), 16, 8, 32, report.settings.seed).tokens).toEqual(counts);
        } finally {
            m.dispose();
        }
        const [row] = report.rows;
        expect(row.llamaCpp).toBeNull();
        expect(row.ratio).toBeNull();
        for (const side of [row.ours, row.oursSingle]) {
            expect(side.ms.samples).toHaveLength(1);
            expect(side.tokensPerSecond.median).toBeCloseTo((total * 1000) / side.ms.median, 6);
        }
        expect(row.batchingGain).toBeGreaterThan(0);
    });

    it('runs both sides on the same texts and settings', (ctx) => {
        if (buildFailure !== null) ctx.skip(`llama-embedding cannot be built here:\n${buildFailure}`);
        const r = bench('--embed', '--quick', '-m', model, '--pooling', 'mean', '--out', embedFile);
        expect(r.code, r.stderr).toBe(0);
        const report = JSON.parse(readFileSync(embedFile, 'utf8')) as EmbedBenchReport;
        const [row] = report.rows;
        // The run itself fails when llama-embedding embeds other texts, tokens or context sizes than ours.
        expect(row.llamaCpp?.ms.samples).toHaveLength(1);
        expect(row.llamaCpp!.promptEvalMs.median).toBeLessThanOrEqual(row.llamaCpp!.ms.median);
        expect(row.llamaCpp!.processMs.median).toBeGreaterThan(row.llamaCpp!.ms.median);
        expect(row.ratio).toBeGreaterThan(0);
    }, 10 * 60_000);

    it('bad flags exit 2: two models, flags of the other modes, its own flags without --embed', () => {
        for (const [args, message] of [
            [['--embed', '-m', model, '-m', model], '--embed takes one -m/--model'],
            [['--embed', '-m', model, '--kv', 'f16/f16'], '--kv is not used by the embedding benchmark'],
            [['--embed', '-m', model, '-npl', '2'], '-npl is not used by the embedding benchmark'],
            [['-m', model, '--texts', '8'], '--texts is a flag of the embedding benchmark: give --embed too'],
            [['--embed', '-m', model, '--texts', '0', '--ours-only'], '--texts expects a positive integer'],
        ] as const) {
            const bad = cli(...args);
            expect(bad.code, args.join(' ')).toBe(2);
            expect(bad.stderr).toContain(message);
        }
    });
});
