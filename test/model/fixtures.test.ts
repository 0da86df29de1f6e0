import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { f16BitsToF32 } from '../../lib/gguf/writer.js';
import { ensureFixtureLora } from '../../lib/demo/loras.js';
import {
    ensureFixtureModel,
    findVocabFile,
    FIXTURE_MODELS,
    GENERATOR_VERSION,
    type FixtureModelName,
} from '../../lib/demo/models.js';
import { GGUF_VALUE_TYPE as T, type GgufMetadata, type GgufTensorInfo } from '../../lib/gguf/types.js';
import { readGgufMetadata } from '../../lib/gguf/reader.js';

let tmp: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'llama-kv-fixtures-'));
});

afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
});

afterEach(() => {
    for (const key of ['LLAMA_KV_VOCAB', 'LLAMA_KV_CACHE_DIR']) {
        if (savedEnv[key] === undefined) {
            delete process.env[key];
        } else {
            process.env[key] = savedEnv[key];
        }
    }
});

async function sha256(path: string): Promise<string> {
    return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** Total data bytes of the tensors of one ggml type. */
function bytesOfType(meta: GgufMetadata, typeName: string): number {
    return meta.tensors.filter((t) => t.typeName === typeName).reduce((n, t) => n + t.byteSize, 0);
}

/** Decode an F16 tensor straight from the file (checks the reader's offsets). */
async function readF16Tensor(path: string, meta: GgufMetadata, t: GgufTensorInfo): Promise<Float32Array> {
    const handle = await open(path, 'r');
    try {
        const buf = new Uint8Array(t.byteSize);
        await handle.read(buf, 0, t.byteSize, meta.dataOffset + t.offset);
        const bits = new Uint16Array(buf.buffer);
        const out = new Float32Array(bits.length);
        for (let i = 0; i < bits.length; i++) {
            out[i] = f16BitsToF32(bits[i]);
        }
        return out;
    } finally {
        await handle.close();
    }
}

// generating a model takes about half a second; allow for slow, busy machines
const paths: Partial<Record<FixtureModelName, string>> = {};

describe('ensureFixtureModel', () => {
    it('is deterministic across cache directories', { timeout: 60_000 }, async () => {
        for (const name of ['tiny-f16', 'tiny-q8_0'] as const) {
            const a = await ensureFixtureModel(name, { dir: join(tmp, 'a') });
            const b = await ensureFixtureModel(name, { dir: join(tmp, 'b') });
            expect(a).not.toBe(b);
            expect(await sha256(a)).toBe(await sha256(b));
            expect(a.endsWith('.gguf')).toBe(true);
            expect(a).toContain(`${name}-v${GENERATOR_VERSION}-`);
            paths[name] = a;
        }
        expect(await sha256(paths['tiny-f16']!)).not.toBe(await sha256(paths['tiny-q8_0']!));
        expect((await readdir(join(tmp, 'a'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    });

    it('reuses an existing file', async () => {
        const path = paths['tiny-f16']!;
        const before = await stat(path);
        expect(await ensureFixtureModel('tiny-f16', { dir: join(tmp, 'a') })).toBe(path);
        expect((await stat(path)).mtimeMs).toBe(before.mtimeMs);
    });

    it('is safe when two callers race', { timeout: 60_000 }, async () => {
        const dir = join(tmp, 'race');
        const [a, b] = await Promise.all([
            ensureFixtureModel('tiny-q8_0', { dir }),
            ensureFixtureModel('tiny-q8_0', { dir }),
        ]);
        expect(a).toBe(b);
        expect(await sha256(a)).toBe(await sha256(paths['tiny-q8_0']!));
        expect(await readdir(dir)).toHaveLength(1);
    });

    it('defaults to $LLAMA_KV_CACHE_DIR', async () => {
        process.env.LLAMA_KV_CACHE_DIR = join(tmp, 'a');
        expect(await ensureFixtureModel('tiny-f16')).toBe(paths['tiny-f16']);
    });

    it('rejects unknown names', async () => {
        await expect(ensureFixtureModel('nope' as FixtureModelName, { dir: tmp })).rejects.toThrow(
            /unknown fixture model 'nope'/,
        );
    });
});

describe('fixture model contents', () => {
    it('has the llama metadata and a tokenizer copied from the vocab file', async () => {
        const meta = await readGgufMetadata(paths['tiny-f16']!);
        const vocab = await readGgufMetadata(findVocabFile());
        expect(meta.version).toBe(3);
        expect(meta.alignment).toBe(32);
        expect(meta.kv).toMatchObject({
            'general.architecture': 'llama',
            'general.name': 'llama-kv tiny f16',
            'general.file_type': 1,
            'llama.context_length': 2048,
            'llama.embedding_length': 256,
            'llama.block_count': 2,
            'llama.feed_forward_length': 512,
            'llama.attention.head_count': 4,
            'llama.attention.head_count_kv': 2,
            'llama.rope.dimension_count': 64,
            'llama.rope.freq_base': 10000,
            'llama.vocab_size': 32000,
        });
        expect(meta.kv['llama.attention.layer_norm_rms_epsilon']).toBeCloseTo(1e-5, 10);
        expect(meta.kvTypes['llama.rope.freq_base']).toEqual({ type: T.FLOAT32 });
        const tokenizerKeys = Object.keys(vocab.kv).filter((k) => k.startsWith('tokenizer.ggml.'));
        expect(tokenizerKeys.length).toBeGreaterThanOrEqual(10);
        for (const key of tokenizerKeys) {
            expect(meta.kv[key], key).toEqual(vocab.kv[key]);
            expect(meta.kvTypes[key], key).toEqual(vocab.kvTypes[key]);
        }
    });

    it('has the tensors llama.cpp expects for the llama architecture', async () => {
        const meta = await readGgufMetadata(paths['tiny-f16']!);
        const shapes = Object.fromEntries(meta.tensors.map((t) => [t.name, [t.typeName, t.shape]]));
        expect(meta.tensors).toHaveLength(3 + 9 * 2);
        expect(shapes['token_embd.weight']).toEqual(['F16', [256, 32000]]);
        expect(shapes['output_norm.weight']).toEqual(['F32', [256]]);
        expect(shapes['output.weight']).toEqual(['F16', [256, 32000]]);
        for (const i of [0, 1]) {
            expect(shapes[`blk.${i}.attn_norm.weight`]).toEqual(['F32', [256]]);
            expect(shapes[`blk.${i}.attn_q.weight`]).toEqual(['F16', [256, 256]]);
            expect(shapes[`blk.${i}.attn_k.weight`]).toEqual(['F16', [256, 128]]);
            expect(shapes[`blk.${i}.attn_v.weight`]).toEqual(['F16', [256, 128]]);
            expect(shapes[`blk.${i}.attn_output.weight`]).toEqual(['F16', [256, 256]]);
            expect(shapes[`blk.${i}.ffn_norm.weight`]).toEqual(['F32', [256]]);
            expect(shapes[`blk.${i}.ffn_gate.weight`]).toEqual(['F16', [256, 512]]);
            expect(shapes[`blk.${i}.ffn_up.weight`]).toEqual(['F16', [256, 512]]);
            expect(shapes[`blk.${i}.ffn_down.weight`]).toEqual(['F16', [512, 256]]);
        }
        for (const t of meta.tensors) {
            expect(t.offset % meta.alignment, t.name).toBe(0);
        }
        const size = (await stat(paths['tiny-f16']!)).size;
        const last = meta.tensors[meta.tensors.length - 1];
        expect(size).toBeGreaterThanOrEqual(meta.dataOffset + last.offset + last.byteSize);
    });

    it('has weights with the intended scale', { timeout: 60_000 }, async () => {
        const path = paths['tiny-f16']!;
        const meta = await readGgufMetadata(path);
        const std = async (name: string): Promise<number> => {
            const values = await readF16Tensor(path, meta, meta.tensors.find((t) => t.name === name)!);
            let sum = 0;
            let sumSq = 0;
            for (const v of values) {
                sum += v;
                sumSq += v * v;
            }
            const mean = sum / values.length;
            return Math.sqrt(sumSq / values.length - mean * mean);
        };
        expect(await std('output.weight')).toBeCloseTo(0.5, 2);
        expect(await std('token_embd.weight')).toBeCloseTo(1, 2);
        expect(await std('blk.0.attn_q.weight')).toBeCloseTo(1 / 16, 2);
        expect(await std('blk.1.ffn_down.weight')).toBeCloseTo(1 / Math.sqrt(512), 2);
    });

    it('stores Q8_0 weights in about 34/64 of the F16 size', async () => {
        const f16 = await readGgufMetadata(paths['tiny-f16']!);
        const q8 = await readGgufMetadata(paths['tiny-q8_0']!);
        expect(q8.kv['general.file_type']).toBe(7);
        expect(q8.kv['general.name']).toBe('llama-kv tiny q8_0');
        expect(bytesOfType(q8, 'F16')).toBe(0);
        expect(bytesOfType(q8, 'Q8_0') / bytesOfType(f16, 'F16')).toBe(34 / 64);
        expect(bytesOfType(q8, 'F32')).toBe(bytesOfType(f16, 'F32'));
        expect(q8.tensors.map((t) => [t.name, t.shape])).toEqual(f16.tensors.map((t) => [t.name, t.shape]));
        const ratio = (await stat(paths['tiny-q8_0']!)).size / (await stat(paths['tiny-f16']!)).size;
        expect(ratio).toBeGreaterThan(0.5);
        expect(ratio).toBeLessThan(0.56);
    });

    it('describes the models in FIXTURE_MODELS', () => {
        expect(Object.keys(FIXTURE_MODELS).sort()).toEqual(['bench-f16', 'bench-small-q8_0', 'chat-gemma-f16', 'chat-llama3-f16', 'chat-qwen-f16', 'chat-tools-f16', 'micro-f16', 'tiny-f16', 'tiny-hd48-f16', 'tiny-moe-f16', 'tiny-mrope-f16', 'tiny-q4_0', 'tiny-q8_0']);
        expect(FIXTURE_MODELS['tiny-moe-f16']).toMatchObject({ nExpert: 4, nExpertUsed: 2 });
        expect(FIXTURE_MODELS['tiny-hd48-f16'].nEmbd / FIXTURE_MODELS['tiny-hd48-f16'].nHead).toBe(48);
        expect(FIXTURE_MODELS['tiny-q8_0']).toMatchObject({ weightType: 'Q8_0', fileType: 7, nLayer: 2 });
        expect(FIXTURE_MODELS['tiny-q4_0']).toMatchObject({ weightType: 'Q4_0', fileType: 2, nLayer: 2 });
    });
});

describe('findVocabFile', () => {
    it('finds the vendored SPM vocab from the package root', () => {
        delete process.env.LLAMA_KV_VOCAB;
        expect(findVocabFile()).toMatch(/vendor[\\/]llama\.cpp[\\/]models[\\/]ggml-vocab-llama-spm\.gguf$/);
    });

    it('honours $LLAMA_KV_VOCAB', () => {
        const vocab = findVocabFile();
        process.env.LLAMA_KV_VOCAB = vocab;
        expect(findVocabFile()).toBe(vocab);
        process.env.LLAMA_KV_VOCAB = join(tmp, 'missing.gguf');
        expect(() => findVocabFile()).toThrow(/LLAMA_KV_VOCAB .*does not exist/);
    });
});

describe('ensureFixtureLora', () => {
    let dir: string;
    beforeAll(async () => {
        dir = await mkdtemp(join(tmpdir(), 'llama-kv-lora-fixture-'));
    });
    afterAll(async () => {
        await rm(dir, { recursive: true, force: true });
    });

    it('writes the same bytes every time, in the layout llama.cpp reads', async () => {
        const first = await ensureFixtureLora('tiny-lora-r8-attn', { dir });
        const bytes = await readFile(first);
        await rm(first);
        const second = await ensureFixtureLora('tiny-lora-r8-attn', { dir });
        expect(second).toBe(first);
        expect(createHash('sha256').update(await readFile(second)).digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
        const meta = await readGgufMetadata(second);
        expect(meta.kv['general.type']).toBe('adapter');
        expect(meta.kv['adapter.type']).toBe('lora');
        expect(meta.kv['adapter.lora.alpha']).toBe(16);
        const shapes = Object.fromEntries(meta.tensors.map((t) => [t.name, t.shape]));
        expect(shapes['blk.0.attn_q.weight.lora_a']).toEqual([256, 8]); // [inputs, rank]
        expect(shapes['blk.0.attn_k.weight.lora_b']).toEqual([8, 128]); // [rank, outputs]: 2 KV heads of 64
        expect(meta.tensors).toHaveLength(2 * 2 * 4);
        await expect(ensureFixtureLora('nope' as never, { dir })).rejects.toThrow(/unknown fixture adapter 'nope'/);
    });
});
