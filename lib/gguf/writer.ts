/**
 * Minimal GGUF v3 writer, used to generate fixture models and test files.
 *
 * Produces files in the layout llama.cpp's gguf.cpp expects: header, key/value
 * section, tensor-info table, padding to the alignment, then every tensor's data
 * padded to the alignment.
 */
import { open } from 'node:fs/promises';

import { alignTo, GGML_MAX_DIMS, GGML_TYPES, ggmlTensorByteSize, GGUF_DEFAULT_ALIGNMENT, GGUF_KEY_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPE, type GgmlTypeName, type GgufScalar, type GgufValue, type GgufValueType } from './types.js';

/** GGML_MAX_NAME: tensor names must be shorter than this many bytes. */
const GGML_MAX_NAME = 64;

/** A metadata entry to write. */
export interface GgufKvEntry {
    /** Metadata key, e.g. `general.architecture`. */
    key: string;
    /** Value type id (see `GGUF_VALUE_TYPE`); `ARRAY` requires `arrayType`. */
    type: GgufValueType;
    /** The value; for arrays, any array-like of scalars (typed arrays included). */
    value: GgufValue | ArrayLike<number>;
    /** Element type id of an array value. */
    arrayType?: GgufValueType;
}

/** A tensor to write, with its raw (already encoded) data. */
export interface GgufTensorEntry {
    /** Tensor name (less than 64 bytes). */
    name: string;
    /** ggml type of `data`; fixtures use 'F32', 'F16', 'Q8_0' or 'Q4_0'. */
    type: GgmlTypeName;
    /** Dimensions, ne0 first. */
    shape: number[];
    /** Encoded tensor data; its length must match the type and shape. */
    data: Uint8Array;
}

/** What to put into a GGUF file. */
export interface GgufWriteSpec {
    /** Metadata entries, written in this order. */
    kv: GgufKvEntry[];
    /** Tensors, written in this order. */
    tensors: GgufTensorEntry[];
    /**
     * Data alignment (power of two, default 32). A `general.alignment` entry in
     * `kv` takes precedence; a non-default value adds that entry when missing.
     */
    alignment?: number;
}

/** Growable little-endian byte buffer. */
class ByteWriter {
    private buf = new Uint8Array(4096);
    private view = new DataView(this.buf.buffer);
    length = 0;

    private reserve(n: number): void {
        if (this.length + n <= this.buf.length) {
            return;
        }
        let size = this.buf.length * 2;
        while (size < this.length + n) {
            size *= 2;
        }
        const next = new Uint8Array(size);
        next.set(this.buf.subarray(0, this.length));
        this.buf = next;
        this.view = new DataView(next.buffer);
    }

    u8(v: number): void {
        this.reserve(1);
        this.view.setUint8(this.length++, v);
    }

    i8(v: number): void {
        this.reserve(1);
        this.view.setInt8(this.length++, v);
    }

    u16(v: number): void {
        this.reserve(2);
        this.view.setUint16(this.length, v, true);
        this.length += 2;
    }

    i16(v: number): void {
        this.reserve(2);
        this.view.setInt16(this.length, v, true);
        this.length += 2;
    }

    u32(v: number): void {
        this.reserve(4);
        this.view.setUint32(this.length, v, true);
        this.length += 4;
    }

    i32(v: number): void {
        this.reserve(4);
        this.view.setInt32(this.length, v, true);
        this.length += 4;
    }

    f32(v: number): void {
        this.reserve(4);
        this.view.setFloat32(this.length, v, true);
        this.length += 4;
    }

    f64(v: number): void {
        this.reserve(8);
        this.view.setFloat64(this.length, v, true);
        this.length += 8;
    }

    u64(v: bigint): void {
        this.reserve(8);
        this.view.setBigUint64(this.length, v, true);
        this.length += 8;
    }

    i64(v: bigint): void {
        this.reserve(8);
        this.view.setBigInt64(this.length, v, true);
        this.length += 8;
    }

    bytes(b: Uint8Array): void {
        this.reserve(b.length);
        this.buf.set(b, this.length);
        this.length += b.length;
    }

    str(s: string): void {
        const encoded = utf8.encode(s);
        this.u64(BigInt(encoded.length));
        this.bytes(encoded);
    }

    zeros(n: number): void {
        this.reserve(n);
        this.buf.fill(0, this.length, this.length + n);
        this.length += n;
    }

    result(): Uint8Array {
        return this.buf.slice(0, this.length);
    }
}

const utf8 = new TextEncoder();

/** Integer ranges of the fixed-width integer value types. */
const INT_RANGES: Readonly<Record<number, readonly [number, number]>> = {
    [GGUF_VALUE_TYPE.UINT8]: [0, 0xff],
    [GGUF_VALUE_TYPE.INT8]: [-0x80, 0x7f],
    [GGUF_VALUE_TYPE.UINT16]: [0, 0xffff],
    [GGUF_VALUE_TYPE.INT16]: [-0x8000, 0x7fff],
    [GGUF_VALUE_TYPE.UINT32]: [0, 0xffffffff],
    [GGUF_VALUE_TYPE.INT32]: [-0x80000000, 0x7fffffff],
};

/** Check that `v` is an integer representable in the given type. */
function checkInt(v: GgufScalar, type: number, key: string): number {
    const range = INT_RANGES[type];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) {
        throw new Error(`GGUF key '${key}': ${String(v)} is not a valid value of type ${type}`);
    }
    return v;
}

/** Convert a number or bigint to a bigint within [min, max]. */
function toBigInt(v: GgufScalar, min: bigint, max: bigint, key: string): bigint {
    let b: bigint;
    if (typeof v === 'bigint') {
        b = v;
    } else if (typeof v === 'number' && Number.isInteger(v)) {
        b = BigInt(v);
    } else {
        throw new Error(`GGUF key '${key}': ${String(v)} is not an integer`);
    }
    if (b < min || b > max) {
        throw new Error(`GGUF key '${key}': ${b} is out of range`);
    }
    return b;
}

/** Check that `v` is a number (float types). */
function checkFloat(v: GgufScalar, key: string): number {
    if (typeof v !== 'number') {
        throw new Error(`GGUF key '${key}': ${String(v)} is not a number`);
    }
    return v;
}

/** Encode one non-array value. */
function writeScalar(w: ByteWriter, type: number, v: GgufScalar, key: string): void {
    switch (type) {
        case GGUF_VALUE_TYPE.UINT8:
            return w.u8(checkInt(v, type, key));
        case GGUF_VALUE_TYPE.INT8:
            return w.i8(checkInt(v, type, key));
        case GGUF_VALUE_TYPE.UINT16:
            return w.u16(checkInt(v, type, key));
        case GGUF_VALUE_TYPE.INT16:
            return w.i16(checkInt(v, type, key));
        case GGUF_VALUE_TYPE.UINT32:
            return w.u32(checkInt(v, type, key));
        case GGUF_VALUE_TYPE.INT32:
            return w.i32(checkInt(v, type, key));
        case GGUF_VALUE_TYPE.FLOAT32:
            return w.f32(checkFloat(v, key));
        case GGUF_VALUE_TYPE.FLOAT64:
            return w.f64(checkFloat(v, key));
        case GGUF_VALUE_TYPE.UINT64:
            return w.u64(toBigInt(v, 0n, 0xffffffffffffffffn, key));
        case GGUF_VALUE_TYPE.INT64:
            return w.i64(toBigInt(v, -0x8000000000000000n, 0x7fffffffffffffffn, key));
        case GGUF_VALUE_TYPE.BOOL:
            if (typeof v !== 'boolean') {
                throw new Error(`GGUF key '${key}': ${String(v)} is not a boolean`);
            }
            return w.i8(v ? 1 : 0);
        case GGUF_VALUE_TYPE.STRING:
            if (typeof v !== 'string') {
                throw new Error(`GGUF key '${key}': ${String(v)} is not a string`);
            }
            return w.str(v);
        default:
            throw new Error(`GGUF key '${key}': unsupported value type ${type}`);
    }
}

/** Encode one key/value entry. */
function writeKv(w: ByteWriter, entry: GgufKvEntry): void {
    w.str(entry.key);
    w.u32(entry.type);
    if (entry.type !== GGUF_VALUE_TYPE.ARRAY) {
        if (typeof entry.value === 'object') {
            throw new Error(`GGUF key '${entry.key}': array value given for a scalar type`);
        }
        writeScalar(w, entry.type, entry.value, entry.key);
        return;
    }
    const { arrayType, value } = entry;
    if (arrayType === undefined || arrayType === GGUF_VALUE_TYPE.ARRAY) {
        throw new Error(`GGUF key '${entry.key}': arrays need a non-array arrayType`);
    }
    if (typeof value !== 'object') {
        throw new Error(`GGUF key '${entry.key}': scalar value given for an array`);
    }
    w.u32(arrayType);
    w.u64(BigInt(value.length));
    for (let i = 0; i < value.length; i++) {
        writeScalar(w, arrayType, value[i], entry.key);
    }
}

/** Work out the alignment and the KV list to write (adding general.alignment if needed). */
function resolveKv(spec: GgufWriteSpec): { kv: GgufKvEntry[]; alignment: number } {
    const declared = spec.kv.find((e) => e.key === GGUF_KEY_ALIGNMENT);
    if (declared !== undefined) {
        if (declared.type !== GGUF_VALUE_TYPE.UINT32 || typeof declared.value !== 'number') {
            throw new Error(`'${GGUF_KEY_ALIGNMENT}' must be a UINT32 value`);
        }
        if (spec.alignment !== undefined && spec.alignment !== declared.value) {
            throw new Error(
                `alignment ${spec.alignment} conflicts with ${GGUF_KEY_ALIGNMENT}=${declared.value}`,
            );
        }
    }
    const alignment = declared !== undefined ? (declared.value as number) : (spec.alignment ?? GGUF_DEFAULT_ALIGNMENT);
    if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
        throw new Error(`alignment ${alignment} is not a power of 2`);
    }
    const kv = [...spec.kv];
    if (declared === undefined && alignment !== GGUF_DEFAULT_ALIGNMENT) {
        kv.push({ key: GGUF_KEY_ALIGNMENT, type: GGUF_VALUE_TYPE.UINT32, value: alignment });
    }
    const seen = new Set<string>();
    for (const e of kv) {
        if (seen.has(e.key) || e.key.length === 0) {
            throw new Error(`GGUF key '${e.key}' is empty or duplicated`);
        }
        seen.add(e.key);
    }
    return { kv, alignment };
}

/** Validate a tensor entry; returns its data size. */
function checkTensor(t: GgufTensorEntry): number {
    if (utf8.encode(t.name).length >= GGML_MAX_NAME) {
        throw new Error(`tensor name '${t.name}' is too long (max ${GGML_MAX_NAME - 1} bytes)`);
    }
    if (!(t.type in GGML_TYPES)) {
        throw new Error(`tensor '${t.name}': unknown ggml type ${String(t.type)}`);
    }
    if (t.shape.length === 0 || t.shape.length > GGML_MAX_DIMS || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
        throw new Error(`tensor '${t.name}': invalid shape [${t.shape.join(', ')}]`);
    }
    const size = ggmlTensorByteSize(t.type, t.shape);
    if (t.data.length !== size) {
        throw new Error(`tensor '${t.name}': data is ${t.data.length} bytes, expected ${size}`);
    }
    return size;
}

/** Encode header, KV section, tensor infos and the padding up to the data section. */
function encodeHeader(spec: GgufWriteSpec): { header: Uint8Array; alignment: number } {
    const { kv, alignment } = resolveKv(spec);
    const w = new ByteWriter();
    w.u32(GGUF_MAGIC);
    w.u32(3);
    w.u64(BigInt(spec.tensors.length));
    w.u64(BigInt(kv.length));
    for (const entry of kv) {
        writeKv(w, entry);
    }
    const names = new Set<string>();
    let offset = 0;
    for (const t of spec.tensors) {
        if (names.has(t.name)) {
            throw new Error(`duplicate tensor name '${t.name}'`);
        }
        names.add(t.name);
        const size = checkTensor(t);
        w.str(t.name);
        w.u32(t.shape.length);
        for (const d of t.shape) {
            w.i64(BigInt(d));
        }
        w.i32(GGML_TYPES[t.type].id);
        w.u64(BigInt(offset));
        offset += alignTo(size, alignment);
    }
    if (spec.tensors.length > 0) {
        w.zeros(alignTo(w.length, alignment) - w.length);
    }
    return { header: w.result(), alignment };
}

/** The byte chunks making up the file, in order (no copies of tensor data). */
function encodeChunks(spec: GgufWriteSpec): Uint8Array[] {
    const { header, alignment } = encodeHeader(spec);
    const chunks: Uint8Array[] = [header];
    for (const t of spec.tensors) {
        chunks.push(t.data);
        const pad = alignTo(t.data.length, alignment) - t.data.length;
        if (pad > 0) {
            chunks.push(new Uint8Array(pad));
        }
    }
    return chunks;
}

/**
 * Encode a complete GGUF v3 file in memory.
 *
 * @throws Error on invalid keys, values, tensor shapes or data sizes.
 */
export function serializeGguf(spec: GgufWriteSpec): Uint8Array {
    const chunks = encodeChunks(spec);
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let pos = 0;
    for (const c of chunks) {
        out.set(c, pos);
        pos += c.length;
    }
    return out;
}

/**
 * Write a GGUF v3 file (created or truncated) at `path`.
 *
 * @throws Error on invalid keys, values, tensor shapes or data sizes (before
 *   anything is written), or on I/O errors.
 */
export async function writeGguf(path: string, spec: GgufWriteSpec): Promise<void> {
    const chunks = encodeChunks(spec);
    const handle = await open(path, 'w');
    try {
        for (const chunk of chunks) {
            let done = 0;
            while (done < chunk.length) {
                const { bytesWritten } = await handle.write(chunk, done, chunk.length - done);
                done += bytesWritten;
            }
        }
    } finally {
        await handle.close();
    }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Convert a number to IEEE half-precision bits (round to nearest even, like F16C). */
export function f32ToF16Bits(value: number): number {
    f32Scratch[0] = value;
    const x = u32Scratch[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    if (exp === 0xff) {
        return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
        return sign | 0x7c00;
    }
    if (e <= 0) {
        return sign | roundShift(mant | 0x800000, 14 - e);
    }
    return sign | roundShift((e << 23) | mant, 13);
}

/** `v >> shift` rounded to nearest, ties to even (shift in 1..31; larger gives 0). */
function roundShift(v: number, shift: number): number {
    if (shift > 24 + 1) {
        return 0;
    }
    const q = v >>> shift;
    const rem = v - q * 2 ** shift;
    const half = 2 ** (shift - 1);
    return rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
}

/** Convert IEEE half-precision bits to a number. */
export function f16BitsToF32(bits: number): number {
    const sign = bits & 0x8000 ? -1 : 1;
    const exp = (bits >>> 10) & 0x1f;
    const mant = bits & 0x3ff;
    if (exp === 0) {
        return sign * mant * 2 ** -24;
    }
    if (exp === 0x1f) {
        return mant !== 0 ? NaN : sign * Infinity;
    }
    return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encode values as little-endian IEEE half floats (2 bytes each). */
export function f32ToF16Bytes(values: ArrayLike<number>): Uint8Array {
    const out = new Uint8Array(values.length * 2);
    const view = new DataView(out.buffer);
    for (let i = 0; i < values.length; i++) {
        view.setUint16(i * 2, f32ToF16Bits(values[i]), true);
    }
    return out;
}

/** Encode values as little-endian float32 (4 bytes each). */
export function f32ToBytes(values: ArrayLike<number>): Uint8Array {
    const out = new Uint8Array(values.length * 4);
    const view = new DataView(out.buffer);
    for (let i = 0; i < values.length; i++) {
        view.setFloat32(i * 4, values[i], true);
    }
    return out;
}

/** Elements per Q8_0 block. */
export const QK8_0 = 32;

/**
 * Quantize values to ggml's Q8_0 format exactly like `quantize_row_q8_0_ref`:
 * per block of 32, an fp16 scale d = amax/127 followed by 32 int8 values
 * round(x/d) (34 bytes per block). The length must be a multiple of 32.
 */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
    return quantizeBlocks(values, 'Q8_0', 34, quantizeBlockQ8_0);
}

/** Runs `block` over each block of 32 values into a buffer of `blockBytes` per block. */
function quantizeBlocks(
    values: Float32Array,
    type: string,
    blockBytes: number,
    block: (x: Float32Array, start: number, out: DataView, at: number) => void,
): Uint8Array {
    if (values.length % QK8_0 !== 0) {
        throw new Error(`${type} needs a multiple of ${QK8_0} values, got ${values.length}`);
    }
    const blocks = values.length / QK8_0;
    const out = new Uint8Array(blocks * blockBytes);
    const view = new DataView(out.buffer);
    for (let b = 0; b < blocks; b++) {
        block(values, b * QK8_0, view, b * blockBytes);
    }
    return out;
}

/** Quantize one block of 32 values (float32 arithmetic, roundf semantics). */
function quantizeBlockQ8_0(x: Float32Array, start: number, out: DataView, at: number): void {
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) {
        amax = Math.max(amax, Math.abs(x[start + j]));
    }
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    out.setUint16(at, f32ToF16Bits(d), true);
    for (let j = 0; j < QK8_0; j++) {
        const x0 = Math.fround(x[start + j] * id);
        out.setInt8(at + 2 + j, roundHalfAway(x0));
    }
}

/**
 * Quantize values to ggml's Q4_0 format like `quantize_row_q4_0_ref`: per block of 32,
 * an fp16 scale d = max / -8 (max: the value of largest magnitude, with its sign) followed
 * by 16 bytes of 4-bit values min(15, trunc(x/d + 8.5)), value j in the low nibble of
 * byte j and value j + 16 in its high nibble (18 bytes per block).
 */
export function quantizeQ4_0(values: Float32Array): Uint8Array {
    return quantizeBlocks(values, 'Q4_0', 18, quantizeBlockQ4_0);
}

/** Quantize one block of 32 values to Q4_0 (float32 arithmetic, C's truncating cast). */
function quantizeBlockQ4_0(x: Float32Array, start: number, out: DataView, at: number): void {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK8_0; j++) {
        const v = x[start + j];
        if (Math.abs(v) > amax) {
            amax = Math.abs(v);
            max = v;
        }
    }
    const d = Math.fround(max / -8);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    out.setUint16(at, f32ToF16Bits(d), true);
    const q = (v: number) => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
    for (let j = 0; j < QK8_0 / 2; j++) {
        out.setUint8(at + 2 + j, q(x[start + j]) | (q(x[start + j + QK8_0 / 2]) << 4));
    }
}

/** C `roundf`: round half away from zero. */
function roundHalfAway(v: number): number {
    return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}
