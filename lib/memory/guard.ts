/**
 * Refuses models and contexts that do not fit, before llama.cpp allocates: an
 * allocation past the memory there is either fails inside llama.cpp or, with the
 * kernel's overcommit, succeeds and then gets the process killed when the pages are
 * touched (llama.cpp clears the KV cache at creation). The figures come from the
 * header-level estimate (lib/memory/estimate.ts): KV cache, output and weights exact, compute
 * approximate.
 * @internal
 */
import { binding, type NativeBackendInfo } from '../native/binding.js';
import { LlamaMemoryError, type MemoryLocation } from '../errors.js';
import { describeLimit, getHostMemory, type HostMemory, type HostMemoryLimit } from './host-memory.js';
import type { GgufMetadata } from '../gguf/types.js';
import type { MemoryEstimate } from './estimate.js';
import { pad } from './estimate.js';
import { weightCopyCandidates } from './weight-buffers.js';

/** A need, by component. */
export interface MemoryNeed {
    /** What needs it, e.g. 'This context'. */
    what: string;
    /** What of the host it takes. Defaults to `'host memory'`. */
    resource?: 'host memory' | 'address space';
    parts: { name: string; bytes: number }[];
}

/** Free memory of the devices something is placed on. */
export interface DeviceFree {
    names: string[];
    /** Sum of their free bytes; null when a device does not report it. */
    freeBytes: number | null;
}

const OPT_OUT = 'pass checkMemory: false to skip this check';

/** Bytes in binary units with one decimal, for messages. */
export function formatBytes(bytes: number): string {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = bytes;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
    }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

const total = (need: MemoryNeed) => need.parts.reduce((s, p) => s + p.bytes, 0);
const partsText = (need: MemoryNeed) =>
    need.parts.filter((p) => p.bytes > 0).map((p) => `${p.name} ${formatBytes(p.bytes)}`).join(', ');

/**
 * Throws INSUFFICIENT_MEMORY when `need` exceeds what the tightest of `host`'s limits
 * leaves (only the limits in `sources` when given).
 */
export function requireHostFit(need: MemoryNeed, host: HostMemory, advice: string, sources?: readonly HostMemoryLimit['source'][]): void {
    const bytes = total(need);
    const limits = sources ? host.limits.filter((l) => sources.includes(l.source)) : host.limits;
    const tightest = limits.reduce<HostMemoryLimit | null>((min, l) => (min === null || l.availableBytes < min.availableBytes ? l : min), null);
    if (tightest === null || bytes <= tightest.availableBytes) return;
    throw memoryError(
        `${need.what} needs about ${formatBytes(bytes)} of ${need.resource ?? 'host memory'} (${partsText(need)}) but only ${formatBytes(tightest.availableBytes)} ` +
            `is available under ${describeLimit(tightest.source)}: ${advice}; ${OPT_OUT}`,
        bytes, tightest.availableBytes, 'host',
    );
}

/** Throws INSUFFICIENT_MEMORY when `need` exceeds the devices' free memory (skipped when they do not report it). */
export function requireDeviceFit(need: MemoryNeed, devices: DeviceFree, advice: string): void {
    const bytes = total(need);
    if (bytes === 0 || devices.freeBytes === null || bytes <= devices.freeBytes) return;
    throw memoryError(
        `${need.what} needs about ${formatBytes(bytes)} of memory on ${devices.names.join(', ')} (${partsText(need)}) ` +
            `but ${devices.names.length > 1 ? 'they have' : 'it has'} ${formatBytes(devices.freeBytes)} free: ${advice}; ${OPT_OUT}`,
        bytes, devices.freeBytes, 'device',
    );
}

function memoryError(message: string, neededBytes: number, availableBytes: number, location: MemoryLocation): LlamaMemoryError {
    return new LlamaMemoryError(message, { neededBytes, availableBytes, location });
}

/**
 * Repeating layers that llama.cpp puts on a GPU for `gpuLayers` (-1: all), as in
 * llama_model::load_tensors: the output layer counts as one more layer, offloaded first.
 */
export function offloadedLayers(gpuLayers: number, layerCount: number): { repeating: number; output: boolean } {
    const requested = gpuLayers < 0 ? layerCount + 1 : gpuLayers;
    return { repeating: Math.max(0, Math.min(layerCount, requested - 1)), output: requested >= 1 };
}

/** The tensor overrides that keep tensors in host memory (a CPU buffer type), each compiled once. */
function hostOverrides(overrides: readonly { pattern: string; bufferType: string }[]): { re: RegExp | null; host: boolean }[] {
    return overrides.map((o) => {
        let re: RegExp | null = null;
        try {
            re = new RegExp(o.pattern);
        } catch {
            // a std::regex that JavaScript does not parse: llama.cpp decides
        }
        return { re, host: /^CPU/i.test(o.bufferType) };
    });
}

/** Whether the first override that matches `name` (the one llama.cpp applies) sends it to host memory. */
function overriddenToHost(name: string, overrides: readonly { re: RegExp | null; host: boolean }[]): boolean {
    const match = overrides.find((o) => o.re?.test(name));
    return match?.host ?? false;
}

/**
 * The model's weight bytes in host memory and on its GPU devices, from the tensor table
 * and llama.cpp's layer assignment (the input layer always stays on the CPU).
 */
export function modelWeightPlacement(
    gguf: GgufMetadata,
    layerCount: number,
    gpuLayers: number,
    onGpu: boolean,
    overrides: readonly { pattern: string; bufferType: string }[],
): { hostBytes: number; deviceBytes: number; layersOnDevice: number; outputOnDevice: boolean } {
    const offload = onGpu ? offloadedLayers(gpuLayers, layerCount) : { repeating: 0, output: false };
    const firstOffloaded = layerCount - offload.repeating;
    const compiled = hostOverrides(overrides);
    let hostBytes = 0;
    let deviceBytes = 0;
    for (const t of gguf.tensors) {
        const bytes = pad(t.byteSize, gguf.alignment);
        const layer = /^blk\.(\d+)\./.exec(t.name);
        const onDevice = layer
            ? Number(layer[1]) >= firstOffloaded
            : /^output(_norm)?\./.test(t.name) && offload.output;
        if (onDevice && !overriddenToHost(t.name, compiled)) deviceBytes += bytes;
        else hostBytes += bytes;
    }
    return { hostBytes, deviceBytes, layersOnDevice: offload.repeating, outputOnDevice: offload.output };
}

/**
 * A context's bytes in host memory and on the model's GPU devices: the KV cache of the
 * offloaded layers and the compute buffers go to the GPU (with offloadKqv), the rest
 * and the output buffer stay on the host.
 */
export function contextPlacement(
    estimate: MemoryEstimate,
    layerCount: number,
    gpuLayers: number,
    onGpu: boolean,
    offloadKqv: boolean,
): { host: MemoryNeed['parts']; device: MemoryNeed['parts'] } {
    const layers = onGpu ? offloadedLayers(gpuLayers, layerCount).repeating : 0;
    const kvDevice = offloadKqv && layerCount > 0 ? Math.round((estimate.kv.bytes * layers) / layerCount) : 0;
    const computeOnDevice = layers > 0;
    return {
        host: [
            { name: 'KV cache', bytes: estimate.kv.bytes - kvDevice },
            { name: 'compute', bytes: computeOnDevice ? 0 : estimate.compute.bytes },
            { name: 'output', bytes: estimate.output.bytes },
        ],
        device: [
            { name: 'KV cache', bytes: kvDevice },
            { name: 'compute', bytes: computeOnDevice ? estimate.compute.bytes : 0 },
        ],
    };
}

/** Free memory of the named devices, asking their backends (a GPU driver may create a context to answer). */
export function devicesFree(names: readonly string[], info: NativeBackendInfo = binding().backendInfo(true)): DeviceFree {
    const wanted = new Set(names.map((n) => n.toLowerCase()));
    const found = info.registries.flatMap((r) => r.devices).filter((d) => wanted.has(d.name.toLowerCase()));
    const unknown = found.length !== wanted.size || found.some((d) => d.totalBytes <= 0);
    return { names: [...names], freeBytes: unknown ? null : found.reduce((s, d) => s + d.freeBytes, 0) };
}

const MODEL_ADVICE = 'use a smaller or more quantized model';

/**
 * Checks a model load against the memory there is: weights read into host memory (no
 * mmap) against the host limits, a memory-mapped file against the address-space limit,
 * the copies that the CPU backend's extra buffer types (AMX, CPU_REPACK) may make of
 * mapped weights against the host limits, and the offloaded weights against the
 * devices' free memory.
 */
export function checkModelMemory(
    gguf: GgufMetadata,
    load: {
        layerCount: number;
        gpuLayers: number;
        devices: readonly string[];
        overrides: readonly { pattern: string; bufferType: string }[];
        useMmap: boolean;
        /** The CPU backend's extra buffer types in force ([] with repack: false). */
        extraBufferTypes: readonly string[];
    },
    host: HostMemory = getHostMemory(),
    free: (names: readonly string[]) => DeviceFree = devicesFree,
): void {
    const onGpu = load.devices.length > 0 && load.gpuLayers !== 0;
    const placed = modelWeightPlacement(gguf, load.layerCount, load.gpuLayers, onGpu, load.overrides);
    if (load.useMmap) {
        // Mapped pages are the file's (page cache), not anonymous memory: only the
        // address space is taken, by the whole mapping.
        const fileBytes = gguf.tensors.reduce((end, t) => Math.max(end, gguf.dataOffset + t.offset + t.byteSize), gguf.dataOffset);
        requireHostFit({ what: 'Memory-mapping this model', resource: 'address space', parts: [{ name: 'file', bytes: fileBytes }] }, host, `raise the limit or ${MODEL_ADVICE}`, ['address-space']);
        // Weights an extra buffer type takes are copied out of the mapping into allocated
        // memory: those count against RAM (an upper bound: which of them it takes depends
        // on the CPU and the shapes, and only those staying on the CPU are copied).
        const copies = weightCopyCandidates(gguf, load.extraBufferTypes);
        const copiedHere = Math.min(copies.bytes, placed.hostBytes);
        if (copiedHere > 0) {
            requireHostFit(
                { what: 'Loading this model', parts: [{ name: `weight copies in ${copies.bufferTypes.join(', ')}`, bytes: copiedHere }] },
                host,
                `load it with repack: false (the weights then stay in the mapped file), or ${MODEL_ADVICE}`,
            );
        }
    } else {
        requireHostFit(
            { what: 'Loading this model without mmap', parts: [{ name: 'weights', bytes: placed.hostBytes }] },
            host,
            `load it with useMmap: true (the default, which reads the weights from the page cache), offload layers to a GPU, or ${MODEL_ADVICE}`,
        );
    }
    if (onGpu && placed.deviceBytes > 0) {
        const layers = `weights of ${placed.layersOnDevice} layers${placed.outputOnDevice ? ' and the output layer' : ''}`;
        requireDeviceFit(
            { what: 'Offloading this model', parts: [{ name: layers, bytes: placed.deviceBytes }] },
            free(load.devices),
            `lower gpuLayers (llama.cpp keeps the rest on the CPU), keep MoE experts on the CPU with cpuMoeLayers, or ${MODEL_ADVICE}`,
        );
    }
}

const CONTEXT_ADVICE =
    "use a smaller contextSize or fewer parallel sequences, a quantized K/V cache (cacheTypeK / cacheTypeV, or kvPreset 'balanced' or 'aggressive'), " +
    'or planFit() to choose settings that fit';

/** Checks a context's KV cache, compute and output buffers against the host limits and the model's devices. */
export function checkContextMemory(
    estimate: MemoryEstimate,
    model: { layerCount: number; gpuLayers: number; devices: readonly string[]; offloadKqv: boolean },
    host: HostMemory = getHostMemory(),
    free: (names: readonly string[]) => DeviceFree = devicesFree,
): void {
    const onGpu = model.devices.length > 0 && model.gpuLayers !== 0;
    const placed = contextPlacement(estimate, model.layerCount, model.gpuLayers, onGpu, model.offloadKqv);
    requireHostFit({ what: 'This context', parts: placed.host }, host, CONTEXT_ADVICE);
    if (onGpu && placed.device.some((p) => p.bytes > 0)) {
        requireDeviceFit({ what: 'This context', parts: placed.device }, free(model.devices), `${CONTEXT_ADVICE}, or offloadKqv: false`);
    }
}
