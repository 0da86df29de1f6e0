import { execFileSync, spawnSync } from 'node:child_process';
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

/** The inputs of llama.cpp's embedding example (test/support/reference/embedding.cpp), with its command line's names in the docs. */
export interface ReferenceEmbeddingInputs {
    /** The prompt lines; with RANK pooling a line `query<clsSep>document` is a pair. */
    texts: string[];
    /** --pooling as llama_pooling_type: -1 the model's (default), 0 none, 1 mean, 2 cls, 3 last, 4 rank. */
    pooling?: -1 | 0 | 1 | 2 | 3 | 4;
    /** --embd-normalize: -1 none, 0 max-abs scaled to int16, 1 taxicab, 2 euclidean (default), p > 2 p-norm. */
    normalize?: number;
    /** -c; 0 (default) is the model's training context. */
    contextSize?: number;
    /** -b (default 2048), raised to the context size as the example does; also the ubatch. */
    batchSize?: number;
    /** -np; 1 (default) gives the example's unified cache with llama_max_parallel_sequences() sequences. */
    parallel?: number;
    /** -t; default: the machine's math cores. */
    threads?: number;
    /** --cls-separator (default "\t"). */
    clsSep?: string;
}

/** What llama.cpp's embedding example computes: one row per text (per token with pooling none); a rerank row holds nClsOut scores. */
export interface ReferenceEmbeddingResult {
    /** llama_pooling_type(ctx): the pooling in force. */
    pooling: number;
    nEmbdOut: number;
    nClsOut: number;
    /** common_tokenize(ctx, text, true, true) of each text (pairs joined as the example joins them). */
    tokens: number[][];
    /** Normalized as asked; a non-finite value (printed as null) is NaN. */
    embeddings: number[][];
}

/**
 * Runs the logic of llama.cpp's examples/embedding on `model` (test/support/reference/embedding.cpp),
 * with 2 threads unless `inputs` say otherwise: its result, or its error where the example refuses
 * (a text longer than the batch, a model that does not load).
 *
 * @throws Error when the program prints no JSON (it crashed, as the example would).
 */
export function referenceEmbeddings(model: string, inputs: ReferenceEmbeddingInputs): ReferenceEmbeddingResult | { error: string } {
    const dir = mkdtempSync(join(tmpdir(), 'llama-kv-embed-ref-'));
    try {
        const file = join(dir, 'inputs.json');
        writeFileSync(file, JSON.stringify({ threads: 2, ...inputs }));
        const run = spawnSync(fixtures.embeddingReference, [model, file], { encoding: 'utf8', maxBuffer: 1024 * 2 ** 20 });
        let parsed: { error?: string; embeddings?: (number | null)[][] };
        try {
            parsed = JSON.parse(run.stdout) as typeof parsed;
        } catch {
            throw new Error(`llama-kv-embedding-reference printed no result (status ${run.status}, signal ${run.signal}): ${run.stderr || run.stdout}`);
        }
        if (typeof parsed.error === 'string') return { error: parsed.error };
        const result = parsed as ReferenceEmbeddingResult & { embeddings: (number | null)[][] };
        return { ...result, embeddings: result.embeddings.map((row) => row.map((v) => v ?? NaN)) };
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
