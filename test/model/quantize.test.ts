// quantizeModel on the f16 fixture: the outputs load, generate, and their weights
// shrink by the ratio of the types' bits per weight; progress, abort and llama.cpp's
// refusals.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaError, LlamaModel, quantizeModel, readGgufMetadata, type QuantizationType } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

describe('quantizeModel', () => {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-quantize-'));
    let f16Weights = 0;
    beforeAll(async () => {
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: false, repack: false });
        f16Weights = model.createContext({ contextSize: 256 }).memoryReport().weights.bytes;
        model.dispose();
    });
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    // Bytes per weight over f16's 2: Q8_0 34/32, Q4_0 18/32, Q4_K 144/256 per block of 256.
    // llama.cpp keeps the 1-D norms in F32, and for Q4_0 / Q4_K_M writes output.weight as
    // Q6_K; in this tiny model output.weight is about half of all weights (32000 x 256),
    // so those two ratios sit well above the plain ones (measured 0.358 and 0.357).
    it.each([
        ['Q8_0', 7, 34 / 64, 34 / 64 + 0.01],
        ['Q4_0', 2, 18 / 64, 0.40],
        ['Q4_K_M', 15, 144 / 512, 0.40],
    ] as [QuantizationType, number, number, number][])('%s: the output loads, generates, and its weights shrink as expected', async (type, fileType, low, high) => {
        const output = join(work, `${type}.gguf`);
        const progress: number[] = [];
        const result = await quantizeModel({ input: fixtures.f16, output, type, threads: 2, onProgress: (p) => progress.push(p) });
        expect(result.outputBytes).toBeLessThan(result.inputBytes);
        expect(progress.length).toBeGreaterThan(5);
        expect(progress[progress.length - 1]).toBe(1);
        expect(progress.every((p, i) => i === 0 || p >= progress[i - 1])).toBe(true);
        const gguf = await readGgufMetadata(output);
        expect(gguf.kv['general.file_type']).toBe(fileType);
        // repack: false: the weights as the file stores them (the CPU's extra buffer types
        // would hold some in their own layouts, e.g. AMX's, about 12% larger for Q8_0).
        const model = await LlamaModel.load({ path: output, gpu: false, repack: false });
        const ctx = model.createContext({ contextSize: 256 });
        const weights = ctx.memoryReport().weights.bytes;
        const ratio = weights / f16Weights;
        process.stdout.write(`[quantize] ${type}: weights ${weights} B vs F16 ${f16Weights} B, ratio ${ratio.toFixed(4)} (plain ${low.toFixed(4)}), file ${result.outputBytes} B, ${result.ms.toFixed(0)} ms\n`);
        expect(ratio).toBeGreaterThanOrEqual(low);
        expect(ratio).toBeLessThan(high);
        const r = await ctx.complete('Once upon a time', { maxTokens: 8, temperature: 0 });
        expect(r.tokens).toHaveLength(8);
        model.dispose();
    });

    it('an abort stops it between tensors and leaves no output', async () => {
        const output = join(work, 'aborted.gguf');
        const controller = new AbortController();
        const error = await quantizeModel({
            input: fixtures.f16, output, type: 'Q4_0', signal: controller.signal,
            onProgress: (p) => {
                if (p > 0.2) controller.abort();
            },
        }).catch((e: unknown) => e);
        expect((error as LlamaError).code).toBe('ABORTED');
        expect(existsSync(output)).toBe(false);
        expect(readdirSync(work).filter((f) => f.startsWith('aborted'))).toEqual([]);
    });

    it("passes llama.cpp's refusals on, and checks its options", async () => {
        const q8 = join(work, 'Q8_0.gguf');
        const requantize = await quantizeModel({ input: q8, output: join(work, 'requant.gguf'), type: 'Q4_0' }).catch((e: unknown) => e);
        expect((requantize as LlamaError).code).toBe('QUANTIZE_FAILED');
        expect((requantize as Error).message).toMatch(/requantiz/i);
        expect(readdirSync(work).filter((f) => f.startsWith('requant'))).toEqual([]);
        const allowed = await quantizeModel({ input: q8, output: join(work, 'requant.gguf'), type: 'Q4_0', allowRequantize: true });
        expect(allowed.outputBytes).toBeLessThan(allowed.inputBytes);

        await expect(quantizeModel({ input: fixtures.f16, output: fixtures.f16, type: 'Q8_0' })).rejects.toThrow(/output must differ from input/);
        await expect(quantizeModel({ input: fixtures.f16, output: join(work, 'x.gguf'), type: 'Q3' as QuantizationType })).rejects.toThrow(/one of F32, F16, BF16, Q4_0/);
        const missing = await quantizeModel({ input: join(work, 'nope.gguf'), output: join(work, 'x.gguf'), type: 'Q8_0' }).catch((e: unknown) => e);
        expect((missing as LlamaError).code).toBe('MODEL_NOT_FOUND');
    });
});
