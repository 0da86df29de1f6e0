// `llama-kv info`: the header's figures without a model load (the same as the loaded
// model's, which --load shows), the chat template's name and the memory at the trained context.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LlamaContext } from '../../lib/context/context.js';
import { readGgufMetadata } from '../../lib/gguf/reader.js';
import { writeGguf, type GgufKvEntry } from '../../lib/gguf/writer.js';
import { LlamaModel } from '../../lib/model/model.js';
import { llamaKv } from '../support/cli.js';
import { fixtures } from '../support/fixtures.js';

/** The `key   value` rows of info's text output. */
function rows(stdout: string): Map<string, string> {
    return new Map(stdout.trimEnd().split('\n').map((line) => [line.slice(0, 18).trim(), line.slice(18)]));
}

const SHARED = ['path', 'architecture', 'name', 'trained context', 'layers', 'embedding size', 'heads / KV heads', 'head dim K / V', 'vocabulary', 'parameters', 'weights', 'GGUF keys', 'chat template'];

describe('llama-kv info', () => {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-info-'));
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    it("reads the header only and shows the loaded model's figures; --load adds llama.cpp's description", () => {
        for (const file of [fixtures.q8_0, fixtures.moe, fixtures.hd48]) {
            const header = llamaKv('info', file);
            const loaded = llamaKv('info', file, '--load');
            expect(header.code, header.stderr).toBe(0);
            expect(loaded.code, loaded.stderr).toBe(0);
            const h = rows(header.stdout);
            const l = rows(loaded.stdout);
            for (const key of SHARED) expect(h.get(key), `${file}: ${key}`).toBe(l.get(key));
            expect(h.has('description')).toBe(false);
            expect(l.get('description')).toMatch(/^llama /);
            expect([...h.keys()].at(-1)).toMatch(/^memory at \d+$/);
            expect(h.get([...h.keys()].at(-1)!)).toBe(l.get([...l.keys()].at(-1)!));
        }
        expect(rows(llamaKv('info', fixtures.q8_0).stdout).get('heads / KV heads')).toBe('4 / 2');
    });

    it('--json has the header figures under ModelMetadata names, the template and the memory; --load adds the rest', () => {
        const header = JSON.parse(llamaKv('info', fixtures.q8_0, '--json').stdout);
        const loaded = JSON.parse(llamaKv('info', fixtures.q8_0, '--json', '--load').stdout);
        for (const key of ['architecture', 'name', 'trainedContextSize', 'layerCount', 'embeddingSize', 'headCount', 'headCountKv', 'headDimK', 'headDimV', 'vocabSize', 'parameterCount', 'sizeBytes']) {
            expect(header[key], key).toBe(loaded[key]);
        }
        expect(header.gguf).toEqual(loaded.gguf);
        expect(header.gguf['general.file_type']).toBe(7);
        expect(header.gguf['tokenizer.ggml.tokens']).toHaveLength(header.vocabSize);
        expect(header.description).toBeUndefined();
        expect(typeof loaded.description).toBe('string');
        expect(typeof loaded.bosToken).toBe('number');
        expect(header.chatTemplate).toBeNull();
        expect(header.memoryAtTrainedContext).toEqual(loaded.memoryAtTrainedContext);
    });

    it("names the chat template as llama.cpp's detection does", () => {
        const expected: [string, RegExp][] = [
            [fixtures.chat.llama3, /^llama3 \(llama\.cpp's name\), \d+ characters$/],
            [fixtures.chat.qwen, /^chatml \(llama\.cpp's name\), \d+ characters$/],
            [fixtures.chat.gemma, /^gemma \(llama\.cpp's name\), \d+ characters$/],
            [fixtures.chat.tools, /^chatml \(llama\.cpp's name\), \d+ characters$/],
            [fixtures.f16, /^none in the file \(llama\.cpp falls back to ChatML\)$/],
        ];
        for (const [file, text] of expected) expect(rows(llamaKv('info', file).stdout).get('chat template'), file).toMatch(text);
        const json = JSON.parse(llamaKv('info', fixtures.chat.qwen, '--json').stdout);
        expect(json.chatTemplate).toEqual({ name: 'chatml', length: json.gguf['tokenizer.chat_template'].length, origin: 'file' });
    });

    it('the memory at the trained context: its KV cache is what a context of that size allocates', async () => {
        const json = JSON.parse(llamaKv('info', fixtures.f16, '--json').stdout);
        const m = json.memoryAtTrainedContext;
        expect(m.contextSize).toBe(json.trainedContextSize);
        expect([m.cacheTypeK, m.cacheTypeV]).toEqual(['f16', 'f16']);
        expect(m.totalBytes).toBe(m.kvBytes + m.weightsBytes + m.computeBytes + m.outputBytes);
        const model = await LlamaModel.load({ path: fixtures.f16 });
        try {
            const ctx = new LlamaContext({ model, contextSize: json.trainedContextSize });
            const live = ctx.memoryReport();
            ctx.dispose();
            expect(m.kvBytes).toBe(live.kv.bytes);
            expect(m.weightsBytes).toBe(live.weights.bytes);
        } finally {
            model.dispose();
        }
    });

    it('needs no model load: a header llama.cpp cannot load is shown; --load gives its error', async () => {
        const meta = await readGgufMetadata(fixtures.f16);
        const rename = (key: string) => (key.startsWith('llama.') ? `nosuch.${key.slice(6)}` : key);
        const kv = Object.keys(meta.kv).map((key) => ({
            key: rename(key),
            ...meta.kvTypes[key],
            value: key === 'general.architecture' ? 'nosuch' : meta.kv[key],
        }) as GgufKvEntry);
        const file = join(work, 'unknown-architecture.gguf');
        await writeGguf(file, { kv, tensors: meta.tensors.map((t) => ({ name: t.name, type: t.typeName, shape: t.shape, data: new Uint8Array(t.byteSize) })) });
        const header = llamaKv('info', file);
        expect(header.code, header.stderr).toBe(0);
        expect(rows(header.stdout).get('architecture')).toBe('nosuch');
        expect(rows(header.stdout).get('layers')).toBe(rows(llamaKv('info', fixtures.f16).stdout).get('layers'));
        const loaded = llamaKv('info', file, '--load');
        expect(loaded.code).toBe(1);
        expect(loaded.stderr).toMatch(/\[MODEL_LOAD_FAILED\]|\[INVALID_MODEL_FILE\]/);
    });

    it('the errors of a load: a missing file, a truncated one', async () => {
        expect(llamaKv('info', join(work, 'nope.gguf')).stderr).toContain('[MODEL_NOT_FOUND]');
        const meta = await readGgufMetadata(fixtures.f16);
        const cut = join(work, 'cut.gguf');
        writeFileSync(cut, readFileSync(fixtures.f16).subarray(0, meta.dataOffset + 10));
        const r = llamaKv('info', cut);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('[INVALID_MODEL_FILE]');
        expect(r.stderr).toMatch(/truncated GGUF: data of tensor '[^']+' .* extends past the end of the file/);
    });
});
