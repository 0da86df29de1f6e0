/** One configuration of the benchmark: llama-bench and llama-kv interleaved on one model, threads and K/V pair. */
import { basename } from 'node:path';
import type { LlamaModel } from '../../model/model.js';
import { startCpuMeter } from './cpu-meter.js';
import { runLlamaBench } from './llama-bench.js';
import { benchContext, findGenerationPrompt, measureEventLoopLag, promptSource, timeGeneration, timePrompt, type BenchContextSettings } from './ours.js';
import type { BenchRow, ContextInForce } from './report.js';
import { ratio, series } from './stats.js';

/** What {@link measureRow} runs. */
export interface RowSettings extends BenchContextSettings {
    /** The model's file (llama-bench's `-m`; `model` is the same file, loaded). */
    path: string;
    promptTokens: number;
    generatedTokens: number;
    reps: number;
    /** The llama-bench binary, or null for our side only. */
    llamaBench: string | null;
    /** Seed of the random prompts. */
    seed: number;
}

/** The llama-bench facts a row learns on the way (the first invocation's). */
export interface LlamaBenchFacts {
    cpuBackend: string | null;
    commit: string | null;
}

/**
 * Measures one row: warm-up, then `reps` times llama-bench (pp and tg in one invocation,
 * `-r 1`) followed by our pp, tg and TTFT; then the event-loop lag of one more generation.
 */
export async function measureRow(model: LlamaModel, s: RowSettings, facts: LlamaBenchFacts, progress: (line: string) => void): Promise<BenchRow> {
    const P = s.promptTokens;
    const N = s.generatedTokens;
    const name = basename(s.path);
    const label = `${name} t=${s.threads} ${s.cacheTypeK}/${s.cacheTypeV}`;
    const notes: string[] = [];
    const meter = startCpuMeter();
    // One context for pp, tg and TTFT, of llama-bench's pp size (n_ctx = n_prompt). Not two:
    // after each decode a context's ggml threadpool keeps polling for ~0.2 s (poll 50), so a
    // second context used right after the first would run against the first one's spinning
    // worker; llama-bench frees each test's context and threadpool before the next test.
    // Generation in it computes what llama-bench's n_ctx = n_gen context does: attention
    // covers the used cells padded to 256 (n_kv) in both.
    const ctx = benchContext(model, s, Math.max(P, N));
    try {
        const config = ctx.config;
        if (config.threads !== s.threads || config.threadsBatch !== s.threads || config.cacheTypeK !== s.cacheTypeK || config.cacheTypeV !== s.cacheTypeV) {
            throw new Error(`${label}: the context has threads ${config.threads}/${config.threadsBatch}, K/V ${config.cacheTypeK}/${config.cacheTypeV}`);
        }
        const inForce = (c: typeof config): ContextInForce => ({ contextSize: c.contextSize, batchSize: c.batchSize, ubatchSize: c.ubatchSize });
        const nextPrompt = promptSource(s.seed, model.metadata.vocabSize, P);
        // Warm-up, as llama-bench's: one prompt, and (here) the search for a one-token
        // prompt that generates N tokens without an end-of-generation token.
        progress(`${label}: warm-up`);
        await timePrompt(ctx, nextPrompt());
        const gen = await findGenerationPrompt(ctx, N);
        if (gen.tokens < N) notes.push(`generation ended after ${gen.tokens} of ${N} tokens (end-of-generation token); tokens/s counts the tokens generated`);

        const theirs = { pp: [] as number[], tg: [] as number[] };
        const ours = { pp: [] as number[], tg: [] as number[], tgNative: [] as number[], ttft: [] as number[] };
        for (let rep = 0; rep < s.reps; rep++) {
            progress(`${label}: repetition ${rep + 1}/${s.reps}`);
            if (s.llamaBench !== null) {
                const r = await runLlamaBench(s.llamaBench, {
                    model: s.path, threads: s.threads, cacheTypeK: s.cacheTypeK, cacheTypeV: s.cacheTypeV, flashAttention: s.flashAttention,
                    batchSize: s.batchSize, ubatchSize: s.ubatchSize, promptTokens: P, generatedTokens: N, reps: 1,
                });
                theirs.pp.push(...r.pp);
                theirs.tg.push(...r.tg);
                facts.cpuBackend ??= r.cpuBackend;
                facts.commit ??= r.build.commit;
            }
            ours.pp.push((P * 1000) / (await timePrompt(ctx, nextPrompt())));
            const g = await timeGeneration(ctx, gen.prompt, N);
            if (g.reusedTokens !== 0) throw new Error(`${label}: the generation reused ${g.reusedTokens} cached tokens`);
            ours.tg.push((g.tokens * 1000) / g.ms);
            ours.tgNative.push((g.tokens * 1000) / g.nativeMs);
            const t = await timeGeneration(ctx, nextPrompt(), 1);
            if (t.reusedTokens !== 0) throw new Error(`${label}: the TTFT prompt reused ${t.reusedTokens} cached tokens`);
            ours.ttft.push(t.firstTokenMs);
        }
        progress(`${label}: event-loop lag`);
        const lag = await measureEventLoopLag(ctx, gen.prompt, N);
        const pp = { ours: series(ours.pp), llamaCpp: s.llamaBench !== null ? series(theirs.pp) : null };
        const tg = { ours: series(ours.tg), llamaCpp: s.llamaBench !== null ? series(theirs.tg) : null };
        return {
            model: name,
            threads: s.threads,
            cacheTypeK: s.cacheTypeK,
            cacheTypeV: s.cacheTypeV,
            flashAttention: config.flashAttention,
            context: inForce(config),
            pp: { ...pp, ratio: ratio(pp.ours.median, pp.llamaCpp?.median) },
            tg: { ...tg, ratio: ratio(tg.ours.median, tg.llamaCpp?.median) },
            tgNative: series(ours.tgNative),
            ttftMs: series(ours.ttft),
            eventLoopLagMs: lag,
            contention: meter(),
            notes,
        };
    } finally {
        ctx.dispose();
    }
}
