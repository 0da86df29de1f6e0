/**
 * KV cache types, presets and the rules that decide whether a K/V / flash-attention
 * combination is valid for a model: checked here, before any native call, with
 * errors that name the options and say what to change.
 */
import { LlamaConfigError } from '../errors.js';
import { GGML_TYPES } from '../gguf/types.js';

/**
 * The KV cache types llama.cpp accepts (`--cache-type-k` / `--cache-type-v`; the
 * list `kv_cache_types` in llama.cpp's common/arg.cpp). A test keeps the two in step.
 */
export const KV_CACHE_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1'] as const;

/** A KV cache element type. */
export type KvCacheType = (typeof KV_CACHE_TYPES)[number];

/** How a KV cache type stores values. */
export interface KvCacheTypeInfo {
    /** The `enum ggml_type` id. */
    ggmlType: number;
    /** Values per block; quantized types store whole blocks, so it must divide the head dimension. */
    blockSize: number;
    /** Bytes per block. */
    blockBytes: number;
    /** Whether the type is block-quantized (needs flash attention for V). */
    quantized: boolean;
    /** Average bytes per value (blockBytes / blockSize). */
    bytesPerValue: number;
}

const ggmlName = (type: KvCacheType) => type.toUpperCase() as keyof typeof GGML_TYPES;

/** Facts about each KV cache type, from ggml's type table. */
export const KV_CACHE_TYPE_INFO: Readonly<Record<KvCacheType, Readonly<KvCacheTypeInfo>>> = Object.freeze(
    Object.fromEntries(
        KV_CACHE_TYPES.map((type) => {
            const t = GGML_TYPES[ggmlName(type)];
            return [type, Object.freeze({ ggmlType: t.id, blockSize: t.blockSize, blockBytes: t.typeSize, quantized: t.blockSize > 1, bytesPerValue: t.typeSize / t.blockSize })];
        }),
    ) as Record<KvCacheType, KvCacheTypeInfo>,
);

/** Named K/V pairs, from safest to smallest. */
export const KV_PRESETS = Object.freeze({
    /** f16/f16: llama.cpp's default, no loss. */
    conservative: Object.freeze({ cacheTypeK: 'f16', cacheTypeV: 'f16' }),
    /** q8_0/q8_0: about half the KV memory, usually indistinguishable. */
    balanced: Object.freeze({ cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }),
    /** q8_0/q4_0: about 41% of f16; K stays at 8 bits (on LLaMA-class models K is the more sensitive half, see docs/kv-cache.md). */
    aggressive: Object.freeze({ cacheTypeK: 'q8_0', cacheTypeV: 'q4_0' }),
    /** q4_0/q4_0: about 28% of f16; measurable quality loss. */
    extreme: Object.freeze({ cacheTypeK: 'q4_0', cacheTypeV: 'q4_0' }),
} as const satisfies Record<string, { cacheTypeK: KvCacheType; cacheTypeV: KvCacheType }>);

/** A KV preset name. */
export type KvPreset = keyof typeof KV_PRESETS;

/** Flash attention: 'auto' lets llama.cpp decide (and turns it on for a quantized V cache). */
export type FlashAttention = 'auto' | 'on' | 'off';

/** What the rules need to know about a model. */
export interface KvModelFacts {
    /** n_embd_head_k per layer. */
    layerHeadDimK: readonly number[];
    /** n_embd_head_v per layer. */
    layerHeadDimV: readonly number[];
    /** MLA models (DeepSeek 2/3) need the same type for K and V. */
    kvTypesMustMatch: boolean;
}

/** The K/V settings after presets and defaults are applied. */
export interface ResolvedKvConfig {
    cacheTypeK: KvCacheType;
    cacheTypeV: KvCacheType;
    flashAttention: FlashAttention;
}

/**
 * Applies the preset (explicit cacheTypeK/V win) and checks the rules against the
 * model. Throws LlamaConfigError (code INVALID_CONFIG, `path` naming the options).
 */
export function resolveKvConfig(
    options: { cacheTypeK?: KvCacheType; cacheTypeV?: KvCacheType; kvPreset?: KvPreset; flashAttention?: FlashAttention },
    model: KvModelFacts,
    defaults: ResolvedKvConfig,
): ResolvedKvConfig {
    const preset = options.kvPreset ? KV_PRESETS[options.kvPreset] : undefined;
    const resolved: ResolvedKvConfig = {
        cacheTypeK: options.cacheTypeK ?? preset?.cacheTypeK ?? defaults.cacheTypeK,
        cacheTypeV: options.cacheTypeV ?? preset?.cacheTypeV ?? defaults.cacheTypeV,
        flashAttention: options.flashAttention ?? defaults.flashAttention,
    };
    checkKvRules(resolved, model, options);
    return resolved;
}

function sourceOf(option: 'cacheTypeK' | 'cacheTypeV', options: { kvPreset?: KvPreset; cacheTypeK?: unknown; cacheTypeV?: unknown }): string {
    return options[option] === undefined && options.kvPreset ? ` (from kvPreset '${options.kvPreset}')` : '';
}

function checkKvRules(config: ResolvedKvConfig, model: KvModelFacts, options: { kvPreset?: KvPreset }): void {
    const k = KV_CACHE_TYPE_INFO[config.cacheTypeK];
    const v = KV_CACHE_TYPE_INFO[config.cacheTypeV];
    if (v.quantized && config.flashAttention === 'off') {
        throw new LlamaConfigError(
            `cacheTypeV '${config.cacheTypeV}'${sourceOf('cacheTypeV', options)} is quantized, which llama.cpp supports only with ` +
                "flash attention, but flashAttention is 'off': set flashAttention to 'on' or 'auto', or use an unquantized cacheTypeV ('f16', 'bf16' or 'f32')",
            'INVALID_CONFIG',
            ['cacheTypeV', 'flashAttention'],
        );
    }
    if (model.kvTypesMustMatch && config.cacheTypeK !== config.cacheTypeV) {
        throw new LlamaConfigError(
            `This model uses MLA attention and needs cacheTypeK and cacheTypeV of the same type, but received ` +
                `'${config.cacheTypeK}' and '${config.cacheTypeV}': set both to the same type`,
            'INVALID_CONFIG',
            ['cacheTypeK', 'cacheTypeV'],
        );
    }
    const checks = [
        ['cacheTypeK', config.cacheTypeK, k, model.layerHeadDimK],
        ['cacheTypeV', config.cacheTypeV, v, model.layerHeadDimV],
    ] as const;
    for (const [option, type, info, dims] of checks) {
        if (!info.quantized) continue;
        const layer = dims.findIndex((dim) => dim % info.blockSize !== 0);
        if (layer >= 0) {
            throw new LlamaConfigError(
                `${option} '${type}'${sourceOf(option, options)} stores blocks of ${info.blockSize} values, which does not divide the model's ` +
                    `head dimension ${dims[layer]} (layer ${layer}): use 'f16', 'bf16' or 'f32' for ${option} with this model`,
                'INVALID_CONFIG',
                [option],
            );
        }
    }
}

/**
 * The K/V pairs that ggml's CUDA flash-attention kernels cover when ggml-cuda is
 * built without GGML_CUDA_FA_ALL_QUANTS: equal pairs of these types.
 */
const CUDA_DEFAULT_FA_TYPES: readonly KvCacheType[] = ['f16', 'q4_0', 'q8_0', 'bf16'];

/**
 * What one offload device answered when asked whether it runs llama.cpp's flash attention
 * with the context's K/V types and head shapes (ggml_backend_dev_supports_op, the question
 * ggml's scheduler asks before placing the op).
 */
export interface DeviceFlashAttention {
    /** ggml's device name, e.g. 'Vulkan0'. */
    device: string;
    /** Its backend's registry name ('CUDA', 'Vulkan', 'ROCm', 'MTL', ...). */
    backend: string;
    /** Its backend's features (CUDA reports FA_ALL_QUANTS). */
    features: Record<string, string>;
    /** null: the device is not there to ask. */
    supported: boolean | null;
}

/** Why a backend has no flash-attention kernel for a pair, as far as ggml's source says. */
function missingKernelReason(d: DeviceFlashAttention, k: KvCacheType, v: KvCacheType): string {
    const backend = d.backend.toUpperCase();
    if (backend === 'CUDA' || backend === 'ROCM') {
        if (d.features.FA_ALL_QUANTS !== '1' && !(k === v && CUDA_DEFAULT_FA_TYPES.includes(k))) {
            return `its backend was built without GGML_CUDA_FA_ALL_QUANTS, which has kernels only for equal pairs of ${CUDA_DEFAULT_FA_TYPES.join(', ')}`;
        }
        return 'its backend has no kernel for these types and head sizes on this GPU';
    }
    if (backend === 'VULKAN') {
        if ((k === 'bf16') !== (v === 'bf16')) return 'ggml-vulkan pairs bf16 only with bf16';
        return 'ggml-vulkan needs the subgroup shuffle and vote operations (or cooperative matrices 2) on the device, and head sizes that are multiples of 8';
    }
    return 'its backend reports no support for them';
}

/**
 * A warning when flash attention is wanted but an offload device has no kernel for the
 * context's K/V pair: llama.cpp then either turns flash attention off (`'auto'` with an
 * unquantized V) or runs the attention on the CPU, copying K/V there at every step
 * (`'on'`, or a quantized V, which needs it). null when every device runs it.
 */
export function flashAttentionDeviceWarning(config: ResolvedKvConfig, devices: readonly DeviceFlashAttention[]): string | null {
    if (config.flashAttention === 'off') return null;
    const missing = devices.filter((d) => d.supported === false);
    if (missing.length === 0) return null;
    const { cacheTypeK: k, cacheTypeV: v } = config;
    const where = missing.map((d) => `${d.device} (${missingKernelReason(d, k, v)})`).join('; ');
    const pair = `cacheTypeK '${k}' with cacheTypeV '${v}'`;
    if (config.flashAttention === 'auto' && !KV_CACHE_TYPE_INFO[v].quantized) {
        // Measured on llvmpipe (test/gpu/device.test.ts): ggml-vulkan runs a quantized K with a bf16 V
        // without flash attention only in part, and the scheduler moves the rest to the CPU.
        const vulkanSplit = KV_CACHE_TYPE_INFO[k].quantized && v === 'bf16' && missing.some((d) => d.backend.toUpperCase() === 'VULKAN');
        return (
            `No flash-attention kernel for ${pair} on ${where}: llama.cpp turns flash attention off for this context. ` +
            `Attention then runs without it, which takes more compute memory${vulkanSplit ? ', and partly on the CPU (a quantized K with a bf16 V on Vulkan)' : ''}. ` +
            'Use a pair the device runs (docs/backends.md) to keep it.'
        );
    }
    return (
        `No flash-attention kernel for ${pair} on ${where}: attention will run on the CPU, copying the K/V cache there at every step, which is slow. ` +
        (KV_CACHE_TYPE_INFO[v].quantized
            ? "Use a pair the device runs (docs/backends.md), or an unquantized cacheTypeV with flashAttention 'auto'."
            : "Use a pair the device runs (docs/backends.md), or flashAttention 'auto' (llama.cpp then runs attention without it, on the device).")
    );
}
