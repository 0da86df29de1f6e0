// The prompt cache: a sequence's state kept when another prompt takes the sequence, restored
// for a prompt that starts with its tokens (counted through timings.reusedTokens); its RAM
// limit and least-recently-used eviction; files in a folder that a restarted process uses.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaModel } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';

const SYSTEM = 'You are a helpful assistant who answers questions about the sea, ships and the weather. ';
const greedy = { temperature: 0, maxTokens: 8 } as const;

describe('prompt cache', () => {
    let model: LlamaModel;
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-prompt-cache-'));
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.q8_0, gpu: false });
    });
    afterAll(() => {
        model.dispose();
        rmSync(work, { recursive: true, force: true });
    });

    it('a prompt that starts with an overwritten sequence\'s tokens restores them instead of decoding them, with the same output', async () => {
        const system = SYSTEM.repeat(4);
        const plain = new LlamaContext({ model, contextSize: 2048, threads: 2 });
        const expected = await plain.complete(system + 'What is a tide?', greedy);
        plain.dispose();

        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 2, promptCache: {} });
        const first = await ctx.complete(system + 'Why is the sea salty?', greedy);
        expect(first.timings.reusedTokens).toBe(0);
        await ctx.complete('Something else entirely, a story about a cat.', greedy); // takes the only sequence
        expect(ctx.promptCache).toMatchObject({ entries: 1, hits: 0 });
        const again = await ctx.complete(system + 'What is a tide?', greedy);
        // The restored state holds system + the first question + its answer: the shared prefix is the system prompt and more.
        const a = model.tokenize(system + 'Why is the sea salty?');
        const b = model.tokenize(system + 'What is a tide?');
        let systemTokens = 0;
        while (a[systemTokens] === b[systemTokens]) systemTokens++;
        expect(systemTokens).toBeGreaterThan(60);
        expect(again.timings.reusedTokens).toBe(systemTokens);
        expect(again.tokens).toEqual(expected.tokens);
        const stats = ctx.promptCache!;
        expect(stats.hits).toBe(1);
        expect(stats.tokensRestored).toBe(systemTokens - 1); // the sequence shared the BOS token already
        expect(stats.ramBytes).toBeGreaterThan(0);
        ctx.dispose();
    });

    it('keeps at most ramBytes in RAM, the least recently used out first', async () => {
        const probe = new LlamaContext({ model, contextSize: 2048, threads: 2 });
        const seq = await probe.acquireSequence();
        await seq.evaluate(model.tokenize(`A: ${SYSTEM}`));
        const oneState = (await seq.saveState()).length;
        probe.dispose();

        const limit = Math.floor(oneState * 2.5); // room for two states of this size
        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 2, promptCache: { ramBytes: limit, minTokens: 8 } });
        for (const name of ['A', 'B', 'C', 'D']) {
            await ctx.evaluate(model.tokenize(`${name}: ${SYSTEM}`));
            expect(ctx.promptCache!.ramBytes).toBeLessThanOrEqual(limit);
        }
        await ctx.evaluate(model.tokenize('E: done'));
        // A, B and C were kept as the next one took the sequence; D as E did: A and B are out.
        expect(ctx.promptCache!.entries).toBe(2);
        const before = ctx.promptCache!;
        const d = await ctx.complete(`D: ${SYSTEM}`, greedy);
        expect(d.timings.reusedTokens).toBe(model.tokenize(`D: ${SYSTEM}`).length - 1); // all but the last, decoded again for its logits
        const a = await ctx.complete(`A: ${SYSTEM}`, greedy);
        expect(a.timings.reusedTokens).toBeLessThanOrEqual(1); // the BOS token, shared with D
        expect(ctx.promptCache!.hits).toBe(before.hits + 1);
        ctx.dispose();
    });

    it('seq.clear() keeps the state first; a state below minTokens is not kept', async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 2, promptCache: { minTokens: 8 } });
        const seq = await ctx.acquireSequence();
        await seq.evaluate(model.tokenize('Hi'));
        await seq.clear();
        expect(ctx.promptCache!.entries).toBe(0);
        await seq.evaluate(model.tokenize(SYSTEM));
        await seq.clear();
        expect(ctx.promptCache!.entries).toBe(1);
        const r = await seq.complete(SYSTEM + 'Tell me.', greedy);
        expect(r.timings.reusedTokens).toBeGreaterThan(8);
        ctx.dispose();
    });

    it('the second process start with the same 2,000-token system prompt decodes only the new tokens', () => {
        const dir = join(work, 'disk');
        const system = SYSTEM.repeat(120);
        const n = model.tokenize(system).length;
        expect(n).toBeGreaterThanOrEqual(2000);
        const dist = pathToFileURL(join(root, 'dist', 'index.js')).href;
        const child = join(root, 'test', 'support', 'state', 'prompt-cache-child.mjs');
        const start = (question: string) => {
            const r = spawnSync(process.execPath, [child, fixtures.q8_0, dir, system, question], { encoding: 'utf8', env: { ...process.env, LLAMA_KV_DIST: dist }, timeout: 240_000 });
            expect(r.status, r.stderr).toBe(0);
            return JSON.parse(r.stdout.trim().split('\n').pop()!) as { timings: { promptTokens: number; reusedTokens: number }; tokens: number[]; cache: { entries: number; hits: number } };
        };
        const first = start('What is a tide?');
        expect(first.timings.reusedTokens).toBe(0);
        expect(readdirSync(dir).filter((f) => f.endsWith('.lkvstate'))).toHaveLength(1);
        expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
        const second = start('Why is the sea salty?');
        expect(second.cache.hits).toBe(1);
        expect(second.timings.reusedTokens).toBeGreaterThanOrEqual(n - 1);
        const decoded = second.timings.promptTokens - second.timings.reusedTokens;
        expect(decoded).toBeLessThanOrEqual(model.tokenize('Why is the sea salty?').length + 2);
    }, 300_000);
});
