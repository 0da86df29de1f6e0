// cpuMoeLayers and tensorOverrides on the generated mixture-of-experts model: llama.cpp
// applies the overrides (its own log says so, tensor by tensor), the memory report
// shows where the expert weights are, and the model still generates.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { estimateMemory, LlamaModel, readGgufMetadata, setLogger } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

const overridden = /tensor (\S+) \(.*\) buffer type overridden to (\S+)/;

describe('MoE placement', () => {
    const lines: string[] = [];
    let expertBytes = 0;
    beforeAll(async () => {
        setLogger((_level, message) => lines.push(message), { level: 'debug' });
        const gguf = await readGgufMetadata(fixtures.moe);
        expertBytes = gguf.tensors.filter((t) => /\.ffn_(up|down|gate)_exps\./.test(t.name)).reduce((s, t) => s + t.byteSize, 0);
    });
    afterAll(() => setLogger(null));

    /** Loads the MoE model and returns the tensors llama.cpp logged as overridden, by name. */
    async function load(options: Partial<Parameters<typeof LlamaModel.load>[0]>): Promise<{ model: LlamaModel; overrides: Map<string, string> }> {
        lines.length = 0;
        const model = await LlamaModel.load({ path: fixtures.moe, gpu: false, ...options });
        // Log lines travel to JS asynchronously: wait for the end of the load's output.
        await vi.waitFor(() => expect(lines.some((l) => /load_tensors|model size|print_info/.test(l))).toBe(true));
        await new Promise((r) => setTimeout(r, 50));
        const overrides = new Map<string, string>();
        for (const l of lines) {
            const m = overridden.exec(l);
            if (m) overrides.set(m[1], m[2]);
        }
        return { model, overrides };
    }

    it('is a real MoE model: 4 experts of which 2 are used', async () => {
        const gguf = await readGgufMetadata(fixtures.moe);
        expect(gguf.kv['llama.expert_count']).toBe(4);
        expect(gguf.kv['llama.expert_used_count']).toBe(2);
        expect(expertBytes).toBeGreaterThan(0);
    });

    it('cpuMoeLayers: 1 overrides the expert tensors of layer 0 only, and the report shows them on the CPU', async () => {
        const { model, overrides } = await load({ cpuMoeLayers: 1 });
        expect([...overrides.keys()].sort()).toEqual(['blk.0.ffn_down_exps.weight', 'blk.0.ffn_gate_exps.weight', 'blk.0.ffn_up_exps.weight']);
        expect(new Set(overrides.values())).toEqual(new Set(['CPU']));
        const ctx = model.createContext({ contextSize: 256 });
        const report = ctx.memoryReport();
        const cpu = report.devices.find((d) => d.name === 'CPU')!;
        expect(cpu.expertWeightsBytes).toBe(expertBytes);
        expect(cpu.expertWeightsBytes).toBeLessThan(cpu.weightsBytes);
        const r = await ctx.complete('Once upon a time', { maxTokens: 6, temperature: 0 });
        expect(r.timings.generatedTokens).toBe(6);
        model.dispose();
    });

    it('cpuMoeLayers larger than the model covers every layer; 0 overrides nothing', async () => {
        const all = await load({ cpuMoeLayers: 99 });
        expect(all.overrides.size).toBe(6);
        all.model.dispose();
        const none = await load({ cpuMoeLayers: 0 });
        expect(none.overrides.size).toBe(0);
        none.model.dispose();
    });

    it('tensorOverrides applies a pattern of its own after cpuMoeLayers', async () => {
        const { model, overrides } = await load({ tensorOverrides: [{ pattern: 'blk\\.1\\.ffn_up_exps', bufferType: 'CPU' }] });
        expect([...overrides.keys()]).toEqual(['blk.1.ffn_up_exps.weight']);
        model.dispose();
    });

    it('estimates count the expert weights too, from the header and from the dry run', async () => {
        for (const simulate of [false, true]) {
            const estimate = await estimateMemory({ model: fixtures.moe, contextSize: 256, simulate });
            expect(estimate.devices[0].expertWeightsBytes, `simulate: ${simulate}`).toBe(expertBytes);
        }
    });

    it('a dense model reports no expert weights', async () => {
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: false, cpuMoeLayers: 2 });
        const report = model.createContext({ contextSize: 256 }).memoryReport();
        expect(report.devices.every((d) => d.expertWeightsBytes === 0)).toBe(true);
        model.dispose();
    });
});
