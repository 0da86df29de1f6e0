/**
 * What a saved state records of the model and adapters it was computed with: hashes of the
 * GGUF tensor table and of the tokenizer, read from the header already parsed at load (no
 * pass over the weights, so it costs milliseconds, not a read of the file).
 */
import { createHash } from 'node:crypto';
import type { GgufMetadata, GgufValue } from '../gguf/types.js';

/** A model as a saved state names it. */
export interface ModelIdentity {
    /** `general.architecture`. */
    architecture: string;
    /** SHA-256 of every tensor's name, type and shape, in file order (hex). */
    tensorTable: string;
    /** SHA-256 of the `tokenizer.ggml.*` keys and values (hex). */
    tokenizer: string;
}

function hashValue(hash: ReturnType<typeof createHash>, value: GgufValue): void {
    if (Array.isArray(value)) {
        hash.update(`[${value.length}:`);
        for (const v of value) hashValue(hash, v);
        hash.update(']');
        return;
    }
    const text = String(value);
    hash.update(`${typeof value}:${text.length}:${text};`);
}

/** The tensor table's hash: names, ggml types and shapes, in file order. */
export function tensorTableHash(gguf: Pick<GgufMetadata, 'tensors'>): string {
    const hash = createHash('sha256');
    for (const t of gguf.tensors) hash.update(`${t.name}\t${t.typeName}\t${t.shape.join('x')}\n`);
    return hash.digest('hex');
}

/** The hash of the keys whose prefix is `prefix` (sorted) and their values. */
function keysHash(kv: Record<string, GgufValue>, keep: (key: string) => boolean): string {
    const hash = createHash('sha256');
    for (const key of Object.keys(kv).filter(keep).sort()) {
        hash.update(`${key}=`);
        hashValue(hash, kv[key]);
        hash.update('\n');
    }
    return hash.digest('hex');
}

const identities = new WeakMap<object, ModelIdentity>();

/** The identity of a model from its GGUF header (computed once per header). */
export function modelIdentity(gguf: GgufMetadata): ModelIdentity {
    let id = identities.get(gguf);
    if (id === undefined) {
        const arch = gguf.kv['general.architecture'];
        id = {
            architecture: typeof arch === 'string' ? arch : '',
            tensorTable: tensorTableHash(gguf),
            // The vocabulary, merges, token types and scores, special token ids and the
            // pre-tokenizer: what turns text into the tokens a state holds. The chat template
            // (tokenizer.chat_template) is left out: it changes no token's meaning.
            tokenizer: keysHash(gguf.kv, (k) => k.startsWith('tokenizer.ggml.')),
        };
        identities.set(gguf, id);
    }
    return id;
}

/** An adapter's identity: its tensor table and its metadata (alpha included). */
export function loraIdentity(gguf: GgufMetadata): string {
    const hash = createHash('sha256');
    hash.update(tensorTableHash(gguf));
    hash.update(keysHash(gguf.kv, () => true));
    return hash.digest('hex');
}
