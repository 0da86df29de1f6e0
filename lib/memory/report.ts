/**
 * Memory reports: what a live context has allocated, read from llama.cpp's buffers
 * and KV cache tensors (never recomputed from a formula).
 */
import { stateSizeOf, type StateSize } from './state-size.js';
import type { NativeMemoryReport } from '../native/binding.js';
import type { GgufMetadata } from '../gguf/types.js';
import type { KvCacheType } from '../options/kv-cache.js';
import { describeWeightBuffers, type WeightPlacement, type WeightsMemory } from './weight-buffers.js';

export type { WeightBuffer, WeightsMemory } from './weight-buffers.js';

/** Bytes of one component. */
export interface MemoryComponent {
    bytes: number;
}

/** Where a context's memory lives, per device. */
export interface DeviceMemory {
    /** ggml device name, e.g. 'CPU' or 'CUDA0'. */
    name: string;
    kind: 'cpu' | 'gpu' | 'other';
    weightsBytes: number;
    /** MoE expert weights (ffn_*_exps tensors), part of weightsBytes: where `cpuMoeLayers` put them. 0 for dense models. */
    expertWeightsBytes: number;
    kvBytes: number;
    /** The active LoRA adapters' tensors on this device. */
    loraBytes: number;
    computeBytes: number;
    outputBytes: number;
    /** Free and total memory of the device, as ggml reports them (system RAM for the CPU). */
    freeBytes?: number;
    totalBytes?: number;
    /** A remote device (ggml's RPC backend, `rpcServers`): its server's host:port. Absent for local devices. */
    endpoint?: string;
}

/** A context's memory, by component and by device. */
export interface MemoryReport {
    kv: {
        k: { type: KvCacheType | null; bytes: number };
        v: { type: KvCacheType | null; bytes: number };
        /** The KV cache buffers (K + V, plus recurrent state where the model has it). */
        bytes: number;
        /** KV cells over all streams: the padded contextSize (iSWA models: full plus window caches). */
        cells: number;
        /** Layers with a KV cache. */
        layers: number;
        /** KV streams: 1 when kvUnified, else one per sequence (parallel). */
        sequences: number;
        /** The cells one sequence may fill: its own stream's (contextSize / parallel), or with kvUnified the whole shared pool. */
        cellsPerSequence: number;
        /** The cells each sequence holds now, by sequence id (its cached tokens); with kvUnified their sum is what the pool has in use. */
        cellsUsed: number[];
        /** Recurrent state (Mamba, RWKV, hybrid models), counted in `bytes`. */
        recurrentBytes: number;
        /** Present when the figures need a word of explanation (recurrent state, no KV cache). */
        note?: string;
        /**
         * What a saved state of one sequence takes (seq.saveState, a prompt cache entry): n tokens
         * take `fixedBytes + n * bytesPerToken` plus the header's JSON (about 1 KB). Exact for a
         * dense KV cache; a quantized cache's state shrinks with it (q4_0 is about a quarter of f16).
         */
        state: StateSize;
    };
    /**
     * The model's tensors, on every device, per buffer type: what maps the file
     * (`CPU_Mapped`) and what holds copies (`AMX`, `CPU_REPACK`, `CPU` without mmap, GPU buffers).
     */
    weights: WeightsMemory;
    /** The LoRA adapters active on the context (each counted once), on every device. */
    loras: MemoryComponent;
    /** The scheduler's compute buffers. */
    compute: MemoryComponent;
    /** The host buffer for logits / embeddings. */
    output: MemoryComponent;
    /** States the prompt cache holds in RAM (0 without the `promptCache` option; an estimate counts its `ramBytes`). */
    promptCache: MemoryComponent;
    /** weights + loras + kv + compute + output + promptCache. */
    total: MemoryComponent;
    devices: DeviceMemory[];
}

/** A MoE expert weight tensor (llama.cpp's ffn_{up,down,gate,gate_up}_exps). @internal */
export function isExpertTensor(name: string): boolean {
    return /\.ffn_(up|down|gate|gate_up)_(ch|)exps\b/.test(name);
}

/**
 * Builds the public report from the native figures; `model` (the weight placement and the
 * file's header) adds tensor counts and the mapped bytes that hold tensors placed elsewhere.
 * @internal
 */
export function toMemoryReport(native: NativeMemoryReport, model: { placement: WeightPlacement; gguf: GgufMetadata } | null = null): MemoryReport {
    const devices = new Map<string, DeviceMemory>();
    const device = (place: { device: string; kind: DeviceMemory['kind']; freeBytes?: number; totalBytes?: number; endpoint?: string }) => {
        let d = devices.get(place.device);
        if (!d) {
            d = { name: place.device, kind: place.kind, weightsBytes: 0, expertWeightsBytes: 0, kvBytes: 0, loraBytes: 0, computeBytes: 0, outputBytes: 0 };
            if (place.freeBytes !== undefined) d.freeBytes = place.freeBytes;
            if (place.totalBytes !== undefined) d.totalBytes = place.totalBytes;
            if (place.endpoint !== undefined) d.endpoint = place.endpoint;
            devices.set(place.device, d);
        }
        return d;
    };
    for (const b of native.buffers) {
        const d = device(b);
        d.weightsBytes += b.model;
        d.expertWeightsBytes += b.experts;
        d.kvBytes += b.context;
        d.computeBytes += b.compute;
    }
    if (native.output.bytes > 0) device(native.output).outputBytes += native.output.bytes;
    for (const l of native.loras) device(l).loraBytes += l.bytes;
    const list = [...devices.values()];
    const sum = (key: 'weightsBytes' | 'kvBytes' | 'loraBytes' | 'computeBytes' | 'outputBytes') => list.reduce((s, d) => s + d[key], 0);
    const kv = native.kv;
    const report: MemoryReport = {
        kv: {
            k: { type: kv.typeK as KvCacheType | null, bytes: kv.kBytes },
            v: { type: kv.typeV as KvCacheType | null, bytes: kv.vBytes },
            bytes: sum('kvBytes'),
            cells: kv.cells * kv.streams,
            layers: kv.layers,
            sequences: kv.streams,
            cellsPerSequence: kv.cells,
            cellsUsed: [...(kv.sequenceCells ?? [])],
            recurrentBytes: kv.recurrentBytes,
            state: { bytesPerToken: 0, fixedBytes: 0 },
        },
        weights: describeWeightBuffers(
            native.buffers.map((b) => ({ bufferType: b.buffer, device: b.device, bytes: b.model })),
            model?.placement ?? null,
            model?.gguf ?? null,
        ),
        loras: { bytes: sum('loraBytes') },
        compute: { bytes: sum('computeBytes') },
        output: { bytes: sum('outputBytes') },
        promptCache: { bytes: 0 },
        total: { bytes: 0 },
        devices: list,
    };
    report.kv.state = stateSizeOf(report.kv);
    report.total.bytes = report.weights.bytes + report.loras.bytes + report.kv.bytes + report.compute.bytes + report.output.bytes;
    if (!kv.present && kv.recurrentBytes === 0) report.kv.note = 'this model has no KV cache';
    else if (kv.recurrentBytes > 0) report.kv.note = `includes ${kv.recurrentBytes} bytes of recurrent state (not K/V)`;
    return report;
}
