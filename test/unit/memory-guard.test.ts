import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LlamaMemoryError } from '../../lib/errors.js';
import type { MemoryEstimate } from '../../lib/memory/estimate.js';
import type { GgufMetadata } from '../../lib/gguf/types.js';
import { getHostMemory, type HostMemory } from '../../lib/memory/host-memory.js';
import {
    checkContextMemory,
    checkModelMemory,
    contextPlacement,
    formatBytes,
    modelWeightPlacement,
    offloadedLayers,
    requireHostFit,
} from '../../lib/memory/guard.js';

const MIB = 2 ** 20;
const host = (system: number, extra: HostMemory['limits'] = []): HostMemory => {
    const limits = [{ source: 'system' as const, availableBytes: system }, ...extra].sort((a, b) => a.availableBytes - b.availableBytes);
    return { availableBytes: limits[0].availableBytes, limits };
};
const catchError = (fn: () => void): LlamaMemoryError => {
    try {
        fn();
    } catch (error) {
        if (error instanceof LlamaMemoryError) return error;
        throw error;
    }
    throw new Error('did not throw');
};

/** A 2-layer header with 10 MiB per layer, 4 MiB of token embeddings and 6 MiB of output. */
const header = (): GgufMetadata => ({
    version: 3,
    alignment: 32,
    dataOffset: 4096,
    kv: {},
    kvTypes: {},
    tensors: [
        { name: 'token_embd.weight', type: 1, typeName: 'F16', shape: [256, 256], offset: 0, byteSize: 4 * MIB },
        { name: 'blk.0.attn_q.weight', type: 1, typeName: 'F16', shape: [256, 256], offset: 4 * MIB, byteSize: 6 * MIB },
        { name: 'blk.0.ffn_up_exps.weight', type: 1, typeName: 'F16', shape: [256, 256], offset: 10 * MIB, byteSize: 4 * MIB },
        { name: 'blk.1.attn_q.weight', type: 1, typeName: 'F16', shape: [256, 256], offset: 14 * MIB, byteSize: 10 * MIB },
        { name: 'output_norm.weight', type: 0, typeName: 'F32', shape: [256, 256], offset: 24 * MIB, byteSize: 2 * MIB },
        { name: 'output.weight', type: 1, typeName: 'F16', shape: [256, 256], offset: 26 * MIB, byteSize: 4 * MIB },
    ],
}) as unknown as GgufMetadata;

const estimate = (kv: number, compute: number, output: number) =>
    ({ kv: { bytes: kv }, compute: { bytes: compute }, output: { bytes: output } }) as unknown as MemoryEstimate;

describe('memory checks before allocation', () => {
    it('passes what fits and refuses what does not, naming the tightest limit and what to change', () => {
        const need = { what: 'This context', parts: [{ name: 'KV cache', bytes: 900 * MIB }, { name: 'compute', bytes: 100 * MIB }] };
        expect(() => requireHostFit(need, host(1000 * MIB), 'use less')).not.toThrow();
        const e = catchError(() => requireHostFit(need, host(4096 * MIB, [{ source: 'cgroup', availableBytes: 999 * MIB }]), 'use less'));
        expect(e.code).toBe('INSUFFICIENT_MEMORY');
        expect(e).toMatchObject({ neededBytes: 1000 * MIB, availableBytes: 999 * MIB, location: 'host' });
        expect(e.message).toBe(
            "This context needs about 1000.0 MiB of host memory (KV cache 900.0 MiB, compute 100.0 MiB) but only 999.0 MiB is available under the cgroup's (container's) memory limit: use less; pass checkMemory: false to skip this check",
        );
        // Only the limits asked for: a memory-mapped file takes address space, not RAM.
        expect(() => requireHostFit(need, host(1 * MIB), 'x', ['address-space'])).not.toThrow();
        expect(() => requireHostFit(need, host(4096 * MIB, [{ source: 'address-space', availableBytes: 10 * MIB }]), 'x', ['address-space'])).toThrow(/address-space limit/);
    });

    it('places layers as llama.cpp does: the output layer counts as one more, the input layer stays on the CPU', () => {
        expect(offloadedLayers(-1, 32)).toEqual({ repeating: 32, output: true });
        expect(offloadedLayers(33, 32)).toEqual({ repeating: 32, output: true });
        expect(offloadedLayers(32, 32)).toEqual({ repeating: 31, output: true });
        expect(offloadedLayers(1, 32)).toEqual({ repeating: 0, output: true });
        expect(offloadedLayers(0, 32)).toEqual({ repeating: 0, output: false });

        const gguf = header();
        expect(modelWeightPlacement(gguf, 2, -1, false, [])).toMatchObject({ hostBytes: 30 * MIB, deviceBytes: 0 });
        expect(modelWeightPlacement(gguf, 2, -1, true, [])).toMatchObject({ hostBytes: 4 * MIB, deviceBytes: 26 * MIB, layersOnDevice: 2, outputOnDevice: true });
        expect(modelWeightPlacement(gguf, 2, 2, true, [])).toMatchObject({ hostBytes: 14 * MIB, deviceBytes: 16 * MIB, layersOnDevice: 1 });
        // A CPU override keeps the matching tensor in host memory (cpuMoeLayers).
        const moe = [{ pattern: '^blk\\.(0)\\.ffn_(up|down|gate)_exps', bufferType: 'CPU' }];
        expect(modelWeightPlacement(gguf, 2, -1, true, moe)).toMatchObject({ hostBytes: 8 * MIB, deviceBytes: 22 * MIB });
    });

    it('checks a model load: weights without mmap against RAM, a mapped file against the address space, offload against the devices', () => {
        const gguf = header();
        const cpu = { layerCount: 2, gpuLayers: 0, devices: [], overrides: [], extraBufferTypes: [] };
        expect(() => checkModelMemory(gguf, { ...cpu, useMmap: true }, host(1 * MIB))).not.toThrow();
        expect(catchError(() => checkModelMemory(gguf, { ...cpu, useMmap: false }, host(20 * MIB))).message).toMatch(/^Loading this model without mmap needs about 30\.0 MiB of host memory \(weights 30\.0 MiB\)/);
        expect(catchError(() => checkModelMemory(gguf, { ...cpu, useMmap: true }, host(1e12, [{ source: 'address-space', availableBytes: 20 * MIB }]))).message).toMatch(
            /^Memory-mapping this model needs about 30\.0 MiB of address space \(file 30\.0 MiB\)/,
        );
        const gpu = { layerCount: 2, gpuLayers: -1, devices: ['CUDA0'], overrides: [], useMmap: true, extraBufferTypes: [] };
        const free = (bytes: number | null) => () => ({ names: ['CUDA0'], freeBytes: bytes });
        expect(() => checkModelMemory(gguf, gpu, host(1e12), free(26 * MIB))).not.toThrow();
        expect(() => checkModelMemory(gguf, gpu, host(1e12), free(null))).not.toThrow(); // the device does not say
        const e = catchError(() => checkModelMemory(gguf, gpu, host(1e12), free(25 * MIB)));
        expect(e).toMatchObject({ location: 'device', neededBytes: 26 * MIB, availableBytes: 25 * MIB });
        expect(e.message).toMatch(/^Offloading this model needs about 26\.0 MiB of memory on CUDA0 \(weights of 2 layers and the output layer 26\.0 MiB\) but it has 25\.0 MiB free: lower gpuLayers/);
    });

    it("counts the copies that the CPU's extra buffer types may make of mapped weights as host memory", () => {
        const gguf = header();
        const load = { layerCount: 2, gpuLayers: 0, devices: [], overrides: [], useMmap: true };
        // AMX may take the F16 matrix weights (not the token embedding, not F32): 6 + 4 + 10 + 4 MiB.
        expect(() => checkModelMemory(gguf, { ...load, extraBufferTypes: ['AMX'] }, host(24 * MIB))).not.toThrow();
        const e = catchError(() => checkModelMemory(gguf, { ...load, extraBufferTypes: ['AMX'] }, host(23 * MIB)));
        expect(e).toMatchObject({ code: 'INSUFFICIENT_MEMORY', neededBytes: 24 * MIB, location: 'host' });
        expect(e.message).toMatch(/^Loading this model needs about 24\.0 MiB of host memory \(weight copies in AMX 24\.0 MiB\).*repack: false/);
        // CPU_REPACK takes no F16 weights; repack: false (no extra types) copies nothing.
        expect(() => checkModelMemory(gguf, { ...load, extraBufferTypes: ['CPU_REPACK'] }, host(1 * MIB))).not.toThrow();
        expect(() => checkModelMemory(gguf, { ...load, extraBufferTypes: [] }, host(1 * MIB))).not.toThrow();
    });

    it('checks a context: on the CPU everything is host memory; offloaded, the KV cache of GPU layers and compute go to the device', () => {
        const e = estimate(800 * MIB, 100 * MIB, 1 * MIB);
        expect(contextPlacement(e, 4, 0, false, true).host.reduce((s, p) => s + p.bytes, 0)).toBe(901 * MIB);
        const half = contextPlacement(e, 4, 3, true, true); // 2 repeating layers of 4 and the output layer
        expect(half.device).toEqual([{ name: 'KV cache', bytes: 400 * MIB }, { name: 'compute', bytes: 100 * MIB }]);
        expect(half.host).toEqual([{ name: 'KV cache', bytes: 400 * MIB }, { name: 'compute', bytes: 0 }, { name: 'output', bytes: 1 * MIB }]);
        expect(contextPlacement(e, 4, -1, true, false).device[0].bytes).toBe(0); // offloadKqv: false keeps the KV cache on the host

        const model = { layerCount: 4, gpuLayers: 0, devices: [], offloadKqv: true };
        expect(() => checkContextMemory(e, model, host(901 * MIB))).not.toThrow();
        expect(catchError(() => checkContextMemory(e, model, host(900 * MIB))).message).toMatch(
            /^This context needs about 901\.0 MiB of host memory \(KV cache 800\.0 MiB, compute 100\.0 MiB, output 1\.0 MiB\) but only 900\.0 MiB is available under available RAM and swap: use a smaller contextSize/,
        );
        const gpu = { layerCount: 4, gpuLayers: -1, devices: ['CUDA0'], offloadKqv: true };
        expect(() => checkContextMemory(e, gpu, host(2 * MIB), () => ({ names: ['CUDA0'], freeBytes: 900 * MIB }))).not.toThrow();
        expect(catchError(() => checkContextMemory(e, gpu, host(1e12), () => ({ names: ['CUDA0'], freeBytes: 899 * MIB }))).location).toBe('device');
    });

    it('formats bytes in binary units', () => {
        expect([formatBytes(512), formatBytes(1536), formatBytes(3 * MIB), formatBytes(2 ** 40)]).toEqual(['512 B', '1.5 KiB', '3.0 MiB', '1.0 TiB']);
    });
});

describe.runIf(process.platform === 'linux')('getHostMemory', () => {
    it("reads MemAvailable and swap, and the tightest limit first", () => {
        const meminfo = readFileSync('/proc/meminfo', 'utf8');
        const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB$`, 'm').exec(meminfo)![1]) * 1024;
        const m = getHostMemory();
        const system = m.limits.find((l) => l.source === 'system')!;
        expect(system.availableBytes).toBeGreaterThan(0);
        expect(system.availableBytes).toBeLessThanOrEqual(kb('MemTotal') + kb('SwapTotal'));
        expect(m.availableBytes).toBe(Math.min(...m.limits.map((l) => l.availableBytes)));
        expect(m.limits[0].availableBytes).toBe(m.availableBytes);
    });
});
