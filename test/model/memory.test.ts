import { readGgufMetadata } from '../../lib/gguf/reader.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KV_CACHE_TYPE_INFO, LlamaContext, LlamaModel, setLogger, type KvCacheType, type MemoryReport } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

const MIB = 1024 * 1024;

/** Bytes of one row of `values` elements of a KV cache type (ggml_row_size). */
const rowBytes = (type: KvCacheType, values: number) => (values / KV_CACHE_TYPE_INFO[type].blockSize) * KV_CACHE_TYPE_INFO[type].blockBytes;

function checkSums(report: MemoryReport) {
    const sum = (key: 'weightsBytes' | 'kvBytes' | 'computeBytes' | 'outputBytes') => report.devices.reduce((s, d) => s + d[key], 0);
    expect(sum('weightsBytes')).toBe(report.weights.bytes);
    expect(sum('kvBytes')).toBe(report.kv.bytes);
    expect(sum('computeBytes')).toBe(report.compute.bytes);
    expect(sum('outputBytes')).toBe(report.output.bytes);
    expect(report.total.bytes).toBe(report.weights.bytes + report.kv.bytes + report.compute.bytes + report.output.bytes);
}

describe('ctx.memoryReport()', () => {
    let model: LlamaModel;
    const logged: string[] = [];
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16 });
        setLogger((_level, message) => logged.push(message), { level: 'info' });
    });
    afterAll(() => {
        setLogger(null);
        model.dispose();
    });

    const pairs: [KvCacheType, KvCacheType][] = [
        ['f16', 'f16'], ['q8_0', 'q8_0'], ['q8_0', 'q4_0'], ['q4_0', 'q4_0'],
        ['q5_1', 'q5_0'], ['q4_1', 'iq4_nl'], ['bf16', 'bf16'], ['f32', 'f32'],
    ];
    const shapes = [[256, 1], [1000, 2], [3000, 3], [8192, 4]] as const;

    it.each(pairs.flatMap(([k, v]) => shapes.map(([c, p]) => [k, v, c, p] as const)))(
        'K %s / V %s, contextSize %i, parallel %i: K and V bytes equal the tensors, the formula and llama.cpp\'s log',
        async (k, v, contextSize, parallel) => {
            logged.length = 0;
            const ctx = new LlamaContext({ model, contextSize, parallel, cacheTypeK: k, cacheTypeV: v, threads: 1 });
            await new Promise((r) => setTimeout(r, 20)); // log lines arrive through the event loop
            const report = ctx.memoryReport();
            const m = model.metadata;
            const cells = ctx.config.contextSize;
            expect(report.kv).toMatchObject({ k: { type: k }, v: { type: v }, layers: m.layerCount, cells, sequences: parallel, recurrentBytes: 0 });
            const kBytes = m.layerHeadDimK.reduce((s, dim) => s + cells * rowBytes(k, dim * m.headCountKv), 0);
            const vBytes = m.layerHeadDimV.reduce((s, dim) => s + cells * rowBytes(v, dim * m.headCountKv), 0);
            expect(report.kv.k.bytes).toBe(kBytes);
            expect(report.kv.v.bytes).toBe(vBytes);
            expect(report.kv.bytes).toBe(kBytes + vBytes);
            const line = logged.find((l) => l.startsWith('llama_kv_cache: size ='));
            expect(line, 'llama_kv_cache size line').toBeDefined();
            const [, kLogged, vLogged] = /K \(\w+\):\s+([\d.]+) MiB, V \(\w+\):\s+([\d.]+) MiB/.exec(line!)!;
            // The log prints MiB with two decimals (printf rounds exact ties to even): equal to that precision.
            expect(Math.abs(report.kv.k.bytes / MIB - Number(kLogged))).toBeLessThanOrEqual(0.005 + 1e-9);
            expect(Math.abs(report.kv.v.bytes / MIB - Number(vLogged))).toBeLessThanOrEqual(0.005 + 1e-9);
            checkSums(report);
            ctx.dispose();
        },
    );

    it('reports weights, compute and output buffers, and the devices they live on', async () => {
        const ctx = new LlamaContext({ model, contextSize: 512, threads: 1 });
        const before = ctx.memoryReport();
        const gguf = await readGgufMetadata(fixtures.f16);
        const tensorBytes = gguf.tensors.reduce((s, t) => s + t.byteSize, 0);
        expect(before.weights.bytes).toBeGreaterThanOrEqual(tensorBytes);
        // Beyond the tensors themselves: alignment padding, the layouts of the CPU backend's
        // extra buffer types (AMX, CPU_REPACK) and, mapped, the file range that the
        // CPU_Mapped buffer spans over tensors that went to one of them.
        const b = before.weights;
        const elsewhere = b.byBufferType.reduce((s, x) => s + (x.elsewhereBytes ?? 0), 0);
        const layouts = b.byBufferType.filter((x) => !x.mapped && x.bufferType !== 'CPU').reduce((s, x) => s + x.bytes, 0);
        expect(b.bytes - tensorBytes - elsewhere).toBeLessThan(gguf.tensors.length * gguf.alignment + layouts * 0.25);
        expect(b.bytes).toBe(b.mappedBytes + b.allocatedBytes);
        expect(b.byBufferType.reduce((s, x) => s + x.bytes, 0)).toBe(b.bytes);
        expect(b.byBufferType.reduce((s, x) => s + (x.tensors ?? 0), 0)).toBe(gguf.tensors.length);
        expect(before.compute.bytes).toBeGreaterThan(0);
        expect(before.devices.map((d) => [d.name, d.kind])).toEqual([['CPU', 'cpu']]);
        expect(before.devices[0].totalBytes).toBeGreaterThan(before.total.bytes);
        await ctx.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
        const after = ctx.memoryReport();
        expect(after.output.bytes).toBeGreaterThanOrEqual(model.metadata.vocabSize * 4);
        checkSums(after);
        ctx.dispose();
        expect(() => ctx.memoryReport()).toThrow(expect.objectContaining({ code: 'DISPOSED' }));
    });

    it('reads between two steps of the engine while requests run, with the cells of each sequence', async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, parallel: 2, threads: 1 });
        const stream = ctx.generate('Once upon a time', { maxTokens: 1500, temperature: 0 });
        await stream.next(); // the native loop is now running
        const first = ctx.memoryReport();
        const during = ctx.memoryReport();
        expect(during.kv.bytes).toBe(first.kv.bytes);
        expect(during.total.bytes).toBe(first.total.bytes);
        expect(during.kv.cellsPerSequence).toBe(1024);
        const running = ctx.sequences.find((s) => s.state !== 'idle')!;
        expect(during.kv.cellsUsed[running.id]).toBeGreaterThan(4); // the prompt and the first token at least
        expect(during.kv.cellsUsed[1 - running.id]).toBe(0);
        await stream.return(undefined as never); // stops generation and waits for it
        expect(ctx.memoryReport().kv.cellsUsed[running.id]).toBeGreaterThanOrEqual(during.kv.cellsUsed[running.id]);
        ctx.dispose();
    });
});
