/**
 * LoRA adapters (llama.cpp's llama_adapter_lora) on a loaded model: the QLoRA serving
 * path where the quantized base stays as it is and the adapter is applied beside it.
 */
import type { NativeLora } from '../native/binding.js';
import { LlamaDisposedError } from '../errors.js';
import type { GgufMetadata, GgufValue } from '../gguf/types.js';
import { loraIdentity } from './identity.js';

/** What a LoRA adapter is, from its GGUF file and from llama.cpp. */
export interface LoraMetadata {
    /** `adapter.lora.alpha`: the adapter's output is scaled by alpha / rank (times the scale you apply). */
    alpha: number;
    /** The adapter's rank (the inner dimension of its A/B pairs); null when the pairs differ. */
    rank: number | null;
    /** The base model tensors it adapts, e.g. `'blk.0.attn_q.weight'`. */
    targets: string[];
    /** `general.architecture`: the base model's architecture. */
    architecture: string;
    /** The GGUF key/value map as stored in the file. */
    gguf: Record<string, GgufValue>;
    /** SHA-256 (hex) of its tensor table and metadata: how a saved state names the adapter. */
    identity: string;
}

/** Facts about an adapter file, from its header. @internal */
export function loraFacts(path: string, gguf: GgufMetadata): LoraMetadata {
    const kv = gguf.kv;
    const pairs = new Map<string, { a?: number[]; b?: number[] }>();
    for (const t of gguf.tensors) {
        const m = /^(.*)\.lora_(a|b)$/.exec(t.name);
        if (!m) continue;
        const entry = pairs.get(m[1]) ?? {};
        entry[m[2] as 'a' | 'b'] = t.shape;
        pairs.set(m[1], entry);
    }
    const ranks = new Set([...pairs.values()].map((p) => p.a?.[1]).filter((r): r is number => r !== undefined));
    return {
        alpha: typeof kv['adapter.lora.alpha'] === 'number' ? kv['adapter.lora.alpha'] : 0,
        rank: ranks.size === 1 ? [...ranks][0] : null,
        targets: [...pairs.keys()].sort(),
        architecture: typeof kv['general.architecture'] === 'string' ? kv['general.architecture'] : '',
        gguf: kv,
        identity: loraIdentity(gguf),
    };
}

/**
 * A LoRA adapter loaded for one model (`model.loadLora(path)`). Apply it to a context
 * with `ctx.setLoras([{ lora, scale }])` or the context's `loras` option.
 *
 * `dispose()` releases it; a context that has it in its active set keeps it until the
 * set changes or the context is disposed (the free is deferred, never refused). A
 * disposed adapter cannot be applied again.
 */
export class LlamaLora {
    #native: NativeLora | null;
    readonly #release: () => void;
    /** The file it was loaded from. */
    readonly path: string;
    /** What the file says about the adapter. */
    readonly metadata: Readonly<LoraMetadata>;
    /** Bytes of the adapter's tensors as llama.cpp allocated them. */
    readonly sizeBytes: number;

    /** @internal */
    constructor(native: NativeLora, path: string, metadata: LoraMetadata, release: () => void) {
        this.#native = native;
        this.path = path;
        const fromLlama = native.metadata();
        this.metadata = Object.freeze({ ...metadata, alpha: fromLlama.alpha });
        this.sizeBytes = fromLlama.sizeBytes;
        this.#release = release;
    }

    /** Whether {@link dispose} was called. */
    get disposed(): boolean {
        return this.#native === null;
    }

    /** Releases the adapter (see the class description for adapters in use). Idempotent. */
    dispose(): void {
        if (this.#native === null) return;
        const native = this.#native;
        this.#native = null;
        this.#release();
        native.dispose();
    }

    [Symbol.dispose](): void {
        this.dispose();
    }

    /** @internal */
    requireNative(): NativeLora {
        if (this.#native === null) throw new LlamaDisposedError('LoRA adapter');
        return this.#native;
    }
}
