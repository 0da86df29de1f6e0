/** A small, strict flag parser: unknown flags and bad values are usage errors. */
import { llamaCppAlias, sameName } from '../../options/llama-names.js';
import { suggest } from '../../options/validate.js';

/** A bad command line: the CLI prints the message and the command's usage, and exits with code 2. */
export class UsageError extends Error {}

/**
 * `-h`/`--help` where a flag can stand (not a flag's value, not after `--`): the CLI prints the
 * command's usage and exits 0. A UsageError too, so a caller that only knows those prints the usage.
 */
export class HelpRequested extends UsageError {
    constructor() {
        super('-h/--help asks for the usage');
    }
}

/** The names that ask for a command's usage, unless a command's own flag has one of them. */
export const HELP_FLAGS: readonly string[] = ['-h', '--help'];

/** 'list': repeatable, values collected in order; 'pair': two values (repeatable too). */
export type FlagType = 'string' | 'int' | 'float' | 'bool' | 'list' | 'pair';

export interface FlagSpec {
    /** Names as typed, e.g. ['-n', '--n-predict']. */
    names: string[];
    key: string;
    type: FlagType;
    help: string;
    /**
     * Names other tools give this flag that are not accepted here because they mean something
     * else there too (llama-cli's -f reads one prompt, llama-parallel's one per line): an
     * unknown flag with one of these names suggests this flag.
     */
    suggestedFor?: string[];
}

export type ParsedFlags = Record<string, string | number | boolean | string[] | [string, string][]>;

/**
 * Parses `argv` by `specs`, left to right: a flag that takes a value takes the next argument
 * whatever it is (`-p -h` is the prompt "-h"), `--flag=value` for long flags; `--` ends the
 * flags (everything after it is positional, `-p` included). `-h`/`--help` in a flag's place
 * throws {@link HelpRequested}; an unknown flag or a missing or bad value, a {@link UsageError}.
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): { flags: ParsedFlags; positional: string[] } {
    const byName = new Map<string, FlagSpec>();
    for (const spec of specs) for (const name of spec.names) byName.set(name, spec);
    const flags: ParsedFlags = {};
    const positional: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === '--') {
            positional.push(...argv.slice(i + 1));
            break;
        }
        if (!arg.startsWith('-') || arg === '-') {
            positional.push(arg);
            continue;
        }
        const eq = arg.indexOf('=');
        const name = eq > 0 && arg.startsWith('--') ? arg.slice(0, eq) : arg;
        const spec = byName.get(name);
        if (!spec && HELP_FLAGS.includes(arg)) throw new HelpRequested();
        if (!spec) {
            const hint = suggestFlag(name, specs);
            throw new UsageError(`unknown flag ${name}${hint ? `; did you mean ${hint.names.join('/')}?` : ''}`);
        }
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

/**
 * The flag an unknown one most likely means: a flag that lists it in `suggestedFor`, a known name in other dashes or case
 * (`--ctk` for -ctk), the flag of the option llama.cpp's name stands for (`--ctx` for
 * -c/--ctx-size, `--n-gpu-layers` for -ngl), the flag of an option named as the API names it
 * (`--max-tokens` for -n), else the closest long name.
 */
export function suggestFlag(name: string, specs: readonly FlagSpec[]): FlagSpec | undefined {
    const named = specs.find((s) => s.suggestedFor?.includes(name));
    if (named) return named;
    const same = specs.find((s) => s.names.some((n) => sameName(n, name)));
    if (same) return same;
    const keys = specs.map((s) => s.key);
    const alias = llamaCppAlias(name, keys) ?? keys.find((key) => sameName(key, name));
    if (alias !== undefined) return specs.find((s) => s.key === alias);
    const longNames = specs.flatMap((s) => s.names.filter((n) => n.startsWith('--')).map((n) => n.slice(2)));
    const closest = suggest(name.replace(/^-+/, ''), longNames);
    return closest === undefined ? undefined : specs.find((s) => s.names.includes(`--${closest}`));
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
        .map((s) => `${`  ${s.names.join(', ')}${placeholder(s.type)}`.padEnd(33)} ${s.help}`)
        .join('\n');
}

function placeholder(type: FlagType): string {
    if (type === 'bool') return '';
    if (type === 'pair') return ' <value> <value>';
    return ` <${type === 'string' || type === 'list' ? 'value' : type}>`;
}
