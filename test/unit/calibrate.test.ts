import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtInPrompts, readPromptFile, type CalibrationReport } from '../../lib/index.js';
import { retrievalPrompt } from '../../lib/calibrate/index.js';
import { agreement, klSummary, percentile, perplexity, quarters } from '../../lib/calibrate/stats.js';
import { calibrationChartSvg } from '../../lib/cli/format/calibration-chart.js';

const dir = mkdtempSync(join(tmpdir(), 'llama-kv-prompts-'));
const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
};

describe('prompt files', () => {
    it('reads JSONL: text required, name and category optional, blank lines skipped', async () => {
        const path = file('set.jsonl', '{"text":"a b c","name":"first","category":"code"}\n\n{"text":"d e"}\n');
        expect(await readPromptFile(path)).toEqual([
            { name: 'first', category: 'code', text: 'a b c' },
            { name: 'line 3', text: 'd e' },
        ]);
    });

    it('names the malformed JSONL line', async () => {
        await expect(readPromptFile(file('bad.jsonl', '{"text":"ok"}\n{"text":\n'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('bad.jsonl line 2: not valid JSON') });
        await expect(readPromptFile(file('notext.jsonl', '{"name":"x"}\n'))).rejects.toThrow('notext.jsonl line 1: expected an object with a non-empty "text" string');
        await expect(readPromptFile(file('empty.jsonl', '\n\n'))).rejects.toThrow('empty.jsonl: no prompts found');
    });

    it('splits text files at --- lines', async () => {
        expect(await readPromptFile(file('set.txt', 'one\nline two\n---\nthree\n'))).toEqual([
            { name: 'set.txt#1', text: 'one\nline two' },
            { name: 'set.txt#2', text: 'three' },
        ]);
        expect(await readPromptFile(file('whole.txt', 'all of it\n-- not a separator\n'))).toEqual([{ name: 'whole.txt#1', text: 'all of it\n-- not a separator' }]);
    });

    it('builds the retrieval prompt deterministically, with the asked record in it', () => {
        const text = retrievalPrompt(50);
        expect(retrievalPrompt(50)).toBe(text);
        expect(text.match(/^Record \d+:/gm)).toHaveLength(50);
        const [, record, code] = /record (\d+) is (\d+)\.$/.exec(text)!;
        expect(text).toContain(`Record ${record}: `);
        expect(new RegExp(`Record ${record}: .*locker code is ${code}\\.`).test(text)).toBe(true);
        const set = builtInPrompts(4096);
        expect(set.map((p) => p.category)).toEqual(['code', 'long-context retrieval', 'reasoning', 'creative']);
        expect(set[1].text.length).toBeGreaterThan(builtInPrompts(1024)[1].text.length * 3);
    });
});

describe('calibration statistics', () => {
    it('nearest-rank percentile, KL summary, agreement, perplexity, quarters', () => {
        const values = Array.from({ length: 100 }, (_, i) => i + 1);
        expect(percentile(values, 0.95)).toBe(95);
        expect(percentile([3, 1, 2], 0.95)).toBe(3);
        expect(percentile([], 0.95)).toBe(0);
        expect(klSummary([0.1, 0.3, 0.2])).toEqual({ mean: (0.1 + 0.3 + 0.2) / 3, p95: 0.3, max: 0.3 });
        expect(agreement([true, false, true, true])).toBe(0.75);
        expect(perplexity([Math.log(0.5), Math.log(0.5)])).toBeCloseTo(2, 12);
        expect(quarters([1, 2, 3, 4, 5, 6, 7, 8, 9])).toEqual({ first: [1, 2], last: [8, 9] });
        expect(quarters([1, 2])).toEqual({ first: [1], last: [2] });
    });
});

describe('calibration chart', () => {
    const result = (k: string, v: string, kvBytes: number, mean: number) => ({ cacheTypeK: k, cacheTypeV: v, kvBytes, kl: { mean, p95: mean, max: mean }, top1Agreement: 1 - mean });
    const report = (results: unknown[]) => ({ model: '/m/x.gguf', modelName: '', contextSize: 4096, positions: 1000, prompts: [{}], reference: { cacheTypeK: 'f16', cacheTypeV: 'f16' }, results }) as unknown as CalibrationReport;

    it('draws one labelled point per configuration, inside the plot', () => {
        const svg = calibrationChartSvg(report([result('f16', 'f16', 2 ** 30, 0), result('q8_0', 'q4_0', 0.41 * 2 ** 30, 0.0123)]));
        expect(svg.match(/<circle /g)).toHaveLength(2);
        expect(svg).toContain('KL 0.0123, top-1 98.8%');
        expect(svg).toContain('x.gguf');
        expect(svg).not.toMatch(/NaN|Infinity/);
        for (const [, cy] of svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)) expect(Number(cy)).toBeGreaterThanOrEqual(80);
    });

    it('handles the reference alone (every KL 0)', () => {
        const svg = calibrationChartSvg(report([result('f16', 'f16', 1024, 0)]));
        expect(svg).not.toMatch(/NaN|Infinity/);
        expect(svg.match(/<circle /g)).toHaveLength(1);
    });
});
