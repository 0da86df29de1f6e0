/** The constrained-output options shared by generate(), complete() and chat prompts. */
import { z } from 'zod';

/**
 * What the chat layer sets under this key beside a request's options: the sampler grammar
 * it built (lazy, with its template's triggers), used instead of the options' own, and the
 * special tokens whose text the output shows (the chat format's markers). @internal
 */
export const chatRequestExtras: unique symbol = Symbol('llama-kv.chatRequestExtras');

/** A JSON schema (an object or a boolean, as JSON Schema allows). */
const jsonSchemaValue = () =>
    z.union([z.record(z.string(), z.unknown()), z.boolean()], { error: 'a JSON schema (an object)' });

export const grammarOptionShape = {
    grammar: z.string({ error: 'a GBNF grammar (string)' }).min(1, { error: 'a non-empty GBNF grammar' }).optional(),
    jsonSchema: jsonSchemaValue().optional(),
    responseFormat: z.discriminatedUnion('type', [
        z.strictObject({ type: z.literal('text') }),
        z.strictObject({ type: z.literal('json_object'), schema: jsonSchemaValue().optional() }),
    ], { error: "{ type: 'json_object', schema? } or { type: 'text' }" }).optional(),
};

/** Output constraints: at most one of `grammar`, `jsonSchema` and a JSON `responseFormat`. */
export interface GrammarOptions {
    /**
     * A GBNF grammar (llama.cpp's `--grammar`; root rule `root`) the output must follow. A
     * grammar that does not parse throws INVALID_GRAMMAR with llama.cpp's message and where.
     * Defaults to none.
     */
    grammar?: string;
    /**
     * A JSON schema the output must follow, compiled to a grammar by llama.cpp's
     * json-schema-to-grammar (llama.cpp `--json-schema`). Defaults to none.
     */
    jsonSchema?: Record<string, unknown> | boolean;
    /**
     * `{ type: 'json_object' }`: the output is JSON (with `schema`: JSON that follows it), as
     * llama.cpp's server reads the OpenAI `response_format`. Defaults to `{ type: 'text' }`.
     */
    responseFormat?: { type: 'text' } | { type: 'json_object'; schema?: Record<string, unknown> | boolean };
}
