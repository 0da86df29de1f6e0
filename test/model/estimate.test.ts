import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, LlamaContext, LlamaModel, readGgufMetadata, type GgufMetadata, type KvCacheType } from '../../lib/index.js';
import { fixtures } from '../helpers/fixtures.js';

const pairs: [KvCacheType, KvCacheType][] = [
    ['f16', 'f16'], ['q8_0', 'q8_0'], ['q8_0', 'q4_0'], ['q4_0', 'q4_0'],
    ['q5_1', 'q5_0'], ['q4_1', 'iq4_nl'], ['bf16', 'bf16'], ['f32', 'f32'],
];
const contextSizes = [256, 1000, 3000, 8192];
const parallels = [1, 2, 3, 4];

describe.each([
    ['f16', () => fixtures.f16],
    ['q8_0', () => fixtures.q8_0],
])('estimateMemory on the %s fixture', (_name, path) => {
    let model: LlamaModel;
    let header: GgufMetadata;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: path() });
        header = await readGgufMetadata(path());
    });
    afterAll(() => model.dispose());

    it.each(pairs)('K %s / V %s: header KV and weights, and simulated compute, equal the live context to the byte', async (k, v) => {
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
                expect(est.weights.bytes, where).toBe(live.weights.bytes);
                expect(est.output.bytes, where).toBe(live.output.bytes);
                expect(est.exact).toEqual({ kv: true, weights: true, loras: true, compute: false, output: true });
                expect(sim.compute.bytes, where).toBe(live.compute.bytes);
                expect(sim.kv.bytes, where).toBe(live.kv.bytes);
                expect(sim.weights.bytes, where).toBe(live.weights.bytes);
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

describe('estimateMemory validation', () => {
    it('gives the same errors as LlamaContext', async () => {
        await expect(estimateMemory({ model: fixtures.f16, cacheTypeV: 'q4_0', flashAttention: 'off' })).rejects.toMatchObject({
            code: 'INVALID_CONFIG',
            path: ['cacheTypeV', 'flashAttention'],
        });
        await expect(estimateMemory({ model: fixtures.hd48, cacheTypeK: 'q8_0' })).rejects.toThrow(/head dimension 48/);
        await expect(estimateMemory({ model: fixtures.f16, contextsize: 5 } as never)).rejects.toThrow(/did you mean "contextSize"/);
        await expect(estimateMemory({ model: await readGgufMetadata(fixtures.f16), simulate: true })).rejects.toMatchObject({ path: ['model', 'simulate'] });
    });

    it('reads only the header of the model file', async () => {
        const e = await estimateMemory({ model: fixtures.f16 });
        expect(e.source).toEqual({ kv: 'header', weights: 'header', loras: 'header', compute: 'header', output: 'header' });
        expect(e.config).toMatchObject({ contextSize: 2048, parallel: 1, cacheTypeK: 'f16', cacheTypeV: 'f16', flashAttention: 'on' });
        expect(e.total.bytes).toBe(e.kv.bytes + e.weights.bytes + e.compute.bytes + e.output.bytes);
    });
});
