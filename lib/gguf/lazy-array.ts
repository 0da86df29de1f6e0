/**
 * Arrays of a GGUF header that are decoded on first access: the tokenizer's tens of
 * thousands of tokens, scores, token types and merges, which a model load never reads
 * in JavaScript (llama.cpp reads them itself). The parser checks an array's extent and
 * copies its raw bytes; the value is decoded from them the first time its key is read.
 */
import type { GgufScalar, GgufValue } from './types.js';

/** Element counts of the arrays not decoded yet, per key/value map. */
const pending = new WeakMap<object, Map<string, number>>();

/**
 * Defines `kv[key]` as an array decoded by `decode` on first read (then a plain data
 * property, the raw bytes released). Assigning to it replaces it, undecoded.
 * @internal
 */
export function defineLazyArray(
    kv: Record<string, GgufValue>,
    key: string,
    length: number,
    decode: () => GgufScalar[],
): void {
    let counts = pending.get(kv);
    if (counts === undefined) {
        counts = new Map();
        pending.set(kv, counts);
    }
    counts.set(key, length);
    let run: (() => GgufScalar[]) | null = decode;
    let value: GgufScalar[] | undefined;
    const settle = (v: GgufValue): void => {
        run = null;
        pending.get(kv)?.delete(key);
        // A frozen or sealed map keeps the accessor (and the value cached here).
        if (Object.getOwnPropertyDescriptor(kv, key)?.configurable) {
            Object.defineProperty(kv, key, { value: v, writable: true, enumerable: true, configurable: true });
        }
    };
    Object.defineProperty(kv, key, {
        enumerable: true,
        configurable: true,
        get(): GgufScalar[] {
            if (value === undefined) {
                value = (run as () => GgufScalar[])();
                settle(value);
            }
            return value;
        },
        set(v: GgufValue) {
            if (!Object.getOwnPropertyDescriptor(kv, key)?.configurable) {
                throw new TypeError(`Cannot assign to read only property '${key}' of object`);
            }
            value = v as GgufScalar[];
            settle(v);
        },
    });
}

/**
 * The number of elements of the array `key` of a GGUF key/value map without decoding
 * it; undefined when the key is absent or not an array.
 *
 * @example
 * const vocabSize = ggufArrayLength(gguf.kv, 'tokenizer.ggml.tokens') ?? 0;
 */
export function ggufArrayLength(kv: Readonly<Record<string, GgufValue>>, key: string): number | undefined {
    const length = pending.get(kv)?.get(key);
    if (length !== undefined) return length;
    const value = Object.hasOwn(kv, key) ? kv[key] : undefined;
    return Array.isArray(value) ? value.length : undefined;
}

/** Whether the array `key` of a GGUF key/value map is still waiting to be decoded. */
export function isGgufArrayPending(kv: Readonly<Record<string, GgufValue>>, key: string): boolean {
    return pending.get(kv)?.has(key) ?? false;
}
