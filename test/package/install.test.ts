// The published packages, as an app gets them: `npm pack` of llama-kv (JavaScript, types,
// the native sources for a build from source, the demo vocabulary) and of the platform
// package @llama-kv/linux-x64 (npm/linux-x64 after `npm run prebuild -- --variant cpu`),
// installed into a fresh project with no compiler in PATH, then used through import,
// require without require(esm), a worker thread, the CLI's demo and its pull command.
//
// Run with `npm run test:package` (not part of `npm test`: it needs the prebuild).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureFixtureModel } from '../../lib/demo/models.js';
import { freePort, handshake } from '../support/rpc-wire.js';

const root = resolve(import.meta.dirname, '..', '..');
const platformKey = `${process.platform}-${process.arch}`;
const platformDir = join(root, 'npm', platformKey);
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
/** Every package the release publishes: llama-kv's optionalDependencies, one folder each in npm/. */
const released = readdirSync(join(root, 'npm')).filter((d) => existsSync(join(root, 'npm', d, 'package.json')));

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

/** npm's own CLI, run by this node. */
const npmCli = process.env.npm_execpath?.endsWith('npm-cli.js')
    ? process.env.npm_execpath
    : join(resolve(process.execPath, '..', '..'), 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
    return spawnSync(process.execPath, [npmCli, ...args], { cwd, encoding: 'utf8', env });
}

/** `npm pack` of a folder into dest, with npm's JSON report (files, sizes). */
function pack(dir: string, dest: string): { filename: string; size: number; unpackedSize: number; files: { path: string }[] } {
    const r = npm(['pack', '--json', '--pack-destination', dest], dir);
    if (r.status !== 0) throw new Error(`npm pack in ${dir} failed:\n${r.stdout}\n${r.stderr}`);
    const report = (JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[])[0];
    return { ...report, filename: join(dest, report.filename.replace(/^@/, '').replace('/', '-')) };
}

describe.runIf(process.platform === 'linux' && process.arch === 'x64')('the packed packages, installed without a compiler', () => {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-package-'));
    const app = join(work, 'app');
    const home = join(work, 'home');
    const bin = join(work, 'bin');
    let model = '';
    let main: ReturnType<typeof pack>;
    let platform: ReturnType<typeof pack>;
    let install = { ms: 0, log: '' };
    afterAll(() => rmSync(work, { recursive: true, force: true }));
    /** The app's environment: a fresh HOME (no fixture cache, no vocab), no compiler in PATH. */
    const appEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ HOME: home, PATH: bin, npm_config_update_notifier: 'false', MODEL: model, ...extra });

    beforeAll(async () => {
        if (!existsSync(join(platformDir, 'bin', 'llama_kv.node'))) {
            throw new Error(`no prebuild in ${platformDir}/bin: run \`npm run prebuild -- --variant cpu\` first`);
        }
        model = await ensureFixtureModel('tiny-q8_0', { dir: join(root, '.cache', 'models') });
        main = pack(root, work);
        platform = pack(platformDir, work);
        mkdirSync(app);
        mkdirSync(home);
        writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, version: '1.0.0' }));
        mkdirSync(bin);
        symlinkSync(process.execPath, join(bin, 'node'));
        symlinkSync('/bin/sh', join(bin, 'sh'));
        const started = performance.now();
        // The platform tarball satisfies llama-kv's optional dependency on it; the other optional
        // packages (other platforms, GPU backends) are skipped: wrong platform, or not published.
        const r = npm(['install', '--no-audit', '--no-fund', '--foreground-scripts', main.filename, platform.filename], app, appEnv());
        install = { ms: performance.now() - started, log: `${r.stdout}\n${r.stderr}` };
        if (r.status !== 0) throw new Error(`npm install failed (${r.status}):\n${install.log}`);
    }, 600_000);

    it('packs llama-kv as JavaScript, types and sources only, under 1 MiB, with its licenses and the demo vocabulary', () => {
        const files = main.files.map((f) => f.path);
        expect(files.filter((f) => /\.(node|so|so\.\d+|dylib|dll|gguf)$/.test(f))).toEqual([]);
        expect(files.some((f) => /^(build|test|prebuilds|npm|vendor\/llama\.cpp)\//.test(f) || f === 'binding.gyp' || f.endsWith('.map'))).toBe(false);
        expect(files).toEqual(expect.arrayContaining(['LICENSE', 'THIRD_PARTY_NOTICES.md', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/assets/ggml-vocab-llama-spm.gguf.gz']));
        expect(main.size).toBeLessThan(1024 * 1024);
        const manifest = JSON.parse(readFileSync(join(app, 'node_modules', 'llama-kv', 'package.json'), 'utf8'));
        expect(Object.keys(manifest.dependencies)).toEqual(['zod']);
        expect(Object.keys(manifest.optionalDependencies).sort()).toEqual(released.map((d) => `@llama-kv/${d}`).sort());
        expect(new Set(Object.values(manifest.optionalDependencies))).toEqual(new Set([version]));
        expect(manifest.peerDependenciesMeta).toEqual({ 'cmake-js': { optional: true }, 'node-addon-api': { optional: true } });
        process.stdout.write(`[package test] llama-kv: ${files.length} files, ${(main.size / 1024).toFixed(0)} KiB packed, ${(main.unpackedSize / 1024).toFixed(0)} KiB unpacked\n`);
    });

    it('packs @llama-kv/linux-x64 with the addon, ggml, every CPU variant and the licenses beside them', () => {
        const files = platform.files.map((f) => f.path);
        expect(files).toEqual(expect.arrayContaining(['bin/llama_kv.node', 'bin/libllama-kv-ggml-base.so.0', 'bin/libllama-kv-ggml.so.0', 'bin/llama-kv-rpc-server', 'bin/libggml-rpc.so', 'LICENSE', 'THIRD_PARTY_NOTICES.md', 'README.md']));
        expect(files.filter((f) => f.startsWith('bin/libggml-cpu-')).length).toBeGreaterThanOrEqual(10);
        const manifest = JSON.parse(readFileSync(join(platformDir, 'package.json'), 'utf8'));
        expect(manifest).toMatchObject({ name: `@llama-kv/${platformKey}`, version, os: ['linux'], cpu: ['x64'], libc: ['glibc'] });
        process.stdout.write(`[package test] @llama-kv/${platformKey}: ${files.length} files, ${(platform.size / 1048576).toFixed(1)} MiB packed\n`);
    });

    it('installs without compiling anything', () => {
        expect(install.log).not.toMatch(/building from source|cmake-js|\[llama-kv build\]/);
        expect(existsSync(join(app, 'node_modules', 'llama-kv', 'build'))).toBe(false);
        expect(existsSync(join(app, 'node_modules', 'cmake-js'))).toBe(false);
        expect(readdirSync(join(app, 'node_modules', '@llama-kv'))).toEqual([platformKey]);
        process.stdout.write(`[package test] npm install of the two tarballs took ${(install.ms / 1000).toFixed(1)} s\n`);
    });

    it('passes `npm publish --dry-run` for llama-kv and every platform package', () => {
        for (const tarball of [main.filename, platform.filename]) {
            const r = npm(['publish', '--dry-run', '--ignore-scripts', tarball], work);
            expect(r.status, `${tarball}\n${r.stderr}`).toBe(0);
            // A dry run without a login says so; any other warning (npm auto-correcting the manifest) fails.
            expect(r.stderr.split('\n').filter((l) => /npm (warn|error)/i.test(l) && !/logged in/.test(l))).toEqual([]);
        }
        for (const dir of released) {
            const manifest = JSON.parse(readFileSync(join(root, 'npm', dir, 'package.json'), 'utf8'));
            expect(manifest).toMatchObject({ name: `@llama-kv/${dir}`, version, license: 'MIT', repository: { type: 'git' }, homepage: expect.any(String), bugs: { url: expect.any(String) } });
            expect(manifest.os).toHaveLength(1);
            expect(manifest.cpu).toHaveLength(1);
            const r = npm(['publish', '--dry-run', '--ignore-scripts'], join(root, 'npm', dir));
            expect(r.status, `npm/${dir}\n${r.stderr}`).toBe(0);
            expect(r.stderr.split('\n').filter((l) => /npm (warn|error)/i.test(l) && !/logged in/.test(l))).toEqual([]);
        }
    });

    const run = (file: string, code: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) => {
        writeFileSync(join(app, file), code);
        return execFileSync(process.execPath, [...args, file], { cwd: app, encoding: 'utf8', env: appEnv(env) });
    };

    it('works through import: generation, and the CPU variant that matches this machine', () => {
        const out = JSON.parse(run('esm.mjs', `
            import { LlamaModel, getBackends } from 'llama-kv';
            const model = await LlamaModel.load({ path: process.env.MODEL, gpu: false });
            const r = await model.createContext({ contextSize: 256 }).complete('Once upon a time', { maxTokens: 8, temperature: 0 });
            console.log(JSON.stringify({ tokens: r.timings.generatedTokens, backends: getBackends() }));
        `));
        expect(out.tokens).toBe(8);
        const cpu = out.backends.find((b: { kind: string }) => b.kind === 'cpu');
        expect(cpu.available).toBe(true);
        expect(cpu.path).toContain(join('node_modules', '@llama-kv', platformKey, 'bin', 'libggml-cpu-'));
        expect(cpu.variant).toBe(expectedX64Variant());
        // Only packages that the release builds are ever named as installable.
        const named = out.backends.flatMap((b: { package?: string }) => (b.package ? [b.package] : []));
        expect(named.length).toBeGreaterThan(0);
        for (const name of named) expect(released.map((d) => `@llama-kv/${d}`)).toContain(name);
    });

    it('works through require, without require(esm) (Node 20.18 and Electron 30-34 semantics)', () => {
        const out = run('cjs.cjs', `
            const { LlamaModel, LlamaError } = require('llama-kv');
            LlamaModel.load({ path: process.env.MODEL, gpu: false })
                .then((m) => m.createContext({ contextSize: 256 }).complete('Hello', { maxTokens: 4, temperature: 0 }))
                .then((r) => console.log('tokens', r.timings.generatedTokens, typeof LlamaError));
        `, ['--no-experimental-require-module']);
        expect(out.trim()).toBe('tokens 4 function');
    });

    it('gives TypeScript CommonJS types for require and ESM types for import (node16 resolution)', () => {
        writeFileSync(join(app, 'types.cts'), `
            import kv = require('llama-kv');
            export const load: (p: string) => Promise<kv.LlamaModel> = (p) => kv.LlamaModel.load({ path: p });
            export const code: kv.LlamaError['code'] = 'BINDING_LOAD_FAILED';
        `);
        writeFileSync(join(app, 'types.mts'), `
            import { LlamaModel, type LlamaError } from 'llama-kv';
            export const load = (p: string): Promise<LlamaModel> => LlamaModel.load({ path: p });
            export const code: LlamaError['code'] = 'BINDING_LOAD_FAILED';
        `);
        const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
        const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'node16', '--moduleResolution', 'node16', 'types.cts', 'types.mts'], { cwd: app, encoding: 'utf8' });
        expect(r.status, r.stdout).toBe(0);
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

    it('runs the demo of the README: `npx llama-kv run -p Hello` with no vendor tree and a fresh HOME', () => {
        const r = spawnSync(process.execPath, [join(app, 'node_modules', '.bin', 'llama-kv'), 'run', '-p', 'Hello', '-n', '8', '--temp', '0'], {
            cwd: app,
            encoding: 'utf8',
            env: appEnv(),
        });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout.length).toBeGreaterThan('Hello'.length);
        expect(r.stderr).not.toMatch(/\n\s+at /);
        // The vocabulary came from the package, decompressed into the fixture cache of this HOME.
        expect(readdirSync(join(home, '.cache', 'llama-kv', 'models', 'vocab')).some((f) => f.endsWith('ggml-vocab-llama-spm.gguf'))).toBe(true);
    });

    it('serves this machine\'s CPU with `npx llama-kv rpc-server`, from the installed platform package', async () => {
        const port = await freePort();
        const child = spawn(process.execPath, [join(app, 'node_modules', '.bin', 'llama-kv'), 'rpc-server', '--port', String(port), '-t', '1'], { cwd: app, env: appEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (d) => (output += d));
        child.stderr.on('data', (d) => (output += d));
        try {
            expect(await handshake(port)).toEqual({ version: '6.0.0', devices: 1 });
            expect(output).toContain(join('node_modules', '@llama-kv', platformKey, 'bin', 'libggml-rpc.so'));
        } finally {
            child.kill('SIGTERM');
        }
        expect(await new Promise((r) => child.on('exit', r))).toBe(0);
    });

    it('says BINDING_LOAD_FAILED, naming the platform package and the build from source, when the platform package is missing', () => {
        const pkg = join(app, 'node_modules', '@llama-kv', platformKey);
        renameSync(pkg, `${pkg}.away`);
        try {
            const out = JSON.parse(run('missing.mjs', `
                import { LlamaModel, readGgufMetadata } from 'llama-kv';
                // Reading a header needs no native code.
                const header = await readGgufMetadata(process.env.MODEL);
                try {
                    await LlamaModel.load({ path: process.env.MODEL, gpu: false });
                    console.log(JSON.stringify({ loaded: true }));
                } catch (e) {
                    console.log(JSON.stringify({ code: e.code, message: e.message, tensors: header.tensors.length }));
                }
            `));
            expect(out.code).toBe('BINDING_LOAD_FAILED');
            expect(out.tensors).toBeGreaterThan(0);
            expect(out.message).toContain(`@llama-kv/${platformKey}@${version}`);
            expect(out.message).toContain('npm rebuild llama-kv --build-from-source');
            expect(out.message).not.toMatch(/\n\s+at /);
        } finally {
            renameSync(`${pkg}.away`, pkg);
        }
    });
    it('pulls a model from a local server with `npx llama-kv pull`, resuming a cut download, and generates with it', async () => {
        const bytes = readFileSync(model);
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        let requests: { method?: string; range?: string }[] = [];
        let cut = true;
        const server: Server = createServer((req, res) => {
            requests.push({ method: req.method, range: req.headers.range });
            const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
            const start = m ? Number(m[1]) : 0;
            const headers = { 'accept-ranges': 'bytes', etag: `"${sha256.slice(0, 16)}"`, 'x-linked-etag': `"${sha256}"` };
            if (m) res.writeHead(206, { ...headers, 'content-length': bytes.length - start, 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` });
            else res.writeHead(200, { ...headers, 'content-length': bytes.length });
            // The first request is cut off half-way: the second must resume with a Range.
            if (cut && req.method === 'GET') {
                cut = false;
                res.write(bytes.subarray(0, bytes.length >> 1), () => res.destroy());
            } else {
                res.end(bytes.subarray(start));
            }
        });
        await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
        try {
            const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/models/tiny.gguf`;
            const dir = join(work, 'pulled');
            const cli = join(app, 'node_modules', '.bin', 'llama-kv');
            const pull = () => new Promise<{ status: number | null; stdout: string; stderr: string }>((done) => {
                const child = spawn(process.execPath, [cli, 'pull', url, '--dir', dir], { cwd: app, env: appEnv() });
                let stdout = '';
                let stderr = '';
                child.stdout.on('data', (d) => (stdout += d));
                child.stderr.on('data', (d) => (stderr += d));
                child.on('close', (status) => done({ status, stdout, stderr }));
            });
            // The cut is retried within the one call, resuming where the partial file ends.
            const second = await pull();
            expect(second.status, second.stderr).toBe(0);
            const gets = requests.filter((r) => r.method === 'GET').map((r) => r.range);
            expect(gets).toHaveLength(2);
            expect(gets[0]).toBeUndefined();
            const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1] ?? '')?.[1]);
            expect(resumedAt).toBeGreaterThan(0);
            expect(resumedAt).toBeLessThanOrEqual(bytes.length >> 1);
            const path = second.stdout.trim();
            expect(createHash('sha256').update(readFileSync(path)).digest('hex')).toBe(sha256);
            expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);
            // Already there: no download at all (a HEAD-or-GET check at most), same path.
            requests = [];
            const third = await pull();
            expect(third.stdout.trim()).toBe(path);
            // At most a look at the size: no body of the file is sent again.
            expect(requests.filter((r) => r.method === 'GET' && r.range !== `bytes=${bytes.length}-`)).toEqual([]);
            const out = run('pulled.mjs', `
                import { LlamaModel } from 'llama-kv';
                const model = await LlamaModel.load({ path: process.env.PULLED, gpu: false });
                const r = await model.createContext({ contextSize: 128 }).complete('Hello', { maxTokens: 2, temperature: 0 });
                console.log(r.timings.generatedTokens);
            `, [], { PULLED: path });
            expect(out.trim()).toBe('2');
        } finally {
            server.close();
        }
    });

    it("vets a model in a utility process inside Electron's main process (a stand-in 'electron' module over child_process.fork)", () => {
        // What the installed package sees in Electron's main process: process.versions.electron,
        // process.type 'browser' and require('electron').utilityProcess. The stand-in forks with
        // child_process and, like a utility process, does not exit when it runs out of work.
        const electron = join(app, 'node_modules', 'electron');
        mkdirSync(electron);
        writeFileSync(join(electron, 'package.json'), JSON.stringify({ name: 'electron', version: '34.0.0', main: 'index.js' }));
        writeFileSync(join(electron, 'keep-alive.cjs'), 'setInterval(() => {}, 1 << 30);\n');
        writeFileSync(join(electron, 'index.js'), `
            const { fork } = require('node:child_process');
            const { EventEmitter } = require('node:events');
            exports.forks = [];
            exports.utilityProcess = {
                fork(modulePath, args, options) {
                    exports.forks.push({ modulePath, args, stdio: options.stdio, runAsNode: options.env.ELECTRON_RUN_AS_NODE ?? null });
                    const child = fork(modulePath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: options.env, execArgv: ['--require', require.resolve('./keep-alive.cjs')] });
                    const up = Object.assign(new EventEmitter(), { stdout: child.stdout, stderr: child.stderr, kill: () => child.kill('SIGKILL') });
                    child.on('exit', (code, signal) => up.emit('exit', code ?? (signal ? 134 : 0)));
                    return up;
                },
            };
        `);
        try {
            const out = JSON.parse(run('utility.cjs', `
                Object.defineProperty(process.versions, 'electron', { value: '34.0.0', enumerable: true });
                process.type = 'browser';
                const { inspectModel } = require('llama-kv');
                inspectModel(process.env.MODEL, { timeoutMs: 60000 }).then((r) => {
                    console.log(JSON.stringify({ arch: r.metadata.architecture, forks: require('electron').forks }));
                }, (e) => console.log(JSON.stringify({ error: e.message })));
            `));
            expect(out.error).toBeUndefined();
            expect(out.arch).toBe('llama');
            expect(out.forks).toEqual([{ modulePath: expect.stringMatching(/inspect-model-child\.js$/), args: [model], stdio: 'pipe', runAsNode: null }]);
        } finally {
            rmSync(electron, { recursive: true, force: true });
        }
    });

    /** A fenced code block of docs/electron.md, by its info string (```json electron-builder). */
    const electronDoc = (label: string): string => {
        const doc = readFileSync(join(root, 'docs', 'electron.md'), 'utf8');
        const m = new RegExp('```\\w+ ' + label + '\\n([\\s\\S]*?)```').exec(doc);
        if (!m) throw new Error(`docs/electron.md has no ${label} block`);
        return m[1];
    };

    it('loads from an Electron archive made with @electron/asar with docs/electron.md\'s Forge unpack setting, through the app.asar.unpacked rewrite', async () => {
        const forge = { exports: {} as { packagerConfig: { asar: { unpack: string } } } };
        new Function('module', electronDoc('forge'))(forge);
        const builder = JSON.parse(electronDoc('electron-builder')) as { asarUnpack: string[] };
        expect(builder.asarUnpack).toEqual(['node_modules/llama-kv/**', 'node_modules/@llama-kv/**']);
        const asar = createRequire(join(root, 'package.json'))('@electron/asar') as {
            createPackageWithOptions(src: string, dest: string, options: { unpack: string }): Promise<void>;
            listPackage(archive: string, options: { isPack: boolean }): string[];
        };
        const src = join(work, 'electron-app');
        const resources = join(work, 'resources');
        mkdirSync(resources);
        cpSync(join(app, 'node_modules'), join(src, 'node_modules'), { recursive: true, verbatimSymlinks: true });
        writeFileSync(join(src, 'package.json'), JSON.stringify({ name: 'electron-app', version: '1.0.0', main: 'main.js' }));
        const archive = join(resources, 'app.asar');
        await asar.createPackageWithOptions(src, archive, forge.exports.packagerConfig.asar);
        const inArchive = join(archive, 'node_modules', '@llama-kv', platformKey, 'bin');
        // The archive lists the unpacked files; their bytes are beside it, in app.asar.unpacked.
        expect(asar.listPackage(archive, { isPack: true }).some((l) => l.includes('llama_kv.node') && l.includes('unpack'))).toBe(true);
        expect(existsSync(join(`${archive}.unpacked`, 'node_modules', '@llama-kv', platformKey, 'bin', 'llama_kv.node'))).toBe(true);
        // Native code is handed paths inside the archive, as Electron's require.resolve gives them.
        const out = JSON.parse(run('asar.mjs', `
            import { LlamaModel, getBackends } from 'llama-kv';
            const model = await LlamaModel.load({ path: process.env.MODEL, gpu: false });
            const r = await model.createContext({ contextSize: 128 }).complete('Hello', { maxTokens: 3, temperature: 0 });
            console.log(JSON.stringify({ tokens: r.timings.generatedTokens, cpu: getBackends().find((b) => b.kind === 'cpu') }));
        `, [], { LLAMA_KV_ADDON_PATH: join(inArchive, 'llama_kv.node') }));
        expect(out.tokens).toBe(3);
        expect(out.cpu.path).toContain(join('resources', 'app.asar.unpacked', 'node_modules', '@llama-kv', platformKey, 'bin', 'libggml-cpu-'));
    });

    it('gives @electron/rebuild nothing to compile', async () => {
        const { rebuild } = (await import(pathToFileURL(createRequire(join(root, 'package.json')).resolve('@electron/rebuild')).href)) as {
            rebuild(o: { buildPath: string; electronVersion: string; arch: string }): Promise<void> & { lifecycle: NodeJS.EventEmitter };
        };
        const found = async (buildPath: string) => {
            let modules: string[] | undefined;
            const r = rebuild({ buildPath, electronVersion: '34.0.0', arch: 'x64' });
            r.lifecycle.on('modules-found', (m: string[]) => (modules = m));
            await r.catch(() => undefined); // a module to rebuild fails here (no Electron headers offline); we want the list
            return modules;
        };
        expect(await found(app)).toEqual([]);
        // The check can fail: a package with a binding.gyp, as llama-kv had, is found.
        const control = join(work, 'rebuild-control');
        mkdirSync(join(control, 'node_modules', 'old-native'), { recursive: true });
        writeFileSync(join(control, 'package.json'), JSON.stringify({ name: 'control', version: '1.0.0', dependencies: { 'old-native': '1.0.0' } }));
        writeFileSync(join(control, 'node_modules', 'old-native', 'package.json'), JSON.stringify({ name: 'old-native', version: '1.0.0' }));
        writeFileSync(join(control, 'node_modules', 'old-native', 'binding.gyp'), JSON.stringify({ targets: [{ target_name: 'x', type: 'none' }] }));
        expect(await found(control)).toEqual(['old-native']);
    }, 120_000);

    it('builds from source only when asked: `npm rebuild llama-kv` does nothing, `--build-from-source` says what it needs', () => {
        const plain = npm(['rebuild', 'llama-kv', '--foreground-scripts'], app, appEnv());
        expect(plain.status, plain.stderr).toBe(0);
        expect(`${plain.stdout}${plain.stderr}`).not.toMatch(/building from source/);
        const asked = npm(['rebuild', 'llama-kv', '--build-from-source', '--foreground-scripts'], app, appEnv());
        const log = `${asked.stdout}${asked.stderr}`;
        expect(asked.status).not.toBe(0);
        expect(log).toContain('[llama-kv install] building from source (--build-from-source)');
        // Here there are no build tools: the hook says which, before fetching any source.
        expect(log).toContain('needs the packages cmake-js and node-addon-api');
        expect(existsSync(join(app, 'node_modules', 'llama-kv', 'vendor', 'llama.cpp'))).toBe(false);
    });
});
