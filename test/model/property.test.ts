// Property tests over the public API (fast-check), 5,500 cases: random option values,
// token ids, generation settings and load options. Every call resolves, or rejects with
// a LlamaError whose code is documented (and is not INTERNAL); the process survives.
// estimateMemory and planFit get the context option sets too: what LlamaContext refuses
// they refuse, with the same code and message.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureFixtureModel } from '../../lib/demo/models.js';
import { estimateMemory, LlamaConfigError, LlamaContext, LlamaError, LlamaModel, planFit, readGgufMetadata, type LlamaErrorCode } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';

const DOCUMENTED: ReadonlySet<LlamaErrorCode> = new Set([
    'INVALID_CONFIG', 'INVALID_ARGUMENT', 'MODEL_NOT_FOUND', 'INVALID_MODEL_FILE', 'MODEL_LOAD_FAILED', 'CONTEXT_CREATE_FAILED',
    'DISPOSED', 'ABORTED', 'BUSY', 'CONTEXT_FULL', 'INVALID_BATCH', 'DECODE_FAILED', 'TOKENIZE_FAILED', 'INSUFFICIENT_MEMORY',
    'BACKEND_UNAVAILABLE', 'LORA_LOAD_FAILED', 'QUANTIZE_FAILED',
] as LlamaErrorCode[]);

const seen = new Map<string, number>();

/** LLAMA_KV_PROPERTY_SEED explores other cases; the suite's own seeds are fixed. */
const seedOr = (fixed: number) => (process.env.LLAMA_KV_PROPERTY_SEED ? Number(process.env.LLAMA_KV_PROPERTY_SEED) + fixed : fixed);

/** Runs `call`; it must resolve or reject with a documented LlamaError. */
async function settles(call: () => unknown): Promise<void> {
    try {
        await call();
        seen.set('ok', (seen.get('ok') ?? 0) + 1);
    } catch (error) {
        // INTERNAL is documented as a bug: no public call here may produce it.
        if (error instanceof LlamaError && error.code === 'INTERNAL') throw new Error(`INTERNAL (a bug): ${error.message}`);
        if (!(error instanceof LlamaError) || !DOCUMENTED.has(error.code)) {
            throw new Error(`undocumented failure: ${error instanceof LlamaError ? error.code : (error as Error)?.name}: ${(error as Error)?.message}`);
        }
        seen.set(error.code, (seen.get(error.code) ?? 0) + 1);
    }
}

// Numbers a caller might pass by mistake, around the edges and beyond.
const wildNumber = (min: number, max: number) =>
    fc.oneof(
        fc.integer({ min, max }),
        fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0.5, -1, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), 1e300),
        fc.double({ min: -1e6, max: 1e6, noNaN: false }),
    );
/** Mostly valid values, one in ten from `wild`, so that most calls reach llama.cpp. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, wild: fc.Arbitrary<U>) => fc.oneof({ arbitrary: valid, weight: 9 }, { arbitrary: wild, weight: 1 });
const wildValue = fc.oneof(fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.constant({}), fc.constant([]));
const TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1'];

describe('property tests over the public API', () => {
    let model: LlamaModel;
    let ctx: LlamaContext;
    let path = '';
    beforeAll(async () => {
        path = await ensureFixtureModel('micro-f16', { dir: fixtures.cacheDir });
        model = await LlamaModel.load({ path, gpu: false });
        ctx = model.createContext({ contextSize: 256 });
    });
    afterAll(() => {
        model.dispose();
        process.stdout.write(`[property] outcomes: ${[...seen].map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
        expect(seen.has('INTERNAL')).toBe(false);
    });

    // The context option sets: LlamaContext, estimateMemory and planFit are all fed these.
    const contextOptions = () => {
        const options = fc.record(
            {
                contextSize: mostly(fc.integer({ min: 1, max: 4096 }), wildNumber(-10, 8192)),
                batchSize: mostly(fc.integer({ min: 1, max: 1024 }), wildNumber(-10, 4096)),
                ubatchSize: mostly(fc.integer({ min: 1, max: 1024 }), wildNumber(-10, 4096)),
                parallel: mostly(fc.integer({ min: 1, max: 8 }), wildNumber(-2, 300)),
                threads: mostly(fc.integer({ min: 1, max: 4 }), wildNumber(-2, 64)),
                cacheTypeK: mostly(fc.constantFrom(...TYPES), wildValue),
                cacheTypeV: mostly(fc.constantFrom(...TYPES), wildValue),
                flashAttention: mostly(fc.constantFrom('on', 'off', 'auto', true, false), wildValue),
                kvPreset: mostly(fc.constantFrom('conservative', 'balanced', 'aggressive', 'extreme'), wildValue),
                kvUnified: mostly(fc.boolean(), wildValue),
                seed: wildNumber(-5, 2 ** 33),
            },
            { requiredKeys: [] },
        );
        // Half the cases are consistent settings, so that contexts of every shape get made.
        const consistent = fc
            .record({
                contextSize: fc.integer({ min: 16, max: 4096 }),
                batchFraction: fc.double({ min: 0.05, max: 1, noNaN: true }),
                ubatchFraction: fc.double({ min: 0.05, max: 1, noNaN: true }),
                parallel: fc.integer({ min: 1, max: 4 }),
                cacheTypeK: fc.constantFrom(...TYPES),
                cacheTypeV: fc.constantFrom(...TYPES),
                flashAttention: fc.constantFrom('on', 'auto', true),
                kvUnified: fc.boolean(),
                threads: fc.integer({ min: 1, max: 2 }),
            })
            .map(({ batchFraction, ubatchFraction, ...o }) => {
                const batchSize = Math.max(o.parallel, Math.ceil(o.contextSize * batchFraction));
                return { ...o, batchSize, ubatchSize: Math.max(1, Math.ceil(batchSize * ubatchFraction)) };
            });
        return fc.oneof(options, consistent) as fc.Arbitrary<Record<string, unknown>>;
    };

    it('context options (1,500 cases)', async () => {
        await fc.assert(
            fc.asyncProperty(contextOptions(), async (opts) => {
                await settles(() => {
                    const c = new LlamaContext({ model, ...(opts as object) });
                    c.dispose();
                });
            }),
            { numRuns: 1500, seed: seedOr(0x1a1a) },
        );
    }, 600_000);

    it('estimateMemory and planFit refuse what LlamaContext refuses, with the same code and message (300 cases)', async () => {
        const refusal = async (call: () => unknown): Promise<LlamaError | null> => {
            try {
                await call();
                return null;
            } catch (error) {
                if (!(error instanceof LlamaError) || !DOCUMENTED.has(error.code)) {
                    throw new Error(`undocumented failure: ${error instanceof LlamaError ? error.code : (error as Error)?.name}: ${(error as Error)?.message}`);
                }
                return error;
            }
        };
        const isConfig = (e: LlamaError | null): e is LlamaConfigError => e instanceof LlamaConfigError;
        const header = await readGgufMetadata(path);
        const pick = (o: Record<string, unknown>, keys: readonly string[]) => Object.fromEntries(Object.entries(o).filter(([k]) => keys.includes(k)));
        let refused = 0;
        await fc.assert(
            fc.asyncProperty(contextOptions(), async (opts) => {
                // estimateMemory takes every context option but threads, threadsBatch, seed and checkMemory.
                const shared = Object.fromEntries(Object.entries(opts).filter(([k]) => !['threads', 'threadsBatch', 'seed', 'checkMemory'].includes(k)));
                const context = await refusal(() => new LlamaContext({ model, ...(shared as object) }).dispose());
                const estimate = await refusal(() => estimateMemory({ model: path, ...(shared as object) }));
                if (isConfig(context)) {
                    refused++;
                    expect(estimate, JSON.stringify(shared)).toBeInstanceOf(LlamaConfigError);
                    expect([estimate!.code, estimate!.message]).toEqual([context.code, context.message]);
                } else {
                    // and nothing that LlamaContext takes
                    expect(isConfig(estimate) ? estimate.message : null, JSON.stringify(shared)).toBeNull();
                }
                // planFit shares parallel, batchSize and ubatchSize.
                const planned = pick(opts, ['parallel', 'batchSize', 'ubatchSize']);
                const planContext = await refusal(() => new LlamaContext({ model, ...(planned as object) }).dispose());
                if (isConfig(planContext)) {
                    const plan = await refusal(() => planFit({ model: path, budgetBytes: 2 ** 40, ...(planned as object) }));
                    expect(plan, JSON.stringify(planned)).toBeInstanceOf(LlamaConfigError);
                    expect(plan!.code).toBe(planContext.code);
                    // LlamaContext's "parallel <= batchSize and <= contextSize": planFit names its own options (no contextSize).
                    if (planContext.path.includes('contextSize')) expect((plan as LlamaConfigError).path).toEqual(['parallel', 'batchSize']);
                    else expect(plan!.message).toBe(planContext.message);
                } else {
                    // A dry run per candidate is slow: the header plans the same settings for this check.
                    const plan = await refusal(() => planFit({ model: header, budgetBytes: 2 ** 40, ...(planned as object) }));
                    expect(isConfig(plan) ? plan.message : null, JSON.stringify(planned)).toBeNull();
                }
            }),
            { numRuns: 300, seed: seedOr(0x5e5e) },
        );
        expect(refused).toBeGreaterThan(20); // the generators reach the refusals
    }, 600_000);

    it('token ids to evaluate, complete and detokenize (1,500 cases)', async () => {
        const id = fc.oneof(fc.integer({ min: 0, max: 31999 }), fc.integer({ min: -5, max: 32005 }), fc.constantFrom(Number.NaN, 1.5, 2 ** 31, -(2 ** 31) - 1, 2 ** 40));
        const tokens = fc.oneof(
            { arbitrary: fc.array(fc.integer({ min: 0, max: 31999 }), { minLength: 1, maxLength: 40 }), weight: 3 },
            { arbitrary: fc.array(id, { minLength: 0, maxLength: 40 }), weight: 1 },
        );
        await fc.assert(
            fc.asyncProperty(tokens, fc.integer({ min: 0, max: 2 }), async (ids, which) => {
                if (which === 0) await settles(() => ctx.evaluate(ids));
                else if (which === 1) await settles(() => ctx.complete(ids, { maxTokens: 2, temperature: 0 }));
                else await settles(() => model.detokenize(ids, { renderSpecial: ids.length % 2 === 0 }));
            }),
            { numRuns: 1500, seed: seedOr(0x2b2b) },
        );
    }, 600_000);

    it('generation settings (1,500 cases)', async () => {
        const settings = fc.record(
            {
                maxTokens: mostly(fc.integer({ min: 0, max: 6 }), wildNumber(-3, 10)),
                temperature: mostly(fc.double({ min: 0, max: 3, noNaN: true }), wildNumber(-2, 10)),
                topK: wildNumber(-3, 200),
                topP: mostly(fc.double({ min: 0, max: 1, noNaN: true }), wildNumber(-1, 2)),
                minP: mostly(fc.double({ min: 0, max: 1, noNaN: true }), wildNumber(-1, 2)),
                repeatPenalty: wildNumber(-2, 5),
                repeatLastN: wildNumber(-3, 1000),
                seed: wildNumber(-1, 2 ** 33),
                stop: mostly(fc.array(fc.string({ maxLength: 6 }), { maxLength: 4 }), wildValue),
                addSpecial: mostly(fc.boolean(), wildValue),
                parseSpecial: mostly(fc.boolean(), wildValue),
            },
            { requiredKeys: [] },
        );
        await fc.assert(
            fc.asyncProperty(fc.oneof(fc.string({ maxLength: 30 }), fc.constant('')), settings, async (prompt, opts) => {
                await settles(() => ctx.complete(prompt, opts as never));
            }),
            { numRuns: 1500, seed: seedOr(0x3c3c) },
        );
    }, 600_000);

    it('load options (700 cases)', async () => {
        const load = fc.record(
            {
                gpu: mostly(fc.constantFrom('auto', 'cuda', 'rocm', 'vulkan', 'metal', false), wildValue),
                gpuLayers: mostly(fc.constantFrom('auto', 'max'), wildNumber(-3, 100)),
                devices: mostly(fc.array(fc.constantFrom('CPU', 'cpu', 'CUDA0', 'Vulkan0', ''), { maxLength: 3 }), wildValue),
                tensorSplit: mostly(fc.array(wildNumber(-1, 10), { maxLength: 3 }), wildValue),
                cpuMoeLayers: wildNumber(-2, 5000),
                tensorOverrides: fc.oneof(
                    fc.array(fc.record({ pattern: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('ffn_.*', '(', '[a-', '\\\\', '.*', 'norm')), bufferType: fc.constantFrom('CPU', 'CUDA0', 'cpu', '', 'AMX', 'CPU_REPACK') }), { maxLength: 2 }),
                    wildValue,
                ),
                useMmap: mostly(fc.boolean(), wildValue),
                repack: mostly(fc.boolean(), wildValue),
                vocabOnly: mostly(fc.boolean(), wildValue),
            },
            { requiredKeys: [] },
        );
        await fc.assert(
            fc.asyncProperty(load, async (opts) => {
                await settles(async () => {
                    const m = await LlamaModel.load({ path, ...(opts as object) });
                    m.dispose();
                });
            }),
            { numRuns: 700, seed: seedOr(0x4d4d) },
        );
        expect(model.disposed).toBe(false);
    }, 600_000);
});
