// Where weights, KV cache and compute buffers go on the device of LLAMA_KV_TEST_GPU: partial
// offload, MoE experts split by cpuMoeLayers, tensorOverrides to the device, the memory
// report per device against llama.cpp's own log lines, estimateMemory({ simulate }) per
// device against the live report, and the device side of the memory guard.
import { afterAll, describe, expect, inject, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { estimateMemory, getBackends, LlamaContext, LlamaMemoryError, LlamaModel, readGgufMetadata, type MemoryReport, type ModelLoadOptions } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';
import { bufferLines, captureLlamaLog } from '../support/llama-log.js';
import { root } from '../support/global-setup.js';

const gpu = inject('gpu');
const MIB = 1024 * 1024;
const log = captureLlamaLog();
afterAll(() => log.stop());

const device = () => getBackends().find((b) => b.kind === gpu.kind)!.devices[0];
const context = { contextSize: 512, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' } as const;

/** The report's figures per device, without the free/total memory (which an estimate has not). */
const perDevice = (devices: MemoryReport['devices']) =>
    Object.fromEntries(devices.map(({ freeBytes: _f, totalBytes: _t, ...d }) => [d.name, d]));

/** Loads, creates a context, and returns its report with llama.cpp's log lines of that load and context. */
async function live(load: Omit<ModelLoadOptions, 'path'>, path = fixtures.f16) {
    log.lines.length = 0;
    const model = await LlamaModel.load({ path, ...load });
    const ctx = new LlamaContext({ model, ...context });
    await new Promise((r) => setTimeout(r, 20));
    const report = ctx.memoryReport();
    const lines = { model: bufferLines(log.lines, 'model'), kv: bufferLines(log.lines, 'KV'), compute: bufferLines(log.lines, 'compute') };
    const text = await ctx.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
    expect(text.tokens.length).toBe(4);
    ctx.dispose();
    model.dispose();
    return { report, lines };
}

/** Each "<buffer> model buffer size" line of llama.cpp equals the report's bytes for that buffer type (its print has 2 decimals of MiB). */
function expectWeightsAsLogged(report: MemoryReport, logged: Map<string, number>) {
    expect(logged.size).toBeGreaterThan(0);
    for (const [buffer, mib] of logged) {
        const ours = report.weights.byBufferType.filter((b) => b.bufferType === buffer).reduce((s, b) => s + b.bytes, 0);
        expect(Math.abs(ours / MIB - mib), `${buffer}: report ${ours} B, llama.cpp ${mib} MiB`).toBeLessThanOrEqual(0.005 + 1e-9);
    }
}

describe(`placement on ${gpu.kind}`, () => {
    const name = () => device().name;

    it.each([
        ['every layer (gpu auto)', {}],
        ['gpuLayers: 2 (layer 1 and the output layer)', { gpuLayers: 2 }],
        ['gpuLayers: 1 (the output layer only)', { gpuLayers: 1 }],
        ['gpuLayers: 2 without mmap', { gpuLayers: 2, useMmap: false }],
    ] as [string, Omit<ModelLoadOptions, 'path'>][])('%s: the report per device equals llama.cpp\'s log, and simulate equals the report to the byte', async (_what, load) => {
        const { report, lines } = await live(load);
        const dev = perDevice(report.devices)[name()];
        expect(dev, JSON.stringify(report.devices)).toBeDefined();
        expectWeightsAsLogged(report, lines.model);
        expect(Math.abs(dev.kvBytes / MIB - (lines.kv.get(name()) ?? 0))).toBeLessThanOrEqual(0.005 + 1e-9);
        expect(Math.abs(dev.computeBytes / MIB - lines.compute.get(name())!)).toBeLessThanOrEqual(0.005 + 1e-9);
        // The KV cache of a layer is on the device of that layer: half of it with one of the two layers offloaded.
        const layersOnDevice = typeof load.gpuLayers === 'number' ? load.gpuLayers - 1 : 2;
        expect(dev.kvBytes).toBe((report.kv.bytes * layersOnDevice) / 2);
        const cpu = perDevice(report.devices).CPU;
        expect((cpu?.kvBytes ?? 0) + dev.kvBytes).toBe(report.kv.bytes);

        const estimate = await estimateMemory({ model: fixtures.f16, simulate: true, ...context, ...load });
        expect(perDevice(estimate.devices as MemoryReport['devices'])).toEqual(perDevice(report.devices));
        expect(estimate.weights).toEqual(report.weights);
        expect(estimate.total.bytes).toBe(report.total.bytes);
    });

    it('llama-kv memory --simulate -ngl 2 --live: the figures per device, estimated and measured, are the same', () => {
        const r = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'index.js'), 'memory', '-m', fixtures.f16, '-c', '512', '-ngl', '2', '--simulate', '--live'], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        const estimated = /^by device \(estimate\): (.*)$/m.exec(r.stdout)?.[1];
        expect(estimated, r.stdout).toContain(`${name()} weights `);
        expect(/^by device \(live\): (.*)$/m.exec(r.stdout)?.[1]).toBe(estimated);
        expect(r.stdout).toMatch(/^total .* same$/m);
    });

    it('the header level refuses a GPU placement: simulate places it', async () => {
        await expect(estimateMemory({ model: fixtures.f16, gpuLayers: 2 })).rejects.toMatchObject({ code: 'INVALID_CONFIG', path: ['gpuLayers', 'simulate'] });
        await expect(estimateMemory({ model: fixtures.f16, gpu: gpu.kind })).rejects.toThrow(/gpu needs simulate: true/);
        const cpu = await estimateMemory({ model: fixtures.f16, gpu: false, ...context });
        expect(cpu.devices.map((d) => d.name)).toEqual(['CPU']);
    });

    it('cpuMoeLayers: 1 keeps the experts of layer 0 on the CPU and offloads those of layer 1, as the report and simulate say', async () => {
        const gguf = await readGgufMetadata(fixtures.moe);
        const experts = (layer: number) => gguf.tensors.filter((t) => new RegExp(`^blk\\.${layer}\\.ffn_(up|down|gate)_exps`).test(t.name)).reduce((s, t) => s + t.byteSize, 0);
        expect(experts(0)).toBeGreaterThan(0);
        const { report, lines } = await live({ cpuMoeLayers: 1 }, fixtures.moe);
        expectWeightsAsLogged(report, lines.model);
        const devices = perDevice(report.devices);
        expect(devices.CPU.expertWeightsBytes).toBe(experts(0));
        expect(devices[name()].expertWeightsBytes).toBe(experts(1));
        const estimate = await estimateMemory({ model: fixtures.moe, simulate: true, ...context, cpuMoeLayers: 1 });
        expect(perDevice(estimate.devices as MemoryReport['devices'])).toEqual(devices);
    });

    it('tensorOverrides puts one tensor of a CPU layer on the device', async () => {
        const gguf = await readGgufMetadata(fixtures.f16);
        const tensor = gguf.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!;
        const load = { gpuLayers: 0, devices: [name()], tensorOverrides: [{ pattern: '^blk\\.0\\.ffn_down\\.weight$', bufferType: name() }] };
        const { report, lines } = await live(load);
        expectWeightsAsLogged(report, lines.model);
        const onDevice = report.weights.byBufferType.filter((b) => b.bufferType === name());
        expect(onDevice).toHaveLength(1);
        expect(onDevice[0].tensors).toBe(1);
        expect(onDevice[0].bytes).toBeGreaterThanOrEqual(tensor.byteSize);
        expect(perDevice(report.devices)[name()].weightsBytes).toBe(onDevice[0].bytes);
        const estimate = await estimateMemory({ model: fixtures.f16, simulate: true, ...context, ...load });
        expect(perDevice(estimate.devices as MemoryReport['devices'])).toEqual(perDevice(report.devices));
    });
});

describe(`the memory guard on ${gpu.kind}`, () => {
    it("a context whose KV cache exceeds the device's free memory is refused with INSUFFICIENT_MEMORY, location 'device'", async () => {
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: gpu.kind });
        try {
            // f32 K and V: 2 layers x 2 KV heads x 64 x 4 bytes x 2 = 2048 bytes a cell, all on the device.
            const cells = Math.ceil((1.25 * device().freeBytes!) / 2048 / 256) * 256;
            let error: unknown;
            try {
                new LlamaContext({ model, contextSize: cells, cacheTypeK: 'f32', cacheTypeV: 'f32' }).dispose();
            } catch (e) {
                error = e;
            }
            expect(error).toBeInstanceOf(LlamaMemoryError);
            expect(error).toMatchObject({ code: 'INSUFFICIENT_MEMORY', location: 'device' });
            expect((error as Error).message).toContain(`of memory on ${device().name}`);
            // the same model still makes a context that fits
            const ctx = new LlamaContext({ model, contextSize: 256 });
            expect((await ctx.complete('Once', { maxTokens: 2, temperature: 0 })).tokens).toHaveLength(2);
            ctx.dispose();
        } finally {
            model.dispose();
        }
    });
});
