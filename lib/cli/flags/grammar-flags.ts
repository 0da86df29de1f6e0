/** The output-constraint flags of `run` and `chat`, named as llama.cpp names them (common/arg.cpp). */
import type { GrammarOptions } from '../../options/grammar-options.js';
import { UsageError, type FlagSpec, type ParsedFlags } from './args.js';
import { readFlagFile } from './input.js';

export const grammarFlags: FlagSpec[] = [
    { names: ['--grammar'], key: 'grammar', type: 'string', help: 'GBNF grammar the output must follow (root rule: root)' },
    { names: ['--grammar-file'], key: 'grammarFile', type: 'string', help: 'file to read the GBNF grammar from' },
    { names: ['-j', '--json-schema'], key: 'jsonSchema', type: 'string', help: "JSON schema the output must follow, e.g. '{}' for any JSON object" },
    { names: ['-jf', '--json-schema-file'], key: 'jsonSchemaFile', type: 'string', help: 'file to read the JSON schema from' },
];

/** The grammar or JSON schema the flags give (files read, JSON parsed); the API validates what they hold. */
export async function grammarOptionsFromFlags(flags: ParsedFlags): Promise<Pick<GrammarOptions, 'grammar' | 'jsonSchema'>> {
    const given = grammarFlags.filter((spec) => typeof flags[spec.key] === 'string');
    if (given.length > 1) throw new UsageError(`${given.map((spec) => spec.names.join('/')).join(' and ')} cannot be used together: the output follows one grammar`);
    if (typeof flags.grammar === 'string') return { grammar: flags.grammar };
    if (typeof flags.grammarFile === 'string') return { grammar: await readFlagFile('--grammar-file', flags.grammarFile) };
    if (typeof flags.jsonSchema === 'string') return { jsonSchema: parseSchema('-j/--json-schema', flags.jsonSchema) };
    if (typeof flags.jsonSchemaFile === 'string') {
        return { jsonSchema: parseSchema(`-jf/--json-schema-file "${flags.jsonSchemaFile}"`, await readFlagFile('-jf/--json-schema-file', flags.jsonSchemaFile)) };
    }
    return {};
}

function parseSchema(what: string, text: string): GrammarOptions['jsonSchema'] {
    let schema: unknown;
    try {
        schema = JSON.parse(text);
    } catch (error) {
        throw new UsageError(`${what} is not JSON: ${(error as Error).message}`);
    }
    // An array or a number is not a schema: the API says so, naming its option (jsonSchema).
    return schema as GrammarOptions['jsonSchema'];
}
