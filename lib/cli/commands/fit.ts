import { isRemoteModel } from '../../download/uri.js';
import { planFit } from '../../memory/plan-fit.js';
import type { FitPreference } from '../../options/plan-fit-options.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { formatBytes, parseBytes } from '../format/bytes.js';
import { modelFlags, modelOptionsFromFlags, rpcFlag, weightFlags } from '../flags/model-flags.js';

export const fitFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'string', help: 'GGUF model file, hf:owner/repo/file.gguf or an https:// URL (its header only is read) (required)' },
    { names: ['--budget'], key: 'budget', type: 'string', help: 'memory budget, e.g. 6GiB (required)' },
    { names: ['--prefer'], key: 'prefer', type: 'string', help: 'context | parallel | quality (default quality)' },
    { names: ['--min-ctx'], key: 'minContextSize', type: 'int', help: 'tokens each sequence needs at least (default 4096 or the trained size)' },
    { names: ['-np', '--parallel'], key: 'parallel', type: 'int', help: "sequences, for 'context' and 'quality' (default 1)" },
    { names: ['-ub', '--ubatch-size'], key: 'ubatchSize', type: 'int', help: 'micro-batch size (default 512)' },
    ...weightFlags,
    { ...rpcFlag, help: `${rpcFlag.help}: plan the split across them (--budget is then the host's share)` },
    ...modelFlags.filter((f) => f.key === 'gpuLayers' || f.key === 'tensorSplit').map((f) => ({ ...f, help: `with --rpc: ${f.help}` })),
    { names: ['--device-budget'], key: 'deviceBudgets', type: 'string', help: "with --rpc: each remote device's budget, e.g. RPC0=20GiB,RPC1=8GiB (default: its server's free memory)" },
    { names: ['--json'], key: 'json', type: 'bool', help: 'print JSON' },
];

export const fitUsage = `usage: llama-kv fit -m model.gguf --budget 6GiB [--prefer context|parallel|quality] [--min-ctx 4096] [-np 1] [--no-mmap] [--no-repack] [--rpc host:port,... [-ngl N] [-ts 1,1] [--device-budget RPC0=20GiB,...]] [--json]\n${flagHelp(fitFlags)}`;

/** --device-budget's NAME=BYTES list (a name is a device, RPC0, or a server's host:port). */
function deviceBudgets(raw: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const item of raw.split(',')) {
        const at = item.lastIndexOf('=');
        if (at <= 0) throw new UsageError(`--device-budget expects NAME=BYTES items, e.g. RPC0=20GiB, but received "${item}"`);
        out[item.slice(0, at).trim()] = parseBytes('--device-budget', item.slice(at + 1).trim());
    }
    return out;
}

export async function fit(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, fitFlags);
    const path = (flags.model as string | undefined) ?? positional[0];
    if (!path) throw new UsageError('-m/--model is required');
    if (typeof flags.budget !== 'string') throw new UsageError('--budget is required');
    // The weight flags, and with --rpc the split's (-ngl, -ts): planFit refuses -ngl/-ts without --rpc.
    const load = modelOptionsFromFlags(flags);
    const plan = await planFit({
        model: path,
        budgetBytes: parseBytes('--budget', flags.budget),
        prefer: flags.prefer as FitPreference | undefined,
        minContextSize: flags.minContextSize as number | undefined,
        parallel: flags.parallel as number | undefined,
        ubatchSize: flags.ubatchSize as number | undefined,
        ...load,
        ...(typeof flags.deviceBudgets === 'string' ? { deviceBudgets: deviceBudgets(flags.deviceBudgets) } : {}),
    });
    if (flags.json) {
        process.stdout.write(JSON.stringify({ model: path, ...plan }) + '\n');
        return 0;
    }
    const s = plan.settings;
    process.stdout.write(
        `contextSize ${s.contextSize}, parallel ${s.parallel}, K ${s.cacheTypeK} / V ${s.cacheTypeV}, flash attention ${s.flashAttention}\n` +
            `total ${formatBytes(plan.estimate.total.bytes)} (KV ${formatBytes(plan.estimate.kv.bytes)}, weights ${formatBytes(plan.estimate.weights.bytes)}, ` +
            `compute ${formatBytes(plan.estimate.compute.bytes)}, output ${formatBytes(plan.estimate.output.bytes)})\n` +
            `why: ${plan.reason}\n` +
            `run: llama-kv run -m ${isRemoteModel(path) ? `"$(llama-kv pull ${path})"` : path}${flags.noMmap ? ' --no-mmap' : ''}${flags.noRepack ? ' --no-repack' : ''}${splitFlags(flags)} -c ${s.contextSize} -np ${s.parallel} -ctk ${s.cacheTypeK} -ctv ${s.cacheTypeV}${flags.ubatchSize ? ` -ub ${flags.ubatchSize}` : ''} -p "..."\n`,
    );
    return 0;
}

/** The split flags of the plan, for the run line: --rpc, -ngl and -ts as given. */
function splitFlags(flags: Record<string, unknown>): string {
    return [['--rpc', flags.rpcServers], ['-ngl', flags.gpuLayers], ['-ts', flags.tensorSplit]].flatMap(([name, value]) => (typeof value === 'string' ? [` ${name} ${value}`] : [])).join('');
}
