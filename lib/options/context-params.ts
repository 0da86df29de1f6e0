/**
 * Turns validated context options into the parameters llama.cpp receives: defaults,
 * the K/V rules and the batch rules. Shared by LlamaContext and estimateMemory so that
 * an estimate is made for exactly what a context would get, with the same errors.
 * @internal
 */
import { availableParallelism } from 'node:os';
import type { NativeContextParams } from '../native/binding.js';
import { LlamaConfigError } from '../errors.js';
import { KV_CACHE_TYPE_INFO, resolveKvConfig, type KvCacheType, type KvModelFacts, type ResolvedKvConfig } from './kv-cache.js';
import { warning, type LlamaWarning } from '../warnings.js';
import { defaults } from './defaults.js';
import type { ContextSettings } from './context-options.js';

/** llama.cpp pads the context to a multiple of this many cells (per sequence unless kvUnified). */
export const CONTEXT_PADDING = 256;

/** llama_flash_attn_type values. */
const flashAttentionCodes = { auto: -1, off: 0, on: 1 } as const;

/** The resolved settings, and the parameters for the native context. */
export interface ResolvedContextParams {
    kv: ResolvedKvConfig;
    native: NativeContextParams;
    /** What is allowed but probably not meant (not logged here: the caller returns and logs them). */
    warnings: LlamaWarning[];
}

/** ubatchSize at most batchSize (planFit checks its options with the same message). */
export function checkUbatchSize(ubatchSize: number, batchSize: number): void {
    if (ubatchSize > batchSize) {
        throw new LlamaConfigError(
            `Expected ubatchSize <= batchSize but received ubatchSize ${ubatchSize} and batchSize ${batchSize}; lower ubatchSize or raise batchSize`,
            'INVALID_CONFIG',
            ['ubatchSize', 'batchSize'],
        );
    }
}

/** Context settings as the schema outputs them: flashAttention resolved from a boolean, K/V type names in llama.cpp's case. */
export type ParsedContextSettings = Omit<ContextSettings, 'flashAttention' | 'cacheTypeK' | 'cacheTypeV'> & {
    flashAttention?: ResolvedKvConfig['flashAttention'];
    cacheTypeK?: KvCacheType;
    cacheTypeV?: KvCacheType;
};

export function resolveContextParams(
    opts: ParsedContextSettings,
    model: KvModelFacts & { trainedContextSize: number },
): ResolvedContextParams {
    const trained = model.trainedContextSize;
    const contextSize = opts.contextSize ?? Math.min(defaults.context.contextSize, trained > 0 ? trained : Infinity);
    const batchSize = opts.batchSize ?? defaults.context.batchSize;
    const ubatchSize = opts.ubatchSize ?? Math.min(defaults.context.ubatchSize, batchSize);
    checkUbatchSize(ubatchSize, batchSize);
    // llama.cpp reserves one output row per sequence in a batch of min(contextSize,
    // batchSize) and asserts (aborts the process) when there are more sequences than rows.
    const sequences = opts.parallel ?? defaults.context.parallel;
    if (sequences > Math.min(contextSize, batchSize)) {
        throw new LlamaConfigError(
            `Expected parallel <= batchSize and <= contextSize but received parallel ${sequences}, batchSize ${batchSize}, contextSize ${contextSize}; ` +
                'raise batchSize (and contextSize) or lower parallel',
            'INVALID_CONFIG',
            ['parallel', 'batchSize', 'contextSize'],
        );
    }
    const kv = resolveKvConfig(opts, model, defaults.context);
    const warnings: LlamaWarning[] = [];
    if (trained > 0 && contextSize > trained) {
        warnings.push(warning('CONTEXT_ABOVE_TRAINED', `contextSize ${contextSize} is larger than the model's trained context (${trained}); quality may degrade past it`, ['contextSize']));
    }
    // llama.cpp sets n_batch = min(contextSize, batchSize) before it pads the context to a multiple of 256.
    const padded = Math.ceil(contextSize / CONTEXT_PADDING) * CONTEXT_PADDING;
    if (contextSize < batchSize && contextSize < padded) {
        warnings.push(warning(
            'BATCH_CLAMPED',
            `contextSize ${contextSize} limits the batch to ${contextSize} tokens (llama.cpp caps batchSize at the contextSize asked for, then pads the context to ${padded}): ` +
                `prompts are decoded ${contextSize} at a time; ask for contextSize ${padded}, which costs no more memory`,
            ['contextSize', 'batchSize'],
        ));
    }
    const threads = opts.threads ?? defaults.context.threads();
    const cpus = availableParallelism();
    for (const [name, n] of [['threads', threads], ['threadsBatch', opts.threadsBatch ?? threads]] as const) {
        if (n > cpus) {
            warnings.push(warning('THREADS_ABOVE_CPUS', `${name} ${n} is more than the ${cpus} CPUs available: ggml's threads wait on each other at every step, so decoding will be slower, not faster; use at most ${cpus}`, [name]));
        }
    }
    return {
        warnings,
        kv,
        native: {
            contextSize,
            batchSize,
            ubatchSize,
            sequences,
            threads,
            threadsBatch: opts.threadsBatch ?? threads,
            cacheTypeK: KV_CACHE_TYPE_INFO[kv.cacheTypeK].ggmlType,
            cacheTypeV: KV_CACHE_TYPE_INFO[kv.cacheTypeV].ggmlType,
            flashAttention: flashAttentionCodes[kv.flashAttention],
            kvUnified: opts.kvUnified ?? defaults.context.kvUnified,
            offloadKqv: opts.offloadKqv ?? defaults.context.offloadKqv,
            swaFull: opts.swaFull ?? defaults.context.swaFull,
            embeddings: false,
            pooling: -1,
        },
    };
}
