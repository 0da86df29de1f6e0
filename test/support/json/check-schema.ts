/**
 * A small JSON Schema checker for the keywords the grammar tests use (type, properties,
 * required, additionalProperties false, enum, const, items, minItems, maxItems, minimum,
 * maximum, minLength, maxLength, pattern): the errors, empty when `value` follows `schema`.
 * Independent of llama.cpp's json-schema-to-grammar, whose output it checks.
 */
export type Schema = Record<string, unknown>;

export function checkSchema(value: unknown, schema: Schema, path = '$'): string[] {
    const errors: string[] = [];
    const fail = (what: string) => errors.push(`${path}: ${what}`);
    if ('const' in schema && JSON.stringify(value) !== JSON.stringify(schema.const)) fail(`not the const ${JSON.stringify(schema.const)}`);
    if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) fail(`not one of ${JSON.stringify(schema.enum)}`);
    const type = schema.type as string | undefined;
    const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);
    if (type !== undefined) {
        const actual = typeOf(value);
        const ok = actual === type || (type === 'number' && (actual === 'integer' || actual === 'number'));
        if (!ok) {
            fail(`type ${actual}, expected ${type}`);
            return errors;
        }
    }
    if (typeof value === 'number') {
        if (typeof schema.minimum === 'number' && value < schema.minimum) fail(`${value} < minimum ${schema.minimum}`);
        if (typeof schema.maximum === 'number' && value > schema.maximum) fail(`${value} > maximum ${schema.maximum}`);
    }
    if (typeof value === 'string') {
        const length = [...value].length;
        if (typeof schema.minLength === 'number' && length < schema.minLength) fail(`length ${length} < minLength ${schema.minLength}`);
        if (typeof schema.maxLength === 'number' && length > schema.maxLength) fail(`length ${length} > maxLength ${schema.maxLength}`);
        if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) fail(`does not match ${schema.pattern}`);
    }
    if (Array.isArray(value)) {
        if (typeof schema.minItems === 'number' && value.length < schema.minItems) fail(`${value.length} items < minItems ${schema.minItems}`);
        if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) fail(`${value.length} items > maxItems ${schema.maxItems}`);
        if (schema.items && typeof schema.items === 'object') value.forEach((v, i) => errors.push(...checkSchema(v, schema.items as Schema, `${path}[${i}]`)));
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        const obj = value as Record<string, unknown>;
        const props = (schema.properties ?? {}) as Record<string, Schema>;
        for (const key of (schema.required ?? []) as string[]) if (!(key in obj)) fail(`missing required ${key}`);
        for (const [key, v] of Object.entries(obj)) {
            if (key in props) errors.push(...checkSchema(v, props[key], `${path}.${key}`));
            else if (schema.additionalProperties === false) fail(`unexpected property ${key}`);
        }
    }
    return errors;
}
