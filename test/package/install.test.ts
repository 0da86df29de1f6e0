// The published package, as an app gets it: `npm pack` with the linux-x64 CPU prebuild
// (npm run prebuild -- --variant cpu), installed into a fresh project with no compiler
// in PATH, then used through import, require and a worker thread.
//
// Run with `npm run test:package` (not part of `npm test`: it needs the prebuild).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureFixtureModel } from '../../lib/demo/models.js';

const root = resolve(import.meta.dirname, '..', '..');
const platformKey = `${process.platform}-${process.arch}`;
const prebuildDir = join(root, 'prebuilds', platformKey);

// The x86-64 CPU variants ggml builds (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS)
// and the score each gets (ggml-cpu/arch/x86/cpu-feats.cpp): the loader takes the
// highest-scoring variant whose features this CPU has.
const FEATURE_BITS: Record<string, { bit: number; flags: string[] }> = {
    FMA: { bit: 0, flags: ['fma'] },
    F16C: { bit: 1, flags: ['f16c'] },
    SSE42: { bit: 2, flags: ['sse4_2'] },
    BMI2: { bit: 3, flags: ['bmi2'] },
    AVX: { bit: 4, flags: ['avx'] },
    AVX2: { bit: 5, flags: ['avx2'] },
    AVX_VNNI: { bit: 6, flags: ['avx_vnni'] },
    AVX512: { bit: 7, flags: ['avx512f', 'avx512cd', 'avx512vl', 'avx512dq', 'avx512bw'] },
    AVX512_VBMI: { bit: 8, flags: ['avx512vbmi'] },
    AVX512_BF16: { bit: 9, flags: ['avx512_bf16'] },
    AVX512_VNNI: { bit: 10, flags: ['avx512_vnni'] },
    AMX_INT8: { bit: 11, flags: ['amx_int8'] },
};
const X64_VARIANTS: Record<string, string[]> = {
    x64: [],
    sse42: ['SSE42'],
    sandybridge: ['SSE42', 'AVX'],
    ivybridge: ['SSE42', 'AVX', 'F16C'],
    piledriver: ['SSE42', 'AVX', 'F16C', 'FMA'],
    haswell: ['SSE42', 'AVX', 'F16C', 'FMA', 'AVX2', 'BMI2'],
    skylakex: ['SSE42', 'AVX', 'F16C', 'FMA', 'AVX2', 'BMI2', 'AVX512'],
    cannonlake: ['SSE42', 'AVX', 'F16C', 'FMA', 'AVX2', 'BMI2', 'AVX512', 'AVX512_VBMI'],
    cascadelake: ['SSE42', 'AVX', 'F16C', 'FMA', 'AVX2', 'BMI2', 'AVX512', 'AVX512_VNNI'],
    icelake: ['SSE42', 'AVX', 'F16C', 'FMA', 'AVX2', 'BMI2', 'AVX512', 'AVX512_VBMI', 'AVX512_VNNI'],
    cooperlake: ['SSE42', 'AVX', 'F16C', 'FMA', 'AVX2', 'BMI2', 'AVX512', 'AVX512_VNNI', 'AVX512_BF16'],
    zen4: ['SSE42', 'AVX', 'F16C', 'FMA', 'AVX2', 'BMI2', 'AVX512', 'AVX512_VBMI', 'AVX512_VNNI', 'AVX512_BF16'],
    alderlake: ['SSE42', 'AVX', 'F16C', 'FMA', 'AVX2', 'BMI2', 'AVX_VNNI'],
    sapphirerapids: ['SSE42', 'AVX', 'F16C', 'FMA', 'AVX2', 'BMI2', 'AVX512', 'AVX512_VBMI', 'AVX512_VNNI', 'AVX512_BF16', 'AMX_INT8'],
};

/** The variant ggml should pick on this machine, from /proc/cpuinfo. */
function expectedX64Variant(): string {
    const flags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/));
    let best = { name: '', score: 0 };
    for (const [name, features] of Object.entries(X64_VARIANTS)) {
        if (!features.every((f) => FEATURE_BITS[f].flags.every((flag) => flags.has(flag)))) continue;
        const score = features.reduce((s, f) => s + (1 << FEATURE_BITS[f].bit), 1);
        if (score > best.score) best = { name, score };
    }
    return best.name;
}

/** A PATH with node and a shell, and no compiler, cmake or make. */
function compilerFreePath(dir: string): string {
    mkdirSync(dir, { recursive: true });
    symlinkSync(process.execPath, join(dir, 'node'));
    symlinkSync('/bin/sh', join(dir, 'sh'));
    return dir;
}

describe.runIf(process.platform === 'linux' && process.arch === 'x64')('the packed package, installed without a compiler', () => {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-package-'));
    const app = join(work, 'app');
    let model = '';
    let install = { ms: 0, log: '' };
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    beforeAll(async () => {
        if (!existsSync(prebuildDir) || !readdirSync(prebuildDir).some((f) => f.endsWith('.node'))) {
            throw new Error(`no prebuild in ${prebuildDir}: run \`npm run prebuild -- --variant cpu\` first`);
        }
        model = await ensureFixtureModel('tiny-q8_0', { dir: join(root, '.cache', 'models') });
        const npmCli = process.env.npm_execpath?.endsWith('npm-cli.js')
            ? process.env.npm_execpath
            : join(resolve(process.execPath, '..', '..'), 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
        execFileSync(process.execPath, [npmCli, 'pack', '--pack-destination', work], { cwd: root, stdio: 'pipe' });
        const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
        mkdirSync(app);
        writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, version: '1.0.0' }));
        const bin = compilerFreePath(join(work, 'bin'));
        const started = performance.now();
        const r = spawnSync(process.execPath, [npmCli, 'install', '--no-audit', '--no-fund', '--foreground-scripts', join(work, tarball)], {
            cwd: app,
            encoding: 'utf8',
            env: { HOME: process.env.HOME ?? work, PATH: bin, npm_config_update_notifier: 'false' },
        });
        install = { ms: performance.now() - started, log: `${r.stdout}\n${r.stderr}` };
        if (r.status !== 0) throw new Error(`npm install failed (${r.status}):\n${install.log}`);
    }, 600_000);

    it('packs the prebuild and nothing of the build tree', () => {
        const listing = execFileSync('tar', ['-tzf', join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!)], { encoding: 'utf8' }).split('\n');
        const prebuilt = listing.filter((f) => f.startsWith(`package/prebuilds/${platformKey}/`)).map((f) => f.split('/').pop());
        expect(prebuilt).toContain('node.napi.glibc.node');
        expect(prebuilt).toContain('libllama-kv-ggml-base.so.0');
        expect(prebuilt).toContain('libllama-kv-ggml.so.0');
        expect(prebuilt.filter((f) => f?.startsWith('libggml-cpu-')).length).toBeGreaterThanOrEqual(10);
        expect(listing.some((f) => /^package\/(build|test|vendor\/llama\.cpp)\//.test(f))).toBe(false);
    });

    it('installs from the prebuild, without compiling', () => {
        expect(install.log).toMatch(/\[llama-kv install\] using prebuilt binary .*prebuilds\/linux-x64\/node\.napi\.glibc\.node/);
        expect(install.log).not.toMatch(/building from source|cmake-js|\[llama-kv build\]/);
        expect(existsSync(join(app, 'node_modules', 'llama-kv', 'build'))).toBe(false);
        process.stdout.write(`[package test] npm install of the tarball took ${(install.ms / 1000).toFixed(1)} s\n`);
    });

    const run = (file: string, code: string) => {
        writeFileSync(join(app, file), code);
        return execFileSync(process.execPath, [file], { cwd: app, encoding: 'utf8', env: { ...process.env, MODEL: model } });
    };

    it('works through import: generation, and the CPU variant that matches this machine', () => {
        const out = JSON.parse(run('esm.mjs', `
            import { LlamaModel, getBackends } from 'llama-kv';
            const model = await LlamaModel.load({ path: process.env.MODEL, gpu: false });
            const r = await model.createContext({ contextSize: 256 }).complete('Once upon a time', { maxTokens: 8, temperature: 0 });
            console.log(JSON.stringify({ tokens: r.timings.generatedTokens, cpu: getBackends().find((b) => b.kind === 'cpu') }));
        `));
        expect(out.tokens).toBe(8);
        expect(out.cpu.available).toBe(true);
        expect(out.cpu.path).toContain(join('node_modules', 'llama-kv', 'prebuilds', platformKey, 'libggml-cpu-'));
        expect(out.cpu.variant).toBe(expectedX64Variant());
    });

    it('works through require', () => {
        const out = run('cjs.cjs', `
            const { LlamaModel } = require('llama-kv');
            LlamaModel.load({ path: process.env.MODEL, gpu: false })
                .then((m) => m.createContext({ contextSize: 256 }).complete('Hello', { maxTokens: 4, temperature: 0 }))
                .then((r) => console.log('tokens', r.timings.generatedTokens));
        `);
        expect(out.trim()).toBe('tokens 4');
    });

    it('works inside a worker thread', () => {
        writeFileSync(join(app, 'worker.mjs'), `
            import { parentPort } from 'node:worker_threads';
            import { LlamaModel } from 'llama-kv';
            const model = await LlamaModel.load({ path: process.env.MODEL, gpu: false });
            const r = await model.createContext({ contextSize: 256 }).complete('Once upon a time', { maxTokens: 5, temperature: 0 });
            model.dispose();
            parentPort.postMessage(r.timings.generatedTokens);
        `);
        const out = run('main.mjs', `
            import { Worker } from 'node:worker_threads';
            const w = new Worker(new URL('./worker.mjs', import.meta.url));
            w.on('message', (n) => console.log('worker tokens', n));
            w.on('error', (e) => { console.error(e); process.exit(1); });
        `);
        expect(out.trim()).toBe('worker tokens 5');
    });
});
