import { describe, expect, it } from 'vitest';
import { llamaKv } from '../support/cli.js';
import { fixtures } from '../support/fixtures.js';

describe('llama-kv backends and the run placement flags', () => {
    it('backends prints each backend, available or with the reason and the fix', () => {
        const r = llamaKv('backends');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/^cpu +available +CPU \(variant native( \(\w+\))?\)$/m);
        expect(r.stdout).toMatch(/^ +CPU: .*free of/m);
        if (process.platform === 'linux' && process.arch === 'x64') {
            expect(r.stdout).toMatch(/^cuda +unavailable CUDA\n +why: the package @llama-kv\/linux-x64-cuda is not installed\n +fix: npm install @llama-kv\/linux-x64-cuda@\d+\.\d+\.\d+$/m);
        }
        const json = llamaKv('backends', '--json');
        expect(JSON.parse(json.stdout).find((b: { kind: string }) => b.kind === 'cpu').available).toBe(true);
    });

    it('run --gpu names a backend; an unavailable one fails with the reason', () => {
        const r = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-n', '2', '--gpu', 'cuda');
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/gpu: 'cuda' was requested .*\[BACKEND_UNAVAILABLE\]/);
        const cpu = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-n', '2', '--gpu', 'none', '--temp', '0');
        expect(cpu.code).toBe(0);
        expect(cpu.stderr).not.toMatch(/no GPU backend/);
        const auto = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-n', '2', '--temp', '0');
        expect(auto.stderr.match(/no GPU backend is available/g)).toHaveLength(1);
    });

    it('run takes --n-cpu-moe, -ngl, -dev and -ts, and rejects bad values', () => {
        const moe = llamaKv('run', '-m', fixtures.moe, '-p', 'Hi', '-n', '4', '--n-cpu-moe', '1', '--gpu', 'none', '--temp', '0');
        expect(moe.code).toBe(0);
        expect(moe.stderr).toMatch(/generation: 4 tokens/);
        expect(llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-n', '2', '-ngl', 'all', '-dev', 'CPU', '--temp', '0').code).toBe(0);
        const bad = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-ngl', 'lots');
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/-ngl\/--gpu-layers expects a number, 'auto' or 'all'/);
        const dev = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-dev', 'CUDA3');
        expect(dev.code).toBe(2);
        expect(dev.stderr).toMatch(/no device named 'CUDA3'/);
        const ts = llamaKv('run', '-m', fixtures.f16, '-p', 'Hi', '-ts', '3,1', '--gpu', 'none');
        expect(ts.code).toBe(2);
        expect(ts.stderr).toMatch(/tensorSplit has 2 entries/);
    });
});
