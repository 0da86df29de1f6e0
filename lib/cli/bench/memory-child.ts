/**
 * The child process whose peak RSS the benchmark compares with llama-bench's. Run as
 * `node memory-child.js SETTINGS_JSON` (a {@link MemoryChildSettings}), or with `--baseline`
 * (load the addon and its backends, no model: node's own share of the figure).
 *
 * It does what `llama-bench -p P -n N -r 1` does, through the public API: load the model
 * (mmap), a context of P tokens with a warm-up prompt and one timed prompt, freed; then a
 * context of N tokens with a one-token warm-up and an N-token greedy generation.
 * @internal
 */
import { getBackends } from '../../backends/backends.js';
import { LlamaModel } from '../../model/model.js';
import { benchContext, findGenerationPrompt, promptSource, timeGeneration, type BenchContextSettings } from './ours.js';

/** What the memory child runs. @internal */
export interface MemoryChildSettings extends BenchContextSettings {
    model: string;
    promptTokens: number;
    generatedTokens: number;
}

if (process.argv[2] === '--baseline') {
    getBackends();
} else {
    const s = JSON.parse(process.argv[2] ?? '{}') as MemoryChildSettings;
    const model = await LlamaModel.load({ path: s.model });
    try {
        if (s.promptTokens > 0) {
            const ctx = benchContext(model, s, s.promptTokens);
            const next = promptSource(1, model.metadata.vocabSize, s.promptTokens);
            await ctx.evaluate(next());
            await ctx.evaluate(next());
            ctx.dispose();
        }
        if (s.generatedTokens > 0) {
            const ctx = benchContext(model, s, s.generatedTokens);
            const { prompt } = await findGenerationPrompt(ctx, 1);
            await timeGeneration(ctx, prompt, s.generatedTokens);
            ctx.dispose();
        }
    } finally {
        model.dispose();
    }
}
process.stdout.write('ok\n');
