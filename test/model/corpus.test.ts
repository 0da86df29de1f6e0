// The corrupted-model corpus (test/support/corpus/corpus.ts): every file loads (and generates a
// token) or gives a LlamaError; zero crashes, zero hangs. Files are loaded in child
// processes, a batch per child, so a crash is counted instead of killing the runner;
// a batch that dies is re-run a file per child to name the file.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureFixtureModel } from '../../lib/demo/models.js';
import { parseGguf } from '../../lib/gguf/reader.js';
import { isGgufArrayPending } from '../../lib/gguf/lazy-array.js';
import { corpusCases } from '../support/corpus/corpus.js';
import { root } from '../support/global-setup.js';
import { fixtures } from '../support/fixtures.js';
import { runCorpusChild, type ChildRun } from '../support/child-batch.js';

const runner = join(root, 'test', 'support', 'corpus', 'load-files.mjs');
const dist = pathToFileURL(join(root, 'dist', 'index.js')).href;

function loadInChild(files: string[], timeoutMs: number): ChildRun {
    return runCorpusChild(runner, files, { LLAMA_KV_DIST: dist }, timeoutMs);
}

describe('corrupted-model corpus', () => {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-corpus-'));
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    it('the header reader finds every fault while parsing: lazily as eagerly, nothing decoded', async () => {
        const original = readFileSync(await ensureFixtureModel('micro-f16', { dir: fixtures.cacheDir }));
        // The cases that change the header's bytes (not the writer's rewrites nor the tensor table).
        const cases = corpusCases(original).filter((c) => /^(lazy kv |kv |flip |smash |truncated |n_tensors=|n_kv=)/.test(c.name));
        const lazyCases = cases.filter((c) => c.name.startsWith('lazy kv '));
        expect(lazyCases.length).toBe(25); // tokens (counts, middle lengths, cuts), scores and token types (counts, cuts)
        /** The parse's error, or the keys with each array's length and ends (the lazy ones decoded by reading them). */
        const outcome = (bytes: Buffer, eager: boolean) => {
            try {
                const meta = parseGguf(bytes, eager ? { lazyArrayMinLength: Infinity } : {});
                const pending = Object.keys(meta.kv).filter((k) => isGgufArrayPending(meta.kv, k)).length;
                const summary = Object.keys(meta.kv).map((k) => {
                    const v = meta.kv[k];
                    return Array.isArray(v) ? [k, v.length, ...v.slice(0, 3), ...v.slice(-3)] : [k, v];
                });
                return { pending, text: JSON.stringify(summary, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) };
            } catch (error) {
                return { pending: 0, text: `error: ${(error as Error).message}` };
            }
        };
        expect(outcome(original, false).pending).toBe(3); // tokens, scores, token types: not decoded by the parse
        const differing: string[] = [];
        let lazyErrors = 0;
        const file = join(work, 'parse.gguf');
        for (const c of cases) {
            await c.write(file);
            const bytes = readFileSync(file);
            const lazy = outcome(bytes, false);
            const eager = outcome(bytes, true);
            if (c.name.startsWith('lazy kv ') && lazy.text.startsWith('error: ')) lazyErrors++;
            if (lazy.text !== eager.text) differing.push(`${c.name}: lazy ${lazy.text.slice(0, 200)} / eager ${eager.text.slice(0, 200)}`);
        }
        expect(differing).toEqual([]);
        // Most lazy-path cases are parse errors (a count one more than the elements may still parse as other keys).
        expect(lazyErrors).toBeGreaterThanOrEqual(lazyCases.length / 2);
    }, 300_000);

    it('every file loads or gives a LlamaError: no crash, no hang', async () => {
        const original = readFileSync(await ensureFixtureModel('micro-f16', { dir: fixtures.cacheDir }));
        const cases = corpusCases(original);
        expect(cases.length).toBeGreaterThanOrEqual(500);
        const outcomes = new Map<string, number>();
        const failures: string[] = [];
        const batchSize = 60;
        for (let start = 0; start < cases.length; start += batchSize) {
            const batch = cases.slice(start, start + batchSize);
            const files = batch.map((_, i) => join(work, `case-${start + i}.gguf`));
            await Promise.all(batch.map((c, i) => c.write(files[i])));
            const run = loadInChild(files, 120_000);
            for (const [i, file] of files.entries()) {
                let outcome = run.results.get(file);
                if (outcome === undefined) {
                    // The batch died before this file's line: load it alone to see what it does.
                    const alone = loadInChild([file], 30_000);
                    outcome = alone.results.get(file) ?? (alone.timedOut ? 'HANG' : `CRASH (${alone.signal ?? `exit ${alone.status}`}): ${alone.stderr.trim().split('\n').slice(-3).join(' | ')}`);
                }
                const kind = outcome.replace(/:.*$/, '').replace(/^loaded, then error$/, 'loaded, then error');
                outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
                if (!(outcome === 'generated' || /^(loaded, then )?error:[A-Z_]+$/.test(outcome))) failures.push(`${batch[i].name}: ${outcome}`);
            }
            for (const file of files) rmSync(file, { force: true });
        }
        process.stdout.write(`[corpus] ${cases.length} files: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
        expect(failures).toEqual([]);
    }, 600_000);
});
