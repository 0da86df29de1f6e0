// Generation on the device of LLAMA_KV_TEST_GPU against the CPU: greedy output over 64
// tokens (the agreement is reported: a GPU's kernels round differently from the CPU's, and
// a random tiny model's logits are close, so exact equality is not the claim), concurrent
// sequences batched on the device, and LoRA adapters whose buffers live on the device.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LlamaContext, LlamaModel, type LlamaLora } from '../../lib/index.js';
import { fixtures, referenceGreedy } from '../support/fixtures.js';

const gpu = inject('gpu');
const PROMPT = 'Once upon a time';
const PROMPTS = [PROMPT, 'The quick brown fox jumps', 'In a galaxy far, far away there', 'She opened the door and'];

/** Tokens equal position by position, and the length of the common prefix. */
function agreement(a: readonly number[], b: readonly number[]) {
    let prefix = 0;
    while (prefix < a.length && a[prefix] === b[prefix]) prefix++;
    return { prefix, same: a.filter((t, i) => t === b[i]).length, of: a.length };
}

// OPEN BUG, below llama-kv: on Mesa's llvmpipe Vulkan device, a decode after llama.cpp
// re-reserves its compute graph corrupts the process's heap in most runs, and ctx.setLoras()
// makes llama.cpp re-reserve it. llama.cpp alone does the same (reserve-after-decode.test.ts).
// So on Vulkan the setLoras test runs only with LLAMA_KV_GPU_KNOWN_CRASH=1; docs/reliability.md.
const knownCrash = gpu.kind === 'vulkan' && process.env.LLAMA_KV_GPU_KNOWN_CRASH !== '1';

describe(`generation on ${gpu.kind}`, () => {
    let model: LlamaModel;
    /** Greedy tokens of `prompt` in a new context of the model on the device, disposed afterwards. */
    const greedyAlone = async (prompt: string, maxTokens: number, options: Omit<ConstructorParameters<typeof LlamaContext>[0], 'model'> = {}) => {
        const ctx = model.createContext({ contextSize: 256, ...options });
        const tokens = (await ctx.complete(prompt, { maxTokens, temperature: 0 })).tokens;
        ctx.dispose();
        return tokens;
    };
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16, gpu: gpu.kind });
    });
    afterAll(() => model.dispose());

    it('greedy output over 64 tokens against the CPU and llama.cpp\'s own CPU output: the agreement is reported', async () => {
        const onDevice = model.createContext({ contextSize: 512 });
        expect(onDevice.memoryReport().devices.find((d) => d.kind === 'gpu')!.kvBytes).toBeGreaterThan(0);
        const ours = (await onDevice.complete(PROMPT, { maxTokens: 64, temperature: 0 })).tokens;
        onDevice.dispose();
        const cpuModel = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        const cpuCtx = cpuModel.createContext({ contextSize: 512, threads: 2 });
        const cpu = (await cpuCtx.complete(PROMPT, { maxTokens: 64, temperature: 0 })).tokens;
        cpuCtx.dispose();
        cpuModel.dispose();
        const reference = referenceGreedy(fixtures.f16, PROMPT, 64, 2);
        expect(cpu).toEqual(reference);
        expect(ours).toHaveLength(64);
        const a = agreement(ours, cpu);
        console.log(`greedy, 64 tokens, f16 tiny model: ${gpu.kind} agrees with the CPU on ${a.same}/${a.of} positions, common prefix ${a.prefix} tokens`);
        // The first token comes from the prompt's logits alone: a device that computes the
        // model at all gets it right.
        expect(a.prefix).toBeGreaterThanOrEqual(1);
    });

    it('four greedy sequences at once on the device, batched in one decode per step: the agreement with each prompt alone on the device is reported', async () => {
        const alone: number[][] = [];
        for (const p of PROMPTS) alone.push(await greedyAlone(p, 24, { contextSize: 512 }));
        const ctx = model.createContext({ contextSize: 2048, parallel: 4 });
        const before = ctx.engineStats;
        const results = await Promise.all(PROMPTS.map((p) => ctx.complete(p, { maxTokens: 24, temperature: 0 })));
        const steps = ctx.engineStats.steps - before.steps;
        const kv = ctx.memoryReport().devices.find((d) => d.kind === 'gpu')!.kvBytes;
        ctx.dispose();
        expect(new Set(results.map((r) => r.sequence)).size).toBe(4);
        expect(steps).toBeLessThan(2 * 25);
        expect(kv).toBeGreaterThan(0);
        const agreements = results.map((r, i) => agreement(r.tokens, alone[i]));
        console.log(`four sequences batched on ${gpu.kind} against each alone: ${agreements.map((a) => `${a.same}/${a.of}`).join(', ')}`);
        for (const [i, a] of agreements.entries()) expect(a.prefix, PROMPTS[i]).toBeGreaterThanOrEqual(1);
    });

    describe('LoRA adapters', () => {
        let lora: LlamaLora;
        beforeAll(async () => {
            lora = await model.loadLora(fixtures.loraAttn);
        });
        afterAll(() => lora.dispose());

        it("an adapter on the offloaded model lives on the device, changes the output, and agrees with llama.cpp's CPU output with it (reported)", async () => {
            const ctx = model.createContext({ contextSize: 256, loras: [{ lora, scale: 1 }] });
            const onDevice = ctx.memoryReport().devices.find((d) => d.kind === 'gpu')!;
            expect(onDevice.loraBytes).toBeGreaterThan(0);
            expect(onDevice.loraBytes).toBeLessThanOrEqual(lora.sizeBytes + 4096);
            const withAdapter = (await ctx.complete(PROMPT, { maxTokens: 24, temperature: 0 })).tokens;
            ctx.dispose();
            const base = await greedyAlone(PROMPT, 24);
            expect(withAdapter).not.toEqual(base);
            const reference = referenceGreedy(fixtures.f16, PROMPT, 24, 2, { path: fixtures.loraAttn, scale: 1 });
            const a = agreement(withAdapter, reference);
            console.log(`greedy with the attention adapter on ${gpu.kind} against llama.cpp's CPU output: ${a.same}/${a.of}, common prefix ${a.prefix}`);
            expect(a.prefix).toBeGreaterThanOrEqual(1);
        });

        it.skipIf(knownCrash)('setLoras([]) after a generation on the device returns to the base model', async () => {
            const ctx = model.createContext({ contextSize: 256, loras: [{ lora, scale: 1 }] });
            const withAdapter = (await ctx.complete(PROMPT, { maxTokens: 24, temperature: 0 })).tokens;
            await ctx.setLoras([]);
            const base = (await ctx.complete(PROMPT, { maxTokens: 24, temperature: 0 })).tokens;
            ctx.dispose();
            const fresh = await greedyAlone(PROMPT, 24);
            expect(base).not.toEqual(withAdapter);
            expect(agreement(base, fresh).prefix).toBeGreaterThanOrEqual(1);
        });
    });
});
