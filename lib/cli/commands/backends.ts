import { getBackends, type BackendInfo } from '../../backends/backends.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { formatBytes } from '../format/bytes.js';

const backendsFlags: FlagSpec[] = [{ names: ['--json'], key: 'json', type: 'bool', help: 'print the list as JSON' }];

export const backendsUsage = `usage: llama-kv backends [--json]\n${flagHelp(backendsFlags)}`;

function describe(b: BackendInfo): string[] {
    const head = `${b.kind.padEnd(7)} ${b.available ? 'available  ' : 'unavailable'} ${b.name}${b.variant ? ` (variant ${b.variant})` : ''}`;
    const lines = [head];
    for (const d of b.devices) {
        lines.push(`          ${d.name}: ${d.description}, ${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)}`);
        if (d.extraBufferTypes.length > 0) lines.push(`          extra buffer types (weight copies unless --no-repack): ${d.extraBufferTypes.join(', ')}`);
    }
    const features = Object.entries(b.features).map(([k, v]) => (v === '1' ? k : `${k}=${v}`));
    if (features.length > 0) lines.push(`          features: ${features.join(' ')}`);
    if (b.path) lines.push(`          from ${b.path}`);
    if (b.reason) lines.push(`          why: ${b.reason}`);
    if (b.fix) lines.push(`          fix: ${b.fix}`);
    return lines;
}

/** `llama-kv backends`: what getBackends() says, as a table or JSON. */
export async function backends(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, backendsFlags);
    if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}"`);
    const list = getBackends();
    process.stdout.write(flags.json ? `${JSON.stringify(list, null, 2)}\n` : `${list.flatMap(describe).join('\n')}\n`);
    return 0;
}
