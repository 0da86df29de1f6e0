import { basename } from 'node:path';
import { quantizeModel } from '../../model/quantize.js';
import { QUANTIZATION_TYPES, type QuantizationType } from '../../options/quantize-options.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { formatBytes } from '../format/bytes.js';
import { progressBar } from '../format/progress.js';

const quantizeFlags: FlagSpec[] = [
    { names: ['-t', '--threads'], key: 'threads', type: 'int', help: 'threads (default: number of CPUs)' },
    { names: ['--allow-requantize'], key: 'allowRequantize', type: 'bool', help: 'allow re-quantizing tensors that are already quantized' },
    { names: ['--json'], key: 'json', type: 'bool', help: 'print one JSON object on stdout: { input, output, type, inputBytes, outputBytes, ms } (the summary line stays on stderr)' },
];

export const quantizeUsage =
    `usage: llama-kv quantize INPUT.gguf OUTPUT.gguf TYPE [-t N] [--allow-requantize] [--json]\n` +
    `  TYPE: ${Object.keys(QUANTIZATION_TYPES).join(' ')}\n${flagHelp(quantizeFlags)}`;

/** `llama-kv quantize in.gguf out.gguf Q4_K_M`. */
export async function quantize(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, quantizeFlags);
    if (positional.length !== 3) throw new UsageError('expected INPUT.gguf OUTPUT.gguf TYPE');
    const [input, output, type] = positional;
    // On a terminal, a bar on stderr; a pipe or a log file gets the final line only.
    const bar = progressBar();
    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once('SIGINT', onSigint);
    try {
        const r = await quantizeModel({
            input,
            output,
            type: type.toUpperCase() as QuantizationType,
            threads: flags.threads as number | undefined,
            allowRequantize: flags.allowRequantize === true,
            onProgress: (p) => bar.update(p),
            signal: controller.signal,
        });
        bar.finish();
        if (flags.json) process.stdout.write(JSON.stringify({ input, ...r }) + '\n');
        process.stderr.write(
            `quantized ${basename(input)} -> ${basename(output)}: ${r.type}, ${formatBytes(r.inputBytes)} -> ${formatBytes(r.outputBytes)} ` +
                `(${((100 * r.outputBytes) / r.inputBytes).toFixed(1)}%) in ${(r.ms / 1000).toFixed(1)} s\n`,
        );
        return 0;
    } catch (error) {
        bar.clear();
        throw error;
    } finally {
        process.off('SIGINT', onSigint);
    }
}
