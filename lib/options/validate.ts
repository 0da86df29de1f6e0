/**
 * The one validation module: every option schema of the package is built from these
 * helpers and checked by parseOptions(), so an option error reads the same in every API:
 * "Expected X for Y but received Z", and "Unknown option "a" for F; did you mean "b"?".
 */
import { z } from 'zod';
import { LlamaConfigError } from '../errors.js';
import { llamaCppAlias, sameName } from './llama-names.js';

/** Builders of the shared option types; each error message is what the option expects. */
export const positiveInt = (what = 'a positive integer') =>
    z.number({ error: what }).int({ error: what }).positive({ error: what });
export const nonNegativeInt = (what = 'a non-negative integer') =>
    z.number({ error: what }).int({ error: what }).nonnegative({ error: what });
/**
 * An integer in [min, max] with `what` as the message, and past `max` "`what` up to max":
 * the message says the rule that was broken. (max is checked first so that a number past
 * 2^53, which is no safe integer, reads as too large.)
 */
const boundedInt = (what: string, min: number, max: number) =>
    z.number({ error: what }).max(max, { error: `${what} up to ${max}` }).int({ error: what }).min(min, { error: what });
export const positiveIntUpTo = (max: number) => boundedInt('a positive integer', 1, max);
export const nonNegativeIntUpTo = (max: number) => boundedInt('a non-negative integer', 0, max);
export const bool = () => z.boolean({ error: 'a boolean' });
export const unitInterval = () =>
    z.number({ error: 'a number in [0, 1]' }).min(0, { error: 'a number in [0, 1]' }).max(1, { error: 'a number in [0, 1]' });
export const signal = () => z.instanceof(AbortSignal, { error: 'an AbortSignal' });
export const fn = <T extends (...args: never[]) => unknown>() =>
    z.custom<T>((v) => typeof v === 'function', { error: 'a function' });

/** A sampling seed: 0xFFFFFFFF is llama.cpp's LLAMA_DEFAULT_SEED, which means "random" to its sampler, so it is not a seed. */
export const samplingSeed = () =>
    z.number({ error: 'an integer in [0, 4294967294]' }).int({ error: 'an integer in [0, 4294967294]' })
        .min(0, { error: 'an integer in [0, 4294967294]' }).max(0xfffffffe, { error: 'an integer in [0, 4294967294]' });

/** A non-empty file path. */
export const filePath = () => z.string({ error: 'a file path (string)' }).min(1, { error: 'a non-empty file path' });

/** "one of 'a', 'b'". */
export const oneOf = (values: readonly string[]) => `one of ${values.map((v) => `'${v}'`).join(', ')}`;

/** What a received value was, for "but received ...". */
export function describe(value: unknown): string {
    if (value === undefined) return 'undefined';
    if (value === null) return 'null';
    if (typeof value === 'string') return `${JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)} (string)`;
    if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${String(value)} (${typeof value})`;
    if (typeof value === 'function') return 'a function';
    if (Array.isArray(value)) return `an array of length ${value.length}`;
    const name = (value as object).constructor?.name;
    return name && name !== 'Object' ? `an instance of ${name}` : 'an object';
}

function editDistance(a: string, b: string): number {
    const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        let prev = dp[0];
        dp[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const tmp = dp[j];
            dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
            prev = tmp;
        }
    }
    return dp[b.length];
}

/**
 * The known option a misspelled one most likely means: the same name in another case or
 * with dashes or underscores (`cache_type_k`), else llama.cpp's name for it (`n_ctx`,
 * `temp`, `ctk`: see llama-names.ts), else the closest by edit distance, if close enough.
 */
export function suggest(name: string, known: readonly string[]): string | undefined {
    return known.find((candidate) => sameName(candidate, name)) ?? llamaCppAlias(name, known) ?? closest(name, known);
}

/** The known value closest to `name`: the same in another case, dashes or underscores, else by edit distance if close enough. */
function closest(name: string, known: readonly string[]): string | undefined {
    const same = known.find((candidate) => sameName(candidate, name));
    if (same !== undefined) return same;
    let best: string | undefined;
    let bestDistance = Infinity;
    for (const candidate of known) {
        const d = editDistance(name, candidate);
        if (d < bestDistance) {
            bestDistance = d;
            best = candidate;
        }
    }
    return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
    let value = input;
    for (const key of path) {
        if (value === null || typeof value !== 'object') return undefined;
        value = (value as Record<PropertyKey, unknown>)[key];
    }
    return value;
}

/** The string values a choice takes (an enum, or the enums of a union such as flashAttention's). */
function choices(issue: z.core.$ZodIssue): string[] {
    if (issue.code === 'invalid_value') return issue.values.filter((v): v is string => typeof v === 'string');
    if (issue.code === 'invalid_union') return issue.errors.flat().flatMap((inner) => (inner.path.length === 0 ? choices(inner) : []));
    return [];
}

/** "; did you mean 'q8_0'?" for a string that is one of the choices in another case, or close to one. */
function choiceHint(issue: z.core.$ZodIssue, received: unknown): string {
    if (typeof received !== 'string') return '';
    const hint = closest(received, choices(issue));
    return hint === undefined ? '' : `; did you mean '${hint}'?`;
}

/** One problem per option: a value that breaks two checks (e.g. 2^53: too large, and no safe integer) is reported once. */
function firstPerPath(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
    const seen = new Set<string>();
    return issues.filter((issue) => {
        if (issue.code === 'unrecognized_keys') return true;
        const key = JSON.stringify(issue.path.map(String));
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
    });
}

/**
 * Validates `input` against `schema`; throws a LlamaConfigError whose message lists
 * each problem as "Expected X for option but received Y".
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
        throw new LlamaConfigError(`Expected an options object for ${what} but received ${describe(input)}`);
    }
    const result = schema.safeParse(input);
    if (result.success) return result.data;
    const known = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
    const paths = new Set<string>();
    const messages = firstPerPath(result.error.issues).map((issue) => {
        if (issue.code === 'unrecognized_keys') {
            issue.keys.forEach((key) => paths.add(key));
            return issue.keys
                .map((key) => {
                    const hint = suggest(key, known);
                    return `Unknown option "${key}" for ${what}${hint ? `; did you mean "${hint}"?` : ''}`;
                })
                .join('; ');
        }
        const path = issue.path.map(String).join('.');
        if (path) paths.add(path);
        const received = valueAt(input, issue.path);
        return `Expected ${issue.message} for ${path || what} but received ${describe(received)}${choiceHint(issue, received)}`;
    });
    throw new LlamaConfigError(messages.join('; '), 'INVALID_CONFIG', [...paths]);
}

/**
 * Validates one argument that is not an options object (e.g. setLoras()'s list); throws a
 * LlamaConfigError with code INVALID_ARGUMENT in parseOptions()'s wording, the path starting
 * at the argument's name: "Expected X for adapters.0.lora but received Y".
 */
export function parseArgument<S extends z.ZodType>(schema: S, value: unknown, name: string): z.output<S> {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    const paths = new Set<string>();
    const messages = firstPerPath(result.error.issues).map((issue) => {
        const path = [name, ...issue.path.map(String)].join('.');
        paths.add(path);
        const received = valueAt(value, issue.path);
        return `Expected ${issue.message} for ${path} but received ${describe(received)}${choiceHint(issue, received)}`;
    });
    throw new LlamaConfigError(messages.join('; '), 'INVALID_ARGUMENT', [...paths]);
}
