import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calibrate, compareCalibration, LlamaModel, type CalibrationReport } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';
import { llamaKv } from '../support/cli.js';

// tiny-f16: 2 layers, 2 KV heads of dimension 64 (128 values per token and layer).
const kvBytes = (k: number, v: number, cells: number) => 2 * cells * 128 * (k + v);

describe('calibrate()', () => {
    let model: LlamaModel;
    let report: CalibrationReport;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16 });
        report = await calibrate({ model, contextSize: 512, threads: 2, generationTokens: 4 });
    }, 300_000);
    afterAll(() => model?.dispose());

    it('scores f16/f16 against itself as exactly KL 0 and 100% agreement', () => {
        const f16 = report.results.find((r) => r.cacheTypeK === 'f16' && r.cacheTypeV === 'f16')!;
        expect(f16.kl).toEqual({ mean: 0, p95: 0, max: 0 });
        expect(f16.top1Agreement).toBe(1);
        expect(f16.perplexity).toBe(report.reference.perplexity);
        expect(f16.perplexityChange).toBe(0);
        expect(f16.byPrompt.every((p) => p.klMean === 0 && p.top1Agreement === 1)).toBe(true);
    });

    it('scores every quantized configuration above 0, in the order of precision', () => {
        const byLabel = Object.fromEntries(report.results.map((r) => [`${r.cacheTypeK}/${r.cacheTypeV}`, r]));
        expect(Object.keys(byLabel)).toEqual(['f16/f16', 'q8_0/q8_0', 'q8_0/q4_0', 'q4_0/q4_0']);
        const means = ['f16/f16', 'q8_0/q8_0', 'q8_0/q4_0', 'q4_0/q4_0'].map((k) => byLabel[k].kl.mean);
        for (let i = 1; i < means.length; i++) expect(means[i], `${i}`).toBeGreaterThan(means[i - 1]);
        for (const r of report.results.slice(1)) {
            expect(r.kl.p95).toBeGreaterThan(0);
            expect(r.kl.max).toBeGreaterThanOrEqual(r.kl.p95);
            expect(r.kl.p95).toBeGreaterThanOrEqual(0);
            expect(r.top1Agreement).toBeLessThan(1);
            expect(r.top1Agreement).toBeGreaterThan(0.5);
            expect(Number.isFinite(r.perplexity)).toBe(true);
        }
        expect(byLabel['q8_0/q8_0'].top1Agreement).toBeGreaterThan(byLabel['q4_0/q4_0'].top1Agreement);
    });

    it('reads KV bytes from the live contexts: exact for the fixture', () => {
        const cells = report.contextSize;
        expect(report.contextSize).toBe(512);
        expect(report.reference.kvBytes).toBe(kvBytes(2, 2, cells));
        expect(report.results.map((r) => r.kvBytes)).toEqual([kvBytes(2, 2, cells), kvBytes(34 / 32, 34 / 32, cells), kvBytes(34 / 32, 18 / 32, cells), kvBytes(18 / 32, 18 / 32, cells)]);
        expect(report.results.every((r) => r.flashAttention === 'on')).toBe(true);
        expect(report.results.every((r) => r.generationTokensPerSecond! > 0)).toBe(true);
    });

    it('describes the prompts, cuts the long one to the context and scores it by quarter', () => {
        expect(report.prompts.map((p) => p.name)).toEqual(['code', 'retrieval', 'reasoning', 'creative']);
        const retrieval = report.prompts[1];
        expect(retrieval).toMatchObject({ tokens: 512, truncated: true, category: 'long-context retrieval' });
        expect(report.positions).toBe(report.prompts.reduce((n, p) => n + p.tokens - 1, 0));
        const q = report.results[2].byPosition!;
        // Quarters of every prompt of at least 256 tokens.
        const long = report.prompts.filter((p) => p.tokens >= 256);
        expect(q.first.positions).toBe(long.reduce((n, p) => n + Math.floor((p.tokens - 1) / 4), 0));
        expect(q.last.positions).toBe(q.first.positions);
        expect(q.first.klMean).toBeGreaterThan(0);
        expect(q.last.klMean).toBeGreaterThan(0);
    });

    it('round-trips through JSON', () => {
        expect(JSON.parse(JSON.stringify(report))).toEqual(report);
    });

    it('finds no regression against itself and one against a better saved run', () => {
        expect(compareCalibration(report, report, 0)).toEqual({ maxKlIncrease: 0, regressions: [], missing: [], warnings: [] });
        const saved = structuredClone(report);
        saved.results[2].kl.mean /= 2;
        saved.results.push({ ...saved.results[0], cacheTypeK: 'q5_0', cacheTypeV: 'q5_0' });
        saved.contextSize = 1024;
        const c = compareCalibration(report, saved, 0);
        expect(c.regressions).toEqual([{ configuration: 'q8_0/q4_0', savedKlMean: saved.results[2].kl.mean, klMean: report.results[2].kl.mean, increase: report.results[2].kl.mean - saved.results[2].kl.mean }]);
        expect(c.missing).toEqual(['q5_0/q5_0']);
        expect(c.warnings).toEqual(['the saved run used context size 1024, this one 512']);
        // Within the threshold it is not one.
        expect(compareCalibration(report, saved, report.results[2].kl.mean).regressions).toEqual([]);
        expect(() => compareCalibration(report, { results: [{ cacheTypeK: 'f16' }] }, 0)).toThrow(/not one/);
    });

    it('validates its options', async () => {
        await expect(calibrate({ model, configurations: ['fast' as never] })).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('configurations.0') });
        await expect(calibrate({ model, contextSize: 8 })).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
        await expect(calibrate({ model, prompts: [{ name: 'x', text: '' }] })).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
        await expect(calibrate({ model, contextSiz: 512 } as never)).rejects.toMatchObject({ message: expect.stringContaining('did you mean "contextSize"') });
        const aborted = new AbortController();
        aborted.abort();
        await expect(calibrate({ model, contextSize: 64, signal: aborted.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    });

    it('takes prompts and configurations of the caller', async () => {
        const r = await calibrate({
            model,
            contextSize: 128,
            threads: 1,
            generationTokens: 0,
            prompts: [{ name: 'one', text: 'Once upon a time there was a small robot who wanted to learn to paint.' }],
            configurations: [{ cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, 'extreme'],
        });
        expect(r.results.map((x) => [x.cacheTypeK, x.cacheTypeV])).toEqual([['q8_0', 'q8_0'], ['q4_0', 'q4_0']]);
        expect(r.results[0].generationTokensPerSecond).toBeNull();
        expect(r.results[0].byPosition).toBeNull();
        expect(r.prompts).toEqual([{ name: 'one', category: null, tokens: r.positions + 1, truncated: false }]);
    });
});

describe('llama-kv calibrate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llama-kv-calibrate-'));
    const out = join(dir, 'r.json');
    const chart = join(dir, 'r.svg');

    it('prints the report and writes the JSON and the SVG chart', () => {
        const r = llamaKv('calibrate', '-m', fixtures.f16, '-c', '256', '-t', '2', '-n', '4', '--configs', 'f16/f16,balanced,q8_0/q4_0', '--out', out, '--chart', chart);
        expect(r.stderr.replace(/^\[warn\] llama-kv: no GPU backend.*\n/m, '')).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/^f16\/f16\s+256\.00 KiB\s+100\.0%\s+0\s+0\s+0\s+100\.0%/m);
        expect(r.stdout).toMatch(/^q8_0\/q4_0\s+104\.00 KiB\s+40\.6%/m);
        expect(r.stdout).toContain('KL first quarter');
        const report = JSON.parse(readFileSync(out, 'utf8')) as CalibrationReport;
        expect(report).toMatchObject({ model: fixtures.f16, contextSize: 256 });
        for (const x of report.results) {
            expect(Object.keys(x)).toEqual(expect.arrayContaining(['cacheTypeK', 'cacheTypeV', 'kl', 'top1Agreement', 'perplexity', 'kvBytes', 'generationTokensPerSecond']));
            expect(Object.keys(x.kl)).toEqual(['mean', 'p95', 'max']);
        }
        const svg = readFileSync(chart, 'utf8');
        expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
        for (const label of ['f16/f16', 'q8_0/q8_0', 'q8_0/q4_0', 'mean KL divergence (nats)', 'KV cache size (K + V)']) expect(svg).toContain(label);
        expect(svg.match(/<circle /g)).toHaveLength(3);
    }, 120_000);

    it('--baseline --max-kl: exit 0 against the same run, 1 against a better saved run', () => {
        const same = llamaKv('calibrate', '-m', fixtures.f16, '-c', '256', '-t', '2', '-n', '0', '--configs', 'f16/f16,balanced,q8_0/q4_0', '--baseline', out, '--max-kl', '0');
        expect(same.code).toBe(0);
        expect(same.stdout).toContain('no regression');
        const saved = JSON.parse(readFileSync(out, 'utf8')) as CalibrationReport;
        saved.results[2].kl.mean /= 2;
        const better = join(dir, 'better.json');
        writeFileSync(better, JSON.stringify(saved));
        const worse = llamaKv('calibrate', '-m', fixtures.f16, '-c', '256', '-t', '2', '-n', '0', '--configs', 'f16/f16,balanced,q8_0/q4_0', '--baseline', better, '--max-kl', '0.0001');
        expect(worse.code).toBe(1);
        expect(worse.stdout).toMatch(/REGRESSION q8_0\/q4_0: mean KL [\d.e-]+ -> [\d.e-]+/);
    }, 120_000);

    it('usage errors exit 2', () => {
        expect(llamaKv('calibrate', '-m', fixtures.f16, '--baseline', out).code).toBe(2);
        const bad = llamaKv('calibrate', '-m', fixtures.f16, '--configs', 'q8_0-q4_0');
        expect(bad.code).toBe(2);
        expect(bad.stderr).toContain('--configs expects K/V pairs like q8_0/q4_0');
        const type = llamaKv('calibrate', '-m', fixtures.f16, '--configs', 'q3/f16');
        expect(type.code).toBe(2);
        expect(type.stderr).toContain("configurations.0");
    });
});
