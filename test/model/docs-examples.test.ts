// The README's TypeScript examples must run as written: each complete example (one
// with an import) runs against the fixture model in place of 'model.gguf'.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fixtures } from '../helpers/fixtures.js';

const root = join(import.meta.dirname, '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const examples = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]).filter((code) => code.includes("from 'llama-kv'"));

describe('README examples', () => {
    it('there are examples to run', () => {
        expect(examples.length).toBeGreaterThanOrEqual(2);
    });

    it.each(examples.map((code, i) => [i, code]))('example %i runs', (_i, code) => {
        const dir = mkdtempSync(join(tmpdir(), 'llama-kv-readme-'));
        const file = join(dir, 'example.mjs');
        const source = String(code)
            .replace("from 'llama-kv'", `from ${JSON.stringify(pathToFileURL(join(root, 'dist', 'index.js')).href)}`)
            .replaceAll("'model.gguf'", JSON.stringify(fixtures.f16))
            .replaceAll("'adapter.gguf'", JSON.stringify(fixtures.loraAttn));
        writeFileSync(file, source);
        const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000, cwd: dir });
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        expect(r.stdout.length).toBeGreaterThan(0);
    });
});
