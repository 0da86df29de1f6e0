/** Where a loaded model's weights went, and its header for the memory checks of its contexts. */
import type { GgufMetadata } from '../gguf/types.js';
import type { LlamaWarning } from '../warnings.js';
import { modelFactsFromGguf, type HeaderModelFacts } from '../memory/model-facts.js';
import type { WeightPlacement } from '../memory/weight-buffers.js';

/** Where a model's layers went, and its GGUF header (for the memory checks of its contexts). @internal */
export interface ModelPlacement {
    /** Layers requested on a GPU (-1: all; 0 when no GPU is used). */
    gpuLayers: number;
    /** The GPU devices offloaded to ([] on the CPU). */
    devices: readonly string[];
    /**
     * The remote devices of `rpcServers` (`RPC0`, ...), ahead of `devices` in the offload list,
     * with the free memory their servers reported once the weights were there (null: not
     * answered); [] without.
     */
    remoteDevices: readonly { name: string; endpoint: string; freeBytes: number | null }[];
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
