/** Options of generate() and complete(). */
import { z } from 'zod';
import { int32CountOption, maxTokensOption, nonNegativeFloatOption, positiveFloatOption } from './llama-limits.js';
import { bool, nonNegativeInt, signal, uint32, unitInterval } from './validate.js';

const stopSchema = z.union([z.string(), z.array(z.string())], { error: 'a string or an array of strings' });

export const generateOptionsSchema = z.strictObject({
    maxTokens: maxTokensOption().optional(),
    temperature: nonNegativeFloatOption().optional(),
    topK: int32CountOption().optional(),
    topP: unitInterval().optional(),
    minP: unitInterval().optional(),
    repeatPenalty: positiveFloatOption().optional(),
    repeatLastN: int32CountOption().optional(),
    seed: uint32().optional(),
    stop: stopSchema.optional(),
    signal: signal().optional(),
    addSpecial: bool().optional(),
    parseSpecial: bool().optional(),
});

/** Options of {@link LlamaContext.generate} and {@link LlamaContext.complete}. */
export interface GenerateOptions {
    /** Most tokens to generate (llama.cpp `--n-predict`). Defaults to `256`. */
    maxTokens?: number;
    /** Sampling temperature; 0 is greedy and deterministic (llama.cpp `--temp`). Defaults to `0.8`. */
    temperature?: number;
    /** Keep only the K most likely tokens, 0 disables (llama.cpp `--top-k`). Defaults to `40`. */
    topK?: number;
    /** Nucleus sampling threshold, 1 disables (llama.cpp `--top-p`). Defaults to `0.95`. */
    topP?: number;
    /** Minimum probability relative to the best token, 0 disables (llama.cpp `--min-p`). Defaults to `0.05`. */
    minP?: number;
    /** Penalty for repeated tokens, 1 disables (llama.cpp `--repeat-penalty`). Defaults to `1`. */
    repeatPenalty?: number;
    /** How many recent tokens the repeat penalty looks at (llama.cpp `--repeat-last-n`). Defaults to `64`. */
    repeatLastN?: number;
    /** Sampling seed. Defaults to the context's seed. */
    seed?: number;
    /** Stop when the generated text contains one of these strings; it is not included in the text. Defaults to none. */
    stop?: string | string[];
    /** Aborts generation: it ends with finishReason 'abort'. Defaults to none. */
    signal?: AbortSignal;
    /** For a text prompt: add the model's BOS/EOS tokens as it is configured to. Defaults to `true`. */
    addSpecial?: boolean;
    /** For a text prompt: parse special tokens such as `<s>` written in the text. Defaults to `false`. */
    parseSpecial?: boolean;
}
