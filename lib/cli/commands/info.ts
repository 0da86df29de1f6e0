import { inspectFile } from '../../model/inspect-file.js';
import type { GgufMetadata } from '../../gguf/types.js';
import { loadModel } from '../flags/load-model.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { formatBytes } from '../format/bytes.js';
import { chatTemplateSummary, headerInfo, trainedContextMemory, type ChatTemplateSummary, type HeaderInfo, type TrainedContextMemory } from './info-facts.js';

export const infoFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'string', help: 'GGUF model file (or give it as the argument)' },
    { names: ['--load'], key: 'load', type: 'bool', help: "load the model and show llama.cpp's own figures (and its description)" },
    { names: ['--json'], key: 'json', type: 'bool', help: 'print JSON (includes the GGUF key/value map)' },
];

export const infoUsage = `usage: llama-kv info MODEL.gguf [--load] [--json]\n${flagHelp(infoFlags)}`;

const MIB = 1024 * 1024;

/** What info prints: the header's figures, or with --load the loaded model's metadata (a superset). */
type Shown = HeaderInfo & { description?: string; gguf: GgufMetadata['kv'] };

/**
 * `llama-kv info`: a model's metadata from its GGUF header (no model load), its chat
 * template's name and the memory at its trained context; `--load` loads it for llama.cpp's figures.
 */
export async function info(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, infoFlags);
    const path = (flags.model as string | undefined) ?? positional[0];
    if (!path) throw new UsageError('a model file is required');
    if (positional.length > (flags.model ? 0 : 1)) throw new UsageError(`unexpected argument "${positional.at(-1)}"`);
    const gguf = await inspectFile(path);
    let shown: Shown;
    let template = chatTemplateSummary(gguf.kv['tokenizer.chat_template']);
    if (flags.load) {
        const model = await loadModel({ path });
        try {
            shown = model.metadata;
            const t = model.chatTemplate;
            if (t && t.origin !== 'fallback') template = chatTemplateSummary(t.source, t.origin);
        } finally {
            model.dispose();
        }
    } else {
        shown = { ...headerInfo(gguf), gguf: gguf.kv };
    }
    const memory = await trainedContextMemory(gguf, shown.trainedContextSize);
    if (flags.json) {
        const replacer = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);
        const { gguf: kv, ...rest } = shown;
        process.stdout.write(JSON.stringify({ path, ...rest, chatTemplate: template, memoryAtTrainedContext: memory, gguf: kv }, replacer) + '\n');
        return 0;
    }
    const rows: [string, string | number][] = [
        ['path', path],
        ['architecture', shown.architecture],
        ['name', shown.name],
        ...(shown.description !== undefined ? [['description', shown.description] as [string, string]] : []),
        ['trained context', shown.trainedContextSize],
        ['layers', shown.layerCount],
        ['embedding size', shown.embeddingSize],
        ['heads / KV heads', `${shown.headCount} / ${shown.headCountKv}`],
        ['head dim K / V', `${shown.headDimK} / ${shown.headDimV}`],
        ['vocabulary', shown.vocabSize],
        ['parameters', shown.parameterCount],
        ['weights', `${(shown.sizeBytes / MIB).toFixed(2)} MiB`],
        ['GGUF keys', Object.keys(shown.gguf).length],
        ['chat template', templateText(template)],
        ['contextSize' in memory ? `memory at ${memory.contextSize}` : 'memory', memoryText(memory)],
    ];
    for (const [key, value] of rows) process.stdout.write(`${key.padEnd(18)}${value}\n`);
    return 0;
}

/** `chatml (llama.cpp's name), 1234 characters` or why there is none. */
function templateText(t: ChatTemplateSummary | null): string {
    if (t === null) return "none in the file (llama.cpp falls back to ChatML)";
    const name = t.name === null ? "no built-in name (llama.cpp's Jinja engine renders it)" : `${t.name} (llama.cpp's name)`;
    return `${name}, ${t.length} characters${t.origin === 'override' ? ', from the chatTemplate option' : ''}`;
}

/** `290.51 MiB: KV cache 64.00 MiB (f16/f16), weights ..., compute ... (approx), output ...`. */
function memoryText(m: TrainedContextMemory | { error: string }): string {
    if ('error' in m) return `unknown: ${m.error}`;
    return (
        `${formatBytes(m.totalBytes)}${m.exact ? '' : ' (approx)'}: KV cache ${formatBytes(m.kvBytes)} (${m.cacheTypeK}/${m.cacheTypeV}), ` +
        `weights ${formatBytes(m.weightsBytes)}, compute ${formatBytes(m.computeBytes)}, output ${formatBytes(m.outputBytes)}`
    );
}
