/**
 * Running llama.cpp's own llama-bench (tools/llama-bench of the vendored llama.cpp) and
 * reading its JSON output.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../native/binding.js';
import type { BenchContextSettings } from './ours.js';

/** One llama-bench invocation: the settings llama-bench takes, named as our options are. */
export interface LlamaBenchArgs extends BenchContextSettings {
    /** GGUF model file (`-m`). */
    model: string;
    /** Prompt tokens of the pp test (`-p`); 0 for none. */
    promptTokens: number;
    /** Generated tokens of the tg test (`-n`); 0 for none. */
    generatedTokens: number;
    /** Repetitions inside this invocation (`-r`). */
    reps: number;
    /** RPC servers (`--rpc`, host:port), whose devices take every layer (llama-bench's default -ngl). Defaults to none. */
    rpcServers?: string[];
}

/** What one llama-bench invocation measured. */
export interface LlamaBenchResult {
    /** Prompt-processing tokens/s of each repetition (empty without a pp test). */
    pp: number[];
    /** Generation tokens/s of each repetition (empty without a tg test). */
    tg: number[];
    /** The CPU backend library llama-bench loaded (from ggml's "loaded CPU backend from" log line). */
    cpuBackend: string | null;
    /** llama-bench's `build_commit`, `cpu_info` and `backends` fields. */
    build: { commit: string | null; cpuInfo: string | null; backends: string | null };
}

/** The llama-bench that `npm run bench` builds (build-bench/ of a clone), or null when it is not there. */
export function findLlamaBench(): string | null {
    let root: string;
    try {
        root = packageRoot();
    } catch {
        return null;
    }
    for (const candidate of [join('build-bench', 'Release', 'llama-bench'), join('build-bench', 'bin', 'llama-bench')]) {
        const file = join(root, candidate);
        if (existsSync(file)) return file;
    }
    return null;
}

/** The command line of an invocation, for the report and for error messages. */
export function llamaBenchArgv(args: LlamaBenchArgs): string[] {
    return [
        '-m', args.model,
        '-t', String(args.threads),
        '-ctk', args.cacheTypeK,
        '-ctv', args.cacheTypeV,
        '-fa', args.flashAttention,
        '-b', String(args.batchSize),
        '-ub', String(args.ubatchSize),
        '-p', String(args.promptTokens),
        '-n', String(args.generatedTokens),
        '-r', String(args.reps),
        ...(args.rpcServers ? ['--rpc', args.rpcServers.join(',')] : []),
        '-o', 'json',
    ];
}

interface LlamaBenchTest {
    n_prompt: number;
    n_gen: number;
    n_threads: number;
    type_k: string;
    type_v: string;
    n_batch: number;
    n_ubatch: number;
    samples_ns: number[];
    build_commit?: string;
    cpu_info?: string;
    backends?: string;
}

/**
 * Runs llama-bench once and returns the tokens/s of each repetition. Rejects when it
 * fails, prints no JSON, or reports other settings than those asked for.
 */
export async function runLlamaBench(binary: string, args: LlamaBenchArgs): Promise<LlamaBenchResult> {
    const argv = llamaBenchArgv(args);
    const { code, signal, stdout, stderr } = await runProcess(binary, argv);
    if (code !== 0) {
        throw new Error(`llama-bench exited with ${code ?? signal}: ${binary} ${argv.join(' ')}\n${stderr.trim().split('\n').slice(-10).join('\n')}`);
    }
    let tests: LlamaBenchTest[];
    try {
        tests = JSON.parse(stdout) as LlamaBenchTest[];
    } catch {
        throw new Error(`llama-bench printed no JSON: ${binary} ${argv.join(' ')}\n${stdout.slice(0, 500)}`);
    }
    const pp: number[] = [];
    const tg: number[] = [];
    for (const t of tests) {
        const asked = `t=${args.threads} ctk=${args.cacheTypeK} ctv=${args.cacheTypeV} b=${args.batchSize} ub=${args.ubatchSize}`;
        const got = `t=${t.n_threads} ctk=${t.type_k} ctv=${t.type_v} b=${t.n_batch} ub=${t.n_ubatch}`;
        if (asked !== got) throw new Error(`llama-bench ran other settings than asked: ${got} instead of ${asked}`);
        // tokens/s from the nanoseconds (samples_ts is printed with 2 decimals only)
        if (t.n_prompt > 0 && t.n_gen === 0) pp.push(...t.samples_ns.map((ns) => (t.n_prompt * 1e9) / ns));
        else if (t.n_gen > 0 && t.n_prompt === 0) tg.push(...t.samples_ns.map((ns) => (t.n_gen * 1e9) / ns));
    }
    const first = tests[0];
    const loaded = /loaded CPU backend from (.+)$/m.exec(stderr);
    return {
        pp,
        tg,
        cpuBackend: loaded ? loaded[1].trim() : null,
        build: { commit: first?.build_commit ?? null, cpuInfo: first?.cpu_info ?? null, backends: first?.backends ?? null },
    };
}

/** Runs `file` with `argv` to its end: its exit code or signal and its whole stdout and stderr. */
export function runProcess(file: string, argv: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.on('error', reject);
        child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
}
