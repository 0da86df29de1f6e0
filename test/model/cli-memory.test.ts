import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures } from '../support/fixtures.js';

const root = join(import.meta.dirname, '..', '..');

function llamaKv(...args: string[]) {
    const r = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'index.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('llama-kv memory', () => {
    it('prints each component, estimated and (with --live) measured, with the difference', () => {
        const r = llamaKv('memory', '-m', fixtures.f16, '-c', '1024', '-np', '2', '-ctk', 'q8_0', '-ctv', 'q4_0', '--live');
        expect(r.code).toBe(0);
        expect(r.stdout).toContain('contextSize 1024, parallel 2, K q8_0 / V q4_0, flash attention on');
        expect(r.stdout).toMatch(/kv cache \(K q8_0 \/ V q4_0\)\s+416\.00 KiB\s+exact\s+416\.00 KiB\s+same/);
        // The header is exact for the weights where this CPU's extra buffer types take none of them.
        expect(r.stdout).toMatch(/weights\s+[\d.]+ MiB\s+(exact|approx)\s+[\d.]+ MiB/);
        expect(r.stdout).toMatch(/weights by buffer type \(live\): CPU_Mapped [\d.]+ MiB mapped/);
    });

    it('--no-repack: every weight stays in the mapped file, exact at the header level on any CPU', () => {
        const r = llamaKv('memory', '-m', fixtures.f16, '-c', '1024', '--no-repack', '--live');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/weights\s+33\.50 MiB\s+exact\s+33\.50 MiB\s+same/);
        expect(r.stdout).toContain('weights by buffer type (live): CPU_Mapped 33.50 MiB mapped\n');
        const read = llamaKv('memory', '-m', fixtures.f16, '-c', '1024', '--no-repack', '--no-mmap', '--simulate', '--live', '--json');
        const { estimate, live } = JSON.parse(read.stdout);
        expect(live.weights.byBufferType.map((b: { bufferType: string }) => b.bufferType)).toEqual(['CPU']);
        expect(estimate.weights).toEqual(live.weights);
        expect(r.stdout).toMatch(/compute buffers\s+[\d.]+ MiB\s+approx\s+[\d.]+ MiB/);
    });

    it('--simulate --json: every component exact and equal to the live context', () => {
        const r = llamaKv('memory', '-m', fixtures.q8_0, '-c', '3000', '--kv-preset', 'aggressive', '--simulate', '--live', '--json');
        expect(r.code).toBe(0);
        const { estimate, live } = JSON.parse(r.stdout);
        expect(estimate.exact).toEqual({ kv: true, weights: true, loras: true, compute: true, output: true });
        for (const key of ['kv', 'weights', 'compute', 'output', 'total']) expect(estimate[key].bytes, key).toBe(live[key].bytes);
    });

    it('--chart writes a valid SVG with one line per preset and the budget', () => {
        const file = join(mkdtempSync(join(tmpdir(), 'llama-kv-chart-')), 'kv.svg');
        const r = llamaKv('memory', '-m', fixtures.f16, '--chart', file, '--budget', '120MiB');
        expect(r.code).toBe(0);
        const svg = readFileSync(file, 'utf8');
        // Well-formed XML (python3 is part of the build toolchain).
        const parse = spawnSync('python3', ['-c', 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(r.tag)', file], { encoding: 'utf8' });
        expect(parse.stdout.trim()).toBe('{http://www.w3.org/2000/svg}svg');
        for (const preset of ['conservative (f16/f16)', 'balanced (q8_0/q8_0)', 'aggressive (q8_0/q4_0)', 'extreme (q4_0/q4_0)']) expect(svg).toContain(preset);
        expect(svg.match(/<path /g)).toHaveLength(4);
        expect(svg).toContain('KV budget: 120.00 MiB minus weights, compute, output');
        expect(svg).toContain('context length (tokens)');
    });

    it('bad values are usage errors (exit code 2)', () => {
        expect(llamaKv('memory', '-m', fixtures.f16, '--budget', 'lots', '--chart', '/tmp/x.svg').code).toBe(2);
        const fa = llamaKv('memory', '-m', fixtures.f16, '-ctv', 'q4_0', '-fa', 'off');
        expect(fa.code).toBe(2);
        expect(fa.stderr).toContain("set flashAttention to 'on' or 'auto'");
        expect(llamaKv('memory').code).toBe(2);
    });

    it('the placement flags need --simulate: the header estimate assumes the CPU', () => {
        const header = llamaKv('memory', '-m', fixtures.f16, '-ngl', '2');
        expect(header.code).toBe(2);
        expect(header.stderr).toContain('gpuLayers needs simulate: true');
        const cpu = llamaKv('memory', '-m', fixtures.f16, '-c', '512', '--gpu', 'none', '--simulate', '--json');
        expect(cpu.code).toBe(0);
        expect(JSON.parse(cpu.stdout).estimate.devices.map((d: { name: string }) => d.name)).toEqual(['CPU']);
    });
});

describe('llama-kv fit', () => {
    it('prints the chosen settings, the reason and a command line', () => {
        const r = llamaKv('fit', '-m', fixtures.f16, '--budget', '110MiB', '--prefer', 'context');
        expect(r.code).toBe(0);
        expect(r.stdout).toContain('contextSize 2048, parallel 1, K f16 / V f16');
        expect(r.stdout).toMatch(/why: the model's full trained context fits/);
        expect(r.stdout).toContain('run: llama-kv run -m');
        const json = JSON.parse(llamaKv('fit', '-m', fixtures.f16, '--budget', '120MiB', '--prefer', 'parallel', '--min-ctx', '512', '--json').stdout);
        expect(json.settings.parallel).toBeGreaterThan(1);
        expect(json.estimate.total.bytes).toBeLessThanOrEqual(120 * 2 ** 20);
    });

    it('an impossible budget exits 1 with INSUFFICIENT_MEMORY and the shortfall; bad flags exit 2', () => {
        const r = llamaKv('fit', '-m', fixtures.f16, '--budget', '20MiB');
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/more than the budget of 20\.0 MiB.*\[INSUFFICIENT_MEMORY\]/);
        expect(llamaKv('fit', '-m', fixtures.f16).code).toBe(2);
        expect(llamaKv('fit', '-m', fixtures.f16, '--budget', '1GiB', '--prefer', 'speed').code).toBe(2);
    });
});
