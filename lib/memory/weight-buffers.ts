/**
 * Where a model's weights live, per ggml buffer type, as llama.cpp places them.
 *
 * With mmap, the weights that stay in the CPU's default buffer type are a view of the
 * mapped file (`CPU_Mapped`): one buffer spanning the file range from the first to the
 * last of its tensors, so it also spans any tensor between them that went elsewhere.
 * The CPU backend's extra buffer types (`AMX`, `CPU_REPACK`) hold copies of the weights
 * they support, in their own layout, in allocated (anonymous) memory. Without mmap every
 * buffer is allocated.
 */
import type { GgufMetadata, GgufTensorInfo } from '../gguf/types.js';

/** One buffer type holding weights. */
export interface WeightBuffer {
    /**
     * ggml's buffer type name: `'CPU_Mapped'`, `'CPU'`, `'AMX'`, `'CPU_REPACK'`, `'CUDA0'`, ...
     * At the header level the copies are one entry named after the extra buffer types that
     * may take them, joined by `/` (e.g. `'AMX/CPU_REPACK'`).
     */
    bufferType: string;
    /** The device whose memory it is, e.g. `'CPU'`. */
    device: string;
    /** Bytes of the buffer, as llama.cpp allocated or mapped it. */
    bytes: number;
    /**
     * A view of the memory-mapped model file (page cache: shared, and the kernel can drop
     * clean pages under pressure) rather than memory allocated for a copy.
     */
    mapped: boolean;
    /** Weight tensors in this buffer; null when the placement is not known. */
    tensors: number | null;
    /**
     * Mapped buffers only: bytes of the mapped range that hold tensors llama.cpp loaded into
     * another buffer. Their file pages are read once during the load and stay mapped (they
     * count in RSS until the kernel drops them); 0 otherwise, null when not known.
     */
    elsewhereBytes: number | null;
}

/** The weights of a model: the total and each buffer type. */
export interface WeightsMemory {
    bytes: number;
    /** Each buffer type holding weights, largest first. */
    byBufferType: WeightBuffer[];
    /** Bytes of the buffers that map the file (page cache). */
    mappedBytes: number;
    /** Bytes of the buffers allocated for weights (copies: host RAM or device memory). */
    allocatedBytes: number;
}

/** Each weight tensor and the buffer type llama.cpp placed it in. */
export interface WeightPlacement {
    names: readonly string[];
    buffers: readonly string[];
    bytes: readonly number[];
}

/** Whether a buffer type name is one of ggml's views of host memory that it did not allocate (a mapped file). */
export function isMappedBufferType(name: string): boolean {
    return /_Mapped$/.test(name);
}

/**
 * ggml's CPU buffer alignment (TENSOR_ALIGNMENT): tensors in an allocated CPU buffer start
 * at multiples of it, and a memory-mapped tensor's address must be one (ggml asserts).
 */
export const CPU_TENSOR_ALIGNMENT = 32;

/**
 * The first tensor off a CPU_TENSOR_ALIGNMENT boundary of the file, if any: such a file
 * cannot be memory-mapped (a general.alignment of 1 or 8 can do it), so LlamaModel.load
 * reads it instead.
 */
export function firstMisalignedTensor(gguf: GgufMetadata): GgufTensorInfo | undefined {
    return gguf.tensors.find((t) => (gguf.dataOffset + t.offset) % CPU_TENSOR_ALIGNMENT !== 0);
}

/** ggml's name of the CPU's default buffer type: where a weight goes when no other type takes it. */
export const CPU_BUFFER_TYPE = 'CPU';
/** ggml's name of a buffer that maps host memory (the model file) for the CPU. */
export const CPU_MAPPED_BUFFER_TYPE = 'CPU_Mapped';

/** The file range [first, last) of the named tensors, as llama.cpp maps it (llama_model_loader::get_mapping_range). */
export function mappedRange(gguf: GgufMetadata, names: Iterable<string>): { first: number; last: number } | null {
    const byName = tensorsByName(gguf);
    let first = Infinity;
    let last = 0;
    for (const name of names) {
        const t = byName.get(name);
        if (!t) continue;
        first = Math.min(first, gguf.dataOffset + t.offset);
        last = Math.max(last, gguf.dataOffset + t.offset + t.byteSize);
    }
    return first < last ? { first, last } : null;
}

const byNameCache = new WeakMap<GgufMetadata, Map<string, GgufTensorInfo>>();
function tensorsByName(gguf: GgufMetadata): Map<string, GgufTensorInfo> {
    let map = byNameCache.get(gguf);
    if (!map) {
        map = new Map(gguf.tensors.map((t) => [t.name, t]));
        byNameCache.set(gguf, map);
    }
    return map;
}

/** Bytes of tensors inside `range` of the file that are not among `inside`. */
function elsewhereInRange(gguf: GgufMetadata, range: { first: number; last: number }, inside: ReadonlySet<string>): number {
    let bytes = 0;
    for (const t of gguf.tensors) {
        const start = gguf.dataOffset + t.offset;
        if (inside.has(t.name) || start + t.byteSize <= range.first || start >= range.last) continue;
        bytes += Math.min(start + t.byteSize, range.last) - Math.max(start, range.first);
    }
    return bytes;
}

/**
 * The weight buffers of a model from llama.cpp's buffer figures, with the tensor counts and
 * the mapped bytes that hold tensors placed elsewhere when the placement and header are known.
 */
export function describeWeightBuffers(
    buffers: readonly { bufferType: string; device: string; bytes: number }[],
    placement: WeightPlacement | null,
    gguf: GgufMetadata | null,
): WeightsMemory {
    const byType = new Map<string, WeightBuffer>();
    for (const b of buffers) {
        if (b.bytes <= 0) continue;
        const entry = byType.get(b.bufferType);
        if (entry) {
            entry.bytes += b.bytes;
            continue;
        }
        const mapped = isMappedBufferType(b.bufferType);
        byType.set(b.bufferType, { bufferType: b.bufferType, device: b.device, bytes: b.bytes, mapped, tensors: null, elsewhereBytes: mapped ? null : 0 });
    }
    if (placement) {
        const facts = placementFacts(placement, gguf);
        for (const entry of byType.values()) {
            const f = facts.get(entry.bufferType);
            entry.tensors = f?.tensors ?? 0;
            if (entry.mapped && gguf) entry.elsewhereBytes = f?.elsewhereBytes ?? 0;
        }
    }
    return summarize([...byType.values()]);
}

/**
 * Per buffer type of a placement: its tensors, and (with the header) the bytes of its file
 * range that hold other tensors. A model's placement never changes after the load, so this
 * is worked out once per placement and header, not on every memoryReport().
 */
const factsCache = new WeakMap<WeightPlacement, { gguf: GgufMetadata | null; facts: Map<string, { tensors: number; elsewhereBytes: number }> }>();
function placementFacts(placement: WeightPlacement, gguf: GgufMetadata | null): Map<string, { tensors: number; elsewhereBytes: number }> {
    const cached = factsCache.get(placement);
    if (cached && cached.gguf === gguf) return cached.facts;
    const names = new Map<string, Set<string>>();
    placement.names.forEach((name, i) => {
        const type = placement.buffers[i];
        let set = names.get(type);
        if (!set) names.set(type, (set = new Set()));
        set.add(name);
    });
    const facts = new Map<string, { tensors: number; elsewhereBytes: number }>();
    for (const [type, inside] of names) {
        const range = gguf ? mappedRange(gguf, inside) : null;
        facts.set(type, { tensors: inside.size, elsewhereBytes: range && gguf ? elsewhereInRange(gguf, range, inside) : 0 });
    }
    factsCache.set(placement, { gguf, facts });
    return facts;
}

/** Totals of a list of weight buffers, sorted largest first. */
export function summarize(list: WeightBuffer[]): WeightsMemory {
    const sorted = [...list].sort((a, b) => b.bytes - a.bytes || a.bufferType.localeCompare(b.bufferType));
    const sum = (keep: (b: WeightBuffer) => boolean) => sorted.filter(keep).reduce((s, b) => s + b.bytes, 0);
    return { bytes: sum(() => true), byBufferType: sorted, mappedBytes: sum((b) => b.mapped), allocatedBytes: sum((b) => !b.mapped) };
}

/**
 * The buffer types a dry run gives the weights that a memory-mapped load leaves in the
 * file: the CPU's default one, and a GPU backend's pinned host one (`Vulkan_Host`,
 * `CUDA_Host`), which llama.cpp puts first in the CPU's list when a GPU is in use; a
 * mapped load maps those weights instead (measured on Vulkan: test/gpu/placement.test.ts).
 */
function isDefaultHostBufferType(name: string | undefined): boolean {
    return name === CPU_BUFFER_TYPE || (name !== undefined && /_Host$/.test(name));
}

/**
 * What a memory-mapped load of the file would give, from a dry run's placement (a dry run
 * maps nothing: its default-CPU weights sit in an allocated `CPU` buffer, or a GPU
 * backend's pinned host buffer). Those weights become one `CPU_Mapped` buffer spanning
 * their file range; every other buffer type keeps its figure.
 */
export function mappedFromDryRun(dryRun: WeightsMemory, placement: WeightPlacement, gguf: GgufMetadata): WeightsMemory {
    const inside = new Set(placement.names.filter((_, i) => isDefaultHostBufferType(placement.buffers[i])));
    const range = mappedRange(gguf, inside);
    const rest = dryRun.byBufferType.filter((b) => !isDefaultHostBufferType(b.bufferType));
    if (!range) return summarize(rest);
    const mapped: WeightBuffer = {
        bufferType: CPU_MAPPED_BUFFER_TYPE,
        device: 'CPU',
        bytes: range.last - range.first,
        mapped: true,
        tensors: inside.size,
        elsewhereBytes: elsewhereInRange(gguf, range, inside),
    };
    return summarize([mapped, ...rest]);
}

// --- the header level: which weights this CPU's extra buffer types may copy -------

/**
 * The weight types each known extra buffer type of ggml's CPU backend can take, by CPU
 * architecture (a superset: which of them it takes on a given CPU also depends on its
 * instruction sets and on the tensor's shape). From ggml-cpu: amx/common.h
 * qtype_has_amx_kernels and amx.cpp supports_op (F16 too); repack.cpp
 * ggml_repack_get_optimal_repack_type (x86: Q4_0, Q4_K, IQ4_NL, MXFP4 with AVX2, Q2_K with
 * AVX-512; ARM and RISC-V add Q5_K, Q6_K and Q8_0). A buffer type not listed here may take
 * any type.
 */
export function extraBufferTypeWeights(arch: string = process.arch): Readonly<Record<string, readonly string[]>> {
    const x86 = arch === 'x64' || arch === 'ia32';
    return {
        AMX: ['Q4_0', 'Q4_1', 'Q8_0', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_XS', 'F16'],
        CPU_REPACK: x86 ? ['Q4_0', 'Q4_K', 'Q2_K', 'IQ4_NL', 'MXFP4'] : ['Q4_0', 'Q4_K', 'Q2_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'MXFP4', 'Q8_0'],
    };
}

/**
 * Whether llama.cpp could give this tensor to an extra buffer type at all: the extra
 * types take weights of matrix multiplications only, so not 1-D tensors (norms, biases)
 * and not the token embedding (read by row).
 */
function isMatmulWeight(t: GgufTensorInfo): boolean {
    return t.shape.filter((d) => d > 1).length >= 2 && !/^token_embd\./.test(t.name) && !/(^|\.)(rope_freqs|rope_factors_\w+)\./.test(t.name);
}

/** Weights that the CPU's extra buffer types may hold a copy of: at the header level, an upper bound. */
export interface WeightCopyCandidates {
    bytes: number;
    tensors: number;
    /** The extra buffer types that could take them, e.g. ['AMX']. */
    bufferTypes: string[];
    /** Their weight types, e.g. ['F16', 'Q8_0']. */
    types: string[];
}

/** The tensors of `gguf` that one of `extraBufferTypes` may take on a CPU of `arch` (see extraBufferTypeWeights). */
export function weightCopyCandidates(gguf: GgufMetadata, extraBufferTypes: readonly string[], arch: string = process.arch): WeightCopyCandidates {
    const out: WeightCopyCandidates = { bytes: 0, tensors: 0, bufferTypes: [], types: [] };
    const known = extraBufferTypeWeights(arch);
    for (const t of gguf.tensors) {
        if (!isMatmulWeight(t)) continue;
        const takers = extraBufferTypes.filter((b) => known[b]?.includes(t.typeName) ?? true);
        if (takers.length === 0) continue;
        out.bytes += t.byteSize;
        out.tensors++;
        for (const b of takers) if (!out.bufferTypes.includes(b)) out.bufferTypes.push(b);
        if (!out.types.includes(t.typeName)) out.types.push(t.typeName);
    }
    return out;
}
