import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LlamaModel } from '../../lib/index.js';
import { cli, llamaKv } from '../support/cli.js';
import { fixtures, referenceGreedy } from '../support/fixtures.js';

describe('llama-kv run --lora and llama-kv quantize', () => {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-cli-lora-'));
    afterAll(() => rmSync(work, { recursive: true, force: true }));
    const prompt = 'Once upon a time';

    it('run --lora applies the adapter: the greedy tokens are llama.cpp\'s own with it', () => {
        const r = llamaKv('run', '-m', fixtures.f16, '--lora', fixtures.loraAttn, '-p', prompt, '-n', '12', '--temp', '0', '-t', '2', '--gpu', 'none', '--json');
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout).tokens).toEqual(referenceGreedy(fixtures.f16, prompt, 12, 2, { path: fixtures.loraAttn, scale: 1 }));
        const stream = llamaKv('run', '-m', fixtures.f16, '--lora', fixtures.loraAttn, '--lora-scaled', fixtures.loraFfn, '0.5', '-p', prompt, '-n', '4', '--gpu', 'none');
        expect(stream.code).toBe(0);
        expect(stream.stderr).toMatch(/loras: llama-kv-tiny-lora-r8-attn-.*\.gguf@1, llama-kv-tiny-lora-r4-ffn-.*\.gguf@0\.5/);
    });

    it('--lora-scaled with scale 0 is the base model', () => {
        const r = llamaKv('run', '-m', fixtures.f16, '--lora-scaled', fixtures.loraAttn, '0', '-p', prompt, '-n', '12', '--temp', '0', '-t', '2', '--gpu', 'none', '--json');
        expect(JSON.parse(r.stdout).tokens).toEqual(referenceGreedy(fixtures.f16, prompt, 12, 2));
    });

    it('bad adapter flags are usage errors; an adapter for other shapes fails with the reason', () => {
        const missing = llamaKv('run', '-m', fixtures.f16, '-p', prompt, '--lora-scaled', fixtures.loraAttn);
        expect(missing.code).toBe(2);
        expect(missing.stderr).toMatch(/--lora-scaled needs two values/);
        const nan = llamaKv('run', '-m', fixtures.f16, '-p', prompt, '--lora-scaled', fixtures.loraAttn, 'high');
        expect(nan.code).toBe(2);
        expect(nan.stderr).toMatch(/--lora-scaled expects a file and a number but received "high"/);
        const wrong = llamaKv('run', '-m', fixtures.f16, '-p', prompt, '--lora', fixtures.loraHd48, '--gpu', 'none');
        expect(wrong.code).toBe(1);
        expect(wrong.stderr).toMatch(/has incorrect shape.*\[LORA_LOAD_FAILED\]/);
    });

    it('quantize writes a model that loads, with a one-line summary', async () => {
        const output = join(work, 'q4_k_m.gguf');
        const r = llamaKv('quantize', fixtures.f16, output, 'q4_k_m', '-t', '2');
        expect(r.code).toBe(0);
        expect(r.stderr).toMatch(/quantized .*\.gguf -> q4_k_m\.gguf: Q4_K_M, 34\.\d\d MiB -> 12\.\d\d MiB \(3\d\.\d%\) in [\d.]+ s/);
        expect(r.stderr).not.toContain('\r'); // no progress bar when stderr is not a terminal
        const model = await LlamaModel.load({ path: output, gpu: false });
        expect(model.metadata.description).toMatch(/Q4_K - Medium/);
        model.dispose();
        const bad = llamaKv('quantize', fixtures.f16, join(work, 'x.gguf'), 'Q9_K');
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/Expected one of F32, F16/);
        expect(llamaKv('quantize', fixtures.f16).code).toBe(2);
    });

    it.runIf(spawnSync('script', ['--version']).status === 0)('quantize draws a progress bar on a terminal', () => {
        const output = join(work, 'tty.gguf');
        const command = [process.execPath, cli, 'quantize', fixtures.f16, output, 'Q8_0'].map((a) => `'${a}'`).join(' ');
        const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
        expect(r.status).toBe(0);
        expect(r.stdout).toMatch(/\r\[#{30}\] 100%/);
    });
});
