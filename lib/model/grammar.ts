/**
 * Output constraints to llama.cpp grammars: GBNF checked against the model's vocabulary,
 * JSON schemas compiled by llama.cpp's json-schema-to-grammar, before a request is queued.
 */
import { binding, type NativeGrammar, type NativeModel } from '../native/binding.js';
import { captureStack, fromNative, LlamaConfigError, LlamaError } from '../errors.js';
import { defaults } from '../options/defaults.js';
import type { GrammarOptions } from '../options/grammar-options.js';

/** How deeply groups nest in a GBNF grammar, strings, character classes and comments skipped. */
export function gbnfNesting(grammar: string): number {
    let depth = 0;
    let max = 0;
    for (let i = 0; i < grammar.length; i++) {
        const c = grammar[i];
        if (c === '"' || c === '[') {
            const end = c === '"' ? '"' : ']';
            for (i++; i < grammar.length && grammar[i] !== end; i++) {
                if (grammar[i] === '\\') i++;
            }
        } else if (c === '#') {
            while (i < grammar.length && grammar[i] !== '\n') i++;
        } else if (c === '(') {
            max = Math.max(max, ++depth);
        } else if (c === ')') {
            depth = Math.max(0, depth - 1);
        }
    }
    return max;
}

/** How deeply arrays and objects nest in a JSON value (a cycle counts as too deep). */
export function jsonNesting(value: unknown, limit: number, depth = 0): number {
    if (depth > limit || value === null || typeof value !== 'object') return depth;
    let max = depth;
    for (const v of Object.values(value as object)) {
        max = Math.max(max, jsonNesting(v, limit, depth + 1));
        if (max > limit) break;
    }
    return max;
}

function tooDeep(what: string, depth: number): LlamaError {
    return new LlamaError('INVALID_GRAMMAR', `The ${what} nests ${depth > defaults.grammar.maxNesting ? 'more than ' + defaults.grammar.maxNesting : depth} levels deep: llama.cpp parses it recursively, so at most ${defaults.grammar.maxNesting} levels are accepted`);
}

/**
 * Checks a JSON schema before llama.cpp's json-schema-to-grammar sees it (it recurses on
 * nesting, on `$ref` chains and on the groups of a `pattern`, and copies the schema per
 * reference): INVALID_GRAMMAR when it nests too deeply, is too large or has too many references.
 */
export function checkJsonSchema(schema: unknown, what = 'JSON schema'): void {
    const limit = defaults.grammar.maxNesting;
    const depth = jsonNesting(schema, limit);
    if (depth > limit) throw tooDeep(what, depth);
    const text = JSON.stringify(schema) ?? '';
    if (text.length > defaults.grammar.maxSchemaBytes) {
        throw new LlamaError('INVALID_GRAMMAR', `The ${what} is ${text.length} bytes of JSON: at most ${defaults.grammar.maxSchemaBytes} are accepted`);
    }
    const refs = text.split('"$ref"').length - 1;
    if (refs > defaults.grammar.maxSchemaRefs) {
        throw new LlamaError('INVALID_GRAMMAR', `The ${what} has ${refs} $ref entries: at most ${defaults.grammar.maxSchemaRefs} are accepted`);
    }
    const patterns = (v: unknown): void => {
        if (v === null || typeof v !== 'object') return;
        for (const [k, x] of Object.entries(v as object)) {
            if (k === 'pattern' && typeof x === 'string' && gbnfNesting(x.replace(/\\./g, '')) > limit) throw tooDeep(`pattern of the ${what}`, limit + 1);
            patterns(x);
        }
    };
    patterns(schema);
}

/** llama.cpp's json-schema-to-grammar of `schema`; INVALID_GRAMMAR when it refuses it. */
export function schemaToGrammar(schema: unknown): string {
    checkJsonSchema(schema);
    const stack = captureStack();
    try {
        return binding().jsonSchemaToGrammar(JSON.stringify(schema));
    } catch (error) {
        throw fromNative(error, stack);
    }
}

/** Parses `grammar` against the model's vocabulary: INVALID_GRAMMAR with llama.cpp's message. */
export function checkGrammar(model: NativeModel, grammar: string): void {
    const limit = defaults.grammar.maxNesting;
    const depth = gbnfNesting(grammar);
    if (depth > limit) throw tooDeep('grammar', depth);
    // llama.cpp checks left recursion rule by rule, recursively.
    const rules = grammar.split('::=').length - 1;
    if (rules > defaults.grammar.maxRules) {
        throw new LlamaError('INVALID_GRAMMAR', `The grammar has ${rules} rules: at most ${defaults.grammar.maxRules} are accepted`);
    }
    const stack = captureStack();
    try {
        binding().checkGrammar(model, grammar, 'root');
    } catch (error) {
        throw fromNative(error, stack);
    }
}

/** Checks that at most one of the constraint options is given (INVALID_CONFIG). */
export function checkOneConstraint(opts: GrammarOptions): void {
    const given = [
        opts.grammar !== undefined && 'grammar',
        opts.jsonSchema !== undefined && 'jsonSchema',
        opts.responseFormat !== undefined && opts.responseFormat.type !== 'text' && 'responseFormat',
    ].filter((x): x is string => typeof x === 'string');
    if (given.length > 1) {
        throw new LlamaConfigError(`Expected at most one of grammar, jsonSchema and responseFormat but received ${given.join(' and ')}`, 'INVALID_CONFIG', given);
    }
}

/** The GBNF of the constraint options (at most one of them), or undefined for none. */
export function grammarText(opts: GrammarOptions): string | undefined {
    checkOneConstraint(opts);
    if (opts.grammar !== undefined) return opts.grammar;
    if (opts.jsonSchema !== undefined) return schemaToGrammar(opts.jsonSchema);
    if (opts.responseFormat?.type === 'json_object') return schemaToGrammar(opts.responseFormat.schema ?? {});
    return undefined;
}

/** The sampler grammar of the constraint options, checked; undefined for none. */
export function compileGrammar(model: NativeModel, opts: GrammarOptions): NativeGrammar | undefined {
    const text = grammarText(opts);
    if (text === undefined) return undefined;
    checkGrammar(model, text);
    return { text, lazy: false, patterns: [], tokens: [], prefill: [] };
}
