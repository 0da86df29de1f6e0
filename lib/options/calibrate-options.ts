/** The schema of calibrate()'s options (CalibrateOptions, in calibrate/, types them). */
import { z } from 'zod';
import { cacheTypeOption, flashAttentionOption, modelOption } from './context-options.js';
import { KV_PRESETS, type KvPreset } from './kv-cache.js';
import { contextSizeOption, threadsOption } from './llama-limits.js';
import { fn, nonNegativeInt, oneOf, signal } from './validate.js';

const kvPair = () =>
    z.strictObject({
        cacheTypeK: cacheTypeOption(),
        cacheTypeV: cacheTypeOption(),
    }, { error: `a preset name (${oneOf(Object.keys(KV_PRESETS))}) or { cacheTypeK, cacheTypeV }` });
const kvConfiguration = () =>
    z.union([z.enum(Object.keys(KV_PRESETS) as [KvPreset, ...KvPreset[]]), kvPair()], {
        error: `a preset name (${oneOf(Object.keys(KV_PRESETS))}) or { cacheTypeK, cacheTypeV }`,
    });

export const calibrateOptionsSchema = z.strictObject({
    model: modelOption(),
    prompts: z.array(z.strictObject({
        name: z.string({ error: 'a prompt name (string)' }).min(1, { error: 'a non-empty prompt name' }),
        category: z.string({ error: 'a category (string)' }).optional(),
        text: z.string({ error: 'the prompt text (string)' }).min(1, { error: 'a non-empty prompt text' }),
    }), { error: 'an array of { name, category?, text }' }).min(1, { error: 'at least one prompt' }).optional(),
    configurations: z.array(kvConfiguration(), { error: 'an array of presets or { cacheTypeK, cacheTypeV }' }).min(1, { error: 'at least one configuration' }).optional(),
    reference: kvConfiguration().optional(),
    contextSize: contextSizeOption().refine((n) => n >= 16, { error: 'an integer >= 16' }).optional(),
    threads: threadsOption().optional(),
    flashAttention: flashAttentionOption().optional(),
    generationTokens: nonNegativeInt().optional(),
    baseline: z.custom<object>((v) => typeof v === 'object' && v !== null && Array.isArray((v as { results?: unknown }).results), { error: 'a saved calibration report (an object with results)' }).optional(),
    maxKlIncrease: z.number({ error: 'a number >= 0' }).min(0, { error: 'a number >= 0' }).finite({ error: 'a number >= 0' }).optional(),
    onProgress: fn<(progress: unknown) => void>().optional(),
    signal: signal().optional(),
});
