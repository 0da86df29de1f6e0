import { spawnSync } from 'node:child_process';

/** What a corpus child printed (one `{ file, outcome }` JSON line per file) and how it ended. */
export interface ChildRun {
    results: Map<string, string>;
    status: number | null;
    signal: NodeJS.Signals | null;
    timedOut: boolean;
    stderr: string;
}

/** Runs a corpus child script with `input` as JSON on stdin (a crash or hang there is counted, not fatal here). */
export function runCorpusChild(script: string, input: unknown, env: Record<string, string>, timeoutMs: number): ChildRun {
    const r = spawnSync(process.execPath, [script], {
        input: JSON.stringify(input),
        encoding: 'utf8',
        env: { ...process.env, ...env },
        timeout: timeoutMs,
        maxBuffer: 64 * 2 ** 20,
    });
    const results = new Map<string, string>();
    for (const line of (r.stdout ?? '').split('\n')) {
        if (!line.startsWith('{')) continue;
        const { file, outcome } = JSON.parse(line) as { file: string; outcome: string };
        results.set(file, outcome);
    }
    return { results, status: r.status, signal: r.signal, timedOut: (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT', stderr: r.stderr ?? '' };
}
