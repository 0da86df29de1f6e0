/** What scoreTokens() returns and takes (shared by LlamaContext and LlamaSequence). */

/**
 * Per-position scores of a token sequence from {@link LlamaContext.scoreTokens}: entry i
 * is about position i predicting `tokens[i + 1]`, so each array has `tokens.length - 1`
 * entries.
 */
export interface TokenScores {
    /** ln p(tokens[i + 1] | tokens[0..i]) under this context, in nats. */
    logProbs: Float64Array;
    /** The most likely next token at each position (argmax of the logits; the lowest id on a tie). */
    topTokens: Int32Array;
    /** With a reference context: its log-probabilities and top tokens, and the divergence from it. */
    reference?: {
        logProbs: Float64Array;
        topTokens: Int32Array;
        /** KL(reference ‖ this) of the next-token distributions, in nats (0 when they are identical). */
        kl: Float64Array;
    };
}

/** Options of scoreTokens(), with the type of the reference context (a LlamaContext). */
export interface ScoreOptionsOf<Reference> {
    /**
     * Another context to compare with, e.g. the same model with an f16 cache: it decodes
     * the same tokens in step (on one of its free sequences), and each position gets the KL
     * divergence of this context's next-token distribution from the reference's. Its model may
     * differ (e.g. f16 weights against a quantized file) but must have the same vocabulary size.
     */
    reference?: Reference;
    /** Aborts the scoring: the promise rejects with a {@link LlamaAbortError} (code `ABORTED`). */
    signal?: AbortSignal;
}

/** What {@link LlamaSequence.scoreTokens} accepts as a reference: a {@link LlamaContext} (checked when called). */
export interface ScoreReference {
    readonly disposed: boolean;
}
