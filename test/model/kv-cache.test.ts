import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binding } from '../../lib/native/binding.js';
import { KV_CACHE_TYPE_INFO, KV_CACHE_TYPES, type KvCacheType } from '../../lib/options/kv-cache.js';
import { nativeModel } from '../../lib/model/model.js';
import { LlamaConfigError, LlamaContext, LlamaModel, setLogger } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

const PROMPT = 'Once upon a time';

describe('K/V cache types on a head-dim-64 model', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16 });
    });
    afterAll(() => model.dispose());

    const pairs: [KvCacheType, KvCacheType][] = [
        ['f16', 'f16'], ['q8_0', 'q8_0'], ['q8_0', 'q4_0'], ['q4_0', 'q4_0'],
        ['q5_1', 'q5_0'], ['q4_1', 'iq4_nl'], ['bf16', 'bf16'], ['f32', 'f32'],
    ];
    const cases = pairs.flatMap(([k, v]) =>
        KV_CACHE_TYPE_INFO[v].quantized ? [[k, v, 'on'] as const] : [[k, v, 'on'] as const, [k, v, 'off'] as const],
    );

    it.each(cases)('%s/%s with flash attention %s generates text', async (k, v, fa) => {
        const ctx = new LlamaContext({ model, contextSize: 256, cacheTypeK: k, cacheTypeV: v, flashAttention: fa, threads: 2 });
        expect(ctx.config).toMatchObject({ cacheTypeK: k, cacheTypeV: v, flashAttention: fa });
        const r = await ctx.complete(PROMPT, { maxTokens: 12, temperature: 0 });
        expect(r.tokens).toHaveLength(12);
        expect(r.text.length).toBeGreaterThan(0);
        ctx.dispose();
    });

    it("q8_0/q4_0 turns flash attention on under 'auto', and config reads back what llama.cpp put in force", () => {
        const ctx = new LlamaContext({ model, cacheTypeK: 'q8_0', cacheTypeV: 'q4_0' });
        expect(ctx.config).toMatchObject({ cacheTypeK: 'q8_0', cacheTypeV: 'q4_0', flashAttention: 'on', parallel: 1 });
        ctx.dispose();
        const preset = new LlamaContext({ model, kvPreset: 'balanced', parallel: 3, contextSize: 768, flashAttention: true });
        expect(preset.config).toMatchObject({ cacheTypeK: 'q8_0', cacheTypeV: 'q8_0', flashAttention: 'on', parallel: 3 });
        expect(preset.config.contextSize).toBeGreaterThanOrEqual(768);
        preset.dispose();
    });

    it('refuses a quantized V with flash attention off before any native call', () => {
        let error: unknown;
        try {
            new LlamaContext({ model, cacheTypeV: 'q4_0', flashAttention: 'off' });
        } catch (e) {
            error = e;
        }
        expect(error).toBeInstanceOf(LlamaConfigError);
        // The path is set only by the TypeScript rules, not by errors coming back from native code.
        expect(error).toMatchObject({ code: 'INVALID_CONFIG', path: ['cacheTypeV', 'flashAttention'] });
        expect((error as Error).message).toMatch(/cacheTypeV 'q4_0'.*flashAttention is 'off'/);
    });

    it('rejects unknown cache types and flash-attention values with the expected list', () => {
        expect(() => new LlamaContext({ model, cacheTypeK: 'q3_k' as never })).toThrow(
            "Expected one of 'f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1' for cacheTypeK but received \"q3_k\" (string)",
        );
        expect(() => new LlamaContext({ model, flashAttention: 'yes' as never })).toThrow(/flashAttention/);
        expect(() => new LlamaContext({ model, kvPreset: 'tiny' as never })).toThrow(/'conservative', 'balanced', 'aggressive', 'extreme'/);
        expect(() => new LlamaContext({ model, parallel: 0 })).toThrow('Expected a positive integer for parallel but received 0 (number)');
    });

    it('warns through the logger when contextSize exceeds the trained context', () => {
        const lines: string[] = [];
        setLogger((_level, message) => lines.push(message));
        try {
            new LlamaContext({ model, contextSize: 4096 }).dispose();
        } finally {
            setLogger(null);
        }
        expect(lines.some((l) => l.includes("contextSize 4096 is larger than the model's trained context (2048)"))).toBe(true);
    });
});

describe('a model whose head dimension (48) is not a multiple of 32', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.hd48 });
    });
    afterAll(() => model.dispose());

    it('has head dimension 48', () => {
        expect(model.metadata.headDimK).toBe(48);
        expect(model.metadata.layerHeadDimV).toEqual([48, 48]);
    });

    // Every type for K and for V, with every flash-attention setting: either it works,
    // or it is an INVALID_CONFIG naming the head dimension. The process never aborts.
    const settings = ['on', 'off', 'auto'] as const;
    it.each(KV_CACHE_TYPES.flatMap((t) => settings.map((fa) => [t, fa] as const)))('cache type %s (flash attention %s)', async (type, fa) => {
        for (const option of ['cacheTypeK', 'cacheTypeV'] as const) {
            const quantized = KV_CACHE_TYPE_INFO[type].quantized;
            const make = () => new LlamaContext({ model, contextSize: 128, [option]: type, flashAttention: fa, threads: 1 });
            if (!quantized) {
                const ctx = make();
                const r = await ctx.complete(PROMPT, { maxTokens: 4, temperature: 0 });
                expect(r.tokens).toHaveLength(4);
                ctx.dispose();
                continue;
            }
            let error: unknown;
            try {
                make();
            } catch (e) {
                error = e;
            }
            expect(error, `${option} ${type}`).toBeInstanceOf(LlamaConfigError);
            expect((error as LlamaConfigError).code).toBe('INVALID_CONFIG');
            if (option === 'cacheTypeV' && fa === 'off') expect((error as Error).message).toContain('flashAttention');
            else expect((error as Error).message).toContain('head dimension 48');
        }
    });

    it('native code refuses the same settings itself (second line), without aborting', () => {
        const Native = binding().NativeContext;
        const base = { contextSize: 128, batchSize: 64, ubatchSize: 64, sequences: 1, threads: 1, threadsBatch: 1, kvUnified: false, offloadKqv: true, swaFull: true };
        const f16 = KV_CACHE_TYPE_INFO.f16.ggmlType;
        const q8 = KV_CACHE_TYPE_INFO.q8_0.ggmlType;
        // A quantized K with flash attention off asserts inside llama.cpp (a tensor view) if it gets that far.
        expect(() => new Native(nativeModel(model), { ...base, cacheTypeK: q8, cacheTypeV: f16, flashAttention: 0 })).toThrow(/head dimension 48/);
        expect(() => new Native(nativeModel(model), { ...base, cacheTypeK: f16, cacheTypeV: q8, flashAttention: 0 })).toThrow(/flashAttention is 'off'/);
        // Types llama.cpp does not accept for a KV cache, or outside ggml's enum.
        expect(() => new Native(nativeModel(model), { ...base, cacheTypeK: 12, cacheTypeV: f16, flashAttention: -1 })).toThrow(/not a KV cache type/);
        expect(() => new Native(nativeModel(model), { ...base, cacheTypeK: 9999, cacheTypeV: f16, flashAttention: -1 })).toThrow(/cacheTypeK/);
        expect(() => new Native(nativeModel(model), { ...base, cacheTypeK: f16, cacheTypeV: f16, flashAttention: 7 })).toThrow(/flashAttention/);
    });
});

function softmax(logits: Float32Array): Float64Array {
    let max = -Infinity;
    for (const x of logits) max = Math.max(max, x);
    const p = new Float64Array(logits.length);
    let sum = 0;
    for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp(logits[i] - max);
    for (let i = 0; i < p.length; i++) p[i] /= sum;
    return p;
}

function kl(p: Float64Array, q: Float64Array): number {
    let d = 0;
    for (let i = 0; i < p.length; i++) if (p[i] > 0) d += p[i] * Math.log(p[i] / Math.max(q[i], 1e-300));
    return d;
}

describe('quality sanity: KL divergence against f16/f16', () => {
    it('is 0 for f16/f16, small for q8_0/q8_0 and larger for q4_0/q4_0', async () => {
        const model = await LlamaModel.load({ path: fixtures.f16 });
        const text =
            'The old lighthouse keeper climbed the stairs every evening to light the lamp. Ships passed in the night, ' +
            'and the sea was calm. One day a storm came from the north, and the keeper wrote in his journal about the waves.';
        const tokens = model.tokenize(text);
        const positions = Array.from({ length: tokens.length - 1 }, (_, i) => i + 2);
        const distributions = async (cacheTypeK: KvCacheType, cacheTypeV: KvCacheType) => {
            const ctx = new LlamaContext({ model, contextSize: 512, cacheTypeK, cacheTypeV, flashAttention: 'on', threads: 2 });
            const out: Float64Array[] = [];
            // Each prefix reuses the cache of the previous one: one new token decoded per step.
            for (const n of positions) out.push(softmax(await ctx.evaluate(tokens.subarray(0, n))));
            ctx.dispose();
            return out;
        };
        const base = await distributions('f16', 'f16');
        const meanKl = async (k: KvCacheType, v: KvCacheType) => {
            const d = await distributions(k, v);
            return d.reduce((sum, q, i) => sum + kl(base[i], q), 0) / d.length;
        };
        const f16 = await meanKl('f16', 'f16');
        const q8 = await meanKl('q8_0', 'q8_0');
        const q4 = await meanKl('q4_0', 'q4_0');
        console.log(`mean KL vs f16/f16 over ${positions.length} positions: f16/f16 ${f16}, q8_0/q8_0 ${q8.toExponential(3)}, q4_0/q4_0 ${q4.toExponential(3)}`);
        model.dispose();
        expect(f16).toBe(0);
        expect(q8).toBeGreaterThan(0);
        expect(q4).toBeGreaterThan(q8);
        expect(q8).toBeLessThan(0.05);
    });
});
