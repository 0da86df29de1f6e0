/** Summary statistics of per-position scores, for {@link calibrate}. */

/** KL divergence summary over scored positions, in nats. */
export interface KlSummary {
    mean: number;
    /** 95th percentile (nearest rank). */
    p95: number;
    max: number;
}

/** Scores of one prompt (or several, concatenated) under one configuration. */
export interface PositionScores {
    /** KL(reference ‖ candidate) per position. */
    kl: ArrayLike<number>;
    /** Whether the top token agreed with the reference's, per position. */
    agree: ArrayLike<boolean>;
}

export function mean(values: ArrayLike<number>): number {
    if (values.length === 0) return 0;
    let sum = 0;
    for (let i = 0; i < values.length; i++) sum += values[i];
    return sum / values.length;
}

/** Nearest-rank percentile (q in (0, 1]); 0 for no values. */
export function percentile(values: ArrayLike<number>, q: number): number {
    if (values.length === 0) return 0;
    const sorted = Float64Array.from(values).sort();
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function klSummary(kl: ArrayLike<number>): KlSummary {
    let max = 0;
    for (let i = 0; i < kl.length; i++) if (kl[i] > max) max = kl[i];
    return { mean: mean(kl), p95: percentile(kl, 0.95), max };
}

/** Fraction of positions whose top token agreed (1 for no positions). */
export function agreement(agree: ArrayLike<boolean>): number {
    if (agree.length === 0) return 1;
    let n = 0;
    for (let i = 0; i < agree.length; i++) if (agree[i]) n++;
    return n / agree.length;
}

/** exp(-mean log-probability): the perplexity of the scored tokens. */
export function perplexity(logProbs: ArrayLike<number>): number {
    return Math.exp(-mean(logProbs));
}

/** The first and last quarter of a prompt's positions (quarter = floor(n / 4), at least 1). */
export function quarters<T extends { slice(start?: number, end?: number): T; length: number }>(values: T): { first: T; last: T } {
    const q = Math.max(1, Math.floor(values.length / 4));
    return { first: values.slice(0, q), last: values.slice(values.length - q) };
}
