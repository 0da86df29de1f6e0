import { execFileSync } from 'node:child_process';
import { inject } from 'vitest';

export const fixtures = inject('fixtures');

/** Greedy token ids from the test-only reference program built straight against libllama. */
export function referenceGreedy(model: string, prompt: string, nPredict: number, threads = 2, lora?: { path: string; scale: number }): number[] {
    const args = [model, prompt, String(nPredict), String(threads), ...(lora ? [lora.path, String(lora.scale)] : [])];
    const out = execFileSync(fixtures.reference, args, { encoding: 'utf8' });
    return out.trim() === '' ? [] : out.trim().split(/\s+/).map(Number);
}

/** Counts setInterval ticks while `work` runs; returns the ticks and the work's result. */
export async function ticksDuring<T>(work: () => Promise<T>, intervalMs = 5): Promise<{ ticks: number; ms: number; result: T }> {
    let ticks = 0;
    const timer = setInterval(() => ticks++, intervalMs);
    const t0 = performance.now();
    try {
        const result = await work();
        return { ticks, ms: performance.now() - t0, result };
    } finally {
        clearInterval(timer);
    }
}
