import { LlamaModel } from '../../model/model.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';

export const infoFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'string', help: 'GGUF model file (or give it as the argument)' },
    { names: ['--json'], key: 'json', type: 'bool', help: 'print JSON (includes the GGUF key/value map)' },
];

export const infoUsage = `usage: llama-kv info MODEL.gguf [--json]\n${flagHelp(infoFlags)}`;

const MIB = 1024 * 1024;

export async function info(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, infoFlags);
    const path = (flags.model as string | undefined) ?? positional[0];
    if (!path) throw new UsageError('a model file is required');
    if (positional.length > (flags.model ? 0 : 1)) throw new UsageError(`unexpected argument "${positional.at(-1)}"`);
    const model = await LlamaModel.load({ path });
    try {
        const m = model.metadata;
        if (flags.json) {
            const replacer = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);
            process.stdout.write(JSON.stringify({ path, ...m }, replacer) + '\n');
            return 0;
        }
        const rows: [string, string | number][] = [
            ['path', path],
            ['architecture', m.architecture],
            ['name', m.name],
            ['description', m.description],
            ['trained context', m.trainedContextSize],
            ['layers', m.layerCount],
            ['embedding size', m.embeddingSize],
            ['heads / KV heads', `${m.headCount} / ${m.headCountKv}`],
            ['head dim K / V', `${m.headDimK} / ${m.headDimV}`],
            ['vocabulary', m.vocabSize],
            ['parameters', m.parameterCount],
            ['weights', `${(m.sizeBytes / MIB).toFixed(2)} MiB`],
            ['GGUF keys', Object.keys(m.gguf).length],
        ];
        for (const [key, value] of rows) process.stdout.write(`${key.padEnd(18)}${value}\n`);
        return 0;
    } finally {
        model.dispose();
    }
}
