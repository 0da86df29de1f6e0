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

/** Options for {@link parseGguf}. */
export interface ParseGgufOptions {
    /**
     * Total size of the file `bytes` was taken from, when `bytes` holds only a
     * prefix of it (at least the whole header). Defaults to `bytes.length`.
     */
    fileSize?: number;
}

/** Options for {@link readGgufMetadata}. */
export interface ReadGgufOptions {
    /** Bytes read by the first read; later reads grow the buffer geometrically. Default 256 KiB. */
    initialChunkSize?: number;
    /** Refuse headers larger than this many bytes. Default 512 MiB. */
    maxHeaderBytes?: number;
    /** Called for each read of the file, with its position and length (diagnostics). */
    onRead?: (position: number, length: number) => void;
}


/** Thrown internally when the parser needs bytes beyond those loaded so far. */
class NeedMoreBytes extends Error {
    constructor(readonly required: number) {
        super(`need ${required} bytes`);
    }
}

// ignoreBOM: keep a leading U+FEFF (some vocabularies have a BOM token)
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

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
    need(n: number, what: string): void {
        const end = this.pos + n;
        if (end > this.fileSize) {
            throw new Error(
                `truncated GGUF: ${what} at offset ${this.pos} needs ${n} bytes ` +
                    `but the file has only ${this.remaining} left (file size ${this.fileSize})`,
            );
        }
        if (end > this.bytes.length) {
            throw new NeedMoreBytes(end);
        }
    }

    u8(what: string): number {
        this.need(1, what);
        return this.view.getUint8(this.pos++);
    }

    i8(what: string): number {
        this.need(1, what);
        return this.view.getInt8(this.pos++);
    }

    u16(what: string): number {
        this.need(2, what);
        const v = this.view.getUint16(this.pos, true);
        this.pos += 2;
        return v;
    }

    i16(what: string): number {
        this.need(2, what);
        const v = this.view.getInt16(this.pos, true);
        this.pos += 2;
        return v;
    }

    u32(what: string): number {
        this.need(4, what);
        const v = this.view.getUint32(this.pos, true);
        this.pos += 4;
        return v;
    }

    i32(what: string): number {
        this.need(4, what);
        const v = this.view.getInt32(this.pos, true);
        this.pos += 4;
        return v;
    }

    f32(what: string): number {
        this.need(4, what);
        const v = this.view.getFloat32(this.pos, true);
        this.pos += 4;
        return v;
    }

    f64(what: string): number {
        this.need(8, what);
        const v = this.view.getFloat64(this.pos, true);
        this.pos += 8;
        return v;
    }

    u64(what: string): bigint {
        this.need(8, what);
        const v = this.view.getBigUint64(this.pos, true);
        this.pos += 8;
        return v;
    }

    i64(what: string): bigint {
        this.need(8, what);
        const v = this.view.getBigInt64(this.pos, true);
        this.pos += 8;
        return v;
    }

    /** Read a uint64 that must be a count or size no larger than `limit`. */
    count(what: string, limit: number, unit: string): number {
        const start = this.pos;
        const n = this.u64(what);
        if (n > BigInt(limit)) {
            throw new Error(
                `truncated GGUF: ${what} at offset ${start} is ${n} ${unit}, ` +
                    `more than the ${this.remaining} bytes left in the file (file size ${this.fileSize})`,
            );
        }
        return Number(n);
    }

    /** Read a length-prefixed UTF-8 string. */
    str(what: string): string {
        const len = this.count(`length of ${what}`, this.fileSize - this.pos - 8, 'bytes');
        this.need(len, what);
        const s = utf8.decode(this.bytes.subarray(this.pos, this.pos + len));
        this.pos += len;
        return s;
    }
}

/** Convert a 64-bit integer to a number when it is exactly representable. */
function bigToValue(v: bigint): number | bigint {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v)
        : v;
}

/** Read one non-array value of the given type. */
function readScalar(c: Cursor, type: number, what: string): GgufScalar {
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
            throw new Error(`invalid GGUF: ${what} has unknown value type ${type}`);
    }
}

/** Read an array value: element type, count, then the elements. */
function readArray(c: Cursor, key: string): { value: GgufScalar[]; arrayType: GgufValueType } {
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
    const value: GgufScalar[] = new Array<GgufScalar>(n);
    for (let i = 0; i < n; i++) {
        value[i] = readScalar(c, arrayType, `element ${i} of '${key}'`);
    }
    return { value, arrayType: arrayType as GgufValueType };
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
            const { value, arrayType } = readArray(c, key);
            kv[key] = value;
            kvTypes[key] = { type: GGUF_VALUE_TYPE.ARRAY, arrayType };
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
function parseLoaded(bytes: Uint8Array, fileSize: number): GgufMetadata {
    const c = new Cursor(bytes, fileSize);
    const { version, nTensors, nKv } = readHeader(c);
    const { kv, kvTypes } = readKvSection(c, nKv);
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
    try {
        return parseLoaded(bytes, fileSize);
    } catch (err) {
        if (err instanceof NeedMoreBytes) {
            throw invalidFile(`truncated GGUF: header needs at least ${err.required} bytes but only ${bytes.length} were given`);
        }
        throw invalidFile(err);
    }
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
                return parseLoaded(loaded, fileSize);
            } catch (err) {
                if (!(err instanceof NeedMoreBytes)) {
                    throw err;
                }
                if (err.required > maxHeaderBytes) {
                    throw new Error(
                        `GGUF header of ${path} needs more than ${maxHeaderBytes} bytes; refusing to read it`,
                    );
                }
                want = Math.min(fileSize, Math.max(err.required, loaded.length * 2));
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
