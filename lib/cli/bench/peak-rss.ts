/**
 * Peak resident memory of a child process, measured the same way whatever the child is
 * (llama-bench or a node process running llama-kv): the kernel's own maximum RSS of
 * that process, from wait4()'s rusage.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** How {@link peakRss} measured. */
export type PeakRssMethod = 'wait4' | 'proc-vmhwm';

/** A finished child and its peak RSS. */
export interface PeakRssResult {
    /** Peak resident set size in bytes (ru_maxrss, or the last VmHWM read). */
    bytes: number;
    method: PeakRssMethod;
    code: number | null;
    stdout: string;
    stderr: string;
}

const MARKER = 'llama-kv-peak-rss-kib:';

// Forks, execs the command and reports ru_maxrss of exactly that child (KiB on Linux).
const WAIT4 = `
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
sys.stderr.write("\\n${MARKER}%d\\n" % ru.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else (status >> 8))
`;

let python: string | null | undefined;

/** python3 when it runs, else null (checked once). */
function findPython(): string | null {
    if (python === undefined) {
        const r = spawnSync('python3', ['-c', 'import os; os.wait4'], { stdio: 'ignore' });
        python = r.status === 0 ? 'python3' : null;
    }
    return python;
}

/**
 * Runs `file argv...` to its end and returns its peak RSS. Uses python3's os.wait4 when
 * python3 is there (the kernel's ru_maxrss of that one process); otherwise reads the
 * child's VmHWM from /proc every 10 ms while it runs (Linux), which can miss a peak in
 * its last 10 ms. Null where neither works (not Linux, no python3).
 */
export async function peakRss(file: string, argv: readonly string[], env?: NodeJS.ProcessEnv): Promise<PeakRssResult | null> {
    const py = findPython();
    if (py !== null) {
        const r = await collect(py, ['-c', WAIT4, file, ...argv], env);
        const m = new RegExp(`\\n${MARKER}(\\d+)\\n?$`).exec(r.stderr);
        if (!m) throw new Error(`peak RSS: the wait4 wrapper printed no figure for ${file} (exit ${r.code})\n${r.stderr.slice(-2000)}`);
        return { bytes: Number(m[1]) * 1024, method: 'wait4', code: r.code, stdout: r.stdout, stderr: r.stderr.slice(0, m.index) };
    }
    if (process.platform !== 'linux') return null;
    let hwm = 0;
    const r = await collect(file, argv, env, (pid) => {
        try {
            const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
            if (m) hwm = Math.max(hwm, Number(m[1]) * 1024);
        } catch {
            // gone
        }
    });
    return { bytes: hwm, method: 'proc-vmhwm', code: r.code, stdout: r.stdout, stderr: r.stderr };
}

function collect(file: string, argv: readonly string[], env: NodeJS.ProcessEnv | undefined, poll?: (pid: number) => void) {
    return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = poll && child.pid !== undefined ? setInterval(() => poll(child.pid!), 10) : undefined;
        child.on('error', (e) => {
            clearInterval(timer);
            reject(e);
        });
        child.on('close', (code) => {
            clearInterval(timer);
            resolve({ code, stdout, stderr });
        });
    });
}
