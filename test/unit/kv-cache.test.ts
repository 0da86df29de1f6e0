import { describe, expect, it } from 'vitest';
import { LlamaConfigError } from '../../lib/errors.js';
import {
    flashAttentionDeviceWarning,
    type DeviceFlashAttention,
    KV_PRESETS,
    resolveKvConfig,
    type KvModelFacts,
} from '../../lib/options/kv-cache.js';

const model64: KvModelFacts = { layerHeadDimK: [64, 64], layerHeadDimV: [64, 64], kvTypesMustMatch: false };
const defaults = { cacheTypeK: 'f16', cacheTypeV: 'f16', flashAttention: 'auto' } as const;

function configError(fn: () => unknown): LlamaConfigError {
    try {
        fn();
    } catch (error) {
        expect(error).toBeInstanceOf(LlamaConfigError);
        expect((error as LlamaConfigError).code).toBe('INVALID_CONFIG');
        return error as LlamaConfigError;
    }
    throw new Error('did not throw');
}

describe('resolveKvConfig', () => {
    it('applies presets; explicit types win', () => {
        expect(resolveKvConfig({ kvPreset: 'aggressive' }, model64, defaults)).toEqual({ cacheTypeK: 'q8_0', cacheTypeV: 'q4_0', flashAttention: 'auto' });
        expect(resolveKvConfig({ kvPreset: 'extreme', cacheTypeK: 'q8_0' }, model64, defaults)).toMatchObject({ cacheTypeK: 'q8_0', cacheTypeV: 'q4_0' });
        expect(resolveKvConfig({}, model64, defaults)).toEqual(defaults);
        expect(Object.keys(KV_PRESETS)).toEqual(['conservative', 'balanced', 'aggressive', 'extreme']);
    });

    it('refuses a quantized V with flash attention off, naming both options and the fix', () => {
        const e = configError(() => resolveKvConfig({ cacheTypeV: 'q4_0', flashAttention: 'off' }, model64, defaults));
        expect(e.path).toEqual(['cacheTypeV', 'flashAttention']);
        expect(e.message).toContain("set flashAttention to 'on' or 'auto', or use an unquantized cacheTypeV");
        const p = configError(() => resolveKvConfig({ kvPreset: 'balanced', flashAttention: 'off' }, model64, defaults));
        expect(p.message).toContain("(from kvPreset 'balanced')");
        // K alone may be quantized without flash attention.
        expect(resolveKvConfig({ cacheTypeK: 'q8_0', flashAttention: 'off' }, model64, defaults).cacheTypeK).toBe('q8_0');
    });

    it('refuses a block size that does not divide the head dimension, on any layer', () => {
        const mixed: KvModelFacts = { layerHeadDimK: [64, 48], layerHeadDimV: [64, 64], kvTypesMustMatch: false };
        const e = configError(() => resolveKvConfig({ cacheTypeK: 'q8_0' }, mixed, defaults));
        expect(e.path).toEqual(['cacheTypeK']);
        expect(e.message).toContain("cacheTypeK 'q8_0' stores blocks of 32 values, which does not divide the model's head dimension 48 (layer 1)");
        expect(resolveKvConfig({ cacheTypeK: 'f16', cacheTypeV: 'q8_0' }, mixed, defaults).cacheTypeV).toBe('q8_0');
    });

    it('refuses different K and V types on MLA models', () => {
        const mla: KvModelFacts = { layerHeadDimK: [192], layerHeadDimV: [128], kvTypesMustMatch: true };
        const e = configError(() => resolveKvConfig({ kvPreset: 'aggressive' }, mla, defaults));
        expect(e.path).toEqual(['cacheTypeK', 'cacheTypeV']);
        expect(resolveKvConfig({ kvPreset: 'balanced' }, mla, defaults).cacheTypeV).toBe('q8_0');
    });
});

describe('flash-attention device warning', () => {
    const dev = (backend: string, supported: boolean | null, features: Record<string, string> = {}): DeviceFlashAttention => ({
        device: `${backend}0`, backend, features, supported,
    });
    type T = 'q8_0' | 'q4_0' | 'f16' | 'bf16';
    const pair = (k: T, v: T, flashAttention: 'auto' | 'on' | 'off' = 'auto') => ({ cacheTypeK: k, cacheTypeV: v, flashAttention });

    it('says nothing when every device runs the pair, when flash attention is off, or with no device', () => {
        expect(flashAttentionDeviceWarning(pair('q8_0', 'q4_0'), [dev('CUDA', true)])).toBeNull();
        expect(flashAttentionDeviceWarning(pair('q8_0', 'q4_0'), [dev('CUDA', null)])).toBeNull();
        expect(flashAttentionDeviceWarning(pair('f16', 'f16', 'off'), [dev('Vulkan', false)])).toBeNull();
        expect(flashAttentionDeviceWarning(pair('q8_0', 'q4_0'), [])).toBeNull();
    });

    it('names the device and, for CUDA without all FA quants, the build option', () => {
        const w = flashAttentionDeviceWarning(pair('q8_0', 'q4_0'), [dev('CUDA', false)]);
        expect(w).toMatch(/'q8_0' with cacheTypeV 'q4_0' on CUDA0 \(.*GGML_CUDA_FA_ALL_QUANTS/);
        expect(w).toMatch(/run on the CPU/);
        expect(flashAttentionDeviceWarning(pair('q8_0', 'q4_0'), [dev('CUDA', false, { FA_ALL_QUANTS: '1' })])).not.toMatch(/FA_ALL_QUANTS/);
    });

    it("says why Vulkan refuses a bf16 pair, and that 'auto' with an unquantized V turns flash attention off", () => {
        const w = flashAttentionDeviceWarning(pair('bf16', 'f16'), [dev('Vulkan', false)]);
        expect(w).toMatch(/bf16 only with bf16/);
        expect(w).toMatch(/turns flash attention off/);
        expect(flashAttentionDeviceWarning(pair('bf16', 'f16', 'on'), [dev('Vulkan', false)])).toMatch(/run on the CPU.*flashAttention 'auto'/);
        expect(flashAttentionDeviceWarning(pair('bf16', 'q8_0'), [dev('Vulkan', false)])).toMatch(/run on the CPU.*unquantized cacheTypeV/);
    });

    it("names the partial CPU fallback only where it happens: a quantized K with a bf16 V on Vulkan", () => {
        expect(flashAttentionDeviceWarning(pair('q8_0', 'bf16'), [dev('Vulkan', false)])).toMatch(/partly on the CPU \(a quantized K with a bf16 V on Vulkan\)/);
        expect(flashAttentionDeviceWarning(pair('bf16', 'f16'), [dev('Vulkan', false)])).not.toMatch(/partly on the CPU/);
        expect(flashAttentionDeviceWarning(pair('q8_0', 'bf16'), [dev('CUDA', false)])).not.toMatch(/Vulkan/);
    });
});
