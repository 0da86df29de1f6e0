/** Where a model's weights go: devices, GPU layers and tensor overrides from the load options (for LlamaModel.load and estimateMemory's dry run). */
import type { NativeLoadParams } from '../native/binding.js';
import { chooseGpu, listBackends } from './backends.js';
import { LlamaConfigError } from '../errors.js';
import type { GgufValue } from '../gguf/types.js';
import { warning, type LlamaWarning } from '../warnings.js';
import { defaults } from '../options/defaults.js';
import type { ModelLoadOptions } from '../options/model-options.js';

/**
 * The devices, layers and tensor overrides of a load, from its gpu options: see
 * {@link ModelLoadOptions.gpu}. 'auto''s CPU fallback goes to `warnings`.
 * @internal
 */
export function resolvePlacement(
    opts: Pick<ModelLoadOptions, 'gpu' | 'gpuLayers' | 'devices' | 'tensorSplit' | 'cpuMoeLayers' | 'tensorOverrides' | 'rpcServers'>,
    gguf: Record<string, GgufValue>,
    warnings: LlamaWarning[],
): Pick<NativeLoadParams, 'gpuLayers' | 'devices' | 'tensorSplit' | 'tensorOverrides'> {
    const choice = chooseGpu(listBackends(), opts.gpu ?? defaults.model.gpu, opts.devices);
    if (choice.warning) warnings.push(warning('NO_GPU', choice.warning, ['gpu']));
    const requested = opts.gpuLayers ?? defaults.model.gpuLayers;
    const remote = (opts.rpcServers?.length ?? 0) > 0;
    if (opts.gpu === false && !remote && typeof requested === 'number' && requested > 0) {
        throw new LlamaConfigError(`gpuLayers: ${requested} needs a GPU, but gpu is false: remove gpuLayers or choose a gpu`, 'INVALID_CONFIG', ['gpuLayers', 'gpu']);
    }
    // With RPC servers the device count is known once they answer: the native load checks it.
    if (!remote && opts.tensorSplit && opts.tensorSplit.length > Math.max(choice.devices.length, 1)) {
        throw new LlamaConfigError(
            `tensorSplit has ${opts.tensorSplit.length} entries but the model is offloaded to ${choice.devices.length} device(s) (${choice.devices.join(', ') || 'none'})`,
            'INVALID_CONFIG', ['tensorSplit'],
        );
    }
    const gpuLayers = choice.devices.length === 0 && !remote ? 0 : requested === 'auto' || requested === 'max' ? -1 : requested;
    const overrides = [...cpuMoeOverrides(opts.cpuMoeLayers ?? defaults.model.cpuMoeLayers, gguf), ...(opts.tensorOverrides ?? [])];
    return {
        gpuLayers,
        devices: choice.devices,
        ...(opts.tensorSplit ? { tensorSplit: opts.tensorSplit } : {}),
        ...(overrides.length > 0 ? { tensorOverrides: overrides } : {}),
    };
}

/** llama.cpp's --n-cpu-moe: the expert tensors of layers [0, n) to the CPU buffer type. */
function cpuMoeOverrides(n: number, gguf: Record<string, GgufValue>): { pattern: string; bufferType: string }[] {
    if (n <= 0) return [];
    // Layers beyond the model's match nothing; without a block count, no model has more than this.
    const layers = Math.min(n, modelLayerCount(gguf) || 1024);
    const ids = Array.from({ length: layers }, (_, i) => i).join('|');
    return [{ pattern: `^blk\\.(${ids})\\.ffn_(up|down|gate|gate_up)_(ch|)exps`, bufferType: 'CPU' }];
}

/** `<arch>.block_count` of a GGUF header, 0 when absent. @internal */
export function modelLayerCount(kv: Record<string, GgufValue>): number {
    const arch = kv['general.architecture'];
    const blocks = typeof arch === 'string' ? kv[`${arch}.block_count`] : undefined;
    return typeof blocks === 'number' ? blocks : typeof blocks === 'bigint' ? Number(blocks) : 0;
}
