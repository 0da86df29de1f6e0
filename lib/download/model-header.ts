/** The header of an estimate's or a plan's `model`: a parsed header, a local file, or a remote one. */
import { LlamaConfigError } from '../errors.js';
import { readGgufMetadata } from '../gguf/reader.js';
import type { GgufMetadata } from '../gguf/types.js';
import { readRemoteGgufMetadata } from './remote-header.js';
import { isRemoteModel } from './uri.js';

/**
 * The GGUF header of `model`: itself when already parsed, read with range requests for an
 * `hf:` URI or an http(s):// URL, else read from the local file.
 */
export async function readModelHeader(model: string | GgufMetadata, options: { signal?: AbortSignal } = {}): Promise<GgufMetadata> {
    if (typeof model !== 'string') return model;
    if (isRemoteModel(model)) return readRemoteGgufMetadata(model, options.signal ? { signal: options.signal } : {});
    return readGgufMetadata(model);
}

/** The INVALID_CONFIG for a remote `model` where a local file is needed (llama.cpp's dry run, a live load). */
export function needsLocalFile(model: string, what: string, path: readonly string[]): LlamaConfigError {
    return new LlamaConfigError(
        `${what} needs the model as a local GGUF file, not ${model}: download it first with resolveModelFile() (or \`llama-kv pull\`), or leave ${path.at(-1)} out for the header estimate`,
        'INVALID_CONFIG',
        [...path],
    );
}

export { isRemoteModel };
