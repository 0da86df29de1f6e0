/** Where a model's weights go: devices, GPU layers and tensor overrides from the load options. */
import type { NativeLoadParams } from '../native/binding.js';
import { chooseGpu, listBackends } from '../backends/backends.js';
import { LlamaConfigError } from '../errors.js';
import type { GgufMetadata, GgufValue } from '../gguf/types.js';
import { warning, type LlamaWarning } from '../warnings.js';
import { modelFactsFromGguf, type HeaderModelFacts } from '../memory/model-facts.js';
import type { WeightPlacement } from '../memory/weight-buffers.js';
import { defaults } from '../options/defaults.js';
import type { ModelLoadOptions } from '../options/model-options.js';

/**
 * The devices, layers and tensor overrides of a load, from its gpu options: see
 * {@link ModelLoadOptions.gpu}. 'auto''s CPU fallback goes to `warnings`.
 * @internal
 */
export function resolvePlacement(
    opts: ModelLoadOptions,
    gguf: Record<string, GgufValue>,
    warnings: LlamaWarning[],
): Pick<NativeLoadParams, 'gpuLayers' | 'devices' | 'tensorSplit' | 'tensorOverrides'> {
    const choice = chooseGpu(listBackends(), opts.gpu ?? defaults.model.gpu, opts.devices);
    if (choice.warning) warnings.push(warning('NO_GPU', choice.warning, ['gpu']));
    const requested = opts.gpuLayers ?? defaults.model.gpuLayers;
    if (opts.gpu === false && typeof requested === 'number' && requested > 0) {
        throw new LlamaConfigError(`gpuLayers: ${requested} needs a GPU, but gpu is false: remove gpuLayers or choose a gpu`, 'INVALID_CONFIG', ['gpuLayers', 'gpu']);
    }
    if (opts.tensorSplit && opts.tensorSplit.length > Math.max(choice.devices.length, 1)) {
        throw new LlamaConfigError(
            `tensorSplit has ${opts.tensorSplit.length} entries but the model is offloaded to ${choice.devices.length} device(s) (${choice.devices.join(', ') || 'none'})`,
            'INVALID_CONFIG', ['tensorSplit'],
        );
    }
    const gpuLayers = choice.devices.length === 0 ? 0 : requested === 'auto' || requested === 'max' ? -1 : requested;
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

/** Where a model's layers went, and its GGUF header (for the memory checks of its contexts). @internal */
export interface ModelPlacement {
    /** Layers requested on a GPU (-1: all; 0 when no GPU is used). */
    gpuLayers: number;
    /** The GPU devices offloaded to ([] on the CPU). */
    devices: readonly string[];
    header: GgufMetadata;
    /** The estimator's facts from the header, read once; null when it does not understand the header. */
    facts: HeaderModelFacts | null;
    /** Whether the file is memory-mapped (after the alignment fallback). */
    useMmap: boolean;
    /** Whether the CPU backend's extra buffer types may take weights. */
    repack: boolean;
    /** Where each weight went, read from llama.cpp on first use (it does not change after the load). */
    weights: WeightPlacement | null;
    /** The load's warnings (model.warnings). */
    warnings: readonly LlamaWarning[];
}

/** The estimator's facts from a header, or null when it does not understand it. @internal */
export function headerFacts(gguf: GgufMetadata): HeaderModelFacts | null {
    try {
        return modelFactsFromGguf(gguf);
    } catch {
        return null;
    }
}

/** `<arch>.block_count` of a GGUF header, 0 when absent. @internal */
export function modelLayerCount(kv: Record<string, GgufValue>): number {
    const arch = kv['general.architecture'];
    const blocks = typeof arch === 'string' ? kv[`${arch}.block_count`] : undefined;
    return typeof blocks === 'number' ? blocks : typeof blocks === 'bigint' ? Number(blocks) : 0;
}
