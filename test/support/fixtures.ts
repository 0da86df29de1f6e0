import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';

export const fixtures = inject('fixtures');

/** Greedy token ids from the test-only reference program built straight against libllama. */
export function referenceGreedy(model: string, prompt: string, nPredict: number, threads = 2, lora?: { path: string; scale: number }): number[] {
    const args = [model, prompt, String(nPredict), String(threads), ...(lora ? [lora.path, String(lora.scale)] : [])];
    const out = execFileSync(fixtures.reference, args, { encoding: 'utf8' });
    return out.trim() === '' ? [] : out.trim().split(/\s+/).map(Number);
}

/** One rendering by llama.cpp's chat layer: the prompt, the grammar for tool calls and the chat format's name; or its error. */
export type ReferenceChatResult = { prompt: string; grammar: string; format: string } | { error: string };

/**
 * llama.cpp's common_chat_templates_apply, called as its server calls it, on each OpenAI-style
 * body ({ messages, tools?, tool_choice?, add_generation_prompt?, enable_thinking?, now? }):
 * with the model's own templates when `templateFile` is null, else with that file's template.
 * A template that fails to initialize gives its error for every body.
 */
export function referenceChatApply(model: string, templateFile: string | null, bodies: object[]): ReferenceChatResult[] {
    const dir = mkdtempSync(join(tmpdir(), 'llama-kv-chat-ref-'));
    try {
        const inputs = join(dir, 'inputs.json');
        writeFileSync(inputs, JSON.stringify(bodies));
        const out = execFileSync(fixtures.chatReference, [model, templateFile ?? '-', inputs], { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
        const results = JSON.parse(out) as ReferenceChatResult[];
        if (results.length === bodies.length) return results;
        // common_chat_templates_init threw: the program prints its one error instead of one result per body.
        if (results.length === 1 && 'error' in results[0]) return bodies.map(() => results[0]);
        throw new Error(`llama-kv-chat-reference gave ${results.length} results for ${bodies.length} bodies`);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
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
