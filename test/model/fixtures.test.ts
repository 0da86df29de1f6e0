import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
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
import { fixtures, referenceEmbeddings, type ReferenceEmbeddingResult } from '../support/fixtures.js';

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
        expect(Object.keys(FIXTURE_MODELS).sort()).toEqual([
            'bench-embed-bert-f16', 'bench-f16', 'bench-small-q8_0', 'chat-gemma-f16', 'chat-llama3-f16', 'chat-qwen-f16', 'chat-tools-f16',
            'embed-bert-f16', 'embed-llama-last-f16', 'micro-f16', 'rerank-bert-f16', 'tiny-f16', 'tiny-hd48-f16', 'tiny-moe-f16', 'tiny-mrope-f16', 'tiny-q4_0', 'tiny-q8_0',
        ]);
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

    it('finds the BERT vocab beside $LLAMA_KV_VOCAB, else in vendor/', async () => {
        delete process.env.LLAMA_KV_VOCAB;
        const vendored = findVocabFile('bert-bge');
        expect(vendored).toMatch(/vendor[\\/]llama\.cpp[\\/]models[\\/]ggml-vocab-bert-bge\.gguf$/);
        const dir = await mkdtemp(join(tmp, 'vocabs-'));
        await copyFile(findVocabFile(), join(dir, 'spm.gguf'));
        process.env.LLAMA_KV_VOCAB = join(dir, 'spm.gguf');
        // Not beside it: the vendored file.
        expect(findVocabFile('bert-bge')).toBe(vendored);
        await copyFile(vendored, join(dir, 'ggml-vocab-bert-bge.gguf'));
        expect(findVocabFile('bert-bge')).toBe(join(dir, 'ggml-vocab-bert-bge.gguf'));
        expect(findVocabFile('llama-spm')).toBe(join(dir, 'spm.gguf'));
        expect(() => findVocabFile('nope' as never)).toThrow(/unknown fixture vocabulary 'nope'/);
    });
});

describe('embedding fixtures', () => {
    const TEXTS = ['hello world', 'The quick brown fox jumps over the lazy dog.', 'hello world!'];

    /** Tensor name -> [type, shape]. */
    async function tensorsOf(path: string): Promise<Record<string, [string, number[]]>> {
        const meta = await readGgufMetadata(path);
        return Object.fromEntries(meta.tensors.map((t) => [t.name, [t.typeName, t.shape]]));
    }

    /** Every value finite, each row not constant, and no two rows equal. */
    function expectVectors(rows: number[][], count: number, width: number): void {
        expect(rows).toHaveLength(count);
        for (const row of rows) {
            expect(row).toHaveLength(width);
            expect(row.every(Number.isFinite)).toBe(true);
            if (width > 1) expect(new Set(row).size).toBeGreaterThan(width / 2);
        }
        expect(new Set(rows.map((row) => row.join(','))).size).toBe(count);
    }

    function reference(path: string, inputs: Parameters<typeof referenceEmbeddings>[1]): ReferenceEmbeddingResult {
        const result = referenceEmbeddings(path, inputs);
        if ('error' in result) throw new Error(result.error);
        return result;
    }

    it('has the BERT metadata, the BGE tokenizer and the tensors llama.cpp\'s bert loader reads', async () => {
        const meta = await readGgufMetadata(fixtures.embed.bert);
        const vocab = await readGgufMetadata(findVocabFile('bert-bge'));
        expect(meta.kv).toMatchObject({
            'general.architecture': 'bert',
            'general.name': 'llama-kv embed bert f16',
            'general.file_type': 1,
            'bert.context_length': 512,
            'bert.embedding_length': 128,
            'bert.block_count': 2,
            'bert.feed_forward_length': 512,
            'bert.attention.head_count': 4,
            'bert.attention.causal': false,
            'bert.pooling_type': 1,
            'tokenizer.ggml.model': 'bert',
            'tokenizer.ggml.token_type_count': 2,
        });
        expect(meta.kv['bert.attention.layer_norm_epsilon']).toBeCloseTo(1e-12, 18);
        expect(meta.kvTypes['bert.attention.causal']).toEqual({ type: T.BOOL });
        expect(meta.kvTypes['bert.pooling_type']).toEqual({ type: T.UINT32 });
        // No llama-only keys, and the tokenizer exactly as the vocab file has it (it sets no add_* keys).
        expect(Object.keys(meta.kv).filter((k) => /head_count_kv|rope|rms/.test(k))).toEqual([]);
        const tokenizerKeys = Object.keys(vocab.kv).filter((k) => k.startsWith('tokenizer.ggml.'));
        expect(Object.keys(meta.kv).filter((k) => k.startsWith('tokenizer.'))).toEqual(tokenizerKeys);
        for (const key of tokenizerKeys) {
            expect(meta.kv[key], key).toEqual(vocab.kv[key]);
            expect(meta.kvTypes[key], key).toEqual(vocab.kvTypes[key]);
        }

        const shapes = await tensorsOf(fixtures.embed.bert);
        expect(Object.keys(shapes)).toHaveLength(5 + 16 * 2);
        expect(shapes['token_embd.weight']).toEqual(['F16', [128, 30522]]);
        // F32, as llama.cpp's converter writes them (the CPU backend cannot add an F16 token_types row).
        expect(shapes['token_types.weight']).toEqual(['F32', [128, 2]]);
        expect(shapes['position_embd.weight']).toEqual(['F32', [128, 512]]);
        expect(shapes['token_embd_norm.weight']).toEqual(['F32', [128]]);
        expect(shapes['token_embd_norm.bias']).toEqual(['F32', [128]]);
        for (const i of [0, 1]) {
            for (const t of ['attn_q', 'attn_k', 'attn_v', 'attn_output']) {
                expect(shapes[`blk.${i}.${t}.weight`]).toEqual(['F16', [128, 128]]);
                expect(shapes[`blk.${i}.${t}.bias`]).toEqual(['F32', [128]]);
            }
            expect(shapes[`blk.${i}.ffn_up.weight`]).toEqual(['F16', [128, 512]]);
            expect(shapes[`blk.${i}.ffn_up.bias`]).toEqual(['F32', [512]]);
            expect(shapes[`blk.${i}.ffn_down.weight`]).toEqual(['F16', [512, 128]]);
            expect(shapes[`blk.${i}.ffn_down.bias`]).toEqual(['F32', [128]]);
            for (const n of ['attn_output_norm', 'layer_output_norm']) {
                expect(shapes[`blk.${i}.${n}.weight`]).toEqual(['F32', [128]]);
                expect(shapes[`blk.${i}.${n}.bias`]).toEqual(['F32', [128]]);
            }
        }
        expect(Object.keys(shapes).filter((n) => n.startsWith('cls') || n.startsWith('output'))).toEqual([]);
    });

    it('gives the reranker the classification head RANK pooling applies, with one output', async () => {
        const meta = await readGgufMetadata(fixtures.embed.rerank);
        expect(meta.kv).toMatchObject({ 'general.architecture': 'bert', 'bert.pooling_type': 4, 'bert.attention.causal': false });
        // No labels (llama.cpp's n_cls_out is then 1) and no rerank template: the pair is joined with [SEP].
        expect(meta.kv['bert.classifier.output_labels']).toBeUndefined();
        expect(meta.kv['tokenizer.chat_template.rerank']).toBeUndefined();
        const shapes = await tensorsOf(fixtures.embed.rerank);
        const base = await tensorsOf(fixtures.embed.bert);
        expect(Object.keys(shapes)).toHaveLength(Object.keys(base).length + 4);
        expect(shapes['cls.weight']).toEqual(['F16', [128, 128]]);
        expect(shapes['cls.bias']).toEqual(['F32', [128]]);
        expect(shapes['cls.output.weight']).toEqual(['F16', [128, 1]]);
        expect(shapes['cls.output.bias']).toEqual(['F32', [1]]);
    });

    it('marks the micro llama network for last-token pooling with EOS appended', async () => {
        const meta = await readGgufMetadata(fixtures.embed.llamaLast);
        const vocab = await readGgufMetadata(findVocabFile());
        expect(vocab.kv['tokenizer.ggml.add_eos_token']).toBe(false);
        expect(meta.kv).toMatchObject({ 'general.architecture': 'llama', 'llama.pooling_type': 3, 'llama.embedding_length': 64, 'llama.block_count': 1, 'tokenizer.ggml.add_eos_token': true });
        expect(meta.kvTypes['tokenizer.ggml.add_eos_token']).toEqual({ type: T.BOOL });
        expect(meta.kv['llama.attention.causal']).toBeUndefined();
        for (const key of Object.keys(vocab.kv).filter((k) => k.startsWith('tokenizer.ggml.') && k !== 'tokenizer.ggml.add_eos_token')) {
            expect(meta.kv[key], key).toEqual(vocab.kv[key]);
        }
        // The same tensors as the chat fixtures' micro network.
        expect((await readGgufMetadata(fixtures.chat.qwen)).tensors.map((t) => [t.name, t.shape])).toEqual(meta.tensors.map((t) => [t.name, t.shape]));
    });

    it('load in llama.cpp\'s embedding example with their own pooling, as finite, distinct, unit vectors of the right width', () => {
        const bert = reference(fixtures.embed.bert, { texts: TEXTS });
        expect([bert.pooling, bert.nEmbdOut, bert.nClsOut]).toEqual([1, 128, 1]);
        // WordPiece adds [CLS] (101) and [SEP] (102).
        expect(bert.tokens[0]).toEqual([101, 7592, 2088, 102]);
        expectVectors(bert.embeddings, 3, 128);
        for (const row of bert.embeddings) expect(Math.hypot(...row)).toBeCloseTo(1, 5);

        const last = reference(fixtures.embed.llamaLast, { texts: TEXTS });
        expect([last.pooling, last.nEmbdOut]).toEqual([3, 64]);
        // SPM adds BOS (1) and, with add_eos_token, EOS (2).
        expect(last.tokens[0]).toEqual([1, 22172, 3186, 2]);
        expectVectors(last.embeddings, 3, 64);

        // A pair is query [SEP] document: the example inserts the vocabulary's SEP text, which add_sep makes it add.
        const rerank = reference(fixtures.embed.rerank, { texts: ['what is panda?\thi', 'what is panda?\tit\'s a bear', 'what is panda?\tThe giant panda is a bear.'], normalize: -1 });
        expect([rerank.pooling, rerank.nEmbdOut, rerank.nClsOut]).toEqual([4, 128, 1]);
        expect(rerank.tokens[0]).toEqual([101, 2054, 2003, 25462, 1029, 102, 7632, 102]);
        expectVectors(rerank.embeddings, 3, 1);
    });

    it('give one vector per token with pooling none', () => {
        for (const [path, width] of [[fixtures.embed.bert, 128], [fixtures.embed.llamaLast, 64]] as const) {
            const none = reference(path, { texts: TEXTS, pooling: 0 });
            expect(none.pooling).toBe(0);
            expect(none.embeddings).toHaveLength(none.tokens.reduce((n, t) => n + t.length, 0));
            // Per text (with causal attention a shared prefix, BOS at least, gives equal rows across texts).
            let at = 0;
            for (const tokens of none.tokens) {
                expectVectors(none.embeddings.slice(at, at + tokens.length), tokens.length, width);
                at += tokens.length;
            }
        }
    });

    it('refuse, as the example does, a text longer than the batch', () => {
        expect(referenceEmbeddings(fixtures.embed.bert, { texts: ['word '.repeat(100)], contextSize: 64, batchSize: 64, parallel: 4 })).toEqual({
            error: 'number of tokens in input line (102) exceeds batch size (64), increase batch size and re-run',
        });
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
