/**
 * Asks each device a model's layers are offloaded to whether it runs flash attention with
 * a context's K/V types and the model's head shapes (the native probe asks the device's
 * backend, as ggml's scheduler does before placing the op), for the K/V rule of
 * lib/options/kv-cache.ts. @internal
 */
import { binding } from '../native/binding.js';
import { modelPlacement, type LlamaModel } from '../model/model.js';
import { KV_CACHE_TYPE_INFO, type DeviceFlashAttention, type ResolvedKvConfig } from '../options/kv-cache.js';

export function deviceFlashAttention(model: LlamaModel, kv: ResolvedKvConfig, contextSize: number): DeviceFlashAttention[] {
    const names = modelPlacement(model).devices.filter((d) => d.toUpperCase() !== 'CPU');
    if (names.length === 0 || kv.flashAttention === 'off') return [];
    const native = binding();
    const registries = native.backendInfo(false).registries;
    const m = model.metadata;
    // Each distinct head shape of the model's attention layers (SWA models may have two). The
    // K/V rules have already checked that the types' blocks divide them.
    const shapes = [...new Map(m.layerHeadDimK.map((dk, i) => [`${dk}:${m.layerHeadDimV[i]}`, [dk, m.layerHeadDimV[i]] as const])).values()];
    const k = KV_CACHE_TYPE_INFO[kv.cacheTypeK].ggmlType;
    const v = KV_CACHE_TYPE_INFO[kv.cacheTypeV].ggmlType;
    const cells = Math.max(256, Math.min(contextSize, 1 << 20));
    const askable = m.headCount > 0 && m.headCountKv > 0 && m.headCount % m.headCountKv === 0;
    return names.map((device) => {
        const registry = registries.find((r) => r.devices.some((d) => d.name.toLowerCase() === device.toLowerCase()));
        let supported: boolean | null = true;
        for (const [dk, dv] of askable ? shapes : []) {
            if (dk === 0 || dv === 0) continue;
            const answer = native.flashAttentionSupported(device, k, v, dk, dv, m.headCount, m.headCountKv, cells);
            if (answer === null) supported = null;
            else if (!answer) {
                supported = false;
                break;
            }
        }
        return { device, backend: registry?.name ?? 'unknown', features: registry?.features ?? {}, supported };
    });
}
