import { basename } from 'node:path';
import { LlamaContext } from '../../context/context.js';
import { ensureFixtureModel } from '../../demo/models.js';
import { setLogger } from '../../logger.js';
import { inFlagNames } from '../format/flag-names.js';
import { loadModel } from '../flags/load-model.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { contextFlags, contextOptionsFromFlags } from '../flags/context-flags.js';
import { grammarFlags, grammarOptionsFromFlags } from '../flags/grammar-flags.js';
import { promptFromArgs, readStdin, withoutFinalNewline } from '../flags/input.js';
import { modelFlags, modelOptionsFromFlags } from '../flags/model-flags.js';
import { samplingFlags, samplingOptionsFromFlags } from '../flags/sampling-flags.js';
import { formatResults, formatSummary, runBatch } from '../run/batch.js';
import { readPromptsFile, type FilePrompt } from '../run/prompts-file.js';

export const runFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'string', help: 'GGUF model file (default: the built-in demo model)' },
    { names: ['-p', '--prompt'], key: 'prompt', type: 'string', help: 'prompt text (or the prompt as the argument, -f, --prompts-file, or the prompt on stdin)' },
    { names: ['-f', '--file'], key: 'file', type: 'string', help: "file holding the prompt, without its final line break (llama.cpp's -f); instead of -p" },
    {
        names: ['--prompts-file'],
        key: 'promptsFile',
        type: 'string',
        help: "file of prompts, one per line, all submitted at once to the -np sequences (llama.cpp's llama-parallel reads it with -f/--file); instead of -p",
    },
    { names: ['-n', '--n-predict'], key: 'maxTokens', type: 'int', help: 'tokens to generate (default 128)' },
    ...contextFlags,
    ...modelFlags,
    { names: ['--lora'], key: 'lora', type: 'list', help: 'LoRA adapter to apply at scale 1 (repeatable)' },
    { names: ['--lora-scaled'], key: 'loraScaled', type: 'pair', help: 'LoRA adapter and its scale, e.g. --lora-scaled a.gguf 0.5 (repeatable)' },
    { names: ['-t', '--threads'], key: 'threads', type: 'int', help: 'threads (default: number of CPUs)' },
    ...samplingFlags,
    ...grammarFlags,
    { names: ['--json'], key: 'json', type: 'bool', help: 'print one JSON object instead of streaming (with --prompts-file: every result and the summary)' },
    { names: ['--verbose'], key: 'verbose', type: 'bool', help: "show llama.cpp's info log on stderr" },
];

export const runUsage =
    'usage: llama-kv run [-m model.gguf] (-p PROMPT | [--] PROMPT | -f FILE | --prompts-file FILE [-np N] | < PROMPT) [-n 128] [-c 4096] [-ctk q8_0 -ctv q4_0] [-fa auto] ' +
    `[--gpu auto] [-ngl N] [--n-cpu-moe N] [--lora a.gguf] [-t N] [--temp 0.8] [--grammar-file F | -j SCHEMA] [--json]\n${flagHelp(runFlags)}\n` +
    'The prompt may be the one argument instead of -p (after --, even one that starts with a dash: run -- "-p means prompt").\n' +
    'Without -p, an argument, -f or --prompts-file, the prompt is read from stdin when it is not a terminal.';

export async function run(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, runFlags);
    if (positional.length > 0 && typeof flags.promptsFile === 'string') {
        throw new UsageError(`unexpected argument "${positional[0]}": --prompts-file holds the prompts`);
    }
    if (typeof flags.prompt === 'string' && typeof flags.promptsFile === 'string') {
        throw new UsageError('-p/--prompt and --prompts-file cannot be used together: put that prompt in the file');
    }
    if (typeof flags.file === 'string' && typeof flags.promptsFile === 'string') {
        throw new UsageError('-f/--file and --prompts-file cannot be used together: -f holds one prompt, --prompts-file one per line');
    }
    // Read before the model loads: a bad file fails at once.
    const input: { prompts: FilePrompt[] } | { prompt: string } =
        typeof flags.promptsFile === 'string' ? { prompts: await readPromptsFile(flags.promptsFile) } : { prompt: (await promptFromArgs(flags, positional)) ?? (await promptFromStdin()) };
    const batch = 'prompts' in input;
    const grammar = await grammarOptionsFromFlags(flags);
    // The library's warnings, said with this command's flags (-c, not contextSize).
    setLogger((level, message) => process.stderr.write(`[${level}] ${inFlagNames(message, runFlags)}\n`), { level: flags.verbose ? 'info' : 'warn' });

    const path = typeof flags.model === 'string' ? flags.model : await ensureFixtureModel('tiny-q8_0');
    const model = await loadModel({ path, ...modelOptionsFromFlags(flags) });
    try {
        const adapters = [
            ...((flags.lora as string[] | undefined) ?? []).map((file) => ({ file, scale: 1 })),
            ...((flags.loraScaled as [string, string][] | undefined) ?? []).map(([file, raw]) => {
                const scale = Number(raw);
                if (raw.trim() === '' || !Number.isFinite(scale)) throw new UsageError(`--lora-scaled expects a file and a number but received "${raw}"`);
                return { file, scale };
            }),
        ];
        const loras = [];
        for (const { file, scale } of adapters) loras.push({ lora: await model.loadLora(file), scale });
        const seed = flags.seed as number | undefined;
        // Values go to the API as typed: its validation messages are the CLI's (exit code 2).
        // A batch's -s is the context's seed: prompt i (from 0, in file order) samples with seed + i.
        const ctx = new LlamaContext({
            model,
            ...contextOptionsFromFlags(flags),
            threads: flags.threads as number | undefined,
            loras,
            ...(batch && seed !== undefined ? { seed } : {}),
        });
        const config = ctx.config;
        const settings =
            `kv: ${config.cacheTypeK}/${config.cacheTypeV}, flash attention ${config.flashAttention}` +
            `${loras.length > 0 ? ` | loras: ${loras.map(({ lora, scale }) => `${basename(lora.path)}@${scale}`).join(', ')}` : ''}`;
        const options = {
            maxTokens: (flags.maxTokens as number | undefined) ?? 128,
            ...samplingOptionsFromFlags(flags),
            ...grammar,
            seed: batch ? undefined : seed,
        };
        const controller = new AbortController();
        const onSigint = () => controller.abort();
        process.once('SIGINT', onSigint);
        try {
            if ('prompts' in input) {
                const { results, summary } = await runBatch(ctx, input.prompts, options, controller);
                process.stdout.write(flags.json ? JSON.stringify({ model: path, results, summary }) + '\n' : formatResults(results));
                process.stderr.write(formatSummary(summary, settings));
                return 0;
            }
            const { prompt } = input;
            if (flags.json) {
                const result = await ctx.complete(prompt, { ...options, signal: controller.signal });
                process.stdout.write(JSON.stringify({ model: path, prompt, ...result }) + '\n');
                return 0;
            }
            const stream = ctx.generate(prompt, { ...options, signal: controller.signal });
            let step = await stream.next();
            while (!step.done) {
                process.stdout.write(step.value.text);
                step = await stream.next();
            }
            const { timings, finishReason } = step.value;
            process.stdout.write('\n');
            const rate = (n: number, ms: number) => (ms > 0 ? ((n * 1000) / ms).toFixed(2) : 'n/a');
            process.stderr.write(
                `prompt: ${timings.promptTokens} tokens, ${rate(timings.promptTokens - timings.reusedTokens, timings.promptMs)} t/s | ` +
                    `generation: ${timings.generatedTokens} tokens, ${rate(timings.generatedTokens, timings.generationMs)} t/s | ` +
                    `finish: ${finishReason} | ${settings}\n`,
            );
            return 0;
        } finally {
            process.off('SIGINT', onSigint);
        }
    } finally {
        model.dispose();
    }
}

/** The prompt piped to stdin (without its final line break); a terminal or an empty stdin is the missing-prompt usage error. */
async function promptFromStdin(): Promise<string> {
    const missing = '-p/--prompt or --prompts-file is required';
    if (process.stdin.isTTY) throw new UsageError(`${missing} (or the prompt as an argument, -f/--file FILE, or the prompt on stdin)`);
    const text = withoutFinalNewline(await readStdin());
    if (text === '') throw new UsageError(`${missing}: stdin held no prompt`);
    return text;
}
