/** Summaries of benchmark samples. */

/** The median of `xs` (the mean of the two middle values for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
    if (xs.length === 0) return Number.NaN;
    const s = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(s.length / 2);
    return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** A sample series with its median, in the unit its name says. */
export interface Series {
    /** Median of `samples`. */
    median: number;
    /** Every measurement, in the order taken. */
    samples: number[];
}

/** A {@link Series} of `samples`. */
export function series(samples: readonly number[]): Series {
    return { median: median(samples), samples: [...samples] };
}

/** `a / b`, or null when either is missing or b is not positive. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
    if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return null;
    return a / b;
}
