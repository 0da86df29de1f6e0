/**
 * How the parallel benchmark splits the token events of N concurrent generations into a
 * prompt phase and a generation phase, as llama-batched-bench splits its T_PP and T_TG.
 */

/** One token event as the reader saw it. */
export interface TokenEvent {
    /** performance.now() when the reader got it. */
    at: number;
    sequence: number;
    /** The sequence's first token (sampled from its prompt's logits). */
    first: boolean;
}

/** Events that one engine step delivered: they arrive together, at most one per sequence. */
export const STEP_GAP_MS = 0.5;

/** The phases of one parallel run, as llama-batched-bench splits its time. */
export interface ParallelPhases {
    /** Milliseconds of the steps that delivered a first token (prompt decodes). */
    promptMs: number;
    /** Milliseconds of the steps that delivered only generated tokens after the first (one-token decodes). */
    generationMs: number;
    /** From the calls to the last token event. */
    totalMs: number;
    /** Tokens delivered by the generation steps (each one decode of the token before it). */
    generationTokens: number;
    /** Tokens decoded after the prompts: every token after each sequence's first (the last one sampled is not decoded; a sequence that ended on EOS decoded one more). */
    decodedGenerated: number;
}

/**
 * Splits the token events of one run into steps and phases. A step is a run of events less
 * than {@link STEP_GAP_MS} apart with at most one per sequence; its time is from the step
 * before it (or `start`) to its last event. A step that delivered a first token is prompt
 * time (llama-batched-bench's T_PP: decoding the prompts ends with the first token; a step
 * that decoded a prompt beside generated tokens counts whole as prompt time, and its
 * generated tokens not in S_TG); a step of generated tokens only is generation time (T_TG).
 * Run one after another, each sequence's prompt is a prompt step of its own; run together,
 * the prompts are one step and the rest are generation steps.
 */
export function splitPhases(start: number, events: readonly TokenEvent[]): ParallelPhases {
    const sorted = [...events].sort((a, b) => a.at - b.at);
    let promptMs = 0;
    let generationMs = 0;
    let generationTokens = 0;
    let stepStart = start;
    let i = 0;
    while (i < sorted.length) {
        const seen = new Set<number>([sorted[i].sequence]);
        let first = sorted[i].first;
        let j = i + 1;
        while (j < sorted.length && sorted[j].at - sorted[j - 1].at < STEP_GAP_MS && !seen.has(sorted[j].sequence)) {
            seen.add(sorted[j].sequence);
            first ||= sorted[j].first;
            j++;
        }
        const end = sorted[j - 1].at;
        if (first) promptMs += end - stepStart;
        else {
            generationMs += end - stepStart;
            generationTokens += j - i;
        }
        stepStart = end;
        i = j;
    }
    const totalMs = sorted.length === 0 ? 0 : sorted[sorted.length - 1].at - start;
    const firsts = sorted.filter((e) => e.first).length;
    return { promptMs, generationMs, totalMs, generationTokens, decodedGenerated: sorted.length - firsts };
}

/** Whether two of the sequences' spans, first to last token event, overlap. */
export function spansOverlap(events: readonly TokenEvent[]): boolean {
    const spans = new Map<number, [number, number]>();
    for (const e of events) {
        const s = spans.get(e.sequence);
        if (s === undefined) spans.set(e.sequence, [e.at, e.at]);
        else {
            s[0] = Math.min(s[0], e.at);
            s[1] = Math.max(s[1], e.at);
        }
    }
    const sorted = [...spans.values()].sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < sorted.length; i++) if (sorted[i][0] < sorted[i - 1][1]) return true;
    return false;
}
