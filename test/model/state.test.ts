// Saved state: round trips are bit-exact (next-token logits, greedy continuation), across
// processes too; every header field that differs is refused with STATE_MISMATCH naming it;
// damaged bytes with INVALID_STATE_FILE; a load beside running sequences leaves them untouched.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, LlamaContext, LlamaError, LlamaModel, planFit, type KvCacheType } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';

const PROMPT = 'Once upon a time there was a little robot who wanted to learn how to paint the sea';
const KV_PAIRS: [KvCacheType, KvCacheType][] = [['f16', 'f16'], ['q8_0', 'q8_0'], ['q8_0', 'q4_0']];
const bytesOf = (f: Float32Array) => Buffer.from(f.buffer, f.byteOffset, f.byteLength);

async function rejection(p: Promise<unknown>): Promise<LlamaError> {
    try {
        await p;
    } catch (error) {
        expect(error).toBeInstanceOf(LlamaError);
        return error as LlamaError;
    }
    throw new Error('expected a rejection');
}

describe('saved state', () => {
    let model: LlamaModel;
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-state-'));
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.q8_0, gpu: false });
    });
    afterAll(() => {
        model.dispose();
        rmSync(work, { recursive: true, force: true });
    });

    const context = (kv: [KvCacheType, KvCacheType], extra: object = {}) =>
        new LlamaContext({ model, contextSize: 512, threads: 2, cacheTypeK: kv[0], cacheTypeV: kv[1], flashAttention: 'on', ...extra });

    for (const kv of KV_PAIRS) {
        it(`round trip (${kv.join('/')}): the next-token logits are bit-identical and greedy continues the same`, async () => {
            const tokens = model.tokenize(PROMPT);
            const a = context(kv);
            const seq = await a.acquireSequence();
            await seq.evaluate(tokens);
            const before = await seq.evaluate(tokens); // decodes the last token on the cache
            const saved = await seq.saveState();
            const continued = await seq.complete(tokens, { temperature: 0, maxTokens: 24 });

            const b = context(kv);
            const other = await b.acquireSequence();
            await other.loadState(saved);
            expect([...other.tokens]).toEqual([...tokens]);
            expect(b.sequences[other.id].cells).toBe(tokens.length);
            const after = await other.evaluate(tokens);
            expect(bytesOf(after).equals(bytesOf(before))).toBe(true);
            const again = await other.complete(tokens, { temperature: 0, maxTokens: 24 });
            expect(again.tokens).toEqual(continued.tokens);
            expect(again.timings.promptTokens).toBe(tokens.length);
            a.dispose();
            b.dispose();
        });
    }

    it('cells out of position order (kvUnified reuse, a context shift) save and load bit-identically', async () => {
        const kv: [KvCacheType, KvCacheType] = ['q8_0', 'q8_0'];
        const shared = context(kv, { parallel: 2, kvUnified: true, contextSize: 1024 });
        const [a, b] = [await shared.acquireSequence(), await shared.acquireSequence()];
        const long = model.tokenize(PROMPT.repeat(3));
        await a.evaluate(long);
        const other = model.tokenize('In a galaxy far, far away there lived a painter of stars and of the sea');
        await b.evaluate(other);
        // a keeps its first 10 tokens and takes 20 new ones: they land in the cells it freed, below b's.
        await a.evaluate(Int32Array.from([...long.slice(0, 10), ...model.tokenize(PROMPT, { addSpecial: false }).slice(0, 20)]));
        const bMore = Int32Array.from([...other, ...model.tokenize(' and then', { addSpecial: false })]);
        await b.evaluate(bMore); // b's new tokens go into cells below its earlier ones
        for (const seq of [a, b]) {
            const before = await seq.evaluate(seq.tokens);
            const state = await seq.saveState();
            const fresh = context(kv, { parallel: 2, kvUnified: true, contextSize: 1024 });
            const target = await fresh.acquireSequence();
            await target.loadState(state);
            expect(bytesOf(await target.evaluate(seq.tokens)).equals(bytesOf(before))).toBe(true);
            fresh.dispose();
        }
        shared.dispose();

        // A shift leaves positions 0..n-1 in cells of another order.
        const small = context(kv, { contextSize: 256, onContextFull: 'shift' });
        const seq = await small.acquireSequence();
        const r = await seq.complete(PROMPT.repeat(5), { temperature: 0, maxTokens: 200, keep: 4 });
        expect(r.timings.contextShifts).toBeGreaterThan(0);
        const tokens = seq.tokens;
        const before = await seq.evaluate(tokens);
        const state = await seq.saveState();
        const fresh = context(kv, { contextSize: 256 });
        const target = await fresh.acquireSequence();
        await target.loadState(state);
        expect(bytesOf(await target.evaluate(tokens)).equals(bytesOf(before))).toBe(true);
        small.dispose();
        fresh.dispose();
    });

    it('a q4_0 K/V state is about a quarter of an f16 one; the file equals the Buffer', async () => {
        const tokens = model.tokenize(PROMPT.repeat(4));
        const sizes: Record<string, number> = {};
        for (const kv of [['f16', 'f16'], ['q4_0', 'q4_0']] as [KvCacheType, KvCacheType][]) {
            const ctx = context(kv);
            const seq = await ctx.acquireSequence();
            await seq.evaluate(tokens);
            const buffer = await seq.saveState();
            const file = join(work, `size-${kv[0]}.state`);
            expect(await seq.saveStateFile(file)).toBe(buffer.length);
            expect(readFileSync(file).equals(buffer)).toBe(true);
            expect(readdirSync(work).filter((f) => f.endsWith('.tmp'))).toEqual([]);
            sizes[kv[0]] = buffer.length;
            ctx.dispose();
        }
        // q4_0 is 4.5 bits a value against 16: 0.28 of the KV bytes, plus the per-cell metadata and header.
        expect(sizes.q4_0 / sizes.f16).toBeGreaterThan(0.25);
        expect(sizes.q4_0 / sizes.f16).toBeLessThan(0.35);
    });

    for (const kv of [['f16', 'f16'], ['q8_0', 'q4_0']] as [KvCacheType, KvCacheType][]) {
        it(`memoryReport and estimateMemory give the state size exactly, bar the header's JSON (${kv.join('/')})`, async () => {
            const ctx = context(kv, { parallel: 2, contextSize: 1024 });
            const report = ctx.memoryReport().kv.state;
            const estimate = (await estimateMemory({ model: fixtures.q8_0, contextSize: 1024, parallel: 2, cacheTypeK: kv[0], cacheTypeV: kv[1], flashAttention: 'on' })).kv.state;
            expect(estimate).toEqual(report);
            for (const text of ['Hi', PROMPT, PROMPT.repeat(5)]) {
                const seq = await ctx.acquireSequence();
                const tokens = model.tokenize(text);
                await seq.evaluate(tokens);
                const state = await seq.saveState();
                const json = Math.ceil((16 + state.readUInt32LE(12)) / 8) * 8;
                expect(state.length - json).toBe(report.fixedBytes + tokens.length * report.bytesPerToken);
                await seq.clear();
                seq.release();
            }
            ctx.dispose();
        });
    }

    it('a prompt cache is counted: memoryReport holds what it keeps, estimateMemory and planFit its ramBytes', async () => {
        const ramBytes = 64 * 2 ** 20;
        const base = await estimateMemory({ model: fixtures.q8_0, contextSize: 1024 });
        const withCache = await estimateMemory({ model: fixtures.q8_0, contextSize: 1024, promptCache: { ramBytes } });
        expect(withCache.promptCache.bytes).toBe(ramBytes);
        expect(withCache.total.bytes - base.total.bytes).toBe(ramBytes);
        const budget = base.total.bytes + ramBytes / 2;
        const plain = await planFit({ model: fixtures.q8_0, budgetBytes: budget, minContextSize: 256 });
        const planned = await planFit({ model: fixtures.q8_0, budgetBytes: budget + ramBytes, minContextSize: 256, promptCache: { ramBytes } });
        expect(planned.estimate.total.bytes).toBeLessThanOrEqual(budget + ramBytes);
        expect(planned.estimate.promptCache.bytes).toBe(ramBytes);
        expect(plain.estimate.promptCache.bytes).toBe(0);

        const ctx = context(['q8_0', 'q8_0'], { promptCache: { ramBytes, minTokens: 4 } });
        expect(ctx.memoryReport().promptCache.bytes).toBe(0);
        await ctx.evaluate(model.tokenize(PROMPT));
        await ctx.evaluate(model.tokenize('Another prompt takes the sequence'));
        const report = ctx.memoryReport();
        expect(report.promptCache.bytes).toBe(ctx.promptCache!.ramBytes);
        expect(report.promptCache.bytes).toBeGreaterThan(0);
        expect(report.total.bytes).toBe(report.weights.bytes + report.loras.bytes + report.kv.bytes + report.compute.bytes + report.output.bytes + report.promptCache.bytes);
        ctx.dispose();
    });

    it('across a process restart: saved in one child, loaded in another, bit-identical', () => {
        const dist = pathToFileURL(join(root, 'dist', 'index.js')).href;
        const child = join(root, 'test', 'support', 'state', 'child.mjs');
        for (const kv of KV_PAIRS) {
            const file = join(work, `restart-${kv.join('-')}.state`);
            const run = (mode: string) => {
                const r = spawnSync(process.execPath, [child, mode, fixtures.q8_0, file, PROMPT, ...kv], { encoding: 'utf8', env: { ...process.env, LLAMA_KV_DIST: dist }, timeout: 120_000 });
                expect(r.status, r.stderr).toBe(0);
                return JSON.parse(r.stdout.trim().split('\n').pop()!) as { logits: string; next: number[] };
            };
            const saved = run('save');
            const loaded = run('load');
            expect(loaded.logits).toBe(saved.logits);
            expect(loaded.next).toEqual(saved.next);
        }
    }, 300_000);

    it('ctx.saveStateFile / loadStateFile: every sequence at once', async () => {
        const ctx = context(['q8_0', 'q8_0'], { parallel: 3 });
        const prompts = ['The quick brown fox', 'In a galaxy far, far away', 'She opened the door'];
        const seqs = await Promise.all(prompts.map(() => ctx.acquireSequence()));
        await Promise.all(seqs.map((s, i) => s.evaluate(model.tokenize(prompts[i]))));
        const logits = await Promise.all(seqs.map((s, i) => s.evaluate(model.tokenize(prompts[i]))));
        const file = join(work, 'context.state');
        await ctx.saveStateFile(file);
        for (const s of seqs) s.release();

        const other = context(['q8_0', 'q8_0'], { parallel: 3 });
        await other.loadStateFile(file);
        expect(other.sequences.map((s) => s.cells)).toEqual(prompts.map((p) => model.tokenize(p).length));
        // A request reuses the loaded cache of the sequence whose tokens it starts with.
        for (const [i, p] of prompts.entries()) {
            const seq = await other.acquireSequence();
            expect(bytesOf(await seq.evaluate(model.tokenize(prompts[seq.id]))).equals(bytesOf(logits[seq.id]))).toBe(true);
            seq.release();
            void p;
            void i;
        }
        // A context of fewer sequences cannot hold it.
        const small = context(['q8_0', 'q8_0'], { parallel: 2 });
        const e = await rejection(small.loadStateFile(file));
        expect(e.code).toBe('STATE_MISMATCH');
        expect(e.message).toMatch(/sequence 2.*this context has 2.*parallel: 3/);
        // A sequence state is not a context state, and the other way round.
        const seq = await other.acquireSequence();
        expect((await rejection(seq.loadStateFile(file))).message).toMatch(/whole context/);
        ctx.dispose();
        other.dispose();
        small.dispose();
    });

    describe('refusals', () => {
        let saved: Buffer;
        const kv: [KvCacheType, KvCacheType] = ['q8_0', 'q4_0'];
        beforeAll(async () => {
            const ctx = context(kv);
            const seq = await ctx.acquireSequence();
            await seq.evaluate(model.tokenize(PROMPT));
            saved = await seq.saveState();
            ctx.dispose();
        });

        async function loadInto(state: Buffer, ctx: LlamaContext): Promise<LlamaError> {
            const seq = await ctx.acquireSequence();
            await seq.evaluate(model.tokenize('Something else entirely'));
            const cells = ctx.sequences[seq.id].cells;
            const e = await rejection(seq.loadState(state));
            // Refused before llama.cpp read it: the sequence holds what it held.
            if (e.code === 'STATE_MISMATCH' || e.code === 'INVALID_STATE_FILE') expect(ctx.sequences[seq.id].cells).toBe(cells);
            seq.release();
            return e;
        }

        it('other K or V types, another flash attention layout: STATE_MISMATCH naming the field and both values', async () => {
            const k = context(['f16', 'q4_0']);
            expect(await loadInto(saved, k)).toMatchObject({ code: 'STATE_MISMATCH', message: expect.stringMatching(/saved with cacheTypeK 'q8_0', this context has 'f16'/) });
            const v = context(['q8_0', 'q8_0']);
            expect(await loadInto(saved, v)).toMatchObject({ code: 'STATE_MISMATCH', message: expect.stringMatching(/cacheTypeV 'q4_0', this context has 'q8_0'/) });
            k.dispose();
            v.dispose();
            // f16 without flash attention stores V transposed.
            const f16 = context(['f16', 'f16']);
            const seq = await f16.acquireSequence();
            await seq.evaluate(model.tokenize(PROMPT));
            const plain = await seq.saveState();
            const off = context(['f16', 'f16'], { flashAttention: 'off' });
            expect(await loadInto(plain, off)).toMatchObject({ code: 'STATE_MISMATCH', message: expect.stringMatching(/flashAttention 'on', this context has 'off'/) });
            f16.dispose();
            off.dispose();
        });

        it('another model: STATE_MISMATCH', async () => {
            const f16Model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
            const ctx = new LlamaContext({ model: f16Model, contextSize: 512, threads: 2, cacheTypeK: kv[0], cacheTypeV: kv[1], flashAttention: 'on' });
            const e = await loadInto(saved, ctx);
            expect(e.code).toBe('STATE_MISMATCH');
            expect(e.message).toMatch(/tensor table/);
            ctx.dispose();
            f16Model.dispose();
        });

        it('another LoRA set or scale: STATE_MISMATCH listing both sets', async () => {
            const lora = await model.loadLora(fixtures.loraAttn);
            const ctx = context(kv, { loras: [{ lora, scale: 1 }] });
            expect(await loadInto(saved, ctx)).toMatchObject({ code: 'STATE_MISMATCH', message: expect.stringMatching(/LoRA adapters \[none\], this context has \[[^\]]*tiny-lora-r8-attn[^\]]*@1\]/) });
            const seq = await ctx.acquireSequence();
            await seq.evaluate(model.tokenize(PROMPT));
            const withLora = await seq.saveState();
            seq.release();
            await ctx.setLoras([{ lora, scale: 0.5 }]);
            expect(await loadInto(withLora, ctx)).toMatchObject({ code: 'STATE_MISMATCH', message: expect.stringMatching(/@1\], this context has \[.*@0.5\]/) });
            await ctx.setLoras([{ lora, scale: 1 }]);
            const ok = await ctx.acquireSequence();
            await ok.loadState(withLora);
            expect(ok.tokens.length).toBe(model.tokenize(PROMPT).length);
            ctx.dispose();
            lora.dispose();
        });

        it('more tokens than the sequence has cells: STATE_MISMATCH with the numbers; a larger context loads it', async () => {
            const big = context(kv, { contextSize: 1024 });
            const seq = await big.acquireSequence();
            const long = model.tokenize(PROMPT.repeat(16));
            await seq.evaluate(long);
            const state = await seq.saveState();
            const small = context(kv, { contextSize: 256 }); // llama.cpp keeps 256 cells at least
            const cells = small.config.contextSizePerSequence;
            expect(cells).toBeLessThan(long.length);
            const e = await loadInto(state, small);
            expect(e.code).toBe('STATE_MISMATCH');
            expect(e.message).toContain(`the state holds ${long.length} tokens and sequence 0 of this context has ${cells} cells`);
            const larger = context(kv, { contextSize: 2048 });
            const target = await larger.acquireSequence();
            await target.loadState(state);
            expect(target.tokens.length).toBe(long.length);
            big.dispose();
            small.dispose();
            larger.dispose();
        });

        it('truncated, damaged or foreign bytes: INVALID_STATE_FILE, the sequence unchanged', async () => {
            const ctx = context(kv);
            const cut = await loadInto(saved.subarray(0, saved.length - 100), ctx);
            expect(cut).toMatchObject({ code: 'INVALID_STATE_FILE', message: expect.stringMatching(/truncated/) });
            const flipped = Buffer.from(saved);
            flipped[flipped.length - 50] ^= 0x40;
            expect(await loadInto(flipped, ctx)).toMatchObject({ code: 'INVALID_STATE_FILE', message: expect.stringMatching(/checksum/) });
            expect(await loadInto(Buffer.from('GGUF not a state at all'), ctx)).toMatchObject({ code: 'INVALID_STATE_FILE' });
            const file = join(work, 'truncated.state');
            writeFileSync(file, saved.subarray(0, 40));
            const seq = await ctx.acquireSequence();
            expect((await rejection(seq.loadStateFile(file))).code).toBe('INVALID_STATE_FILE');
            expect((await rejection(seq.loadStateFile(join(work, 'missing.state')))).code).toBe('STATE_IO_FAILED');
            ctx.dispose();
        });
    });

    it('loading a state while other sequences generate leaves their output bit-identical', async () => {
        const kv: [KvCacheType, KvCacheType] = ['q8_0', 'q4_0'];
        const prompts = ['The quick brown fox jumps', 'She opened the door and'];
        const alone = context(kv);
        const expected = [];
        for (const p of prompts) expected.push((await alone.complete(p, { temperature: 0, maxTokens: 48 })).tokens);
        const seqA = await alone.acquireSequence();
        await seqA.evaluate(model.tokenize(PROMPT.repeat(3)));
        const state = await seqA.saveState();
        alone.dispose();

        const ctx = context(kv, { parallel: 3, contextSize: 1536 });
        const target = await ctx.acquireSequence();
        const running = prompts.map((p) => ctx.complete(p, { temperature: 0, maxTokens: 48 }));
        for (let i = 0; i < 5; i++) await target.loadState(state);
        const results = await Promise.all(running);
        for (const [i, r] of results.entries()) expect(r.tokens).toEqual(expected[i]);
        ctx.dispose();
    });

    it('saveStateFile aborted: no file, no temporary file; a disposed context rejects', async () => {
        const ctx = context(['f16', 'f16']);
        const seq = await ctx.acquireSequence();
        await seq.evaluate(model.tokenize(PROMPT));
        const file = join(work, 'aborted.state');
        const abort = new AbortController();
        abort.abort();
        expect((await rejection(seq.saveStateFile(file, { signal: abort.signal }))).code).toBe('ABORTED');
        expect(readdirSync(work).filter((f) => f.startsWith('aborted'))).toEqual([]);
        const written = await seq.saveStateFile(file);
        expect(statSync(file).size).toBe(written);
        ctx.dispose();
        expect((await rejection(seq.saveState())).code).toBe('DISPOSED');
    });
});
