/** The context flags shared by run, memory and fit, named as llama.cpp names them. */
import type { FlashAttention, KvCacheType, KvPreset } from '../../options/kv-cache.js';
import type { ContextSettings } from '../../options/context-options.js';
import type { FlagSpec, ParsedFlags } from './args.js';

export const contextFlags: FlagSpec[] = [
    { names: ['-c', '--ctx-size'], key: 'contextSize', type: 'int', help: 'context size (default 4096 or the trained size)' },
    { names: ['-b', '--batch-size'], key: 'batchSize', type: 'int', help: 'batch size (default 512)' },
    { names: ['-ub', '--ubatch-size'], key: 'ubatchSize', type: 'int', help: 'micro-batch size (default 512)' },
    { names: ['-np', '--parallel'], key: 'parallel', type: 'int', help: 'sequences the context holds (default 1)' },
    { names: ['-ctk', '--cache-type-k'], key: 'cacheTypeK', type: 'string', help: 'K cache type: f32 f16 bf16 q8_0 q4_0 q4_1 iq4_nl q5_0 q5_1 (default f16)' },
    { names: ['-ctv', '--cache-type-v'], key: 'cacheTypeV', type: 'string', help: 'V cache type, same types (default f16)' },
    { names: ['--kv-preset'], key: 'kvPreset', type: 'string', help: 'conservative | balanced | aggressive | extreme' },
    { names: ['-fa', '--flash-attn'], key: 'flashAttention', type: 'string', help: 'on | off | auto (default auto)' },
];

/** The context options given on the command line; values go to the API as typed so its messages are the CLI's. */
export function contextOptionsFromFlags(flags: ParsedFlags): ContextSettings {
    const options: ContextSettings = {
        contextSize: flags.contextSize as number | undefined,
        batchSize: flags.batchSize as number | undefined,
        ubatchSize: flags.ubatchSize as number | undefined,
        parallel: flags.parallel as number | undefined,
        cacheTypeK: flags.cacheTypeK as KvCacheType | undefined,
        cacheTypeV: flags.cacheTypeV as KvCacheType | undefined,
        kvPreset: flags.kvPreset as KvPreset | undefined,
        flashAttention: flags.flashAttention as FlashAttention | undefined,
    };
    // Leave unset options out: the API treats a present `undefined` like an absent option.
    return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as ContextSettings;
}
