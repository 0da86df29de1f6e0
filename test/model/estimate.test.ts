import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuExtraBufferTypes } from '../../lib/backends/backends.js';
import { estimateMemory, LlamaContext, LlamaModel, readGgufMetadata, type GgufMetadata, type KvCacheType, type MemoryReport } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

const pairs: [KvCacheType, KvCacheType][] = [
    ['f16', 'f16'], ['q8_0', 'q8_0'], ['q8_0', 'q4_0'], ['q4_0', 'q4_0'],
    ['q5_1', 'q5_0'], ['q4_1', 'iq4_nl'], ['bf16', 'bf16'], ['f32', 'f32'],
];
const contextSizes = [256, 1000, 3000, 8192];
const parallels = [1, 2, 3, 4];

/**
 * The header-level weights: equal to the live figure where the header says exact (no extra
 * buffer type of this CPU can take a weight of the model), else above it with the reason.
 */
function expectHeaderWeights(est: Awaited<ReturnType<typeof estimateMemory>>, live: MemoryReport, where: string): void {
    if (est.exact.weights) {
        expect(est.weights.bytes, where).toBe(live.weights.bytes);
        expect(live.weights.allocatedBytes === 0 || live.weights.mappedBytes === 0, `${where}: exact, so nothing was both mapped and copied`).toBe(true);
    } else {
        expect(est.weights.bytes, where).toBeGreaterThanOrEqual(live.weights.bytes);
        expect(est.notes.join('\n'), where).toMatch(/weights are approximate .*extra buffer types/);
    }
}

describe.each([
    ['f16', () => fixtures.f16],
    ['q8_0', () => fixtures.q8_0],
    ['q4_0', () => fixtures.q4_0],
])('estimateMemory on the %s fixture', (_name, path) => {
    let model: LlamaModel;
    let header: GgufMetadata;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: path() });
        header = await readGgufMetadata(path());
    });
    afterAll(() => model.dispose());

    it.each(pairs)('K %s / V %s: header KV, simulated weights, compute and total equal the live context to the byte', async (k, v) => {
        const worstCompute: number[] = [];
        for (const contextSize of contextSizes) {
            for (const parallel of parallels) {
                const options = { contextSize, parallel, cacheTypeK: k, cacheTypeV: v };
                const ctx = new LlamaContext({ model, ...options, threads: 1 });
                const live = ctx.memoryReport();
                const est = await estimateMemory({ model: header, ...options });
                const sim = await estimateMemory({ model: path(), ...options, simulate: true });
                const where = `${k}/${v} contextSize ${contextSize} parallel ${parallel}`;
                expect(est.config.contextSize, where).toBe(ctx.config.contextSize);
                expect([est.config.batchSize, est.config.ubatchSize], where).toEqual([ctx.config.batchSize, ctx.config.ubatchSize]);
                expect(est.kv.k.bytes, where).toBe(live.kv.k.bytes);
                expect(est.kv.v.bytes, where).toBe(live.kv.v.bytes);
                expect(est.kv.bytes, where).toBe(live.kv.bytes);
                expect(est.kv.cells, where).toBe(live.kv.cells);
                expectHeaderWeights(est, live, where);
                expect(est.output.bytes, where).toBe(live.output.bytes);
                expect(est.exact).toEqual({ kv: true, weights: est.exact.weights, loras: true, compute: false, output: true });
                expect(sim.compute.bytes, where).toBe(live.compute.bytes);
                expect(sim.kv.bytes, where).toBe(live.kv.bytes);
                expect(sim.weights, where).toEqual(live.weights);
                expect(sim.output.bytes, where).toBe(live.output.bytes);
                expect(sim.total.bytes, where).toBe(live.total.bytes);
                expect(sim.source.compute).toBe('simulate');
                worstCompute.push(Math.abs(est.compute.bytes - live.compute.bytes) / live.compute.bytes);
                ctx.dispose();
            }
        }
        // The header-level compute figure is approximate: within 15% of the live one.
        expect(Math.max(...worstCompute)).toBeLessThan(0.15);
    });

    it('compute stays within 15% without flash attention, where attention scores dominate', async () => {
        for (const contextSize of [512, 4096, 16384]) {
            for (const ubatchSize of [128, 512]) {
                const options = { contextSize, ubatchSize, flashAttention: 'off' as const };
                const ctx = new LlamaContext({ model, ...options, threads: 1 });
                const live = ctx.memoryReport().compute.bytes;
                const est = (await estimateMemory({ model: header, ...options })).compute.bytes;
                console.log(`compute, flash attention off, contextSize ${contextSize}, ubatch ${ubatchSize}: live ${live}, header estimate ${est} (${(((est - live) / live) * 100).toFixed(1)}%)`);
                expect(Math.abs(est - live) / live).toBeLessThan(0.15);
                ctx.dispose();
            }
        }
    });
});

describe.each([
    ['f16', () => fixtures.f16],
    ['q8_0', () => fixtures.q8_0],
    ['q4_0', () => fixtures.q4_0],
])('weights of the %s fixture per buffer type, on whatever CPU this is', (_name, path) => {
    it.each([
        ['mapped', { useMmap: true, repack: true }],
        ['read', { useMmap: false, repack: true }],
        ['mapped, repack: false', { useMmap: true, repack: false }],
        ['read, repack: false', { useMmap: false, repack: false }],
    ] as const)('%s: simulate equals the live buffers to the byte; the header is exact or says why not', async (_label, load) => {
        const model = await LlamaModel.load({ path: path(), ...load });
        try {
            const ctx = model.createContext({ contextSize: 512, threads: 1 });
            const live = ctx.memoryReport();
            const sim = await estimateMemory({ model: path(), contextSize: 512, simulate: true, ...load });
            const est = await estimateMemory({ model: path(), contextSize: 512, ...load });
            expect(sim.weights).toEqual(live.weights);
            expect(sim.total.bytes).toBe(live.total.bytes);
            expectHeaderWeights(est, live, _label);
            const file = (await readGgufMetadata(path())).tensors;
            const tensorBytes = file.reduce((s, t) => s + t.byteSize, 0);
            // Each tensor is in exactly one buffer.
            expect(live.weights.byBufferType.reduce((s, b) => s + (b.tensors ?? 0), 0)).toBe(file.length);
            const mapped = live.weights.byBufferType.filter((b) => b.mapped);
            expect(mapped.map((b) => b.bufferType)).toEqual(load.useMmap ? ['CPU_Mapped'] : []);
            if (!load.repack) {
                // No extra buffer type: every weight in the one mapped (or read) CPU buffer, the header exact.
                expect(live.weights.byBufferType.map((b) => b.bufferType)).toEqual([load.useMmap ? 'CPU_Mapped' : 'CPU']);
                expect(est.exact.weights).toBe(true);
                expect(live.weights.bytes - tensorBytes).toBeLessThan(32 * file.length);
            } else {
                // The mapped range also spans the tensors that went to another buffer between its own.
                for (const b of mapped) expect(b.bytes).toBeGreaterThanOrEqual(b.elsewhereBytes ?? 0);
                const copies = live.weights.byBufferType.filter((b) => !b.mapped && b.bufferType !== 'CPU');
                expect(copies.every((b) => cpuExtraBufferTypes().includes(b.bufferType))).toBe(true);
            }
            ctx.dispose();
        } finally {
            model.dispose();
        }
    });
});

describe.runIf(cpuExtraBufferTypes().includes('CPU_REPACK'))('weights placed in CPU_REPACK by a tensor override', () => {
    it('show in the report as allocated copies, and simulate with the same override equals the live figures', async () => {
        const tensorOverrides = [{ pattern: 'ffn_(up|down|gate)', bufferType: 'CPU_REPACK' }];
        const model = await LlamaModel.load({ path: fixtures.q4_0, tensorOverrides });
        try {
            const ctx = model.createContext({ contextSize: 512, threads: 1 });
            const live = ctx.memoryReport();
            const repack = live.weights.byBufferType.find((b) => b.bufferType === 'CPU_REPACK');
            // 2 layers x 3 feed-forward matrices of 256 x 512 Q4_0 values (18 bytes per 32). Without AMX
            // (an AVX2 CPU), llama.cpp's default placement puts the other Q4_0 matrices there too.
            const ffnBytes = 6 * ((256 * 512) / 32) * 18;
            expect(repack).toMatchObject({ mapped: false, device: 'CPU' });
            const amx = live.weights.byBufferType.some((b) => b.bufferType === 'AMX');
            if (amx) {
                expect(repack!.tensors).toBe(6);
                expect(repack!.bytes).toBe(ffnBytes);
            } else {
                expect(repack!.tensors).toBeGreaterThanOrEqual(6);
                expect(repack!.bytes).toBeGreaterThanOrEqual(ffnBytes);
            }
            const sim = await estimateMemory({ model: fixtures.q4_0, contextSize: 512, simulate: true, tensorOverrides });
            expect(sim.weights).toEqual(live.weights);
            expect(sim.total.bytes).toBe(live.total.bytes);
            const r = await ctx.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
            expect(r.tokens).toHaveLength(4);
            ctx.dispose();
        } finally {
            model.dispose();
        }
    });
});

describe('estimateMemory validation', () => {
    it('gives the same errors as LlamaContext', async () => {
        await expect(estimateMemory({ model: fixtures.f16, cacheTypeV: 'q4_0', flashAttention: 'off' })).rejects.toMatchObject({
            code: 'INVALID_CONFIG',
            path: ['cacheTypeV', 'flashAttention'],
        });
        await expect(estimateMemory({ model: fixtures.hd48, cacheTypeK: 'q8_0' })).rejects.toThrow(/head dimension 48/);
        await expect(estimateMemory({ model: fixtures.f16, contextsize: 5 } as never)).rejects.toThrow(/did you mean "contextSize"/);
        await expect(estimateMemory({ model: await readGgufMetadata(fixtures.f16), simulate: true })).rejects.toMatchObject({ path: ['model', 'simulate'] });
        await expect(estimateMemory({ model: fixtures.f16, tensorOverrides: [{ pattern: 'ffn', bufferType: 'CPU' }] })).rejects.toMatchObject({ path: ['tensorOverrides', 'simulate'] });
        await expect(estimateMemory({ model: fixtures.f16, repack: 'no' as never })).rejects.toThrow(/repack/);
    });

    it('the header level assumes the CPU: a GPU placement needs simulate; gpu: false, gpuLayers: 0 and cpuMoeLayers: 0 are what it assumes', async () => {
        for (const [key, value] of [['gpu', 'vulkan'], ['gpuLayers', 2], ['devices', ['Vulkan0']], ['tensorSplit', [1]], ['cpuMoeLayers', 1]] as const) {
            await expect(estimateMemory({ model: fixtures.f16, [key]: value }), key).rejects.toMatchObject({ code: 'INVALID_CONFIG', path: [key, 'simulate'] });
        }
        const header = await estimateMemory({ model: fixtures.f16, gpu: false, contextSize: 512 });
        expect(header.devices.map((d) => d.name)).toEqual(['CPU']);
        // gpuLayers: 0 and cpuMoeLayers: 0 (the default) place nothing on a device: the header level takes them.
        const zero = await estimateMemory({ model: fixtures.f16, gpuLayers: 0, cpuMoeLayers: 0, contextSize: 512 });
        expect(zero.total.bytes).toBe(header.total.bytes);
        // On a machine without a GPU backend, simulate with gpu 'auto' (the default) and gpu: false place the same.
        const [auto, off] = [await estimateMemory({ model: fixtures.f16, simulate: true, contextSize: 512 }), await estimateMemory({ model: fixtures.f16, simulate: true, contextSize: 512, gpu: false })];
        expect(auto.devices).toEqual(off.devices);
        await expect(estimateMemory({ model: fixtures.f16, simulate: true, gpuLayers: 1, gpu: false })).rejects.toMatchObject({ path: ['gpuLayers', 'gpu'] });
    });

    it('reads only the header of the model file', async () => {
        const e = await estimateMemory({ model: fixtures.f16 });
        expect(e.source).toEqual({ kv: 'header', weights: 'header', loras: 'header', compute: 'header', output: 'header' });
        expect(e.config).toMatchObject({ contextSize: 2048, parallel: 1, cacheTypeK: 'f16', cacheTypeV: 'f16', flashAttention: 'on' });
        expect(e.total.bytes).toBe(e.kv.bytes + e.weights.bytes + e.compute.bytes + e.output.bytes);
    });
});
