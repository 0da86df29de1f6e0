/**
 * Running llama.cpp's own llama-embedding (examples/embedding of the vendored llama.cpp) on
 * the benchmark's texts and reading its timings: the reference of `llama-kv bench --embed`.
 *
 * What it measures: llama.cpp's `llama_perf_context_print` "total time", from the end of its
 * warm-up decode (common_init_from_params resets the counters there; the model load, the
 * context and the warm-up are before it) to the print after the last batch: tokenizing the
 * texts, packing them into batches, every llama_decode and the normalization, with no output
 * (`--embd-output-format none`, a format it does not know, prints nothing). Its "prompt eval
 * time" (the decodes alone) and the wall time of the process are kept beside it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../native/binding.js';
import { runProcess } from './llama-bench.js';

/** One llama-embedding invocation. */
export interface LlamaEmbeddingArgs {
    model: string;
    /** The file of texts (`-f`), joined by `separator`. */
    file: string;
    separator: string;
    contextSize: number;
    batchSize: number;
    ubatchSize: number;
    threads: number;
    /** The pooling ours resolved (`--pooling`). */
    pooling: 'none' | 'mean' | 'cls' | 'last';
    /** `--embd-normalize`. */
    normalize: number;
}

/** What one llama-embedding invocation measured. */
export interface LlamaEmbeddingResult {
    /** llama_perf_context_print's total time: tokenization, decodes and normalization, after the warm-up. */
    totalMs: number;
    /** Its prompt eval time: the decodes alone. */
    promptEvalMs: number;
    /** The process from spawn to exit (the model load included). */
    wallMs: number;
    /** The decodes, texts and tokens of its batch_decode lines. */
    decodes: number;
    texts: number;
    tokens: number;
    /** The CPU backend library it loaded, where it prints it. */
    cpuBackend: string | null;
    /** Its context as llama.cpp put it in force (its llama_context lines), where it prints them. */
    context: { contextSize: number | null; batchSize: number | null; ubatchSize: number | null };
}

/** The llama-embedding that `npm run bench -- --embed` builds (build-bench/ of a clone), or null when it is not there. */
export function findLlamaEmbedding(): string | null {
    let root: string;
    try {
        root = packageRoot();
    } catch {
        return null;
    }
    for (const candidate of [join('build-bench', 'Release', 'llama-embedding'), join('build-bench', 'bin', 'llama-embedding')]) {
        const file = join(root, candidate);
        if (existsSync(file)) return file;
    }
    return null;
}

/**
 * The command line of an invocation. `-np 1` is llama-embedding's own mode for a number of
 * texts it does not know in advance: one unified KV buffer (ours: kvUnified) and up to
 * llama.cpp's 256 sequences per decode; batches are cut at -b tokens first on both sides.
 */
export function llamaEmbeddingArgv(args: LlamaEmbeddingArgs): string[] {
    return [
        '-m', args.model,
        '-f', args.file,
        '--embd-separator', args.separator,
        '-c', String(args.contextSize),
        '-b', String(args.batchSize),
        '-ub', String(args.ubatchSize),
        '-np', '1',
        '-t', String(args.threads),
        '--pooling', args.pooling,
        '--embd-normalize', String(args.normalize),
        '--embd-output-format', 'none',
        // libllama's info lines (its context's settings, llama_perf_context_print) are common's verbosity 4.
        '-lv', '4',
    ];
}

/** The figures of llama-embedding's log (stdout and stderr together); throws naming what is missing. */
export function parseLlamaEmbeddingLog(log: string): Omit<LlamaEmbeddingResult, 'wallMs'> {
    const ms = (name: string) => {
        const m = new RegExp(`llama_perf_context_print:\\s+${name} =\\s+([\\d.]+) ms`).exec(log);
        if (!m) throw new Error(`llama-embedding printed no "${name}" line (llama_perf_context_print)`);
        return Number(m[1]);
    };
    let decodes = 0;
    let texts = 0;
    let tokens = 0;
    for (const m of log.matchAll(/batch_decode: n_tokens = (\d+), n_seq = (\d+)/g)) {
        decodes++;
        tokens += Number(m[1]);
        texts += Number(m[2]);
    }
    const loaded = /loaded CPU backend from (.+)$/m.exec(log);
    const setting = (name: string) => {
        const m = new RegExp(`llama_context: ${name}\\s*=\\s*(\\d+)`).exec(log);
        return m ? Number(m[1]) : null;
    };
    return {
        totalMs: ms('total time'),
        promptEvalMs: ms('prompt eval time'),
        decodes,
        texts,
        tokens,
        cpuBackend: loaded ? loaded[1].trim() : null,
        context: { contextSize: setting('n_ctx'), batchSize: setting('n_batch'), ubatchSize: setting('n_ubatch') },
    };
}

/** Runs llama-embedding once; rejects when it fails or prints no timings. */
export async function runLlamaEmbedding(binary: string, args: LlamaEmbeddingArgs): Promise<LlamaEmbeddingResult> {
    const argv = llamaEmbeddingArgv(args);
    const started = performance.now();
    const { code, signal, stdout, stderr } = await runProcess(binary, argv);
    const wallMs = performance.now() - started;
    const command = `${binary} ${argv.join(' ')}`;
    if (code !== 0) throw new Error(`llama-embedding exited with ${code ?? signal}: ${command}\n${stderr.trim().split('\n').slice(-10).join('\n')}`);
    try {
        return { ...parseLlamaEmbeddingLog(`${stdout}\n${stderr}`), wallMs };
    } catch (error) {
        throw new Error(`${(error as Error).message}: ${command}\n${stderr.trim().split('\n').slice(-10).join('\n')}`);
    }
}
