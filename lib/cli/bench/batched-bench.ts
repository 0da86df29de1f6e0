/**
 * Running llama.cpp's own llama-batched-bench (tools/batched-bench of the vendored llama.cpp)
 * and reading its JSONL output (`--output-format jsonl`): the reference of the parallel mode
 * of the benchmark (`llama-kv bench -npl`).
 *
 * What it measures, per row (pp, tg, pl): one llama_decode of pl random prompts of pp tokens
 * (T_PP), then tg llama_decode calls of pl one-token sequences each, random tokens, no
 * sampling (T_TG); S_PP = pl*pp / T_PP, S_TG = pl*tg / T_TG, S = (pl*pp + pl*tg) / (T_PP + T_TG).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../native/binding.js';
import { runProcess } from './llama-bench.js';
import type { BenchContextSettings } from './ours.js';

/** One llama-batched-bench invocation: one row (one -npp, one -ntg, one -npl). */
export interface BatchedBenchArgs extends BenchContextSettings {
    /** GGUF model file (`-m`). */
    model: string;
    /** Context size (`-c`): all sequences together; a row that does not fit is skipped by llama-batched-bench. */
    contextSize: number;
    /** Prompt tokens of each sequence (`-npp`). */
    promptTokens: number;
    /** Generated tokens of each sequence (`-ntg`). */
    generatedTokens: number;
    /** Sequences decoded together (`-npl`). */
    parallel: number;
}

/** One row of llama-batched-bench's JSONL output (its field names). */
export interface BatchedBenchRow {
    n_kv_max: number;
    n_batch: number;
    n_ubatch: number;
    flash_attn: number;
    is_pp_shared: number;
    n_gpu_layers: number;
    n_threads: number;
    n_threads_batch: number;
    pp: number;
    tg: number;
    pl: number;
    n_kv: number;
    /** Seconds of the prompt decode. */
    t_pp: number;
    speed_pp: number;
    /** Seconds of the tg generation steps. */
    t_tg: number;
    speed_tg: number;
    /** t_pp + t_tg. */
    t: number;
    speed: number;
}

/** What one llama-batched-bench invocation measured. */
export interface BatchedBenchResult {
    /** The row, as printed. */
    row: BatchedBenchRow;
    /** S_PP, S_TG and S, tokens/s, from the times (the printed speeds are floats of 6 decimals: the same within rounding). */
    pp: number;
    tg: number;
    total: number;
    /** The CPU backend library it loaded (ggml's "loaded CPU backend from" log line), where it prints it (this pin does not: null). */
    cpuBackend: string | null;
    /** One sequence's cells (llama.cpp's n_ctx_seq line), where it prints it. */
    perSequence: number | null;
}

/** The llama-batched-bench that `npm run bench` builds (build-bench/ of a clone), or null when it is not there. */
export function findBatchedBench(): string | null {
    let root: string;
    try {
        root = packageRoot();
    } catch {
        return null;
    }
    for (const candidate of [join('build-bench', 'Release', 'llama-batched-bench'), join('build-bench', 'bin', 'llama-batched-bench')]) {
        const file = join(root, candidate);
        if (existsSync(file)) return file;
    }
    return null;
}

/**
 * The command line of an invocation. `-no-kvu`: one KV stream per sequence (llama.cpp's
 * default, and ours), each of contextSize / parallel cells. `-v`: llama.cpp's info lines on
 * stderr (the context's and KV cache's settings, checked below; about 15 KB, none per decode).
 */
export function batchedBenchArgv(args: BatchedBenchArgs): string[] {
    return [
        '-m', args.model,
        '-c', String(args.contextSize),
        '-b', String(args.batchSize),
        '-ub', String(args.ubatchSize),
        '-t', String(args.threads),
        '-tb', String(args.threads),
        '-ctk', args.cacheTypeK,
        '-ctv', args.cacheTypeV,
        '-fa', args.flashAttention,
        '-no-kvu',
        '-npp', String(args.promptTokens),
        '-ntg', String(args.generatedTokens),
        '-npl', String(args.parallel),
        '--output-format', 'jsonl',
        '-v',
    ];
}

const NUMBER_FIELDS: readonly (keyof BatchedBenchRow)[] = [
    'n_kv_max', 'n_batch', 'n_ubatch', 'flash_attn', 'is_pp_shared', 'n_gpu_layers', 'n_threads', 'n_threads_batch',
    'pp', 'tg', 'pl', 'n_kv', 't_pp', 'speed_pp', 't_tg', 'speed_tg', 't', 'speed',
];

/** The rows of llama-batched-bench's JSONL output (stdout): every line that is a JSON object with its fields; other lines are ignored. */
export function parseBatchedBenchJsonl(stdout: string): BatchedBenchRow[] {
    const rows: BatchedBenchRow[] = [];
    for (const line of stdout.split('\n')) {
        const text = line.trim();
        if (!text.startsWith('{')) continue;
        let parsed: unknown;
        try {
            parsed = JSON.parse(text);
        } catch {
            continue;
        }
        const o = parsed as Record<string, unknown>;
        if (NUMBER_FIELDS.every((k) => typeof o[k] === 'number' && Number.isFinite(o[k]))) rows.push(o as unknown as BatchedBenchRow);
    }
    return rows;
}

/**
 * Runs llama-batched-bench for one row and returns its figures. Rejects when it fails,
 * prints no row (it skips a row whose pl * (pp + tg) exceeds its context), or reports other
 * settings than those asked for.
 */
export async function runBatchedBench(binary: string, args: BatchedBenchArgs): Promise<BatchedBenchResult> {
    const argv = batchedBenchArgv(args);
    const { code, signal, stdout, stderr } = await runProcess(binary, argv);
    const command = `${binary} ${argv.join(' ')}`;
    if (code !== 0) {
        throw new Error(`llama-batched-bench exited with ${code ?? signal}: ${command}\n${stderr.trim().split('\n').slice(-10).join('\n')}`);
    }
    const rows = parseBatchedBenchJsonl(stdout);
    if (rows.length !== 1) {
        throw new Error(`llama-batched-bench printed ${rows.length} result rows instead of 1 (a row that does not fit in -c is skipped): ${command}\n${stdout.slice(0, 500)}`);
    }
    const [row] = rows;
    const fa = args.flashAttention === 'on' ? 1 : args.flashAttention === 'off' ? 0 : -1;
    const asked = `pp=${args.promptTokens} tg=${args.generatedTokens} pl=${args.parallel} t=${args.threads}/${args.threads} b=${args.batchSize} ub=${args.ubatchSize} fa=${fa} pps=0`;
    const got = `pp=${row.pp} tg=${row.tg} pl=${row.pl} t=${row.n_threads}/${row.n_threads_batch} b=${row.n_batch} ub=${row.n_ubatch} fa=${row.flash_attn} pps=${row.is_pp_shared}`;
    if (asked !== got) throw new Error(`llama-batched-bench ran other settings than asked: ${got} instead of ${asked}`);
    if (!(row.t_pp > 0 && row.t_tg > 0)) throw new Error(`llama-batched-bench reported non-positive times (t_pp ${row.t_pp}, t_tg ${row.t_tg}): ${command}`);
    // llama.cpp's log lines of the context and its KV cache, where this pin prints them.
    const unified = /llama_context: kv_unified\s*=\s*(\w+)/.exec(stderr)?.[1];
    if (unified !== undefined && unified !== 'false') throw new Error(`llama-batched-bench ran with kv_unified = ${unified}: ${command}`);
    const types = /llama_kv_cache: size = .*K \((\w+)\).*V \((\w+)\)/.exec(stderr);
    if (types && (types[1] !== args.cacheTypeK || types[2] !== args.cacheTypeV)) {
        throw new Error(`llama-batched-bench's KV cache is ${types[1]}/${types[2]} instead of ${args.cacheTypeK}/${args.cacheTypeV}: ${command}`);
    }
    const perSequence = /llama_context: n_ctx_seq\s*=\s*(\d+)/.exec(stderr)?.[1];
    const loaded = /loaded CPU backend from (.+)$/m.exec(stderr);
    return {
        row,
        pp: (row.pl * row.pp) / row.t_pp,
        tg: (row.pl * row.tg) / row.t_tg,
        total: (row.pl * row.pp + row.pl * row.tg) / (row.t_pp + row.t_tg),
        cpuBackend: loaded ? loaded[1].trim() : null,
        perSequence: perSequence === undefined ? null : Number(perSequence),
    };
}
