// Where the weights live, on synthetic placements: the logic for the CPU's extra buffer
// types (AMX, CPU_REPACK) that this machine's CPU may or may not exercise.
import { describe, expect, it } from 'vitest';
import type { GgufMetadata } from '../../lib/gguf/types.js';
import {
    describeWeightBuffers,
    extraBufferTypeWeights,
    isMappedBufferType,
    mappedFromDryRun,
    mappedRange,
    summarize,
    weightCopyCandidates,
    type WeightPlacement,
} from '../../lib/memory/weight-buffers.js';

const KIB = 1024;

/** A file of 5 tensors, each `size` bytes at `offset` of a data section starting at 4096. */
const header = (): GgufMetadata =>
    ({
        version: 3,
        alignment: 32,
        dataOffset: 4096,
        kv: {},
        kvTypes: {},
        tensors: [
            { name: 'token_embd.weight', type: 8, typeName: 'Q8_0', shape: [256, 1000], offset: 0, byteSize: 100 * KIB },
            { name: 'blk.0.attn_norm.weight', type: 0, typeName: 'F32', shape: [256], offset: 100 * KIB, byteSize: 1 * KIB },
            { name: 'blk.0.attn_q.weight', type: 8, typeName: 'Q8_0', shape: [256, 256], offset: 101 * KIB, byteSize: 68 * KIB },
            { name: 'blk.0.ffn_up.weight', type: 2, typeName: 'Q4_0', shape: [256, 512], offset: 169 * KIB, byteSize: 72 * KIB },
            { name: 'output.weight', type: 1, typeName: 'F16', shape: [256, 1000], offset: 241 * KIB, byteSize: 500 * KIB },
        ],
    }) as unknown as GgufMetadata;

const placement = (buffers: Record<string, string>): WeightPlacement => {
    const names = Object.keys(buffers);
    const bytes = Object.fromEntries(header().tensors.map((t) => [t.name, t.byteSize]));
    return { names, buffers: names.map((n) => buffers[n]), bytes: names.map((n) => bytes[n]) };
};

describe('weight buffers', () => {
    it('tells mapped buffer types from allocated ones', () => {
        expect(['CPU_Mapped', 'Metal_Mapped', 'CPU', 'AMX', 'CPU_REPACK', 'CUDA0', 'CUDA_Host'].filter(isMappedBufferType)).toEqual(['CPU_Mapped', 'Metal_Mapped']);
    });

    it("maps a file range as llama.cpp's get_mapping_range does: first offset to last end", () => {
        const g = header();
        expect(mappedRange(g, ['blk.0.attn_norm.weight', 'output.weight'])).toEqual({ first: 4096 + 100 * KIB, last: 4096 + 741 * KIB });
        expect(mappedRange(g, [])).toBeNull();
        expect(mappedRange(g, ['no.such.tensor'])).toBeNull();
    });

    it('reports a mapped buffer with the bytes of its range that hold tensors placed elsewhere', () => {
        // As an AMX host places them: the matrix weights in AMX, the embedding and the norm mapped.
        const p = placement({
            'token_embd.weight': 'CPU_Mapped',
            'blk.0.attn_norm.weight': 'CPU_Mapped',
            'blk.0.attn_q.weight': 'AMX',
            'blk.0.ffn_up.weight': 'AMX',
            'output.weight': 'AMX',
        });
        const w = describeWeightBuffers(
            [
                { bufferType: 'CPU_Mapped', device: 'CPU', bytes: 101 * KIB },
                { bufferType: 'AMX', device: 'CPU', bytes: 700 * KIB },
                { bufferType: 'CPU', device: 'CPU', bytes: 0 }, // KV and compute only: no weights
            ],
            p,
            header(),
        );
        expect(w.byBufferType).toEqual([
            { bufferType: 'AMX', device: 'CPU', bytes: 700 * KIB, mapped: false, tensors: 3, elsewhereBytes: 0 },
            { bufferType: 'CPU_Mapped', device: 'CPU', bytes: 101 * KIB, mapped: true, tensors: 2, elsewhereBytes: 0 },
        ]);
        expect(w).toMatchObject({ bytes: 801 * KIB, mappedBytes: 101 * KIB, allocatedBytes: 700 * KIB });

        // Mapped from the embedding to the output matrix: the range spans the three tensors placed in AMX and CPU_REPACK between them.
        const p2 = placement({
            'token_embd.weight': 'CPU_Mapped',
            'blk.0.attn_norm.weight': 'AMX',
            'blk.0.attn_q.weight': 'AMX',
            'blk.0.ffn_up.weight': 'CPU_REPACK',
            'output.weight': 'CPU_Mapped',
        });
        const w2 = describeWeightBuffers([{ bufferType: 'CPU_Mapped', device: 'CPU', bytes: 741 * KIB }], p2, header());
        expect(w2.byBufferType[0]).toMatchObject({ bufferType: 'CPU_Mapped', tensors: 2, elsewhereBytes: (1 + 68 + 72) * KIB });
    });

    it('without the placement, counts and spans are unknown (null), the figures still summed', () => {
        const w = describeWeightBuffers(
            [
                { bufferType: 'CPU_Mapped', device: 'CPU', bytes: 10 },
                { bufferType: 'CUDA0', device: 'CUDA0', bytes: 30 },
                { bufferType: 'CUDA0', device: 'CUDA0', bytes: 5 },
            ],
            null,
            null,
        );
        expect(w.byBufferType).toEqual([
            { bufferType: 'CUDA0', device: 'CUDA0', bytes: 35, mapped: false, tensors: null, elsewhereBytes: 0 },
            { bufferType: 'CPU_Mapped', device: 'CPU', bytes: 10, mapped: true, tensors: null, elsewhereBytes: null },
        ]);
        expect(summarize([]).bytes).toBe(0);
    });

    it("turns a dry run (nothing mapped: the CPU's own weights in a CPU buffer) into what a mapped load gives", () => {
        const p = placement({
            'token_embd.weight': 'CPU',
            'blk.0.attn_norm.weight': 'CPU',
            'blk.0.attn_q.weight': 'AMX',
            'blk.0.ffn_up.weight': 'CPU',
            'output.weight': 'AMX',
        });
        const dryRun = summarize([
            { bufferType: 'CPU', device: 'CPU', bytes: 173 * KIB + 96, mapped: false, tensors: 3, elsewhereBytes: 0 },
            { bufferType: 'AMX', device: 'CPU', bytes: 600 * KIB, mapped: false, tensors: 2, elsewhereBytes: 0 },
        ]);
        const mapped = mappedFromDryRun(dryRun, p, header());
        // The range: token_embd (0) to the end of ffn_up (241 KiB), over attn_q (68 KiB) in AMX.
        expect(mapped.byBufferType).toEqual([
            { bufferType: 'AMX', device: 'CPU', bytes: 600 * KIB, mapped: false, tensors: 2, elsewhereBytes: 0 },
            { bufferType: 'CPU_Mapped', device: 'CPU', bytes: 241 * KIB, mapped: true, tensors: 3, elsewhereBytes: 68 * KIB },
        ]);
        expect(mapped).toMatchObject({ bytes: 841 * KIB, mappedBytes: 241 * KIB, allocatedBytes: 600 * KIB });
        // Every weight in an extra buffer type: nothing is mapped.
        const none = placement({ 'blk.0.attn_q.weight': 'AMX' });
        expect(mappedFromDryRun(summarize([{ bufferType: 'AMX', device: 'CPU', bytes: 5, mapped: false, tensors: 1, elsewhereBytes: 0 }]), none, header()).byBufferType.map((b) => b.bufferType)).toEqual(['AMX']);
    });

    it("lists the weights an extra buffer type may copy: matrices of the types it takes, on the CPU's architecture", () => {
        const g = header();
        // AMX takes Q8_0, Q4_0 and F16 matrices; never the token embedding (read by row) or 1-D norms.
        expect(weightCopyCandidates(g, ['AMX'], 'x64')).toEqual({ bytes: (68 + 72 + 500) * KIB, tensors: 3, bufferTypes: ['AMX'], types: ['Q8_0', 'Q4_0', 'F16'] });
        // CPU_REPACK on x86: Q4_0 (AVX2), not Q8_0; on ARM also Q8_0.
        expect(weightCopyCandidates(g, ['CPU_REPACK'], 'x64')).toMatchObject({ bytes: 72 * KIB, tensors: 1, types: ['Q4_0'] });
        expect(weightCopyCandidates(g, ['CPU_REPACK'], 'arm64')).toMatchObject({ bytes: (68 + 72) * KIB, tensors: 2, types: ['Q8_0', 'Q4_0'] });
        expect(weightCopyCandidates(g, ['AMX', 'CPU_REPACK'], 'x64').bufferTypes).toEqual(['AMX', 'CPU_REPACK']);
        // None in force (repack: false, or a CPU without them): nothing is copied.
        expect(weightCopyCandidates(g, [], 'x64')).toEqual({ bytes: 0, tensors: 0, bufferTypes: [], types: [] });
        // A buffer type this table does not know may take any matrix.
        expect(weightCopyCandidates(g, ['KLEIDIAI'], 'arm64')).toMatchObject({ tensors: 3, bufferTypes: ['KLEIDIAI'] });
        expect(extraBufferTypeWeights('x64').CPU_REPACK).not.toContain('Q8_0');
    });
});
