// LoRA adapters on the fixture model: loading, applying and swapping them on one
// context, llama.cpp's own greedy output as the reference, memory, and the errors.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, LlamaError, LlamaLora, LlamaModel, quantizeModel, readGgufMetadata } from '../../lib/index.js';
import { fixtures, referenceGreedy } from '../support/fixtures.js';

const prompt = 'Once upon a time';

function maxDiff(a: Float32Array, b: Float32Array): number {
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    return d;
}

describe('LoRA adapters', () => {
    let model: LlamaModel;
    let attn: LlamaLora;
    let ffn: LlamaLora;
    let base: Float32Array;
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-lora-'));
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        attn = await model.loadLora(fixtures.loraAttn);
        ffn = await model.loadLora(fixtures.loraFfn);
        const ctx = model.createContext({ contextSize: 256 });
        base = await ctx.evaluate(model.tokenize(prompt));
        ctx.dispose();
    });
    afterAll(() => {
        model.dispose();
        rmSync(work, { recursive: true, force: true });
    });

    it('reads the adapter: alpha, rank, targets, size', async () => {
        expect(attn.metadata.alpha).toBe(16);
        expect(attn.metadata.rank).toBe(8);
        expect(attn.metadata.architecture).toBe('llama');
        expect(attn.metadata.targets).toHaveLength(8);
        expect(attn.metadata.targets).toContain('blk.1.attn_output.weight');
        expect(ffn.metadata.rank).toBe(4);
        const header = await readGgufMetadata(fixtures.loraAttn);
        expect(attn.sizeBytes).toBe(header.tensors.reduce((s, t) => s + t.byteSize, 0));
    });

    it('scale 0 gives the base model\'s logits exactly; scale 1 changes them', async () => {
        const ctx = model.createContext({ contextSize: 256 });
        await ctx.setLoras([{ lora: attn, scale: 0 }]);
        expect(maxDiff(await ctx.evaluate(model.tokenize(prompt)), base)).toBe(0);
        await ctx.setLoras([{ lora: attn, scale: 1 }]);
        expect(maxDiff(await ctx.evaluate(model.tokenize(prompt)), base)).toBeGreaterThan(0.1);
        expect(ctx.loras.map((l) => l.scale)).toEqual([1]);
        await ctx.setLoras([]);
        expect(maxDiff(await ctx.evaluate(model.tokenize(prompt)), base)).toBe(0);
        ctx.dispose();
    });

    it.each([
        ['attention adapter, scale 1', 'loraAttn', 1],
        ['feed-forward adapter, scale 0.5', 'loraFfn', 0.5],
    ] as const)('greedy output with the %s equals llama.cpp\'s own', async (_name, key, scale) => {
        const lora = key === 'loraAttn' ? attn : ffn;
        const ctx = model.createContext({ contextSize: 256, threads: 2, loras: [{ lora, scale }] });
        const ours = await ctx.complete(prompt, { maxTokens: 24, temperature: 0 });
        const reference = referenceGreedy(fixtures.f16, prompt, 24, 2, { path: fixtures[key], scale });
        expect(ours.tokens).toEqual(reference);
        // and it is not the base model's output
        expect(reference).not.toEqual(referenceGreedy(fixtures.f16, prompt, 24, 2));
        ctx.dispose();
    });

    it('QLoRA path: the adapter on a Q4_K_M base gives llama.cpp\'s own greedy output', async () => {
        const quantized = join(work, 'base-q4_k_m.gguf');
        await quantizeModel({ input: fixtures.f16, output: quantized, type: 'Q4_K_M', threads: 2 });
        const q = await LlamaModel.load({ path: quantized, gpu: false });
        const lora = await q.loadLora(fixtures.loraAttn);
        const ctx = q.createContext({ contextSize: 256, threads: 2, loras: [{ lora, scale: 1 }] });
        const ours = await ctx.complete(prompt, { maxTokens: 24, temperature: 0 });
        expect(ours.tokens).toEqual(referenceGreedy(quantized, prompt, 24, 2, { path: fixtures.loraAttn, scale: 1 }));
        expect(ctx.memoryReport().loras.bytes).toBe(lora.sizeBytes);
        q.dispose();
    });

    it('two adapters at once differ from each alone, and the order does not matter', async () => {
        const ctx = model.createContext({ contextSize: 256 });
        const logits = async (set: Parameters<typeof ctx.setLoras>[0]) => {
            await ctx.setLoras(set);
            return ctx.evaluate(model.tokenize(prompt));
        };
        const both = await logits([{ lora: attn, scale: 1 }, { lora: ffn, scale: 1 }]);
        const reversed = await logits([{ lora: ffn, scale: 1 }, { lora: attn, scale: 1 }]);
        const onlyAttn = await logits([{ lora: attn, scale: 1 }]);
        const onlyFfn = await logits([{ lora: ffn, scale: 1 }]);
        expect(maxDiff(both, reversed)).toBeLessThan(1e-3);
        expect(maxDiff(both, onlyAttn)).toBeGreaterThan(0.01);
        expect(maxDiff(both, onlyFfn)).toBeGreaterThan(0.01);
        ctx.dispose();
    });

    it('a change of adapters never reuses the KV cache computed with the previous ones', async () => {
        const ctx = model.createContext({ contextSize: 256 });
        await ctx.evaluate(model.tokenize(prompt)); // cached with the base model
        await ctx.setLoras([{ lora: attn, scale: 1 }]);
        const after = await ctx.evaluate(model.tokenize(prompt));
        const fresh = model.createContext({ contextSize: 256, loras: [{ lora: attn, scale: 1 }] });
        expect(maxDiff(after, await fresh.evaluate(model.tokenize(prompt)))).toBe(0);
        ctx.dispose();
        fresh.dispose();
    });

    it('memory: the report and the estimate count the active adapters', async () => {
        const ctx = model.createContext({ contextSize: 256 });
        const without = ctx.memoryReport();
        expect(without.loras.bytes).toBe(0);
        await ctx.setLoras([{ lora: attn, scale: 1 }, { lora: ffn, scale: 0.5 }]);
        const report = ctx.memoryReport();
        expect(report.loras.bytes).toBe(attn.sizeBytes + ffn.sizeBytes);
        expect(report.devices.find((d) => d.name === 'CPU')!.loraBytes).toBe(report.loras.bytes);
        expect(report.total.bytes).toBe(report.weights.bytes + report.loras.bytes + report.kv.bytes + report.compute.bytes + report.output.bytes);
        for (const simulate of [false, true]) {
            const estimate = await estimateMemory({ model: fixtures.f16, contextSize: 256, loras: [fixtures.loraAttn, fixtures.loraFfn], simulate });
            expect(estimate.loras.bytes, `simulate: ${simulate}`).toBe(report.loras.bytes);
        }
        process.stdout.write(`[lora memory] weights ${report.weights.bytes} B, adapters ${report.loras.bytes} B (attn ${attn.sizeBytes}, ffn ${ffn.sizeBytes})\n`);
        ctx.dispose();
    });

    it('swapping adapter sets 200 times on one context does not grow memory', async () => {
        const ctx = model.createContext({ contextSize: 256 });
        const sets = [[{ lora: attn, scale: 1 }], [{ lora: ffn, scale: 0.7 }], [], [{ lora: attn, scale: 0.3 }, { lora: ffn, scale: 1 }]];
        // A one-token generation decodes with the set (evaluate() would return 128 KB of
        // logits each time, garbage that RSS shows until V8 collects it).
        const decode = () => ctx.complete('Hi', { maxTokens: 1, temperature: 0 });
        // Warm-up: the allocator settles after the first hundred swaps (RSS moves by 10-20 MiB
        // either way with no swapping at all; a leaked compute buffer would be 33 MiB a swap).
        for (let i = 0; i < 100; i++) {
            await ctx.setLoras(sets[i % sets.length]);
            await decode();
        }
        const before = process.memoryUsage().rss;
        for (let i = 0; i < 200; i++) {
            await ctx.setLoras(sets[i % sets.length]);
            await decode();
        }
        const after = process.memoryUsage().rss;
        process.stdout.write(`[lora swap] RSS before ${(before / 2 ** 20).toFixed(1)} MiB, after 200 swaps ${(after / 2 ** 20).toFixed(1)} MiB (${((after - before) / 2 ** 20).toFixed(2)} MiB)\n`);
        expect(after - before).toBeLessThan(32 * 2 ** 20);
        ctx.dispose();
    });

    it('disposing an adapter in use is deferred: the context keeps it until its set changes', async () => {
        const lora = await model.loadLora(fixtures.loraAttn);
        const ctx = model.createContext({ contextSize: 256, loras: [{ lora, scale: 1 }] });
        const withAdapter = await ctx.evaluate(model.tokenize(prompt));
        lora.dispose();
        expect(lora.disposed).toBe(true);
        expect(maxDiff(await ctx.evaluate(model.tokenize('Hello')), withAdapter)).toBeGreaterThan(0); // still runs
        expect(ctx.loras[0].lora).toBe(lora);
        const again = await ctx.setLoras([{ lora, scale: 1 }]).catch((e: unknown) => e);
        expect((again as LlamaError).code).toBe('DISPOSED');
        await ctx.setLoras([]);
        expect(maxDiff(await ctx.evaluate(model.tokenize(prompt)), base)).toBe(0);
        ctx.dispose();
    });

    it('rejects adapters for another model, other shapes, non-adapter files and bad arguments', async () => {
        const cases: [string, RegExp][] = [
            [fixtures.loraHd48, /tensor 'blk\.0\.attn_\w+\.weight' has incorrect shape/],
            [fixtures.f16, /is not a LoRA adapter \(a model, not an adapter\)/],
            [join(work, 'missing.gguf'), /LoRA adapter file not found/],
        ];
        const gemma = join(work, 'gemma-lora.gguf');
        writeFileSync(gemma, readFileSync(fixtures.loraAttn).toString('latin1').replace('llama', 'gemma'), 'latin1');
        cases.push([gemma, /is a LoRA adapter for a 'gemma' model, but this model is 'llama'/]);
        const truncated = join(work, 'truncated.gguf');
        writeFileSync(truncated, readFileSync(fixtures.loraAttn).subarray(0, 50_000));
        cases.push([truncated, /truncated/]);
        for (const [path, message] of cases) {
            const error = await model.loadLora(path).catch((e: unknown) => e);
            expect(error, path).toBeInstanceOf(LlamaError);
            expect((error as LlamaError).code).toBe('LORA_LOAD_FAILED');
            expect((error as Error).message).toMatch(message);
        }
        const other = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        const ctx = other.createContext({ contextSize: 256 });
        const foreign = await ctx.setLoras([{ lora: attn, scale: 1 }]).catch((e: unknown) => e);
        expect((foreign as Error).message).toMatch(/this adapter was loaded for another model/);
        const twice = await ctx.setLoras([{ lora: attn, scale: 1 }, { lora: attn, scale: 0.5 }]).catch((e: unknown) => e);
        expect((twice as Error).message).toMatch(/another model|listed twice/);
        const bad = await ctx.setLoras([{ lora: attn, scale: Number.NaN }]).catch((e: unknown) => e);
        expect((bad as LlamaError).code).toBe('INVALID_ARGUMENT');
        const notLora = await ctx.setLoras([{ lora: {} as LlamaLora, scale: 1 }]).catch((e: unknown) => e);
        expect((notLora as Error).message).toMatch(/a LlamaLora from model\.loadLora\(\)/);
        other.dispose();
        const vocabOnly = await LlamaModel.load({ path: fixtures.f16, vocabOnly: true, gpu: false });
        await expect(vocabOnly.loadLora(fixtures.loraAttn)).rejects.toThrow(/need a model loaded with its weights/);
        vocabOnly.dispose();
    });

    it('loads, frees and swaps adapters while other contexts of the model are created and decode', async () => {
        // Adapter load/free change the model's adapter set, which a context reads when it
        // reserves its graph (creation, first decode after setLoras): they must not overlap.
        const busy = async (round: number) => {
            const ctx = model.createContext({ contextSize: 256 });
            for (let i = 0; i < 6; i++) {
                await ctx.setLoras(i % 2 === 0 ? [{ lora: attn, scale: 1 }] : [{ lora: ffn, scale: (round + i) / 10 }]);
                await ctx.complete('Hi', { maxTokens: 2, temperature: 0 });
            }
            ctx.dispose();
        };
        const churn = async () => {
            for (let i = 0; i < 6; i++) {
                const loras = await Promise.all([model.loadLora(fixtures.loraAttn), model.loadLora(fixtures.loraFfn)]);
                for (const l of loras) l.dispose();
            }
        };
        await Promise.all([busy(1), busy(2), churn(), churn()]);
        expect(model.disposed).toBe(false);
    });

    it('disposing the model disposes its adapters', async () => {
        const other = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        const lora = await other.loadLora(fixtures.loraFfn);
        other.dispose();
        expect(lora.disposed).toBe(true);
    });
});
