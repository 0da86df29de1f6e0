/** Checks of a model or LoRA file before llama.cpp reads it, with errors that say what the file is. */
import { stat } from 'node:fs/promises';
import { LlamaError, LlamaModelLoadError } from '../errors.js';
import { readGgufMetadata } from '../gguf/reader.js';

/** Checks a GGUF file before llama.cpp reads it: exists, is a file, parses, is complete. @internal */
export async function inspectFile(path: string, kind: 'model' | 'LoRA adapter' = 'model') {
    const fail = (code: 'MODEL_NOT_FOUND' | 'MODEL_LOAD_FAILED' | 'INVALID_MODEL_FILE', message: string, cause?: unknown) =>
        kind === 'model'
            ? new LlamaModelLoadError(code, message, { cause })
            : new LlamaError('LORA_LOAD_FAILED', message, { cause });
    let info;
    try {
        info = await stat(path);
    } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
            throw fail('MODEL_NOT_FOUND', `${kind === 'model' ? 'Model' : 'LoRA adapter'} file not found: ${path}`, error);
        }
        throw fail('MODEL_LOAD_FAILED', `Cannot read ${kind} file ${path}: ${(error as Error).message}`, error);
    }
    if (info.isDirectory()) {
        throw fail('INVALID_MODEL_FILE', `${path} is a directory, not a GGUF ${kind} file`);
    }
    let gguf;
    try {
        gguf = await readGgufMetadata(path);
    } catch (error) {
        throw fail('INVALID_MODEL_FILE', `${path} is not a valid GGUF ${kind}: ${(error as Error).message}`, error);
    }
    const needed = gguf.tensors.reduce((end, t) => Math.max(end, gguf.dataOffset + t.offset + t.byteSize), gguf.dataOffset);
    if (needed > info.size) {
        throw fail(
            'INVALID_MODEL_FILE',
            `${path} is truncated: its tensors need ${needed} bytes but the file has ${info.size}; download or generate it again`,
        );
    }
    return gguf;
}

/** A LoRA adapter file for this model, or a LORA_LOAD_FAILED error saying what it is instead. */
export async function inspectLoraFile(path: string, modelArch: string) {
    const gguf = await inspectFile(path, 'LoRA adapter');
    const type = gguf.kv['general.type'];
    const adapterType = gguf.kv['adapter.type'];
    if (type !== 'adapter' || adapterType !== 'lora') {
        const what = type === undefined || type === 'model' ? 'a model, not an adapter' : `general.type '${String(type)}', adapter.type '${String(adapterType)}'`;
        throw new LlamaError('LORA_LOAD_FAILED', `${path} is not a LoRA adapter (${what}): convert the adapter with llama.cpp's convert_lora_to_gguf.py`);
    }
    const arch = gguf.kv['general.architecture'];
    if (arch !== modelArch) {
        throw new LlamaError('LORA_LOAD_FAILED', `${path} is a LoRA adapter for a '${String(arch)}' model, but this model is '${modelArch}'`);
    }
    return gguf;
}
