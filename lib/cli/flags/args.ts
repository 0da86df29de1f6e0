/** A small, strict flag parser: unknown flags and bad values are usage errors. */

export class UsageError extends Error {}

/** 'list': repeatable, values collected in order; 'pair': two values (repeatable too). */
export type FlagType = 'string' | 'int' | 'float' | 'bool' | 'list' | 'pair';

export interface FlagSpec {
    /** Names as typed, e.g. ['-n', '--n-predict']. */
    names: string[];
    key: string;
    type: FlagType;
    help: string;
}

export type ParsedFlags = Record<string, string | number | boolean | string[] | [string, string][]>;

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): { flags: ParsedFlags; positional: string[] } {
    const byName = new Map<string, FlagSpec>();
    for (const spec of specs) for (const name of spec.names) byName.set(name, spec);
    const flags: ParsedFlags = {};
    const positional: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (!arg.startsWith('-') || arg === '-') {
            positional.push(arg);
            continue;
        }
        const eq = arg.indexOf('=');
        const name = eq > 0 && arg.startsWith('--') ? arg.slice(0, eq) : arg;
        const spec = byName.get(name);
        if (!spec) throw new UsageError(`unknown flag ${name}`);
        if (spec.type === 'bool') {
            flags[spec.key] = true;
            continue;
        }
        const raw = eq > 0 && arg.startsWith('--') ? arg.slice(eq + 1) : argv[++i];
        if (raw === undefined) throw new UsageError(`${name} needs a value`);
        if (spec.type === 'list') {
            flags[spec.key] = [...((flags[spec.key] as string[] | undefined) ?? []), raw];
        } else if (spec.type === 'pair') {
            const second = argv[++i];
            if (second === undefined) throw new UsageError(`${name} needs two values`);
            flags[spec.key] = [...((flags[spec.key] as [string, string][] | undefined) ?? []), [raw, second]];
        } else {
            flags[spec.key] = convert(name, spec.type, raw);
        }
    }
    return { flags, positional };
}

function convert(name: string, type: 'string' | 'int' | 'float', raw: string): string | number {
    if (type === 'string') return raw;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || (type === 'int' && !Number.isInteger(value))) {
        throw new UsageError(`${name} expects ${type === 'int' ? 'an integer' : 'a number'} but received "${raw}"`);
    }
    return value;
}

export function flagHelp(specs: readonly FlagSpec[]): string {
    return specs
        .map((s) => `  ${s.names.join(', ')}${placeholder(s.type)}`.padEnd(34) + s.help)
        .join('\n');
}

function placeholder(type: FlagType): string {
    if (type === 'bool') return '';
    if (type === 'pair') return ' <value> <value>';
    return ` <${type === 'string' || type === 'list' ? 'value' : type}>`;
}
