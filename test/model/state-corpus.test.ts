// The damaged-state corpus (test/support/state-corpus/corpus.ts): every file loads (and the
// context decodes on it) or gives a LlamaError, and the context still decodes after it; no
// crash, no hang. Files are loaded in child processes, a batch per child; a batch that dies
// is re-run a file per child to name the file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaModel, type KvCacheType } from '../../lib/index.js';
import { root } from '../support/global-setup.js';
import { fixtures } from '../support/fixtures.js';
import { runCorpusChild, type ChildRun } from '../support/child-batch.js';
import { parseState, stateCorpus } from '../support/state-corpus/corpus.js';
import { xxh64 } from '../support/state-corpus/xxh64.js';

const runner = join(root, 'test', 'support', 'state-corpus', 'load-states.mjs');
const dist = pathToFileURL(join(root, 'dist', 'index.js')).href;
const PROMPT = 'Once upon a time there was a little robot';

async function savedState(path: string, kv: [KvCacheType, KvCacheType], flashAttention: 'on' | 'off'): Promise<Buffer> {
    const model = await LlamaModel.load({ path, gpu: false });
    const ctx = new LlamaContext({ model, contextSize: 512, threads: 2, cacheTypeK: kv[0], cacheTypeV: kv[1], flashAttention });
    const seq = await ctx.acquireSequence();
    await seq.evaluate(model.tokenize(PROMPT));
    const state = await seq.saveState();
    ctx.dispose();
    model.dispose();
    return state;
}

function loadInChild(cases: { file: string; config: string }[], timeoutMs: number): ChildRun {
    return runCorpusChild(runner, cases, { LLAMA_KV_DIST: dist, LLAMA_KV_STATE_MODEL: fixtures.q8_0 }, timeoutMs);
}

describe('damaged-state corpus', () => {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-state-corpus-'));
    afterAll(() => rmSync(work, { recursive: true, force: true }));

    it('the checksum is XXH64 of the tokens and the payload (an independent implementation agrees)', async () => {
        expect(xxh64(Buffer.alloc(0))).toBe(0xef46db3751d8e999n);
        expect(xxh64(Buffer.from('abc'))).toBe(0x44bc2cf5ad770999n);
        const state = await savedState(fixtures.q8_0, ['q8_0', 'q4_0'], 'on');
        const { prefix, tokens, payload } = parseState(state);
        expect(state.readBigUInt64LE(prefix.length + 24)).toBe(xxh64(Buffer.concat([tokens, payload])));
    });

    it('every file loads or gives a LlamaError, and the context decodes after it: no crash, no hang', async () => {
        const base = await savedState(fixtures.q8_0, ['q8_0', 'q4_0'], 'on');
        const plain = await savedState(fixtures.q8_0, ['f16', 'f16'], 'off');
        const foreign = [
            await savedState(fixtures.f16, ['q8_0', 'q4_0'], 'on'), // same shapes, another model's values
            await savedState(fixtures.hd48, ['f16', 'f16'], 'off'), // other head dimensions (f16: q8_0 blocks do not divide 48)
            await savedState(fixtures.q8_0, ['f16', 'f16'], 'on'), // other K/V types
        ];
        const model = await LlamaModel.load({ path: fixtures.q8_0, gpu: false, vocabOnly: true });
        const nVocab = model.metadata.vocabSize;
        model.dispose();
        const cases = stateCorpus({ base, plain, foreign }, nVocab);
        expect(cases.length).toBeGreaterThanOrEqual(300);
        const outcomes = new Map<string, number>();
        const failures: string[] = [];
        const batchSize = 120;
        for (let start = 0; start < cases.length; start += batchSize) {
            const batch = cases.slice(start, start + batchSize).map((c, i) => ({ ...c, file: join(work, `case-${start + i}.state`) }));
            for (const c of batch) writeFileSync(c.file, c.bytes);
            const run = loadInChild(batch.map(({ file, config }) => ({ file, config })), 300_000);
            for (const c of batch) {
                let outcome = run.results.get(c.file);
                if (outcome === undefined) {
                    const alone = loadInChild([{ file: c.file, config: c.config }], 60_000);
                    outcome = alone.results.get(c.file) ?? (alone.timedOut ? 'HANG' : `CRASH (${alone.signal ?? `exit ${alone.status}`}): ${alone.stderr.trim().split('\n').slice(-3).join(' | ')}`);
                }
                outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
                if (!/^(loaded|error:[A-Z_]+)$/.test(outcome) || outcome === 'error:INTERNAL') failures.push(`${c.name}: ${outcome}`);
            }
            for (const c of batch) rmSync(c.file, { force: true });
        }
        process.stdout.write(`[state corpus] ${cases.length} files: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
        expect(failures).toEqual([]);
        // The undamaged bytes among them load: a corpus where nothing loads would test nothing.
        expect(outcomes.get('loaded') ?? 0).toBeGreaterThan(0);
    }, 600_000);
});
