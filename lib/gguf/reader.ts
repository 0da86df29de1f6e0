/**
 * Header-only GGUF reader.
 *
 * Parses the GGUF header, the key/value metadata section and the tensor-info
 * table, but never the tensor data section. Files are read incrementally, so a
 * multi-gigabyte model costs only as many bytes as its header occupies.
 *
 * Layout reference: vendor/llama.cpp/ggml/include/gguf.h and ggml/src/gguf.cpp.
 */
import { open } from 'node:fs/promises';
import { LlamaConfigError, LlamaError, LlamaModelLoadError } from '../errors.js';
import { defaults } from '../options/defaults.js';
import {
    alignTo,
    ggmlTensorByteSize,
    ggmlTypeName,
    GGML_MAX_DIMS,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_KEY_ALIGNMENT,
    GGUF_MAGIC,
    GGUF_VALUE_TYPE,
    type GgmlTypeName,
    type GgufKvType,
    type GgufMetadata,
    type GgufScalar,
    type GgufTensorInfo,
    type GgufValue,
    type GgufValueType,
} from './types.js';
import { defineLazyArray } from './lazy-array.js';

export { ggufArrayLength } from './lazy-array.js';

/** How arrays are decoded, for {@link parseGguf} and {@link readGgufMetadata}. */
export interface GgufArrayOptions {
    /**
     * Arrays of at least this many elements (a tokenizer's tokens, scores, token types and
     * merges) are checked and kept as raw bytes while parsing, and decoded the first time
     * their key is read (`kv[key]`; {@link ggufArrayLength} gives the count without
     * decoding). A corrupt array is an error of the parse either way. `Infinity` decodes
     * every array while parsing. Defaults to `1024`.
     */
    lazyArrayMinLength?: number;
}

/** Options for {@link parseGguf}. */
export interface ParseGgufOptions extends GgufArrayOptions {
    /**
     * Total size of the file `bytes` was taken from, when `bytes` holds only a
     * prefix of it (at least the whole header). Defaults to `bytes.length`.
     */
    fileSize?: number;
}

/** Options for {@link readGgufMetadata}. */
export interface ReadGgufOptions extends GgufArrayOptions {
    /** Bytes read by the first read; later reads grow the buffer geometrically (4x). Default 256 KiB. */
    initialChunkSize?: number;
    /** Refuse headers larger than this many bytes. Default 512 MiB. */
    maxHeaderBytes?: number;
    /** Called for each read of the file, with its position and length (diagnostics). */
    onRead?: (position: number, length: number) => void;
}


/** How much readGgufMetadata's buffer grows when the header does not fit in it. */
const HEADER_GROWTH = 4;

/** Arrays of at least this many elements are decoded on first access (ParseGgufOptions.lazyArrayMinLength). */
const LAZY_ARRAY_MIN_LENGTH = 1024;

/** What a field is called in errors: a string, or a function that builds it only when one is thrown. */
type What = string | (() => string);

const describe = (what: What): string => (typeof what === 'string' ? what : what());

/** Thrown internally when the parser needs bytes beyond those loaded so far. */
class NeedMoreBytes extends Error {
    constructor(readonly required: number) {
        super(`need ${required} bytes`);
    }
}

// ignoreBOM: keep a leading U+FEFF (some vocabularies have a BOM token)
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** Longest string decoded by the ASCII path of {@link decodeUtf8} (a vocabulary's tokens are short). */
const SHORT_STRING = 64;

/**
 * UTF-8 bytes [pos, pos + len) as a string: short ASCII strings (most tokens of a
 * vocabulary) without a TextDecoder call, which costs more than the decoding itself;
 * anything else through the TextDecoder (replacement characters for invalid bytes).
 */
function decodeUtf8(bytes: Uint8Array, pos: number, len: number): string {
    if (len <= SHORT_STRING) {
        let ascii = true;
        for (let i = pos; i < pos + len; i++) {
            if (bytes[i] >= 0x80) {
                ascii = false;
                break;
            }
        }
        if (ascii) return String.fromCharCode.apply(null, bytes.subarray(pos, pos + len) as unknown as number[]);
    }
    return utf8.decode(bytes.subarray(pos, pos + len));
}

/** Minimum encoded size in bytes of one value of each non-array type. */
const MIN_VALUE_SIZE: Readonly<Record<number, number>> = {
    [GGUF_VALUE_TYPE.UINT8]: 1,
    [GGUF_VALUE_TYPE.INT8]: 1,
    [GGUF_VALUE_TYPE.UINT16]: 2,
    [GGUF_VALUE_TYPE.INT16]: 2,
    [GGUF_VALUE_TYPE.UINT32]: 4,
    [GGUF_VALUE_TYPE.INT32]: 4,
    [GGUF_VALUE_TYPE.FLOAT32]: 4,
    [GGUF_VALUE_TYPE.BOOL]: 1,
    [GGUF_VALUE_TYPE.STRING]: 8,
    [GGUF_VALUE_TYPE.UINT64]: 8,
    [GGUF_VALUE_TYPE.INT64]: 8,
    [GGUF_VALUE_TYPE.FLOAT64]: 8,
};

/** Little-endian cursor over a (possibly partial) copy of a GGUF file. */
class Cursor {
    pos = 0;
    private readonly view: DataView;

    constructor(
        private readonly bytes: Uint8Array,
        readonly fileSize: number,
    ) {
        this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }

    /** Bytes between the cursor and the end of the file. */
    get remaining(): number {
        return this.fileSize - this.pos;
    }

    /** Make sure `n` bytes at the cursor are loaded; `what` names them for errors. */
    need(n: number, what: What): void {
        const end = this.pos + n;
        if (end > this.fileSize) {
            throw new Error(
                `truncated GGUF: ${describe(what)} at offset ${this.pos} needs ${n} bytes ` +
                    `but the file has only ${this.remaining} left (file size ${this.fileSize})`,
            );
        }
        if (end > this.bytes.length) {
            throw new NeedMoreBytes(end);
        }
    }

    u8(what: What): number {
        this.need(1, what);
        return this.view.getUint8(this.pos++);
    }

    i8(what: What): number {
        this.need(1, what);
        return this.view.getInt8(this.pos++);
    }

    u16(what: What): number {
        this.need(2, what);
        const v = this.view.getUint16(this.pos, true);
        this.pos += 2;
        return v;
    }

    i16(what: What): number {
        this.need(2, what);
        const v = this.view.getInt16(this.pos, true);
        this.pos += 2;
        return v;
    }

    u32(what: What): number {
        this.need(4, what);
        const v = this.view.getUint32(this.pos, true);
        this.pos += 4;
        return v;
    }

    i32(what: What): number {
        this.need(4, what);
        const v = this.view.getInt32(this.pos, true);
        this.pos += 4;
        return v;
    }

    f32(what: What): number {
        this.need(4, what);
        const v = this.view.getFloat32(this.pos, true);
        this.pos += 4;
        return v;
    }

    f64(what: What): number {
        this.need(8, what);
        const v = this.view.getFloat64(this.pos, true);
        this.pos += 8;
        return v;
    }

    u64(what: What): bigint {
        this.need(8, what);
        const v = this.view.getBigUint64(this.pos, true);
        this.pos += 8;
        return v;
    }

    i64(what: What): bigint {
        this.need(8, what);
        const v = this.view.getBigInt64(this.pos, true);
        this.pos += 8;
        return v;
    }

    /** Read a uint64 that must be a count or size no larger than `limit`. */
    count(what: What, limit: number, unit: string): number {
        const start = this.pos;
        const n = this.u64(what);
        if (n > BigInt(limit)) {
            throw new Error(
                `truncated GGUF: ${describe(what)} at offset ${start} is ${n} ${unit}, ` +
                    `more than the ${this.remaining} bytes left in the file (file size ${this.fileSize})`,
            );
        }
        return Number(n);
    }

    /**
     * Read the length of a string and check that the string fits in the file. The
     * length is read as two 32-bit halves (no BigInt) unless it is out of bounds, where
     * {@link count} gives the error.
     */
    private strLen(what: What): number {
        const lengthOf = () => `length of ${describe(what)}`;
        this.need(8, lengthOf);
        const hi = this.view.getUint32(this.pos + 4, true);
        const len = hi * 0x1_0000_0000 + this.view.getUint32(this.pos, true);
        if (hi >= 0x20_0000 || len > this.fileSize - this.pos - 8) {
            this.count(lengthOf, this.fileSize - this.pos - 8, 'bytes');
        }
        this.pos += 8;
        this.need(len, what);
        return len;
    }

    /** Read a length-prefixed UTF-8 string. */
    str(what: What): string {
        const len = this.strLen(what);
        const s = decodeUtf8(this.bytes, this.pos, len);
        this.pos += len;
        return s;
    }

    /** Step over `n` bytes, with {@link need}'s checks. */
    skip(n: number, what: What): void {
        this.need(n, what);
        this.pos += n;
    }

    /** Step over a length-prefixed string with {@link str}'s checks, without decoding it. */
    skipStr(what: What): void {
        const len = this.strLen(what); // moves pos past the length field
        this.pos += len;
    }

    /** A copy of the loaded bytes in [start, end). */
    copy(start: number, end: number): Uint8Array {
        return this.bytes.slice(start, end);
    }
}

/** Convert a 64-bit integer to a number when it is exactly representable. */
function bigToValue(v: bigint): number | bigint {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v)
        : v;
}

/** Read one non-array value of the given type. */
function readScalar(c: Cursor, type: number, what: What): GgufScalar {
    switch (type) {
        case GGUF_VALUE_TYPE.UINT8:
            return c.u8(what);
        case GGUF_VALUE_TYPE.INT8:
            return c.i8(what);
        case GGUF_VALUE_TYPE.UINT16:
            return c.u16(what);
        case GGUF_VALUE_TYPE.INT16:
            return c.i16(what);
        case GGUF_VALUE_TYPE.UINT32:
            return c.u32(what);
        case GGUF_VALUE_TYPE.INT32:
            return c.i32(what);
        case GGUF_VALUE_TYPE.FLOAT32:
            return c.f32(what);
        case GGUF_VALUE_TYPE.BOOL:
            return c.i8(what) !== 0;
        case GGUF_VALUE_TYPE.STRING:
            return c.str(what);
        case GGUF_VALUE_TYPE.UINT64:
            return bigToValue(c.u64(what));
        case GGUF_VALUE_TYPE.INT64:
            return bigToValue(c.i64(what));
        case GGUF_VALUE_TYPE.FLOAT64:
            return c.f64(what);
        default:
            throw new Error(`invalid GGUF: ${describe(what)} has unknown value type ${type}`);
    }
}

/** An array value: decoded, or checked and kept as raw bytes to decode on first access. */
type ArrayValue =
    | { arrayType: GgufValueType; value: GgufScalar[] }
    | { arrayType: GgufValueType; lazy: { length: number; decode: () => GgufScalar[] } };

/**
 * Read an array value: element type, count, then the elements; an array of at least
 * `lazyMin` elements is stepped over with the same checks and kept as raw bytes.
 */
function readArray(c: Cursor, key: string, lazyMin: number): ArrayValue {
    const arrayType = c.u32(`array type of '${key}'`);
    if (arrayType === GGUF_VALUE_TYPE.ARRAY) {
        throw new Error(`invalid GGUF: key '${key}' is an array of arrays, which is not supported`);
    }
    const minSize = MIN_VALUE_SIZE[arrayType];
    if (minSize === undefined) {
        throw new Error(`invalid GGUF: array '${key}' has unknown element type ${arrayType}`);
    }
    const n = c.count(
        `element count of array '${key}'`,
        Math.floor((c.fileSize - c.pos - 8) / minSize),
        'elements',
    );
    let i = 0;
    const what = () => `element ${i} of '${key}'`;
    if (n < lazyMin) {
        const value: GgufScalar[] = new Array<GgufScalar>(n);
        for (; i < n; i++) value[i] = readScalar(c, arrayType, what);
        return { value, arrayType: arrayType as GgufValueType };
    }
    const start = c.pos;
    if (arrayType === GGUF_VALUE_TYPE.STRING) {
        for (; i < n; i++) c.skipStr(what);
    } else {
        // Every other element type has a fixed size (MIN_VALUE_SIZE is exact for it).
        c.skip(n * minSize, () => `${n} elements of '${key}'`);
    }
    const raw = c.copy(start, c.pos);
    return { arrayType: arrayType as GgufValueType, lazy: { length: n, decode: () => decodeArray(raw, arrayType, n, key) } };
}

/** Decode `n` elements of `type` from `raw`, the bytes that {@link readArray} checked. */
function decodeArray(raw: Uint8Array, type: number, n: number, key: string): GgufScalar[] {
    const c = new Cursor(raw, raw.length);
    const value: GgufScalar[] = new Array<GgufScalar>(n);
    let i = 0;
    const what = () => `element ${i} of '${key}'`;
    for (; i < n; i++) value[i] = readScalar(c, type, what);
    return value;
}

/** Read the magic, version and the two section counts. */
function readHeader(c: Cursor): { version: number; nTensors: number; nKv: number } {
    if (c.fileSize < 4) {
        throw new Error(`not a GGUF file (only ${c.fileSize} bytes, too short for the magic)`);
    }
    const magic = c.u32('magic');
    if (magic !== GGUF_MAGIC) {
        throw new Error(`not a GGUF file (magic ${describeMagic(magic)}, expected "GGUF")`);
    }
    const version = c.u32('version');
    if (version !== 2 && version !== 3) {
        const hint =
            version !== 0 && (version & 0xffff) === 0
                ? ' (a big-endian file? only little-endian GGUF is supported)'
                : version === 1
                  ? ' (GGUFv1 is no longer supported)'
                  : '';
        throw new Error(`unsupported GGUF version ${version}${hint}`);
    }
    // smallest tensor info: name len (8) + n_dims (4) + type (4) + offset (8)
    const nTensors = c.count('tensor count', Math.floor(c.remaining / 24), 'tensors');
    // smallest KV: key len (8) + type (4) + 1-byte value
    const nKv = c.count('metadata key count', Math.floor(c.remaining / 13), 'keys');
    return { version, nTensors, nKv };
}

/** Printable description of four magic bytes. */
function describeMagic(magic: number): string {
    const bytes = [magic & 0xff, (magic >>> 8) & 0xff, (magic >>> 16) & 0xff, magic >>> 24];
    const text = bytes.map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');
    return `${hex} "${text}"`;
}

/** Read the key/value section. */
function readKvSection(
    c: Cursor,
    nKv: number,
    lazyMin: number,
): { kv: Record<string, GgufValue>; kvTypes: Record<string, GgufKvType> } {
    const kv = Object.create(null) as Record<string, GgufValue>;
    const kvTypes = Object.create(null) as Record<string, GgufKvType>;
    for (let i = 0; i < nKv; i++) {
        const key = c.str(`key ${i}`);
        if (key.length === 0) {
            throw new Error(`invalid GGUF: key ${i} is empty`);
        }
        if (key in kv) {
            throw new Error(`invalid GGUF: duplicate key '${key}'`);
        }
        const type = c.u32(`value type of '${key}'`);
        if (type === GGUF_VALUE_TYPE.ARRAY) {
            const array = readArray(c, key, lazyMin);
            if ('lazy' in array) defineLazyArray(kv, key, array.lazy.length, array.lazy.decode);
            else kv[key] = array.value;
            kvTypes[key] = { type: GGUF_VALUE_TYPE.ARRAY, arrayType: array.arrayType };
        } else {
            kv[key] = readScalar(c, type, `value of '${key}'`);
            kvTypes[key] = { type: type as GgufValueType };
        }
    }
    return { kv, kvTypes };
}

/** Validate and return the data-section alignment declared by the metadata. */
function resolveAlignment(
    kv: Record<string, GgufValue>,
    kvTypes: Record<string, GgufKvType>,
): number {
    const declared = kvTypes[GGUF_KEY_ALIGNMENT];
    if (declared === undefined) {
        return GGUF_DEFAULT_ALIGNMENT;
    }
    if (declared.type !== GGUF_VALUE_TYPE.UINT32) {
        throw new Error(`invalid GGUF: '${GGUF_KEY_ALIGNMENT}' must be UINT32 (type ${declared.type})`);
    }
    const alignment = kv[GGUF_KEY_ALIGNMENT] as number;
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
        throw new Error(`invalid GGUF: alignment ${alignment} is not a power of 2`);
    }
    return alignment;
}

/** Read one entry of the tensor-info table (its data extent is checked later). */
function readTensorInfo(c: Cursor, index: number): GgufTensorInfo {
    const name = c.str(`name of tensor ${index}`);
    const nDims = c.u32(`dimension count of tensor '${name}'`);
    if (nDims > GGML_MAX_DIMS) {
        throw new Error(`invalid GGUF: tensor '${name}' has ${nDims} dimensions (max ${GGML_MAX_DIMS})`);
    }
    const shape: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
        const ne = c.i64(`dimension ${d} of tensor '${name}'`);
        if (ne < 0n || ne > BigInt(Number.MAX_SAFE_INTEGER)) {
            throw new Error(`invalid GGUF: tensor '${name}' dimension ${d} is ${ne}`);
        }
        shape.push(Number(ne));
        elements *= Number(ne);
    }
    if (!Number.isSafeInteger(elements)) {
        throw new Error(`invalid GGUF: tensor '${name}' shape [${shape.join(', ')}] is too large`);
    }
    const type = c.i32(`type of tensor '${name}'`);
    const typeName = ggmlTypeName(type);
    if (typeName === undefined) {
        throw new Error(`invalid GGUF: tensor '${name}' has unknown ggml type ${type}`);
    }
    const byteSize = tensorByteSize(name, typeName, shape);
    const rawOffset = c.u64(`data offset of tensor '${name}'`);
    if (rawOffset > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new Error(`invalid GGUF: tensor '${name}' has data offset ${rawOffset}`);
    }
    return { name, type, typeName, shape, offset: Number(rawOffset), byteSize };
}

/** Byte size of a tensor, with GGUF-flavoured errors. */
function tensorByteSize(name: string, typeName: GgmlTypeName, shape: number[]): number {
    try {
        return ggmlTensorByteSize(typeName, shape);
    } catch (err) {
        throw new Error(`invalid GGUF: tensor '${name}': ${(err as Error).message}`);
    }
}

/** Read the tensor-info table, rejecting duplicate names. */
function readTensorInfos(c: Cursor, nTensors: number): GgufTensorInfo[] {
    const tensors: GgufTensorInfo[] = [];
    const names = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
        const info = readTensorInfo(c, i);
        if (names.has(info.name)) {
            throw new Error(`invalid GGUF: duplicate tensor name '${info.name}'`);
        }
        names.add(info.name);
        tensors.push(info);
    }
    return tensors;
}

/** Check that every tensor's data lies inside the file. */
function checkTensorExtents(tensors: GgufTensorInfo[], dataOffset: number, fileSize: number): void {
    const dataSize = fileSize - dataOffset;
    for (const t of tensors) {
        if (t.offset + t.byteSize > dataSize) {
            throw new Error(
                `truncated GGUF: data of tensor '${t.name}' (${t.byteSize} bytes at data offset ${t.offset}) ` +
                    `extends past the end of the file (data section is ${Math.max(0, dataSize)} bytes)`,
            );
        }
    }
}

/** Parse everything up to the data section from a loaded prefix of the file. */
function parseLoaded(bytes: Uint8Array, fileSize: number, lazyMin: number): GgufMetadata {
    const c = new Cursor(bytes, fileSize);
    const { version, nTensors, nKv } = readHeader(c);
    const { kv, kvTypes } = readKvSection(c, nKv, lazyMin);
    const alignment = resolveAlignment(kv, kvTypes);
    const tensors = readTensorInfos(c, nTensors);
    const dataOffset = nTensors > 0 ? alignTo(c.pos, alignment) : c.pos;
    checkTensorExtents(tensors, dataOffset, fileSize);
    return { version, alignment, dataOffset, kv, kvTypes, tensors };
}

/**
 * Parse the metadata of a GGUF file held in memory.
 *
 * @param bytes The file's bytes, or a prefix of them that includes the whole header
 *   (then pass the real size as `options.fileSize`).
 * @throws LlamaModelLoadError (code INVALID_MODEL_FILE) for bad magic, unsupported versions,
 *   truncated or malformed headers.
 */
export function parseGguf(bytes: Uint8Array, options: ParseGgufOptions = {}): GgufMetadata {
    const fileSize = options.fileSize ?? bytes.length;
    if (fileSize < bytes.length) {
        throw new LlamaConfigError(`fileSize ${fileSize} is smaller than the ${bytes.length} bytes given`, 'INVALID_ARGUMENT', ['fileSize']);
    }
    const lazyMin = lazyArrayMinLength(options);
    try {
        return parseLoaded(bytes, fileSize, lazyMin);
    } catch (err) {
        if (err instanceof NeedMoreBytes) {
            throw invalidFile(`truncated GGUF: header needs at least ${err.required} bytes but only ${bytes.length} were given`);
        }
        throw invalidFile(err);
    }
}

/** ParseGgufOptions.lazyArrayMinLength, checked. */
function lazyArrayMinLength(options: GgufArrayOptions): number {
    const min = options.lazyArrayMinLength ?? LAZY_ARRAY_MIN_LENGTH;
    if (typeof min !== 'number' || Number.isNaN(min) || min < 0) {
        throw new LlamaConfigError(`Expected a number >= 0 for lazyArrayMinLength but received ${String(min)} (${typeof min})`, 'INVALID_ARGUMENT', ['lazyArrayMinLength']);
    }
    return min;
}

/** A parse failure as the INVALID_MODEL_FILE that LlamaModel.load() gives for the same file. */
function invalidFile(err: unknown): LlamaError {
    if (err instanceof LlamaError) return err;
    return new LlamaModelLoadError('INVALID_MODEL_FILE', err instanceof Error ? err.message : String(err), { cause: err });
}

/** A failure to open or read the file, with load()'s codes: MODEL_NOT_FOUND, INVALID_MODEL_FILE (a directory), else MODEL_LOAD_FAILED. */
function fileError(err: unknown, path: string): LlamaError {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (code === 'ENOENT') return new LlamaModelLoadError('MODEL_NOT_FOUND', `GGUF file not found: ${path} (ENOENT)`, { cause: err });
    if (code === 'EISDIR') return new LlamaModelLoadError('INVALID_MODEL_FILE', `${path} is a directory, not a GGUF file`, { cause: err });
    return new LlamaModelLoadError('MODEL_LOAD_FAILED', `Cannot read ${path}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/**
 * Read the metadata (header, key/value section and tensor-info table) of a GGUF
 * file without reading its tensor data. The file is read in growing chunks until
 * the header fits, so only about as many bytes as the header holds are read.
 *
 * @param path Path of the GGUF file.
 * @throws LlamaModelLoadError with LlamaModel.load()'s codes: MODEL_NOT_FOUND for a missing
 *   file, INVALID_MODEL_FILE for a directory, bad magic, an unsupported version, a truncated
 *   or malformed header or one larger than `options.maxHeaderBytes`, MODEL_LOAD_FAILED when
 *   the file cannot be read.
 */
export async function readGgufMetadata(
    path: string,
    options: ReadGgufOptions = {},
): Promise<GgufMetadata> {
    if (typeof path !== 'string' || path === '') {
        throw new LlamaConfigError(`Expected a file path (non-empty string) for path but received ${path === '' ? '"" (string)' : typeof path}`, 'INVALID_ARGUMENT', ['path']);
    }
    const maxHeaderBytes = options.maxHeaderBytes ?? defaults.gguf.maxHeaderBytes;
    const lazyMin = lazyArrayMinLength(options);
    let handle;
    try {
        handle = await open(path, 'r');
    } catch (err) {
        throw fileError(err, path);
    }
    try {
        const info = await handle.stat();
        if (info.isDirectory()) throw fileError(Object.assign(new Error('is a directory'), { code: 'EISDIR' }), path);
        const fileSize = info.size;
        let loaded: Uint8Array = new Uint8Array(0);
        let want = Math.min(fileSize, Math.max(1, options.initialChunkSize ?? defaults.gguf.initialChunkSize));
        for (;;) {
            loaded = await extend(handle, loaded, want, options.onRead);
            try {
                return parseLoaded(loaded, fileSize, lazyMin);
            } catch (err) {
                if (!(err instanceof NeedMoreBytes)) {
                    throw err;
                }
                if (err.required > maxHeaderBytes) {
                    throw new Error(
                        `GGUF header of ${path} needs more than ${maxHeaderBytes} bytes; refusing to read it`,
                    );
                }
                // Each attempt parses from the start: grow fast (reading bytes costs less than parsing them again).
                want = Math.min(fileSize, Math.max(err.required, loaded.length * HEADER_GROWTH));
            }
        }
    } catch (err) {
        if (err instanceof LlamaError) throw err;
        // A read failure of the file system (EIO, ...), or the header's own fault.
        if (typeof (err as NodeJS.ErrnoException).code === 'string' && (err as NodeJS.ErrnoException).syscall !== undefined) throw fileError(err, path);
        throw invalidFile(withPath(err, path));
    } finally {
        await handle.close();
    }
}

/** Minimal FileHandle surface used by {@link extend}. */
interface ReadableHandle {
    read(
        buffer: Uint8Array,
        offset: number,
        length: number,
        position: number,
    ): Promise<{ bytesRead: number }>;
}

/** Grow `loaded` to `size` bytes by reading the following part of the file. */
async function extend(
    handle: ReadableHandle,
    loaded: Uint8Array,
    size: number,
    onRead: ReadGgufOptions['onRead'],
): Promise<Uint8Array> {
    if (size <= loaded.length) {
        return loaded;
    }
    const next = new Uint8Array(size);
    next.set(loaded);
    let pos = loaded.length;
    while (pos < size) {
        onRead?.(pos, size - pos);
        const { bytesRead } = await handle.read(next, pos, size - pos, pos);
        if (bytesRead === 0) {
            throw new Error(`truncated GGUF: file ended at ${pos} bytes while reading the header`);
        }
        pos += bytesRead;
    }
    return next;
}

/** Prefix a parse error with the file path (keeps the original message). */
function withPath(err: unknown, path: string): unknown {
    if (err instanceof Error && !err.message.includes(path)) {
        err.message = `${err.message} (${path})`;
    }
    return err;
}
