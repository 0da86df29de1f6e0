import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, FIT_LADDER, LlamaContext, LlamaModel, planFit, readGgufMetadata, type FitPreference } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

const MIB = 1024 * 1024;
// A small micro-batch keeps the compute buffer (logits of 32000 tokens) from dwarfing the KV cache.
const ubatchSize = 64;

describe('planFit', () => {
    let model: LlamaModel;
    let base: number; // everything but the KV cache, at 2048 tokens
    let kvF16: number; // the f16/f16 KV cache at 2048 tokens
    let weights: number; // the weights as llama.cpp places them on this CPU (extra buffer types included)
    let headerBase: number; // `base` at the header level (its weights an upper bound where this CPU copies some)
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16 });
        const e = await estimateMemory({ model: fixtures.f16, contextSize: 2048, ubatchSize, batchSize: 512, simulate: true });
        base = e.total.bytes - e.kv.bytes;
        kvF16 = e.kv.bytes;
        weights = e.weights.bytes;
        const h = await estimateMemory({ model: fixtures.f16, contextSize: 2048, ubatchSize, batchSize: 512 });
        headerBase = h.total.bytes - h.kv.bytes;
    });
    afterAll(() => model.dispose());

    async function createdFits(plan: Awaited<ReturnType<typeof planFit>>, budget: number) {
        const ctx = new LlamaContext({ model, ...plan.settings, ubatchSize, threads: 1 });
        const live = ctx.memoryReport().total.bytes;
        ctx.dispose();
        expect(live, plan.reason).toBeLessThanOrEqual(budget);
        expect(live).toBe(plan.estimate.total.bytes); // the dry run measured exactly what was created
        return live;
    }

    it.each([
        ['quality', 1.5],
        ['quality', 0.6],
        ['context', 1.0],
        ['context', 0.4],
        ['parallel', 3.0],
        ['parallel', 0.7],
    ] as [FitPreference, number][])("prefer '%s' with the KV budget at %f x f16's: the created context stays within budget", async (prefer, kvShare) => {
        const budget = Math.round(base + kvShare * kvF16);
        const plan = await planFit({ model: fixtures.f16, budgetBytes: budget, prefer, minContextSize: 512, ubatchSize });
        console.log(`${prefer} @ ${(budget / MIB).toFixed(2)} MiB: ${JSON.stringify(plan.settings)} (${plan.reason})`);
        await createdFits(plan, budget);
        expect(plan.settings.contextSize / plan.settings.parallel).toBeGreaterThanOrEqual(512);
    });

    it("'quality' keeps the most precise step of the ladder that meets minContextSize, quantizing K before V", async () => {
        // Between q8_0/q8_0 (53% of f16) and q8_0/f16 (77%): the first step that fits is q8_0/q8_0.
        const budget = Math.round(base + 0.65 * kvF16);
        const plan = await planFit({ model: fixtures.f16, budgetBytes: budget, prefer: 'quality', minContextSize: 2048, ubatchSize });
        expect([plan.settings.cacheTypeK, plan.settings.cacheTypeV]).toEqual(['q8_0', 'q8_0']);
        expect(FIT_LADDER.map(([k, v]) => `${k}/${v}`)).toEqual(['f16/f16', 'q8_0/f16', 'q8_0/q8_0', 'q8_0/q4_0', 'q4_0/q4_0']);
        await createdFits(plan, budget);
    });

    it("'context' reaches the trained context at the most precise types that allow it", async () => {
        const plan = await planFit({ model: fixtures.f16, budgetBytes: base + kvF16 + MIB, prefer: 'context', ubatchSize });
        expect(plan.settings).toMatchObject({ contextSize: 2048, cacheTypeK: 'f16', cacheTypeV: 'f16' });
    });

    it('a minContextSize above the trained context is planned when it fits, not refused as too little memory', async () => {
        // tiny-f16 was trained on 2048 tokens; LlamaContext takes 4096 (llama.cpp warns), so the plan may too.
        for (const prefer of ['quality', 'context'] as const) {
            const plan = await planFit({ model: fixtures.f16, budgetBytes: 6 * 1024 * MIB, prefer, minContextSize: 4096 });
            expect(plan.settings.contextSize, prefer).toBe(4096);
            expect(plan.settings).toMatchObject({ parallel: 1, cacheTypeK: 'f16', cacheTypeV: 'f16' });
            expect(plan.estimate.total.bytes).toBeLessThanOrEqual(6 * 1024 * MIB);
        }
    });

    it('an impossible budget is INSUFFICIENT_MEMORY with the shortfall', async () => {
        await expect(planFit({ model: fixtures.f16, budgetBytes: base - 4 * MIB, minContextSize: 2048, ubatchSize })).rejects.toMatchObject({
            code: 'INSUFFICIENT_MEMORY',
            message: expect.stringMatching(/need [\d.]+ MiB, [\d.]+ MiB more than the budget of [\d.]+ MiB/),
        });
        await expect(planFit({ model: fixtures.f16, budgetBytes: 10 * MIB })).rejects.toMatchObject({
            code: 'INSUFFICIENT_MEMORY',
            message: expect.stringContaining(`The weights alone need ${(weights / MIB).toFixed(1)} MiB, ${((weights - 10 * MIB) / MIB).toFixed(1)} MiB more than the budget of 10.0 MiB`),
        });
    });

    it('plans from a header alone (approximate compute, with a margin) within budget too', async () => {
        const budget = Math.round(headerBase * 1.05 + kvF16);
        const plan = await planFit({ model: await readGgufMetadata(fixtures.f16), budgetBytes: budget, prefer: 'context', ubatchSize });
        expect(plan.estimate.exact.compute).toBe(false);
        expect(plan.reason).toContain('estimated total');
        const ctx = new LlamaContext({ model, ...plan.settings, ubatchSize, threads: 1 });
        expect(ctx.memoryReport().total.bytes).toBeLessThanOrEqual(budget);
        ctx.dispose();
        await expect(planFit({ model: await readGgufMetadata(fixtures.f16), budgetBytes: headerBase, minContextSize: 2048, ubatchSize })).rejects.toThrow(
            /header estimate, with a 15% margin/,
        );
    });

    it('validates its options', async () => {
        await expect(planFit({ model: fixtures.f16, budgetBytes: -1 })).rejects.toThrow('Expected a positive number of bytes for budgetBytes but received -1 (number)');
        await expect(planFit({ model: fixtures.f16, budgetBytes: 1e9, prefer: 'speed' as never })).rejects.toThrow(/'context', 'parallel', 'quality'/);
    });
});
