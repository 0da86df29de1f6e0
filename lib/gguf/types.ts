/**
 * GGUF's and ggml's facts: the value types, the tensor types with their block sizes,
 * and the shape of a parsed header (what the reader returns and the writer takes).
 * Layout reference: vendor/llama.cpp/ggml/include/gguf.h and ggml/include/ggml.h.
 */

/** The four magic bytes every GGUF file starts with ("GGUF"). */
export const GGUF_MAGIC = 0x46554747; // 'GGUF' read as little-endian uint32

/** Alignment of the data section when `general.alignment` is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata key that overrides the data-section alignment (must be UINT32). */
export const GGUF_KEY_ALIGNMENT = 'general.alignment';

/** Maximum number of tensor dimensions (GGML_MAX_DIMS). */
export const GGML_MAX_DIMS = 4;

/** GGUF value type ids, as in `enum gguf_type`. */
export const GGUF_VALUE_TYPE = {
    UINT8: 0,
    INT8: 1,
    UINT16: 2,
    INT16: 3,
    UINT32: 4,
    INT32: 5,
    FLOAT32: 6,
    BOOL: 7,
    STRING: 8,
    ARRAY: 9,
    UINT64: 10,
    INT64: 11,
    FLOAT64: 12,
} as const;

/** Name of a GGUF value type (`'UINT32'`, `'STRING'`, ...). */
export type GgufValueTypeName = keyof typeof GGUF_VALUE_TYPE;

/** Numeric id of a GGUF value type. */
export type GgufValueType = (typeof GGUF_VALUE_TYPE)[GgufValueTypeName];

/** A non-array GGUF value. 64-bit integers are numbers when safe, else bigints. */
export type GgufScalar = number | bigint | boolean | string;

/** Any GGUF metadata value: a scalar or a (flat) array of scalars. */
export type GgufValue = GgufScalar | GgufScalar[];

/** The stored type of a metadata value; `arrayType` is set for arrays. */
export interface GgufKvType {
    /** The value's type id (`GGUF_VALUE_TYPE.ARRAY` for arrays). */
    type: GgufValueType;
    /** For arrays, the element type id. */
    arrayType?: GgufValueType;
}

/** Block size (elements per block) and type size (bytes per block) of a ggml type. */
export interface GgmlTypeInfo {
    /** The `enum ggml_type` id. */
    id: number;
    /** Number of elements in one block. */
    blockSize: number;
    /** Number of bytes in one block. */
    typeSize: number;
}

const QK_K = 256;

/**
 * ggml tensor types that may appear in GGUF files, keyed by name, with their ids
 * from ggml.h and block/type sizes from gguf-py's GGML_QUANT_SIZES.
 */
export const GGML_TYPES = {
    F32: { id: 0, blockSize: 1, typeSize: 4 },
    F16: { id: 1, blockSize: 1, typeSize: 2 },
    Q4_0: { id: 2, blockSize: 32, typeSize: 2 + 16 },
    Q4_1: { id: 3, blockSize: 32, typeSize: 2 + 2 + 16 },
    Q5_0: { id: 6, blockSize: 32, typeSize: 2 + 4 + 16 },
    Q5_1: { id: 7, blockSize: 32, typeSize: 2 + 2 + 4 + 16 },
    Q8_0: { id: 8, blockSize: 32, typeSize: 2 + 32 },
    Q8_1: { id: 9, blockSize: 32, typeSize: 4 + 4 + 32 },
    Q2_K: { id: 10, blockSize: QK_K, typeSize: 2 + 2 + QK_K / 16 + QK_K / 4 },
    Q3_K: { id: 11, blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 + 12 },
    Q4_K: { id: 12, blockSize: QK_K, typeSize: 2 + 2 + QK_K / 2 + 12 },
    Q5_K: { id: 13, blockSize: QK_K, typeSize: 2 + 2 + QK_K / 2 + QK_K / 8 + 12 },
    Q6_K: { id: 14, blockSize: QK_K, typeSize: 2 + QK_K / 2 + QK_K / 4 + QK_K / 16 },
    Q8_K: { id: 15, blockSize: QK_K, typeSize: 4 + QK_K + QK_K / 8 },
    IQ2_XXS: { id: 16, blockSize: QK_K, typeSize: 2 + QK_K / 4 },
    IQ2_XS: { id: 17, blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 32 },
    IQ3_XXS: { id: 18, blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 },
    IQ1_S: { id: 19, blockSize: QK_K, typeSize: 2 + QK_K / 8 + QK_K / 16 },
    IQ4_NL: { id: 20, blockSize: 32, typeSize: 2 + 16 },
    IQ3_S: { id: 21, blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4 },
    IQ2_S: { id: 22, blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 16 },
    IQ4_XS: { id: 23, blockSize: QK_K, typeSize: 2 + 2 + QK_K / 2 + QK_K / 64 },
    I8: { id: 24, blockSize: 1, typeSize: 1 },
    I16: { id: 25, blockSize: 1, typeSize: 2 },
    I32: { id: 26, blockSize: 1, typeSize: 4 },
    I64: { id: 27, blockSize: 1, typeSize: 8 },
    F64: { id: 28, blockSize: 1, typeSize: 8 },
    IQ1_M: { id: 29, blockSize: QK_K, typeSize: QK_K / 8 + QK_K / 16 + QK_K / 32 },
    BF16: { id: 30, blockSize: 1, typeSize: 2 },
    TQ1_0: { id: 34, blockSize: QK_K, typeSize: 2 + 4 * 13 },
    TQ2_0: { id: 35, blockSize: QK_K, typeSize: 2 + 64 },
    MXFP4: { id: 39, blockSize: 32, typeSize: 1 + 16 },
    NVFP4: { id: 40, blockSize: 64, typeSize: 4 + 32 },
    Q1_0: { id: 41, blockSize: 128, typeSize: 2 + 16 },
    Q2_0: { id: 42, blockSize: 64, typeSize: 2 + 16 },
} as const satisfies Record<string, GgmlTypeInfo>;

/** Name of a ggml tensor type known to this module (`'F16'`, `'Q8_0'`, ...). */
export type GgmlTypeName = keyof typeof GGML_TYPES;

const GGML_TYPE_BY_ID: ReadonlyMap<number, GgmlTypeName> = new Map(
    (Object.keys(GGML_TYPES) as GgmlTypeName[]).map((name) => [GGML_TYPES[name].id, name]),
);

/** Look up a ggml type name by its numeric id; undefined when unknown. */
export function ggmlTypeName(id: number): GgmlTypeName | undefined {
    return GGML_TYPE_BY_ID.get(id);
}

/**
 * Number of bytes a tensor of the given ggml type and shape occupies.
 * Throws when the row length (ne0) is not a multiple of the type's block size.
 */
export function ggmlTensorByteSize(type: GgmlTypeName, shape: readonly number[]): number {
    const info = GGML_TYPES[type];
    const ne0 = shape.length > 0 ? shape[0] : 1;
    if (ne0 % info.blockSize !== 0) {
        throw new Error(
            `tensor row length ${ne0} is not a multiple of the ${type} block size ${info.blockSize}`,
        );
    }
    let elements = 1;
    for (const dim of shape) {
        elements *= dim;
    }
    return (elements / info.blockSize) * info.typeSize;
}

/** Description of one tensor in the tensor-info table. */
export interface GgufTensorInfo {
    /** Tensor name, e.g. `blk.0.attn_q.weight`. */
    name: string;
    /** The `enum ggml_type` id. */
    type: number;
    /** Name of the ggml type, e.g. `'Q8_0'`. */
    typeName: GgmlTypeName;
    /** Dimensions, ne0 (the contiguous one) first. */
    shape: number[];
    /** Byte offset of the tensor data relative to the start of the data section. */
    offset: number;
    /** Size of the tensor data in bytes (without alignment padding). */
    byteSize: number;
}

/** Everything in a GGUF file except the tensor data. */
export interface GgufMetadata {
    /** GGUF format version (2 or 3). */
    version: number;
    /** Alignment of the data section and of every tensor in it. */
    alignment: number;
    /** Absolute file offset where the tensor data section starts. */
    dataOffset: number;
    /** Metadata values by key, in file order. */
    kv: Record<string, GgufValue>;
    /** Stored value type of each key, so values can be written back faithfully. */
    kvTypes: Record<string, GgufKvType>;
    /** The tensor-info table, in file order. */
    tensors: GgufTensorInfo[];
}

/** Round `n` up to a multiple of `alignment`. */
export function alignTo(n: number, alignment: number): number {
    return Math.ceil(n / alignment) * alignment;
}
