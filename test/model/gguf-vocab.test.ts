// readGgufMetadata() on a real llama.cpp file: the vendored SPM vocabulary (the model
// project, because the unit project runs without the vendor tree).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GGUF_VALUE_TYPE as T } from '../../lib/gguf/types.js';
import { readGgufMetadata } from '../../lib/gguf/reader.js';

const VOCAB = fileURLToPath(new URL('../../vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf', import.meta.url));

describe('readGgufMetadata', () => {
    it('reads the llama.cpp SPM vocab file', async () => {
        const meta = await readGgufMetadata(VOCAB);
        expect(meta.version).toBe(3);
        expect(meta.tensors).toEqual([]);
        expect(meta.kv['general.architecture']).toBe('llama');
        expect(meta.kv['tokenizer.ggml.model']).toBe('llama');
        expect(meta.kvTypes['tokenizer.ggml.tokens']).toEqual({ type: T.ARRAY, arrayType: T.STRING });
        expect(meta.kvTypes['tokenizer.ggml.scores']).toEqual({ type: T.ARRAY, arrayType: T.FLOAT32 });
        expect(meta.kvTypes['tokenizer.ggml.token_type']).toEqual({ type: T.ARRAY, arrayType: T.INT32 });
        const tokens = meta.kv['tokenizer.ggml.tokens'] as string[];
        expect(tokens).toHaveLength(32000);
        expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
        expect(meta.dataOffset).toBe((await readFile(VOCAB)).length);
    });
});
