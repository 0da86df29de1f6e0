// On the device of LLAMA_KV_TEST_GPU (CI: Mesa's llvmpipe Vulkan device), loaded from its
// package folder: the backend table, offload, the memory report against llama.cpp's own log
// lines, and flash attention for every K/V pair. Written for any GPU: nothing here names
// llvmpipe.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { realpathSync } from 'node:fs';
import { getBackends, KV_CACHE_TYPES, LlamaContext, LlamaModel, type KvCacheType } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';
import { bufferLines as bufferLinesOf, captureLlamaLog, graphSplits } from '../support/llama-log.js';

const gpu = inject('gpu');
const MIB = 1024 * 1024;
const log = captureLlamaLog();
const logged = log.lines;
afterAll(() => log.stop());
const bufferLines = (what: 'model' | 'KV' | 'compute') => bufferLinesOf(logged, what);

describe(`the ${gpu.kind} backend from ${gpu.packageName}`, () => {
    it('is listed as available, loaded from the package folder, with its devices and their memory', () => {
        const b = getBackends().find((x) => x.kind === gpu.kind);
        expect(b, JSON.stringify(getBackends())).toMatchObject({ available: true, package: gpu.packageName });
        expect(realpathSync(b!.path!)).toBe(realpathSync(gpu.library));
        expect(b!.devices.length).toBeGreaterThan(0);
        for (const d of b!.devices) {
            expect(['gpu', 'igpu']).toContain(d.type);
            expect(d.totalBytes).toBeGreaterThan(0);
            expect(d.freeBytes).toBeGreaterThan(0);
            expect(d.freeBytes).toBeLessThanOrEqual(d.totalBytes);
        }
    });

    it.runIf(gpu.kind === 'cuda')('CUDA: the package has flash-attention kernels for every K/V pair (GGML_CUDA_FA_ALL_QUANTS)', () => {
        expect(getBackends().find((x) => x.kind === 'cuda')!.features.FA_ALL_QUANTS).toBe('1');
    });

    it("gpu 'auto' offloads every layer; the report's weights, KV and compute per device equal llama.cpp's log", async () => {
        logged.length = 0;
        const model = await LlamaModel.load({ path: fixtures.f16 });
        const ctx = new LlamaContext({ model, contextSize: 512, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' });
        await new Promise((r) => setTimeout(r, 20));
        const report = ctx.memoryReport();
        const device = report.devices.find((d) => d.kind === 'gpu');
        expect(device, JSON.stringify(report.devices)).toBeDefined();
        const lines = { model: bufferLines('model'), kv: bufferLines('KV'), compute: bufferLines('compute') };
        const close = (bytes: number, mib: number | undefined) => {
            expect(mib).toBeDefined();
            expect(Math.abs(bytes / MIB - mib!)).toBeLessThanOrEqual(0.005 + 1e-9);
        };
        close(device!.weightsBytes, lines.model.get(device!.name));
        close(device!.kvBytes, lines.kv.get(device!.name));
        close(device!.computeBytes, lines.compute.get(device!.name));
        // Pinned host buffers (<Backend>_Host) are host memory: counted on the CPU.
        const hostCompute = [...lines.compute].filter(([name]) => name.endsWith('_Host') || name === 'CPU').reduce((s, [, mib]) => s + mib, 0);
        const cpu = report.devices.find((d) => d.kind === 'cpu')!;
        expect(Math.abs(cpu.computeBytes / MIB - hostCompute)).toBeLessThanOrEqual(0.01);
        expect(device!.kvBytes).toBe(report.kv.bytes);
        const text = await ctx.complete('Once upon a time', { maxTokens: 8, temperature: 0 });
        expect(text.tokens.length).toBe(8);
        ctx.dispose();
        model.dispose();
    });
});

describe(`flash attention for every K/V pair on ${gpu.kind}`, () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16, gpu: gpu.kind });
    });
    afterAll(() => model.dispose());

    /** llama.cpp's "graph splits = N" of the context just created: more than the f16 pair's means ops left the device. */
    const splits = () => graphSplits(logged);
    let baseline = 0;

    const pairs = KV_CACHE_TYPES.flatMap((k) => KV_CACHE_TYPES.map((v) => [k, v] as [KvCacheType, KvCacheType]));
    it.each(pairs)("K %s / V %s (flashAttention 'auto'): runs on the device, or is warned about with the reason", async (k, v) => {
        if (baseline === 0) {
            logged.length = 0;
            new LlamaContext({ model, contextSize: 256 }).dispose();
            await new Promise((r) => setTimeout(r, 10));
            baseline = splits();
            expect(baseline).toBeGreaterThan(0);
        }
        logged.length = 0;
        const ctx = new LlamaContext({ model, contextSize: 256, cacheTypeK: k, cacheTypeV: v });
        const out = await ctx.complete('Once upon a time', { maxTokens: 2, temperature: 0 });
        expect(out.tokens.length).toBe(2);
        await new Promise((r) => setTimeout(r, 10));
        const warning = ctx.config.warnings.find((w) => w.code === 'FLASH_ATTENTION_KV_PAIR');
        const faOff = logged.some((l) => /Flash Attention not supported, set to disabled/.test(l));
        if (splits() > baseline || faOff) {
            expect(warning?.message, `${k}/${v}: ${splits()} splits (baseline ${baseline}), flash attention ${faOff ? 'turned off' : 'on'}`).toMatch(new RegExp(`${k}' with cacheTypeV '${v}`));
        } else {
            expect(warning, `${k}/${v} runs on the device but was warned about`).toBeUndefined();
        }
        ctx.dispose();
    });
});
