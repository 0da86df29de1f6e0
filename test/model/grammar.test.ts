// Constrained output through llama.cpp's grammar sampler: GBNF, JSON schemas compiled by
// llama.cpp's json-schema-to-grammar, response formats, logit bias, and bad grammars.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaError, LlamaModel } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';
import { checkSchema, type Schema } from '../support/json/check-schema.js';

let model: LlamaModel;
let ctx: LlamaContext;
beforeAll(async () => {
    model = await LlamaModel.load({ path: fixtures.f16 });
    ctx = new LlamaContext({ model, contextSize: 1024, parallel: 4, threads: 2 });
});
afterAll(() => model.dispose());

/**
 * Ten schemas of the kinds the issue names. Strings are ASCII patterns: llama.cpp's grammar
 * checks code points, but a random model also samples byte tokens, and the grammar lets a
 * run of them through that is not valid UTF-8 (JavaScript then reads each byte as U+FFFD,
 * so a maxLength counted in characters can be exceeded); a bounded class keeps it exact.
 */
const SCHEMAS: [string, Schema][] = [
    ['required and optional fields', { type: 'object', properties: { name: { type: 'string', pattern: '^[a-z]{1,8}$' }, note: { type: 'string', pattern: '^[a-z ]{0,6}$' } }, required: ['name'], additionalProperties: false }],
    ['an enum', { type: 'object', properties: { color: { enum: ['red', 'green', 'blue'] } }, required: ['color'], additionalProperties: false }],
    ['an array with min and max items', { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 2, maxItems: 4 }],
    ['nested objects', { type: 'object', properties: { user: { type: 'object', properties: { id: { type: 'integer', minimum: 1, maximum: 999 }, admin: { type: 'boolean' } }, required: ['id', 'admin'], additionalProperties: false } }, required: ['user'], additionalProperties: false }],
    ['an integer range', { type: 'object', properties: { age: { type: 'integer', minimum: 18, maximum: 65 } }, required: ['age'], additionalProperties: false }],
    ['a string pattern', { type: 'object', properties: { code: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{2}$' } }, required: ['code'], additionalProperties: false }],
    ['a const and a boolean', { type: 'object', properties: { kind: { const: 'point' }, visible: { type: 'boolean' } }, required: ['kind', 'visible'], additionalProperties: false }],
    ['an array of objects', { type: 'array', items: { type: 'object', properties: { k: { enum: ['a', 'b'] }, v: { type: 'integer', minimum: -5, maximum: 5 } }, required: ['k', 'v'], additionalProperties: false }, minItems: 1, maxItems: 3 }],
    ['string lengths', { type: 'object', properties: { id: { type: 'string', pattern: '^[a-z0-9]{2,4}$', minLength: 2, maxLength: 4 } }, required: ['id'], additionalProperties: false }],
    ['a top-level enum of mixed types', { enum: [1, 'two', null, true] }],
];

describe('JSON schema output (llama.cpp json-schema-to-grammar)', () => {
    it('the schema checker rejects what does not follow a schema (so the next test can fail)', () => {
        expect(checkSchema({ name: 5 }, SCHEMAS[0][1])).not.toEqual([]);
        expect(checkSchema({ color: 'pink' }, SCHEMAS[1][1])).not.toEqual([]);
        expect(checkSchema([1], SCHEMAS[2][1])).not.toEqual([]);
        expect(checkSchema({ age: 70 }, SCHEMAS[4][1])).not.toEqual([]);
        expect(checkSchema({ code: 'ab-12' }, SCHEMAS[5][1])).not.toEqual([]);
        expect(checkSchema({ name: 'ok', extra: 1 }, SCHEMAS[0][1])).not.toEqual([]);
        expect(checkSchema({ name: 'ok' }, SCHEMAS[0][1])).toEqual([]);
    });

    it.each(SCHEMAS)('%s: 20 generations at temperature 1 all parse and validate', async (_name, schema) => {
        const runs = await Promise.all(Array.from({ length: 20 }, (_, i) =>
            ctx.complete('Answer in JSON:', { jsonSchema: schema, temperature: 1, seed: 1000 + i, maxTokens: 160 })));
        for (const r of runs) {
            expect(r.finishReason).toBe('eos'); // the grammar completed and allowed only the end
            const value = JSON.parse(r.text);
            expect(checkSchema(value, schema), r.text).toEqual([]);
        }
        expect(new Set(runs.map((r) => r.text)).size).toBeGreaterThan(1); // sampled, not one fixed output
    }, 300_000);

    it("responseFormat { type: 'json_object' } gives JSON", async () => {
        const r = await ctx.complete('JSON:', { responseFormat: { type: 'json_object' }, temperature: 0.8, seed: 3, maxTokens: 200, logitBias: { [model.metadata.eosToken]: 5 } });
        if (r.finishReason === 'eos') expect(() => JSON.parse(r.text)).not.toThrow();
        else expect(r.finishReason).toBe('length');
        const s = await ctx.complete('JSON:', { responseFormat: { type: 'json_object', schema: SCHEMAS[1][1] }, temperature: 1, seed: 4, maxTokens: 60 });
        expect(checkSchema(JSON.parse(s.text), SCHEMAS[1][1])).toEqual([]);
    });
});

describe('GBNF grammars', () => {
    it('the output follows the grammar, and the greedy fast path picks what full-vocabulary application would', async () => {
        const grammar = 'root ::= ("yes" | "no") "." ';
        for (const seed of [1, 2, 3]) {
            const r = await ctx.complete('Reply:', { grammar, temperature: 1, seed, maxTokens: 10 });
            expect(r.text).toMatch(/^(yes|no)\.$/);
            expect(r.finishReason).toBe('eos');
        }
        const greedy = await ctx.complete('Reply:', { grammar, temperature: 0, maxTokens: 10 });
        expect(greedy.text).toMatch(/^(yes|no)\.$/);
    });

    it('a grammar that does not parse is INVALID_GRAMMAR with what llama.cpp says and where', async () => {
        const bad = ['root ::= "yes', 'root ::= ( "a" ', 'root ::= undefined-rule', 'not a grammar'];
        for (const grammar of bad) {
            const error = await ctx.complete('x', { grammar }).then(() => null, (e: unknown) => e);
            expect(error, grammar).toBeInstanceOf(LlamaError);
            expect((error as LlamaError).code).toBe('INVALID_GRAMMAR');
            expect((error as LlamaError).message).toMatch(/^the grammar is invalid: \S/);
        }
        const where = await ctx.complete('x', { grammar: 'root ::= "a" | ( "b" ' }).catch((e: LlamaError) => e);
        expect((where as LlamaError).message).toContain("expecting ')'");
    });

    it('deeply nested grammars and schemas are refused before llama.cpp parses them recursively', async () => {
        const deep = `root ::= ${'('.repeat(5000)}"a"${')'.repeat(5000)}`;
        await expect(ctx.complete('x', { grammar: deep })).rejects.toMatchObject({ code: 'INVALID_GRAMMAR', message: expect.stringContaining('levels deep') });
        let schema: Schema = { type: 'string' };
        for (let i = 0; i < 2000; i++) schema = { type: 'array', items: schema };
        await expect(ctx.complete('x', { jsonSchema: schema })).rejects.toMatchObject({ code: 'INVALID_GRAMMAR' });
        // Parentheses inside strings and character classes do not count.
        const quoted = `root ::= "${'('.repeat(200)}" [()]`;
        const r = await ctx.complete('x', { grammar: quoted, maxTokens: 30, temperature: 0 });
        expect(r.text.startsWith('('.repeat(20))).toBe(true);
    });

    it('grammars and schemas that would take hours or overflow the stack are refused quickly (found in review)', async () => {
        // 24 levels of two alternatives: 2^24 parse stacks at once (vendor/patches/0007 caps them).
        const levels = Array.from({ length: 24 }, (_, i) => `a${i} ::= a${i + 1} "x" | a${i + 1} "y"`).join('\n');
        const started = performance.now();
        await expect(ctx.complete('x', { grammar: `root ::= a0\n${levels}\na24 ::= "z"` })).rejects.toMatchObject({ code: 'INVALID_GRAMMAR', message: expect.stringContaining('too ambiguous') });
        expect(performance.now() - started).toBeLessThan(10_000);
        // 200k chained rules: llama.cpp's left-recursion check recurses per rule.
        const chain = Array.from({ length: 200_000 }, (_, i) => `r${i} ::= r${i + 1}`).join('\n');
        await expect(ctx.complete('x', { grammar: `root ::= r0\n${chain}\nr200000 ::= "a"` })).rejects.toMatchObject({ code: 'INVALID_GRAMMAR', message: expect.stringContaining('rules') });
        // A $ref chain of 20k definitions, and a pattern of 100k nested groups.
        const defs: Record<string, unknown> = {};
        for (let i = 0; i < 20_000; i++) defs[`d${i}`] = { $ref: `#/$defs/d${i + 1}` };
        defs.d20000 = { type: 'string' };
        await expect(ctx.complete('x', { jsonSchema: { $defs: defs, $ref: '#/$defs/d0' } })).rejects.toMatchObject({ code: 'INVALID_GRAMMAR' });
        await expect(ctx.complete('x', { jsonSchema: { type: 'string', pattern: `^${'('.repeat(100_000)}a${')'.repeat(100_000)}$` } })).rejects.toMatchObject({ code: 'INVALID_GRAMMAR' });
    });

    it('at most one of grammar, jsonSchema and responseFormat', async () => {
        await expect(ctx.complete('x', { grammar: 'root ::= "a"', jsonSchema: { type: 'string' } })).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    });

    it('a grammar that makes each token slow and never ends is stopped by a signal and a timeout', async () => {
        // Nested repetitions: llama.cpp keeps a stack per way of reading the text so far and
        // applies each to the whole vocabulary, and only "!" (banned) ends it.
        const grammar = 'root ::= ((((((((a)*)*)*)*)*)*)*)* "!"\na ::= [a-z ]';
        const started = performance.now();
        using long = new LlamaContext({ model, contextSize: 16_384, threads: 2 });
        const r = await long.complete('x', { grammar, temperature: 1, seed: 1, maxTokens: 100_000, logitBias: { [model.tokenize('!', { addSpecial: false })[0]]: -Infinity }, signal: AbortSignal.timeout(1000) });
        const elapsed = performance.now() - started;
        expect(r.finishReason).toBe('abort');
        expect(r.timings.generatedTokens).toBeGreaterThan(0);
        expect(elapsed).toBeLessThan(10_000);
        expect((await ctx.complete('x', { maxTokens: 2, temperature: 0 })).timings.generatedTokens).toBe(2); // the context goes on
    });
});

describe('logitBias', () => {
    it('-Infinity bans a token and a large bias forces one (llama.cpp --logit-bias)', async () => {
        const base = await ctx.complete('Once upon a time', { maxTokens: 1, temperature: 0 });
        const first = base.tokens[0];
        const banned = await ctx.complete('Once upon a time', { maxTokens: 1, temperature: 0, logitBias: { [first]: -Infinity } });
        expect(banned.tokens[0]).not.toBe(first);
        const forced = await ctx.complete('Once upon a time', { maxTokens: 3, temperature: 0, logitBias: [[1000, 1000]] });
        expect(forced.tokens).toEqual([1000, 1000, 1000]);
        await expect(ctx.complete('x', { logitBias: { 99999999: 1 } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        await expect(ctx.complete('x', { logitBias: { 1: Infinity } })).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
    });
});
