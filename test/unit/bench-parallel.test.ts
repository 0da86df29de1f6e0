// The parallel benchmark's pure parts: how token events split into llama-batched-bench's
// phases, and reading llama-batched-bench's JSONL output.
import { describe, expect, it } from 'vitest';
import { batchedBenchArgv, parseBatchedBenchJsonl } from '../../lib/cli/bench/batched-bench.js';
import { spansOverlap, splitPhases, type TokenEvent } from '../../lib/cli/bench/phases.js';
import { parallelContextSize } from '../../lib/cli/bench/parallel-run.js';

const ev = (at: number, sequence: number, first = false): TokenEvent => ({ at, sequence, first });

describe('parallel bench phases', () => {
    it('one after another: each prompt is prompt time, each later token a generation step', () => {
        // Sequence 0: prompt 10 ms, then two tokens 2 ms apart; sequence 1 the same after it.
        const events = [ev(10, 0, true), ev(12, 0), ev(14, 0), ev(24, 1, true), ev(26, 1), ev(28, 1)];
        const p = splitPhases(0, events);
        expect(p.promptMs).toBeCloseTo(20, 10);
        expect(p.generationMs).toBeCloseTo(8, 10);
        expect(p.generationTokens).toBe(4);
        expect(p.totalMs).toBe(28);
        expect(p.decodedGenerated).toBe(4);
        expect(p.promptMs + p.generationMs).toBeCloseTo(p.totalMs, 10);
        expect(spansOverlap(events)).toBe(false);
    });

    it('together: the prompts are one step, then one step per token of every sequence', () => {
        const events = [ev(10, 0, true), ev(10.1, 1, true), ev(12, 0), ev(12.1, 1), ev(14, 1), ev(14.1, 0)];
        const p = splitPhases(0, events);
        expect(p.promptMs).toBeCloseTo(10.1, 10);
        expect(p.generationMs).toBeCloseTo(4, 10);
        expect(p.generationTokens).toBe(4);
        expect(p.decodedGenerated).toBe(4);
        expect(spansOverlap(events)).toBe(true);
    });

    it('a step that decoded a prompt beside generated tokens is prompt time, and its tokens are not in S_TG', () => {
        const events = [ev(10, 0, true), ev(12, 0), ev(12.2, 1, true), ev(14, 0), ev(14.1, 1)];
        const p = splitPhases(0, events);
        expect(p.promptMs).toBeCloseTo(12.2, 10);
        expect(p.generationMs).toBeCloseTo(1.9, 10);
        expect(p.generationTokens).toBe(2);
        // Decoded after the prompts: the mixed step's token counts for S.
        expect(p.decodedGenerated).toBe(3);
    });

    it('two events of one sequence are two steps however close, and an empty run has no time', () => {
        const p = splitPhases(0, [ev(10, 0, true), ev(10.2, 0)]);
        expect(p.promptMs).toBe(10);
        expect(p.generationMs).toBeCloseTo(0.2, 10);
        expect(p.generationTokens).toBe(1);
        expect(splitPhases(5, [])).toEqual({ promptMs: 0, generationMs: 0, totalMs: 0, generationTokens: 0, decodedGenerated: 0 });
        expect(spansOverlap([ev(1, 0, true)])).toBe(false);
    });
});

describe('llama-batched-bench output', () => {
    const line =
        '{"n_kv_max": 2048, "n_batch": 2048, "n_ubatch": 512, "flash_attn": 1, "is_pp_shared": 0, "n_gpu_layers": -1, "n_threads": 2, "n_threads_batch": 2, ' +
        '"pp": 128, "tg": 128, "pl": 8, "n_kv": 2048, "t_pp": 0.035793, "speed_pp": 28608.947266, "t_tg": 0.347107, "speed_tg": 2950.099121, "t": 0.382900, "speed": 5348.654785}';

    it('reads its JSONL rows and nothing else from stdout', () => {
        const rows = parseBatchedBenchJsonl(`\nllama_batched_bench: something\n${line}\n{"n_kv_max": 1}\n{not json\n`);
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ pp: 128, tg: 128, pl: 8, n_threads: 2, t_pp: 0.035793, t_tg: 0.347107, speed_tg: 2950.099121 });
        // S_TG as it computes it: pl * tg / t_tg.
        expect((rows[0].pl * rows[0].tg) / rows[0].t_tg).toBeCloseTo(rows[0].speed_tg, 2);
        expect(parseBatchedBenchJsonl('')).toEqual([]);
    });

    it('is run with one row, no unified KV, JSONL output and the same settings as ours', () => {
        const argv = batchedBenchArgv({
            model: 'm.gguf', contextSize: 1024, promptTokens: 128, generatedTokens: 128, parallel: 4,
            threads: 2, cacheTypeK: 'q8_0', cacheTypeV: 'q4_0', flashAttention: 'on', batchSize: 2048, ubatchSize: 512,
        });
        const value = (flag: string) => argv[argv.indexOf(flag) + 1];
        expect([value('-c'), value('-npp'), value('-ntg'), value('-npl'), value('-t'), value('-tb')]).toEqual(['1024', '128', '128', '4', '2', '2']);
        expect([value('-ctk'), value('-ctv'), value('-fa'), value('-b'), value('-ub'), value('--output-format')]).toEqual(['q8_0', 'q4_0', 'on', '2048', '512', 'jsonl']);
        expect(argv).toContain('-no-kvu');
    });

    it('sizes the context for npl sequences of pp + tg cells, each padded to 256', () => {
        expect(parallelContextSize(1, 128, 128)).toBe(256);
        expect(parallelContextSize(8, 128, 128)).toBe(2048);
        expect(parallelContextSize(2, 16, 8)).toBe(512);
        expect(parallelContextSize(3, 200, 100)).toBe(3 * 512);
    });
});
