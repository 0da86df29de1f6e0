import { basename } from 'node:path';
import { quantizeModel } from '../../model/quantize.js';
import { QUANTIZATION_TYPES, type QuantizationType } from '../../options/quantize-options.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { formatBytes } from '../format/bytes.js';

const quantizeFlags: FlagSpec[] = [
    { names: ['-t', '--threads'], key: 'threads', type: 'int', help: 'threads (default: number of CPUs)' },
    { names: ['--allow-requantize'], key: 'allowRequantize', type: 'bool', help: 'allow re-quantizing tensors that are already quantized' },
];

export const quantizeUsage =
    `usage: llama-kv quantize INPUT.gguf OUTPUT.gguf TYPE [-t N] [--allow-requantize]\n` +
    `  TYPE: ${Object.keys(QUANTIZATION_TYPES).join(' ')}\n${flagHelp(quantizeFlags)}`;

/** A progress bar on a terminal, nothing otherwise (a pipe or a log file gets the final line only). */
function progressBar(): { update(p: number): void; end(): void } {
    if (!process.stderr.isTTY) return { update() {}, end() {} };
    let last = -1;
    return {
        update(p) {
            const percent = Math.floor(p * 100);
            if (percent === last) return;
            last = percent;
            const filled = Math.round(p * 30);
            process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(30 - filled)}] ${String(percent).padStart(3)}%`);
        },
        end() {
            if (last >= 0) process.stderr.write('\n');
        },
    };
}

/** `llama-kv quantize in.gguf out.gguf Q4_K_M`. */
export async function quantize(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, quantizeFlags);
    if (positional.length !== 3) throw new UsageError('expected INPUT.gguf OUTPUT.gguf TYPE');
    const [input, output, type] = positional;
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
        bar.end();
        process.stderr.write(
            `quantized ${basename(input)} -> ${basename(output)}: ${r.type}, ${formatBytes(r.inputBytes)} -> ${formatBytes(r.outputBytes)} ` +
                `(${((100 * r.outputBytes) / r.inputBytes).toFixed(1)}%) in ${(r.ms / 1000).toFixed(1)} s\n`,
        );
        return 0;
    } catch (error) {
        bar.end();
        throw error;
    } finally {
        process.off('SIGINT', onSigint);
    }
}
