import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
    f16BitsToF32,
    f32ToBytes,
    f32ToF16Bits,
    f32ToF16Bytes,
    quantizeQ4_0,
    quantizeQ8_0,
    serializeGguf,
    writeGguf,
    type GgufKvEntry,
    type GgufTensorEntry,
} from '../../lib/gguf/writer.js';
import { GGML_TYPES, ggmlTensorByteSize, ggmlTypeName, GGUF_VALUE_TYPE as T } from '../../lib/gguf/types.js';
import { parseGguf, readGgufMetadata } from '../../lib/gguf/reader.js';
import { LlamaConfigError, LlamaModelLoadError } from '../../lib/errors.js';


let tmp: string;

beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'llama-kv-gguf-'));
});

afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
});

/** One entry of every scalar type and several array types. */
function allTypesKv(): GgufKvEntry[] {
    return [
        { key: 'u8', type: T.UINT8, value: 255 },
        { key: 'i8', type: T.INT8, value: -128 },
        { key: 'u16', type: T.UINT16, value: 65535 },
        { key: 'i16', type: T.INT16, value: -32768 },
        { key: 'u32', type: T.UINT32, value: 4294967295 },
        { key: 'i32', type: T.INT32, value: -2147483648 },
        { key: 'f32', type: T.FLOAT32, value: 1.5 },
        { key: 'bool.t', type: T.BOOL, value: true },
        { key: 'bool.f', type: T.BOOL, value: false },
        { key: 'str', type: T.STRING, value: 'héllo ▁wörld 🦙' },
        { key: 'str.bom', type: T.STRING, value: '\uFEFF' },
        { key: 'str.empty', type: T.STRING, value: '' },
        { key: 'u64.small', type: T.UINT64, value: 42 },
        { key: 'u64.big', type: T.UINT64, value: 0xffffffffffffffffn },
        { key: 'i64.small', type: T.INT64, value: -5n },
        { key: 'i64.big', type: T.INT64, value: -0x8000000000000000n },
        { key: 'f64', type: T.FLOAT64, value: Math.PI },
        { key: 'arr.u8', type: T.ARRAY, arrayType: T.UINT8, value: [0, 1, 255] },
        { key: 'arr.i32', type: T.ARRAY, arrayType: T.INT32, value: [-1, 0, 2147483647] },
        { key: 'arr.f32', type: T.ARRAY, arrayType: T.FLOAT32, value: new Float32Array([0.5, -2.25]) },
        { key: 'arr.str', type: T.ARRAY, arrayType: T.STRING, value: ['a', '', '\uFEFF', '<0x0A>'] },
        { key: 'arr.bool', type: T.ARRAY, arrayType: T.BOOL, value: [true, false] },
        { key: 'arr.u64', type: T.ARRAY, arrayType: T.UINT64, value: [1, 2n ** 63n] },
        { key: 'arr.f64', type: T.ARRAY, arrayType: T.FLOAT64, value: [1e300] },
        { key: 'arr.empty', type: T.ARRAY, arrayType: T.INT16, value: [] },
    ];
}

/** Deterministic test tensors of each writable fixture type. */
function someTensors(): GgufTensorEntry[] {
    const f = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => (i - n / 2) / 7);
    return [
        { name: 'a.f32', type: 'F32', shape: [5], data: f32ToBytes(f(5)) },
        { name: 'b.f16', type: 'F16', shape: [4, 3], data: f32ToF16Bytes(f(12)) },
        { name: 'c.q8_0', type: 'Q8_0', shape: [64, 2], data: quantizeQ8_0(f(128)) },
    ];
}

/** Copy of `bytes` with a uint64 overwritten at `at`. */
function patchU64(bytes: Uint8Array, at: number, value: bigint): Uint8Array {
    const copy = bytes.slice();
    new DataView(copy.buffer).setBigUint64(at, value, true);
    return copy;
}

describe('GGML_TYPES', () => {
    it('has the ids and block sizes of ggml.h / gguf-py', () => {
        expect(GGML_TYPES.F32).toEqual({ id: 0, blockSize: 1, typeSize: 4 });
        expect(GGML_TYPES.Q8_0).toEqual({ id: 8, blockSize: 32, typeSize: 34 });
        expect(GGML_TYPES.Q4_K).toEqual({ id: 12, blockSize: 256, typeSize: 144 });
        expect(GGML_TYPES.Q6_K).toEqual({ id: 14, blockSize: 256, typeSize: 210 });
        expect(GGML_TYPES.IQ4_XS).toEqual({ id: 23, blockSize: 256, typeSize: 136 });
        expect(GGML_TYPES.BF16).toEqual({ id: 30, blockSize: 1, typeSize: 2 });
        expect(ggmlTypeName(28)).toBe('F64');
        expect(ggmlTypeName(4)).toBeUndefined();
        expect(ggmlTensorByteSize('Q4_0', [64, 3])).toBe(2 * 3 * 18);
        expect(() => ggmlTensorByteSize('Q4_K', [128])).toThrow(/block size 256/);
    });
});

describe('f16 conversion', () => {
    it('rounds to nearest even with subnormals, overflow and NaN', () => {
        const cases: Array<[number, number]> = [
            [1, 0x3c00],
            [-2, 0xc000],
            [65504, 0x7bff],
            [65520, 0x7c00],
            [Infinity, 0x7c00],
            [-0, 0x8000],
            [2 ** -24, 0x0001],
            [2 ** -25, 0x0000],
            [3 * 2 ** -25, 0x0002],
            [0.1, 0x2e66],
            [1 + 1 / 2048, 0x3c00],
            [1 + 3 / 2048, 0x3c02],
        ];
        for (const [value, bits] of cases) {
            expect(f32ToF16Bits(value), `f16(${value})`).toBe(bits);
        }
        expect(f32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
        expect(f32ToF16Bits(NaN) & 0x3ff).not.toBe(0);
        expect(f16BitsToF32(0x3555)).toBeCloseTo(1 / 3, 3);
        expect(Array.from(f32ToF16Bytes([1, -2]))).toEqual([0x00, 0x3c, 0x00, 0xc0]);
    });
});

describe('quantizeQ8_0', () => {
    it('matches ggml quantize_row_q8_0_ref byte for byte', () => {
        const x = new Float32Array(96);
        for (let j = 0; j < 32; j++) {
            x[j] = (j - 16) / 4;
            x[64 + j] = ((j % 8) - 3.5) * 0.01;
        }
        // expected bytes produced by gguf-py's reference Q8_0 quantizer
        const expected =
            '082881899199a1a9b1b9c0c8d0d8e0e8f0f8000810182028303840474f575f676f77' +
            '0000' + '00'.repeat(32) +
            '840c' + '81a5caee12365b7f'.repeat(4);
        const q = quantizeQ8_0(x);
        expect(q.length).toBe(3 * 34);
        expect(Buffer.from(q).toString('hex')).toBe(expected);
    });

    it('rejects lengths that are not a multiple of 32', () => {
        expect(() => quantizeQ8_0(new Float32Array(33))).toThrow(/multiple of 32/);
    });
});

describe('quantizeQ4_0', () => {
    it('follows ggml quantize_row_q4_0_ref: d = max / -8, nibbles min(15, trunc(x/d + 8.5)), j low and j + 16 high', () => {
        const x = new Float32Array(64);
        for (let j = 0; j < 32; j++) x[j] = (j - 16) / 4; // max -4: d = 0.5, so x/d + 8.5 = j/2 + 0.5 (low) and j/2 + 8.5 (high)
        const q = quantizeQ4_0(x);
        expect(q.length).toBe(2 * 18);
        // fp16 0.5 = 0x3800; then q(j) | q(j + 16) << 4; a block of zeros has d = -0 (0x8000, as in C) and every nibble 8.
        expect(Buffer.from(q).toString('hex')).toBe('0038' + '8091' + '91a2a2b3b3c4c4d5d5e6e6f7f7f8' + '0080' + '88'.repeat(16));
    });

    it('rejects lengths that are not a multiple of 32', () => {
        expect(() => quantizeQ4_0(new Float32Array(48))).toThrow(/multiple of 32/);
    });
});

describe('GGUF round trip', () => {
    it('reads back every value type with its stored type', () => {
        const meta = parseGguf(serializeGguf({ kv: allTypesKv(), tensors: [] }));
        expect(meta.version).toBe(3);
        expect(meta.alignment).toBe(32);
        expect(meta.tensors).toEqual([]);
        expect({ ...meta.kv }).toEqual({
            u8: 255,
            i8: -128,
            u16: 65535,
            i16: -32768,
            u32: 4294967295,
            i32: -2147483648,
            f32: 1.5,
            'bool.t': true,
            'bool.f': false,
            str: 'héllo ▁wörld 🦙',
            'str.bom': '\uFEFF',
            'str.empty': '',
            'u64.small': 42,
            'u64.big': 0xffffffffffffffffn,
            'i64.small': -5,
            'i64.big': -0x8000000000000000n,
            f64: Math.PI,
            'arr.u8': [0, 1, 255],
            'arr.i32': [-1, 0, 2147483647],
            'arr.f32': [0.5, -2.25],
            'arr.str': ['a', '', '\uFEFF', '<0x0A>'],
            'arr.bool': [true, false],
            'arr.u64': [1, 2n ** 63n],
            'arr.f64': [1e300],
            'arr.empty': [],
        });
        for (const entry of allTypesKv()) {
            expect(meta.kvTypes[entry.key], entry.key).toEqual(
                entry.arrayType === undefined ? { type: entry.type } : { type: entry.type, arrayType: entry.arrayType },
            );
        }
        expect(Object.keys(meta.kv)).toEqual(allTypesKv().map((e) => e.key));
    });

    it('writes back byte-identical files from what it read', () => {
        const bytes = serializeGguf({ kv: allTypesKv(), tensors: someTensors() });
        const meta = parseGguf(bytes);
        const kv: GgufKvEntry[] = Object.keys(meta.kv).map((key) => ({ key, ...meta.kvTypes[key], value: meta.kv[key] }));
        const tensors = meta.tensors.map((t) => ({
            name: t.name,
            type: t.typeName,
            shape: t.shape,
            data: bytes.subarray(meta.dataOffset + t.offset, meta.dataOffset + t.offset + t.byteSize),
        }));
        expect(Buffer.from(serializeGguf({ kv, tensors })).equals(Buffer.from(bytes))).toBe(true);
    });

    it('places tensors at aligned offsets with exact data and zero padding', async () => {
        const tensors = someTensors();
        const path = join(tmp, 'aligned.gguf');
        await writeGguf(path, { kv: allTypesKv(), tensors, alignment: 64 });
        const bytes = new Uint8Array(await readFile(path));
        const meta = await readGgufMetadata(path);

        expect(meta.alignment).toBe(64);
        expect(meta.kv['general.alignment']).toBe(64);
        expect(meta.kvTypes['general.alignment']).toEqual({ type: T.UINT32 });
        expect(meta.dataOffset % 64).toBe(0);
        expect(meta.tensors.map((t) => [t.name, t.type, t.typeName, t.shape, t.offset, t.byteSize])).toEqual([
            ['a.f32', 0, 'F32', [5], 0, 20],
            ['b.f16', 1, 'F16', [4, 3], 64, 24],
            ['c.q8_0', 8, 'Q8_0', [64, 2], 128, 136],
        ]);
        for (const [i, t] of meta.tensors.entries()) {
            const start = meta.dataOffset + t.offset;
            expect(bytes.subarray(start, start + t.byteSize)).toEqual(tensors[i].data);
        }
        // padding between the tensor infos and the data, and after each tensor, is zero
        expect(bytes.subarray(meta.dataOffset + 20, meta.dataOffset + 64).every((b) => b === 0)).toBe(true);
        expect(bytes.length).toBe(meta.dataOffset + 128 + 192);
        expect(bytes.subarray(meta.dataOffset + 128 + 136).every((b) => b === 0)).toBe(true);
        expect(meta).toEqual(parseGguf(bytes));
    });

    it('uses the default alignment of 32 and does not pad a tensor-less file', () => {
        const withTensors = parseGguf(serializeGguf({ kv: [], tensors: someTensors() }));
        expect(withTensors.alignment).toBe(32);
        expect(withTensors.kv['general.alignment']).toBeUndefined();
        expect(withTensors.dataOffset % 32).toBe(0);
        expect(withTensors.tensors.map((t) => t.offset)).toEqual([0, 32, 64]);

        const empty = serializeGguf({ kv: [{ key: 'k', type: T.UINT8, value: 1 }], tensors: [] });
        expect(parseGguf(empty).dataOffset).toBe(empty.length);
        expect(empty.length).toBe(4 + 4 + 8 + 8 + 8 + 1 + 4 + 1);
    });

    it('honours a general.alignment entry given in kv', () => {
        const meta = parseGguf(
            serializeGguf({
                kv: [{ key: 'general.alignment', type: T.UINT32, value: 128 }],
                tensors: someTensors(),
            }),
        );
        expect(meta.alignment).toBe(128);
        expect(meta.dataOffset % 128).toBe(0);
        expect(meta.tensors.map((t) => t.offset)).toEqual([0, 128, 256]);
    });

    it('reads GGUF v2 files', () => {
        const bytes = serializeGguf({ kv: allTypesKv(), tensors: someTensors() });
        new DataView(bytes.buffer).setUint32(4, 2, true);
        const meta = parseGguf(bytes);
        expect(meta.version).toBe(2);
        expect(meta.tensors).toHaveLength(3);
    });
});

describe('writer validation', () => {
    it('rejects bad values, data sizes and duplicates', () => {
        const t = someTensors();
        expect(() => serializeGguf({ kv: [{ key: 'x', type: T.UINT8, value: 256 }], tensors: [] })).toThrow(/'x'/);
        expect(() => serializeGguf({ kv: [{ key: 'x', type: T.INT64, value: 1.5 }], tensors: [] })).toThrow(/integer/);
        expect(() => serializeGguf({ kv: [{ key: 'x', type: T.ARRAY, value: [1] }], tensors: [] })).toThrow(/arrayType/);
        expect(() =>
            serializeGguf({
                kv: [
                    { key: 'x', type: T.UINT8, value: 1 },
                    { key: 'x', type: T.UINT8, value: 2 },
                ],
                tensors: [],
            }),
        ).toThrow(/duplicated/);
        expect(() => serializeGguf({ kv: [], tensors: [{ ...t[0], data: new Uint8Array(3) }] })).toThrow(/expected 20/);
        expect(() => serializeGguf({ kv: [], tensors: [t[0], t[0]] })).toThrow(/duplicate tensor/);
        expect(() => serializeGguf({ kv: [], tensors: [], alignment: 48 })).toThrow(/power of 2/);
    });
});

describe('GGUF errors', () => {
    const good = (): Uint8Array => serializeGguf({ kv: allTypesKv(), tensors: someTensors() });

    it('rejects a bad magic', () => {
        const bytes = good();
        bytes.set([0x47, 0x47, 0x4d, 0x4c], 0); // "GGML"
        expect(() => parseGguf(bytes)).toThrow(/^not a GGUF file \(magic 47 47 4d 4c "GGML"/);
        expect(() => parseGguf(new Uint8Array(2))).toThrow(/not a GGUF file/);
    });

    it('rejects unsupported versions', () => {
        for (const version of [0, 1, 4, 0x03000000]) {
            const bytes = good();
            new DataView(bytes.buffer).setUint32(4, version, true);
            expect(() => parseGguf(bytes)).toThrow(`unsupported GGUF version ${version}`);
        }
    });

    it('reports truncation anywhere in the header or data', () => {
        const bytes = good();
        const meta = parseGguf(bytes);
        const last = meta.tensors[meta.tensors.length - 1];
        const dataEnd = meta.dataOffset + last.offset + last.byteSize;
        expect(() => parseGguf(bytes.subarray(0, dataEnd))).not.toThrow();
        for (const cut of [6, 20, 30, 100, meta.dataOffset - 40, meta.dataOffset + 10, dataEnd - 1]) {
            expect(() => parseGguf(bytes.subarray(0, cut)), `cut at ${cut}`).toThrow(/^truncated GGUF: /);
        }
    });

    it('rejects absurd string lengths and array counts without allocating', () => {
        // first key's length field follows magic, version, n_tensors and n_kv
        expect(() => parseGguf(patchU64(good(), 24, 1n << 40n))).toThrow(
            /truncated GGUF: length of key 0 at offset 24 is 1099511627776 bytes/,
        );
        expect(() => parseGguf(patchU64(good(), 8, 1n << 60n))).toThrow(/tensor count/);
        expect(() => parseGguf(patchU64(good(), 16, 1n << 60n))).toThrow(/metadata key count/);

        const bytes = serializeGguf({ kv: [{ key: 'a', type: T.ARRAY, arrayType: T.UINT32, value: [1, 2] }], tensors: [] });
        // key: 8 + 1 bytes, value type 4, array type 4, then the count
        expect(() => parseGguf(patchU64(bytes, 24 + 9 + 8, 1n << 50n))).toThrow(/element count of array 'a'/);
    });

    it('rejects unknown value and tensor types', () => {
        const bytes = serializeGguf({ kv: [{ key: 'a', type: T.UINT32, value: 1 }], tensors: [] });
        new DataView(bytes.buffer).setUint32(24 + 9, 99, true);
        expect(() => parseGguf(bytes)).toThrow(/unknown value type 99/);

        const withTensor = serializeGguf({ kv: [], tensors: someTensors().slice(0, 1) });
        const typeAt = findBytes(withTensor, new TextEncoder().encode('a.f32')) + 5 + 4 + 8;
        new DataView(withTensor.buffer).setInt32(typeAt, 4, true); // removed Q4_2
        expect(() => parseGguf(withTensor)).toThrow(/tensor 'a.f32' has unknown ggml type 4/);
    });
});

describe('readGgufMetadata', () => {
    it('reads only the header of a huge (sparse) file', async () => {
        const ne1 = 40 * 1024; // F32 [1024, 40960] = 160 MiB of tensor data
        // write a one-row tensor, then patch its ne1 and extend the file sparsely,
        // so the 160 MiB of data are never materialised
        const small = serializeGguf({
            kv: [{ key: 'general.name', type: T.STRING, value: 'sparse' }],
            tensors: [{ name: 'big', type: 'F32', shape: [1024, 1], data: new Uint8Array(4096) }],
        });
        const header = small.slice(0, parseGguf(small).dataOffset);
        const nDimsAt = findBytes(header, new TextEncoder().encode('big')) + 3;
        new DataView(header.buffer).setBigInt64(nDimsAt + 4 + 8, BigInt(ne1), true);
        const path = join(tmp, 'sparse.gguf');
        const handle = await open(path, 'w');
        try {
            await handle.write(header);
            await handle.truncate(header.length + 1024 * ne1 * 4);
        } finally {
            await handle.close();
        }

        let bytesRead = 0;
        const started = Date.now();
        const meta = await readGgufMetadata(path, { onRead: (_pos, len) => (bytesRead += len) });
        expect(Date.now() - started).toBeLessThan(2000);
        expect(bytesRead).toBeLessThanOrEqual(256 * 1024);
        expect(meta.tensors[0]).toMatchObject({ name: 'big', shape: [1024, ne1], byteSize: 1024 * ne1 * 4 });
        expect(meta.kv['general.name']).toBe('sparse');
    });

    it('grows its buffer for headers larger than the first chunk', async () => {
        const bytes = serializeGguf({ kv: allTypesKv(), tensors: someTensors() });
        const path = join(tmp, 'chunks.gguf');
        await writeFile(path, bytes);
        const reads: number[] = [];
        const meta = await readGgufMetadata(path, { initialChunkSize: 16, onRead: (pos) => reads.push(pos) });
        expect(meta).toEqual(parseGguf(bytes));
        expect(reads.length).toBeGreaterThan(3);
        expect(reads[0]).toBe(0);
    });

    it('reports errors with the file path', async () => {
        const path = join(tmp, 'bad.gguf');
        await writeFile(path, 'this is not a model file');
        await expect(readGgufMetadata(path)).rejects.toThrow(/not a GGUF file .*bad\.gguf/);
        const truncated = join(tmp, 'truncated.gguf');
        await writeFile(truncated, serializeGguf({ kv: allTypesKv(), tensors: someTensors() }).subarray(0, 200));
        await expect(readGgufMetadata(truncated)).rejects.toThrow(/^truncated GGUF/);
        await expect(readGgufMetadata(join(tmp, 'missing.gguf'))).rejects.toThrow(/ENOENT/);
    });

    it("throws LlamaModelLoadErrors with LlamaModel.load()'s codes, not plain Errors", async () => {
        const code = (path: unknown) => readGgufMetadata(path as string).then(() => 'resolved', (e: unknown) => (e instanceof LlamaModelLoadError || e instanceof LlamaConfigError ? e.code : `plain ${String(e)}`));
        const bad = join(tmp, 'bad-code.gguf');
        await writeFile(bad, 'this is not a model file');
        const cut = join(tmp, 'cut-code.gguf');
        await writeFile(cut, serializeGguf({ kv: allTypesKv(), tensors: someTensors() }).subarray(0, 200));
        const noData = join(tmp, 'no-data.gguf');
        const whole = serializeGguf({ kv: [], tensors: someTensors() });
        await writeFile(noData, whole.subarray(0, parseGguf(whole).dataOffset + 1)); // header complete, tensor data cut
        expect(await code(join(tmp, 'missing.gguf'))).toBe('MODEL_NOT_FOUND');
        expect(await code(bad)).toBe('INVALID_MODEL_FILE');
        expect(await code(cut)).toBe('INVALID_MODEL_FILE');
        expect(await code(noData)).toBe('INVALID_MODEL_FILE');
        expect(await code(tmp)).toBe('INVALID_MODEL_FILE'); // a directory
        expect(await code(42)).toBe('INVALID_ARGUMENT');
        await expect(readGgufMetadata(tmp)).rejects.toThrow(/is a directory, not a GGUF file/);
        expect(() => parseGguf(new Uint8Array(2))).toThrow(LlamaModelLoadError);
    });

    it('refuses headers above maxHeaderBytes', async () => {
        const path = join(tmp, 'limit.gguf');
        await writeFile(path, serializeGguf({ kv: allTypesKv(), tensors: [] }));
        await expect(readGgufMetadata(path, { initialChunkSize: 8, maxHeaderBytes: 64 })).rejects.toThrow(
            /more than 64 bytes/,
        );
    });

});

/** Index of the first occurrence of `needle` in `haystack` (-1 when absent). */
function findBytes(haystack: Uint8Array, needle: Uint8Array): number {
    return Buffer.from(haystack).indexOf(Buffer.from(needle));
}
