// Embedding and ranking contexts against llama.cpp's own embedding example (the test-only
// program test/support/reference/embedding.cpp, built from the vendor tree).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaModel, type LlamaEmbeddingContext } from '../../lib/index.js';
import { fixtures, referenceEmbeddings } from '../support/fixtures.js';

const TEXTS = [
    'hello world',
    'The quick brown fox jumps over the lazy dog.',
    'a',
    'Embeddings map text to vectors; similar texts get similar vectors.',
    'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.',
    'numbers 1 2 3 4 5 and symbols !?',
];

/** 64 texts of 1 to 60 words, deterministic. */
function manyTexts(n = 64): string[] {
    const words = 'river stone cloud paper engine garden window silver market ocean'.split(' ');
    return Array.from({ length: n }, (_, i) => Array.from({ length: 1 + ((i * 37) % 60) }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(' '));
}

/** Largest |a - b| over |b|'s largest value: 0 for the same bits. */
function relativeDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
    expect(a.length).toBe(b.length);
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < b.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        scale = Math.max(scale, Math.abs(b[i]));
    }
    return scale === 0 ? diff : diff / scale;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i < a.length; i++) {
        ab += a[i] * b[i];
        aa += a[i] * a[i];
        bb += b[i] * b[i];
    }
    return ab / Math.sqrt(aa * bb);
}

const POOLING_CODE = { model: -1, none: 0, mean: 1, cls: 2, last: 3 } as const;
type Pooling = keyof typeof POOLING_CODE;

/** Our vectors, flattened per text as the reference prints them (per token for pooling none). */
async function ours(ctx: LlamaEmbeddingContext, texts: string[]): Promise<Float32Array[]> {
    const out = await ctx.embedBatch(texts);
    return out.map((v) => (Array.isArray(v) ? Float32Array.from(v.flatMap((t) => Array.from(t))) : (v as Float32Array)));
}

describe.each([
    { name: 'BERT encoder', path: () => fixtures.embed.bert, poolings: ['model', 'none', 'mean', 'cls', 'last'] as Pooling[] },
    { name: 'decoder with last-token pooling', path: () => fixtures.embed.llamaLast, poolings: ['model', 'none', 'mean', 'cls', 'last'] as Pooling[] },
    { name: 'generation model', path: () => fixtures.f16, poolings: ['mean', 'last'] as Pooling[] },
])('$name: the vectors of llama.cpp\'s embedding example', ({ path, poolings }) => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: path() });
    });
    afterAll(() => model?.dispose());

    it.each(poolings.flatMap((pooling) => [2, -1, 0, 3].map((normalize) => [pooling, normalize] as const)))(
        'pooling %s, normalize %d',
        async (pooling, normalize) => {
            // The example's defaults: one sequence per text, all in one decode of the whole context.
            const ctx = model.createEmbeddingContext({ pooling, normalize, contextSize: 512, parallel: 256, threads: 2 });
            const ref = referenceEmbeddings(path(), { texts: TEXTS, pooling: POOLING_CODE[pooling], normalize, contextSize: 512, batchSize: 512, parallel: 1, threads: 2 });
            if ('error' in ref) throw new Error(ref.error);
            expect(ref.pooling).toBe(pooling === 'model' ? ref.pooling : POOLING_CODE[pooling]);
            expect(ctx.config.pooling).toBe(['none', 'mean', 'cls', 'last', 'rank'][ref.pooling]);
            // The same tokens.
            expect(TEXTS.map((t) => Array.from(ctx.tokenize(t)))).toEqual(ref.tokens);
            const got = await ours(ctx, TEXTS);
            const expected = pooling === 'none' ? ref.tokens.map((t, k) => Float32Array.from(ref.embeddings.slice(ref.tokens.slice(0, k).reduce((s, x) => s + x.length, 0), ref.tokens.slice(0, k + 1).reduce((s, x) => s + x.length, 0)).flat())) : ref.embeddings;
            expect(got.length).toBe(expected.length);
            for (let k = 0; k < got.length; k++) {
                expect(got[k].length, `text ${k}`).toBe(pooling === 'none' ? ref.tokens[k].length * ref.nEmbdOut : ref.nEmbdOut);
                expect(relativeDiff(got[k], expected[k]), `text ${k}`).toBeLessThanOrEqual(1e-6);
                expect(got[k].every(Number.isFinite)).toBe(true);
            }
            if (pooling !== 'none' && normalize === 2) {
                for (const v of got) expect(Math.hypot(...v)).toBeCloseTo(1, 5);
                // Different texts, different vectors; except the first token of a causal model,
                // which sees nothing but itself (BOS): pooling 'cls' there gives one vector for all.
                if (pooling === 'cls' && ctx.config.causal) expect(cosine(got[0], got[1])).toBeCloseTo(1, 6);
                else expect(cosine(got[0], got[1])).toBeLessThan(0.9999);
            }
            ctx.dispose();
        },
    );
});

describe('a decoder with mean pooling and texts across the 512th token of a decode', () => {
    it('equals llama.cpp: one micro-batch per decode, so no text is pooled from a part of it', async () => {
        const model = await LlamaModel.load({ path: fixtures.embed.llamaLast });
        const texts = ['river '.repeat(300), 'stone '.repeat(400), 'cloud '.repeat(250)];
        const ctx = model.createEmbeddingContext({ pooling: 'mean', contextSize: 1024, parallel: 256, threads: 2 });
        expect(ctx.config.ubatchSize).toBe(ctx.config.batchSize);
        const got = await ctx.embedBatch(texts);
        const ref = referenceEmbeddings(fixtures.embed.llamaLast, { texts, pooling: 1, normalize: 2, contextSize: 1024, batchSize: 1024, parallel: 1, threads: 2 });
        if ('error' in ref) throw new Error(ref.error);
        for (let k = 0; k < texts.length; k++) expect(relativeDiff(got[k], ref.embeddings[k]), `text ${k}`).toBeLessThanOrEqual(1e-6);
        ctx.dispose();
        model.dispose();
    });
});

describe('embedBatch', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.embed.bert });
    });
    afterAll(() => model?.dispose());

    it('64 texts of mixed lengths in one call equal 64 embed() calls, as llama.cpp\'s own batch equals its single texts', async () => {
        const texts = manyTexts();
        const ctx = model.createEmbeddingContext({ contextSize: 512, threads: 2 });
        let decodes = 0;
        const batch = await ctx.embedBatch(texts, { onProgress: () => decodes++ });
        // Packed: fewer decodes than texts, as the tokens and parallel allow.
        const tokens = texts.map((t) => ctx.tokenize(t).length);
        expect(decodes).toBeLessThan(texts.length);
        expect(decodes).toBeGreaterThanOrEqual(Math.ceil(tokens.reduce((a, b) => a + b, 0) / ctx.config.batchSize));
        const singles: Float32Array[] = [];
        for (const t of texts) singles.push(await ctx.embed(t));
        let worstOurs = 1;
        for (let k = 0; k < texts.length; k++) worstOurs = Math.min(worstOurs, cosine(batch[k], singles[k]));
        expect(worstOurs).toBeGreaterThan(0.9999);

        // llama.cpp: the batch as its example packs it (64 sequences per decode, as ours), and each text alone.
        const refBatch = referenceEmbeddings(fixtures.embed.bert, { texts, pooling: -1, normalize: 2, contextSize: 512, batchSize: 512, parallel: 1, threads: 2 });
        if ('error' in refBatch) throw new Error(refBatch.error);
        let worstRef = 1;
        for (let k = 0; k < texts.length; k++) {
            const alone = referenceEmbeddings(fixtures.embed.bert, { texts: [texts[k]], pooling: -1, normalize: 2, contextSize: 512, batchSize: 512, parallel: 1, threads: 2 });
            if ('error' in alone) throw new Error(alone.error);
            expect(relativeDiff(singles[k], alone.embeddings[0]), `text ${k} alone`).toBeLessThanOrEqual(1e-6);
            worstRef = Math.min(worstRef, cosine(refBatch.embeddings[k], alone.embeddings[0]));
        }
        expect(worstRef).toBeGreaterThan(0.9999);
        ctx.dispose();
    });

    it('texts longer than a decode: CONTEXT_FULL, or cut with truncate keeping the final [SEP]', async () => {
        const ctx = model.createEmbeddingContext({ contextSize: 64, threads: 2 });
        const long = 'word '.repeat(200);
        await expect(ctx.embed(long)).rejects.toMatchObject({ code: 'CONTEXT_FULL', message: expect.stringMatching(/truncate/) });
        const tokens = ctx.tokenize(long);
        expect(tokens.length).toBeGreaterThan(64);
        const cut = await ctx.embed(long, { truncate: true });
        const expected = await ctx.embed([...tokens.slice(0, 63), tokens[tokens.length - 1]]);
        expect(Array.from(cut)).toEqual(Array.from(expected));
        expect(tokens[tokens.length - 1]).toBe(model.metadata.sepToken);
        ctx.dispose();
    });

    it('refuses empty texts, bad tokens and a non-array with clear errors, and an aborted call rejects with ABORTED', async () => {
        const ctx = model.createEmbeddingContext({ contextSize: 128, threads: 2 });
        await expect(ctx.embed('')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/empty/) });
        await expect(ctx.embedBatch(['ok', ''])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/text 1 is empty/) });
        await expect(ctx.embed([])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        await expect(ctx.embed([1, 2, 1 << 30])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/outside the vocabulary/) });
        await expect(ctx.embedBatch('text' as unknown as string[])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        await expect(ctx.embed('x', { truncat: true } as object)).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringMatching(/did you mean "truncate"/) });
        const controller = new AbortController();
        controller.abort();
        await expect(ctx.embedBatch(manyTexts(), { signal: controller.signal })).rejects.toMatchObject({ code: 'ABORTED' });
        const late = new AbortController();
        const run = ctx.embedBatch(manyTexts(256), { signal: late.signal, onProgress: () => late.abort() });
        await expect(run).rejects.toMatchObject({ code: 'ABORTED' });
        // Still usable.
        expect((await ctx.embed('still works')).length).toBe(model.metadata.embeddingOutputSize);
        ctx.dispose();
    });

    it('calls run one after another; dispose during a call rejects it, and later calls throw DISPOSED', async () => {
        const ctx = model.createEmbeddingContext({ contextSize: 128, threads: 2 });
        const [a, b] = await Promise.all([ctx.embed('first text'), ctx.embed('second text')]);
        expect(Array.from(a)).toEqual(Array.from(await ctx.embed('first text')));
        expect(Array.from(b)).toEqual(Array.from(await ctx.embed('second text')));
        const running = ctx.embedBatch(manyTexts(256));
        ctx.dispose();
        await expect(running).rejects.toMatchObject({ code: expect.stringMatching(/^(ABORTED|DISPOSED)$/) });
        await expect(ctx.embed('x')).rejects.toMatchObject({ code: 'DISPOSED' });
        expect(ctx.disposed).toBe(true);
        ctx.dispose(); // idempotent
    });
});

describe('models and contexts that cannot embed or generate', () => {
    it('a generation context on an encoder, pooling model on a generation model, rank on a non-reranker, a vocab-only model', async () => {
        const bert = await LlamaModel.load({ path: fixtures.embed.bert });
        expect(() => new LlamaContext({ model: bert })).toThrow(expect.objectContaining({ code: 'CONTEXT_CREATE_FAILED', message: expect.stringMatching(/createEmbeddingContext/) }));
        expect(() => bert.createRankingContext()).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(/not a reranker/) }));
        expect(() => bert.createEmbeddingContext({ pooling: 'avg' as 'mean' })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }));
        bert.dispose();
        const llama = await LlamaModel.load({ path: fixtures.f16 });
        expect(() => llama.createEmbeddingContext()).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(/pooling: 'mean'/) }));
        llama.dispose();
        const vocab = await LlamaModel.load({ path: fixtures.embed.bert, vocabOnly: true });
        expect(() => vocab.createEmbeddingContext()).toThrow(expect.objectContaining({ code: 'CONTEXT_CREATE_FAILED', message: expect.stringMatching(/vocabOnly/) }));
        vocab.dispose();
        const reranker = await LlamaModel.load({ path: fixtures.embed.rerank });
        expect(() => reranker.createEmbeddingContext()).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(/createRankingContext/) }));
        reranker.dispose();
    });

    it('model.metadata says which pooling and whether the model is an encoder', async () => {
        const cases = [
            { path: fixtures.embed.bert, pooling: 'mean', isEncoder: true, isReranker: false, causalAttention: false },
            { path: fixtures.embed.rerank, pooling: 'rank', isEncoder: true, isReranker: true, causalAttention: false },
            { path: fixtures.embed.llamaLast, pooling: 'last', isEncoder: false, isReranker: false, causalAttention: true },
            { path: fixtures.f16, pooling: 'none', isEncoder: false, isReranker: false, causalAttention: true },
        ];
        for (const c of cases) {
            const m = await LlamaModel.load({ path: c.path });
            expect({ pooling: m.metadata.pooling, isEncoder: m.metadata.isEncoder, isReranker: m.metadata.isReranker, causalAttention: m.metadata.causalAttention }).toEqual({
                pooling: c.pooling, isEncoder: c.isEncoder, isReranker: c.isReranker, causalAttention: c.causalAttention,
            });
            expect(m.metadata.embeddingOutputSize).toBe(m.metadata.embeddingSize);
            m.dispose();
        }
    });
});

describe('LlamaRankingContext', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.embed.rerank });
    });
    afterAll(() => model?.dispose());

    const query = 'what do cats eat?';
    const documents = ['Cats are carnivores.', 'The stock market fell.', 'Kittens drink milk and eat fish.', 'Cats are carnivores.', 'Rain is expected tomorrow.'];

    it('scores equal llama.cpp\'s for the same query/document pairs', async () => {
        const ranker = model.createRankingContext({ contextSize: 512, parallel: 256, threads: 2 });
        const scores = await ranker.rank(query, documents);
        const ref = referenceEmbeddings(fixtures.embed.rerank, { texts: documents.map((d) => `${query}\t${d}`), pooling: 4, normalize: -1, contextSize: 512, batchSize: 512, parallel: 1, threads: 2 });
        if ('error' in ref) throw new Error(ref.error);
        expect(ref.nClsOut).toBe(1);
        expect(documents.map((d) => Array.from(ranker.tokenize(ranker.pairText(query, d))))).toEqual(ref.tokens);
        expect(scores.length).toBe(documents.length);
        for (let k = 0; k < documents.length; k++) expect(relativeDiff([scores[k]], [ref.embeddings[k][0]]), `pair ${k}`).toBeLessThanOrEqual(1e-6);
        // Not all the same: the head sees the pairs.
        expect(new Set(scores.map((s) => s.toFixed(6))).size).toBeGreaterThan(2);
        ranker.dispose();
    });

    it('rankAndSort orders by score, most relevant first, equal scores in the documents\' order', async () => {
        const ranker = model.createRankingContext({ contextSize: 512, threads: 2 });
        const scores = await ranker.rank(query, documents);
        const ranked = await ranker.rankAndSort(query, documents);
        expect(ranked.map((r) => r.score)).toEqual([...scores].sort((a, b) => b - a));
        for (const r of ranked) expect(r.document).toBe(documents[r.index]);
        // Documents 0 and 3 are the same text, so the same score: 0 comes first.
        expect(scores[0]).toBe(scores[3]);
        const pos = (i: number) => ranked.findIndex((r) => r.index === i);
        expect(pos(0)).toBe(pos(3) - 1);
        expect(await ranker.rank(query, [])).toEqual([]);
        await expect(ranker.rank('', documents)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        await expect(ranker.rank(query, ['ok', ''])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/document 1 is empty/) });
        ranker.dispose();
    });
});
