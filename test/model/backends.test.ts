// Backends: what getBackends() reports, how `gpu` picks one, and that GPU libraries
// that cannot load (missing driver library, not a library at all, an init that fails)
// are reported with their reason and never take the process down. Backends load once
// per process, so the scenarios with their own LLAMA_KV_BACKEND_PATH run in children.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getBackends, LlamaConfigError, LlamaError, LlamaModel } from '../../lib/index.js';
import { root } from '../support/global-setup.js';
import { fixtures } from '../support/fixtures.js';

const dist = join(root, 'dist', 'index.js');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

/** Runs an ES module script with `dist` imported as `kv`; returns its JSON output. */
function runChild(script: string, env: Record<string, string> = {}): unknown {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `import * as kv from ${JSON.stringify(dist)};\n${script}`], {
        encoding: 'utf8',
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out.trim().split('\n').pop()!);
}

describe('getBackends', () => {
    it('reports the CPU backend this build loaded, with its device and features', () => {
        const backends = getBackends();
        const cpu = backends.find((b) => b.kind === 'cpu')!;
        expect(cpu.available).toBe(true);
        expect(cpu.name).toBe('CPU');
        expect(cpu.path).toMatch(/ggml-cpu/);
        // A build from source: one CPU library for this machine, on x86 compiled as the ggml variant that suits it.
        expect(cpu.variant).toMatch(/^native( \((x64|sse42|sandybridge|ivybridge|piledriver|haswell|skylakex|cannonlake|cascadelake|icelake|cooperlake|zen4|alderlake|sapphirerapids)\))?$/);
        expect(cpu.devices).toHaveLength(1);
        expect(cpu.devices[0].type).toBe('cpu');
        expect(cpu.devices[0].totalBytes).toBeGreaterThan(0);
        expect(cpu.features.AVX2 ?? cpu.features.NEON).toBe('1');
        // Available backends come first.
        expect(backends[0].available).toBe(true);
    });

    it('lists each GPU backend of the platform as unavailable, with the reason and the fix', () => {
        if (process.platform !== 'linux' || process.arch !== 'x64') return;
        const gpu = getBackends().filter((b) => b.kind !== 'cpu');
        expect(gpu.map((b) => b.kind).sort()).toEqual(['cuda', 'rocm', 'vulkan']);
        for (const b of gpu) {
            expect(b.available).toBe(false);
            expect(b.package).toBe(`@llama-kv/linux-x64-${b.kind}`);
            expect(b.reason).toBe(`the package ${b.package} is not installed`);
            expect(b.fix).toBe(`npm install ${b.package}@${version}`);
        }
    });
});

describe('gpu selection', () => {
    it("'auto' runs on the CPU with one warning through the logger, however many models load", () => {
        const result = runChild(`
            const warnings = [];
            kv.setLogger((level, message) => { if (level === 'warn') warnings.push(message); });
            const a = await kv.LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)} });
            const b = await kv.LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)}, gpu: 'auto' });
            const quiet = await kv.LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)}, gpu: false });
            const ctx = a.createContext({ contextSize: 256 });
            const r = await ctx.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
            console.log(JSON.stringify({ warnings, tokens: r.timings.generatedTokens }));
        `) as { warnings: string[]; tokens: number };
        expect(result.tokens).toBe(4);
        const gpuWarnings = result.warnings.filter((w) => w.includes('no GPU backend'));
        expect(gpuWarnings).toHaveLength(1);
        expect(gpuWarnings[0]).toMatch(/running on the CPU/);
        expect(gpuWarnings[0]).toMatch(/gpu: false/);
    });

    it('an explicit backend that is not available throws BACKEND_UNAVAILABLE with the reason and the fix', async () => {
        const error = await LlamaModel.load({ path: fixtures.f16, gpu: 'cuda' }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LlamaError);
        expect((error as LlamaError).code).toBe('BACKEND_UNAVAILABLE');
        if (process.platform === 'linux' && process.arch === 'x64') {
            expect((error as Error).message).toMatch(/gpu: 'cuda' was requested.*@llama-kv\/linux-x64-cuda is not installed; fix: npm install @llama-kv\/linux-x64-cuda@\d+\.\d+\.\d+/);
        }
        const metal = await LlamaModel.load({ path: fixtures.f16, gpu: 'metal' }).catch((e: unknown) => e);
        expect((metal as LlamaError).code).toBe('BACKEND_UNAVAILABLE');
    });

    it('rejects unknown devices, gpuLayers without a GPU and bad tensor overrides with config errors', async () => {
        const cases: [Parameters<typeof LlamaModel.load>[0], RegExp][] = [
            [{ path: fixtures.f16, devices: ['CUDA7'] }, /no device named 'CUDA7'; available devices: CPU/],
            [{ path: fixtures.f16, gpu: false, gpuLayers: 8 }, /gpuLayers: 8 needs a GPU/],
            [{ path: fixtures.f16, tensorOverrides: [{ pattern: 'ffn_(up', bufferType: 'CPU' }] }, /tensorOverrides\[0\]\.pattern is not a valid regular expression/],
            [{ path: fixtures.f16, tensorOverrides: [{ pattern: 'ffn', bufferType: 'CUDA0' }] }, /unknown buffer type 'CUDA0'; the loaded backends offer: .*CPU/],
            [{ path: fixtures.f16, tensorSplit: [1, 1] }, /tensorSplit has 2 entries but the model is offloaded to 0 device/],
            [{ path: fixtures.f16, gpu: 'opencl' as never }, /one of 'auto', 'cuda', 'rocm', 'vulkan', 'metal' or false/],
            [{ path: fixtures.f16, cpuMoeLayers: -1 }, /cpuMoeLayers/],
            [{ path: fixtures.f16, devices: ['CPU', 'cpu'] }, /devices: 'cpu' is listed twice/],
            [{ path: fixtures.f16, tensorOverrides: [{ pattern: 'a'.repeat(5000), bufferType: 'CPU' }] }, /longer than 4096 characters/],
        ];
        for (const [options, message] of cases) {
            const error = await LlamaModel.load(options).catch((e: unknown) => e);
            expect(error, JSON.stringify(options)).toBeInstanceOf(LlamaConfigError);
            expect((error as Error).message).toMatch(message);
        }
    });

    it('devices: [] or naming the CPU keeps the model on the CPU', async () => {
        for (const devices of [[], ['CPU'], ['cpu']]) {
            const model = await LlamaModel.load({ path: fixtures.f16, devices });
            const ctx = model.createContext({ contextSize: 256 });
            expect(ctx.memoryReport().devices.map((d) => d.name)).toEqual(['CPU']);
            model.dispose();
        }
    });
});

describe('broken GPU backend libraries', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llama-kv-broken-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('are reported with the loader\'s reason, and the CPU keeps working', () => {
        // libggml-cuda.so needs libcudart.so.99, which is gone (the usual "no CUDA runtime");
        // libggml-hip.so loads but its ggml_backend_init returns NULL;
        // libggml-vulkan.so is not a library at all.
        writeFileSync(join(dir, 'empty.c'), 'int llama_kv_fake_cudart;\n');
        writeFileSync(join(dir, 'cuda.c'), 'extern int llama_kv_fake_cudart; int ggml_backend_score(void) { return llama_kv_fake_cudart + 1; }\n');
        writeFileSync(join(dir, 'hip.c'), 'int ggml_backend_score(void) { return 1; } void * ggml_backend_init(void) { return 0; }\n');
        const cc = (args: string[]) => execFileSync('cc', args, { cwd: dir, stdio: 'pipe' });
        cc(['-shared', '-fPIC', '-o', 'libcudart.so.99', '-Wl,-soname,libcudart.so.99', 'empty.c']);
        cc(['-shared', '-fPIC', '-o', 'libggml-cuda.so', 'cuda.c', join(dir, 'libcudart.so.99')]);
        cc(['-shared', '-fPIC', '-o', 'libggml-hip.so', 'hip.c']);
        unlinkSync(join(dir, 'libcudart.so.99'));
        writeFileSync(join(dir, 'libggml-vulkan.so'), Buffer.from('this is not an ELF file, but it has the right name\n'.repeat(20)));

        const result = runChild(`
            const warnings = [];
            kv.setLogger((level, message) => { if (level === 'warn') warnings.push(message); });
            const backends = kv.getBackends().map((b) => ({ kind: b.kind, available: b.available, reason: b.reason, fix: b.fix }));
            const cuda = await kv.LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)}, gpu: 'cuda' }).then(() => null, (e) => ({ code: e.code, message: e.message }));
            const model = await kv.LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)} });
            const r = await model.createContext({ contextSize: 256 }).complete('Once upon a time', { maxTokens: 4, temperature: 0 });
            console.log(JSON.stringify({ backends, cuda, tokens: r.timings.generatedTokens, warnings }));
        `, { LLAMA_KV_BACKEND_PATH: dir }) as {
            backends: { kind: string; available: boolean; reason?: string; fix?: string }[];
            cuda: { code: string; message: string } | null;
            tokens: number;
            warnings: string[];
        };
        const by = (kind: string) => result.backends.find((b) => b.kind === kind)!;
        expect(by('cpu').available).toBe(true);
        expect(by('cuda').available).toBe(false);
        expect(by('cuda').reason).toMatch(/libggml-cuda\.so failed to load: .*libcudart\.so\.99: cannot open shared object file/);
        expect(by('cuda').fix).toMatch(/install the CUDA runtime that provides libcudart\.so\.99/);
        expect(by('rocm').reason).toMatch(/libggml-hip\.so failed to load: .*ggml_backend_init returned NULL/);
        expect(by('vulkan').reason).toMatch(/libggml-vulkan\.so failed to load: .*(invalid ELF header|file too short)/);
        expect(result.cuda?.code).toBe('BACKEND_UNAVAILABLE');
        expect(result.cuda?.message).toMatch(/libcudart\.so\.99.*fix: install the CUDA runtime/);
        expect(result.tokens).toBe(4);
        expect(result.warnings.filter((w) => w.includes('no GPU backend'))).toHaveLength(1);
        expect(result.warnings.find((w) => w.includes('no GPU backend'))).toMatch(/CUDA: .*libcudart\.so\.99/);
    });

    /** A well-formed ggml backend named CUDA with no device (what a CUDA backend reports when the driver sees no GPU). */
    function buildNoDeviceBackend(out: string): void {
        const ggml = join(root, 'vendor', 'llama.cpp', 'ggml');
        writeFileSync(join(dir, 'nodevice.c'), `
            #include "ggml-backend-impl.h"
            static const char * name(ggml_backend_reg_t reg) { (void) reg; return "CUDA"; }
            static size_t count(ggml_backend_reg_t reg) { (void) reg; return 0; }
            static struct ggml_backend_reg reg = { GGML_BACKEND_API_VERSION, { name, count, 0, 0 }, 0 };
            ggml_backend_reg_t ggml_backend_init(void) { return &reg; }
        `);
        mkdirSync(out, { recursive: true });
        execFileSync('cc', ['-shared', '-fPIC', '-I', join(ggml, 'include'), '-I', join(ggml, 'src'), '-o', join(out, 'libggml-cuda.so'), join(dir, 'nodevice.c')], { stdio: 'pipe' });
    }

    it('a backend that loads but finds no device is reported as such, and not used', () => {
        const noDevice = join(dir, 'nodevice');
        buildNoDeviceBackend(noDevice);
        const result = runChild(`
            const cuda = kv.getBackends().find((b) => b.kind === 'cuda');
            const explicit = await kv.LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)}, gpu: 'cuda' }).then(() => null, (e) => e.code + ': ' + e.message);
            const auto = await kv.LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)} });
            const devices = auto.createContext({ contextSize: 256 }).memoryReport().devices.map((d) => d.name);
            console.log(JSON.stringify({ cuda, explicit, devices }));
        `, { LLAMA_KV_BACKEND_PATH: noDevice }) as { cuda: { available: boolean; path: string; reason: string; fix: string }; explicit: string; devices: string[] };
        expect(result.cuda.available).toBe(false);
        expect(result.cuda.path).toBe(join(noDevice, 'libggml-cuda.so'));
        expect(result.cuda.reason).toMatch(/the CUDA backend loaded from .*libggml-cuda\.so but found no device/);
        expect(result.cuda.fix).toMatch(/nvidia-smi/);
        expect(result.explicit).toMatch(/^BACKEND_UNAVAILABLE: .*found no device; fix: check the NVIDIA driver/);
        expect(result.devices).toEqual(['CPU']);
    });

    it('never loads backend libraries from the current directory', () => {
        // llama_backend_init() and ggml_backend_load_all() would look there (and in node's folder).
        const cwd = join(dir, 'cwd');
        buildNoDeviceBackend(cwd);
        const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
            import * as kv from ${JSON.stringify(dist)};
            const model = await kv.LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)} });
            await model.createContext({ contextSize: 256 }).complete('Hi', { maxTokens: 2 });
            console.log(JSON.stringify(kv.getBackends().find((b) => b.kind === 'cuda')));
        `], { cwd, encoding: 'utf8', env: { ...process.env, LLAMA_KV_BACKEND_PATH: '' } });
        const cuda = JSON.parse(out.trim()) as { available: boolean; path?: string; reason: string };
        expect(cuda.path).toBeUndefined();
        expect(cuda.reason).toMatch(/not installed/);
    });

    // A truncated library (an interrupted download or copy): glibc's dlopen maps the segments
    // its headers describe and would take the process down with SIGBUS on the first page past
    // the end; the file is checked first (native/library_file.cpp). The corpus cuts a real
    // backend library (this build's CPU one, renamed) at each part of its ELF layout.
    const real = readFileSync(getBackends().find((b) => b.kind === 'cpu')!.path!);
    const header = (bytes: Buffer) => ({ phoff: Number(bytes.readBigUInt64LE(32)), phnum: bytes.readUInt16LE(56), shoff: Number(bytes.readBigUInt64LE(40)) });
    const elf = header(real);
    const withHeader = (edit: (b: Buffer) => void) => {
        const b = Buffer.from(real);
        edit(b);
        return b;
    };
    const corpus: [string, Buffer, RegExp][] = [
        ['empty', Buffer.alloc(0), /file too short|truncated/],
        ['3 bytes of the ELF magic', real.subarray(0, 3), /truncated|file too short|invalid ELF header/],
        ['cut inside the ELF header (40 bytes)', real.subarray(0, 40), /truncated: it has 40 bytes/],
        ['the ELF header only (64 bytes)', real.subarray(0, 64), /truncated: it has 64 bytes, but its program headers/],
        ['cut after the program headers', real.subarray(0, elf.phoff + elf.phnum * 56), /truncated: .* its loadable segments/],
        ['cut at 4 KiB', real.subarray(0, 4096), /truncated: it has 4096 bytes/],
        ['cut in half', real.subarray(0, real.length >> 1), /truncated: .* loadable segments/],
        ['one byte short', real.subarray(0, real.length - 1), /truncated: .* section headers/],
        ['program headers said to be far past the end', withHeader((b) => b.writeBigUInt64LE(2n ** 40n, 32)), /truncated: .* program headers/],
        ['65535 program headers', withHeader((b) => b.writeUInt16LE(0xffff, 56)), /truncated: .* program headers/],
        ['section headers past the end', withHeader((b) => b.writeBigUInt64LE(BigInt(elf.shoff + real.length), 40)), /truncated: .* section headers/],
        // Offsets whose sum with a length wraps past 2^64 (it must not come out small and pass).
        ['a loadable segment offset that wraps', withHeader((b) => {
            for (let i = 0; i < elf.phnum; i++) {
                const at = elf.phoff + i * 56;
                if (b.readUInt32LE(at) === 1 && b.readBigUInt64LE(at + 32) > 0n) return void b.writeBigUInt64LE(2n ** 64n - 1n, at + 8); // PT_LOAD with bytes
            }
        }), /truncated: .* loadable segments reach byte 18446744073709551615/],
        ['a section header offset that wraps', withHeader((b) => b.writeBigUInt64LE(2n ** 64n - 1n, 40)), /truncated: .* section headers reach byte 18446744073709551615/],
    ];
    // The corpus is of an x86-64 ELF file.
    it.runIf(process.platform === 'linux' && process.arch === 'x64').each(corpus)('a GPU backend library %s is skipped with its reason; the CPU runs', (_what, bytes, reason) => {
        const folder = mkdtempSync(join(dir, 'truncated-'));
        writeFileSync(join(folder, 'libggml-vulkan.so'), bytes);
        const result = runChild(`
            const vulkan = kv.getBackends().find((b) => b.kind === 'vulkan');
            const model = await kv.LlamaModel.load({ path: ${JSON.stringify(fixtures.f16)} });
            const r = await model.createContext({ contextSize: 256 }).complete('Once', { maxTokens: 2, temperature: 0 });
            console.log(JSON.stringify({ vulkan, tokens: r.tokens.length }));
        `, { LLAMA_KV_BACKEND_PATH: folder }) as { vulkan: { available: boolean; reason: string; fix: string }; tokens: number };
        expect(result.vulkan.available).toBe(false);
        expect(result.vulkan.reason).toContain(`${join(folder, 'libggml-vulkan.so')} failed to load: `);
        expect(result.vulkan.reason).toMatch(reason);
        expect(result.tokens).toBe(2);
    });
});
