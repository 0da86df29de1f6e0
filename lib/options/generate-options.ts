/** Options of generate() and complete(). */
import { z } from 'zod';
import { int32CountOption, maxTokensOption, nonNegativeFloatOption, positiveFloatOption } from './llama-limits.js';
import { contextFullOption, type ContextFullPolicy } from './context-options.js';
import { bool, samplingSeed, signal, unitInterval } from './validate.js';
import { grammarOptionShape, type GrammarOptions } from './grammar-options.js';

const biasValue = z.union([z.number({ error: 'a finite number or -Infinity' }), z.literal(-Infinity)], { error: 'a finite number or -Infinity' });
const logitBiasSchema = z.union([
    z.record(z.string().regex(/^\d+$/, { error: 'a token id' }), biasValue),
    z.array(z.tuple([z.number().int().nonnegative(), biasValue]), { error: 'an array of [token, bias] pairs' }),
], { error: 'an object { [token]: bias } or an array of [token, bias] pairs' });

const stopSchema = z.union([z.string(), z.array(z.string())], { error: 'a string or an array of strings' });

export const generateOptionsSchema = z.strictObject({
    maxTokens: maxTokensOption().optional(),
    temperature: nonNegativeFloatOption().optional(),
    topK: int32CountOption().optional(),
    topP: unitInterval().optional(),
    minP: unitInterval().optional(),
    repeatPenalty: positiveFloatOption().optional(),
    repeatLastN: int32CountOption().optional(),
    seed: samplingSeed().optional(),
    stop: stopSchema.optional(),
    signal: signal().optional(),
    addSpecial: bool().optional(),
    parseSpecial: bool().optional(),
    onContextFull: contextFullOption().optional(),
    keep: int32CountOption().optional(),
    logitBias: logitBiasSchema.optional(),
    ...grammarOptionShape,
});

/** Options of {@link LlamaContext.generate} and {@link LlamaContext.complete}. */
export interface GenerateOptions extends GrammarOptions {
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
    /**
     * Sampling seed: the same seed, model, prompt, options and cache state give the same text. Defaults to
     * a fresh random seed per request, or, when the context has a `seed`, to that seed plus the request's
     * index on the context (0 for its first generate()/complete(), 1 for the next, ...). The result's
     * `seed` says which was used.
     */
    seed?: number;
    /** Stop when the generated text contains one of these strings; it is not included in the text. Defaults to none. */
    stop?: string | string[];
    /** Aborts generation: it ends with finishReason 'abort'. Defaults to none. */
    signal?: AbortSignal;
    /** For a text prompt: add the model's BOS/EOS tokens as it is configured to. Defaults to `true`. */
    addSpecial?: boolean;
    /** For a text prompt: parse special tokens such as `<s>` written in the text. Defaults to `false`. */
    parseSpecial?: boolean;
    /** When the sequence is full: 'error' ends with finishReason 'contextFull', 'shift' discards old tokens and goes on (see the context option). Defaults to the context's `onContextFull`. */
    onContextFull?: ContextFullPolicy;
    /**
     * Added to the logits of these tokens before sampling (llama.cpp `--logit-bias`):
     * `{ [token]: bias }` or `[token, bias]` pairs; `-Infinity` bans a token. Defaults to none.
     */
    logitBias?: Record<number, number> | ReadonlyArray<readonly [number, number]>;
    /** With onContextFull 'shift': the first tokens a shift never discards (llama.cpp `--keep`), on top of the BOS token. Defaults to `0`. */
    keep?: number;
}

/** `{ signal? }`: the options of the calls that only take an AbortSignal (evaluate()). */
export const signalOptionsSchema = z.strictObject({
    signal: signal().optional(),
});
