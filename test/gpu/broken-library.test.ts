// A broken device library in the installed GPU package (a truncated download, a disk
// error): the backend is skipped with its reason, and the CPU runs. In a child process whose
// llama-kv sits in an app folder of its own, with the GPU package copied there and its
// library cut to 4 KiB, loaded exactly as an installed package is (node_modules/@llama-kv/).
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fixtures } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';

const gpu = inject('gpu');

describe(`a truncated ${basename(gpu.library)} in ${gpu.packageName}`, () => {
    let app: string;
    beforeAll(() => {
        app = mkdtempSync(join(tmpdir(), 'llama-kv-broken-gpu-'));
        const llamaKv = join(app, 'node_modules', 'llama-kv');
        mkdirSync(llamaKv, { recursive: true });
        cpSync(join(root, 'package.json'), join(llamaKv, 'package.json'));
        cpSync(join(root, 'dist'), join(llamaKv, 'dist'), { recursive: true });
        symlinkSync(join(root, 'node_modules', 'zod'), join(app, 'node_modules', 'zod'), 'junction');
        const pkg = join(app, 'node_modules', gpu.packageName);
        cpSync(gpu.packageDir, pkg, { recursive: true, dereference: true });
        truncateSync(join(pkg, 'bin', basename(gpu.library)), 4096);
    });
    afterAll(() => rmSync(app, { recursive: true, force: true }));

    it('is skipped with its reason; gpu auto runs on the CPU and generates', () => {
        const script = `
            import { getBackends, LlamaContext, LlamaModel } from 'llama-kv';
            const b = getBackends().find((x) => x.kind === ${JSON.stringify(gpu.kind)});
            const model = await LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)} });
            const ctx = new LlamaContext({ model, contextSize: 256 });
            const out = await ctx.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
            const devices = ctx.memoryReport().devices.map((d) => d.name);
            let named;
            try { await LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)}, gpu: ${JSON.stringify(gpu.kind)} }); } catch (e) { named = { code: e.code, message: e.message }; }
            console.log(JSON.stringify({ backend: b, tokens: out.tokens.length, devices, warnings: model.warnings, named }));
        `;
        const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
            cwd: app,
            encoding: 'utf8',
            // The addon built from this checkout (the app has no platform package).
            env: { ...process.env, LLAMA_KV_ADDON_PATH: join(root, 'build', 'Release', 'llama_kv.node'), LLAMA_KV_BACKEND_PATH: '' },
        });
        const r = JSON.parse(out.trim().split('\n').at(-1)!);
        expect(r.backend, out).toMatchObject({ available: false, package: gpu.packageName });
        expect(r.backend.reason).toContain(basename(gpu.library));
        expect(r.backend.reason).toMatch(/failed to load/);
        expect(r.backend.devices).toEqual([]);
        expect(r.tokens).toBe(4);
        expect(r.devices).toEqual(['CPU']);
        expect(r.warnings.map((w: { code: string }) => w.code)).toContain('NO_GPU');
        expect(r.named.code).toBe('BACKEND_UNAVAILABLE');
        expect(r.named.message).toContain(basename(gpu.library));
    });
});
