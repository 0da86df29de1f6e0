/**
 * One download of a file at a time: calls in this process for the same path share one
 * download, and another process gets a clear error instead of interleaving its bytes with
 * ours in the same `.partial` (a lock file beside it, `<name>.partial.lock`, holding the
 * owner's pid; a lock whose process is gone is taken over).
 */
import { open, readFile, rm } from 'node:fs/promises';
import { LlamaError } from '../errors.js';

const inflight = new Map<string, Promise<void>>();

/** Whether a process with this pid exists (EPERM: it exists, owned by someone else). */
function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
}

/** Takes the lock file, or throws DOWNLOAD_FAILED naming the process that holds it. */
async function acquire(lock: string, what: string): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            const handle = await open(lock, 'wx');
            await handle.writeFile(`${process.pid}\n`);
            await handle.close();
            return;
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        const pid = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
        if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
            throw new LlamaError('DOWNLOAD_FAILED', `${what}: another process (pid ${pid}) is downloading this file (${lock}); wait for it, or remove the lock file if that process is not llama-kv`);
        }
        await rm(lock, { force: true }); // left by a process that is gone
    }
    throw new LlamaError('DOWNLOAD_FAILED', `${what}: cannot take the download lock ${lock}`);
}

/**
 * Runs `download` for `path` unless a download of it is already running in this process
 * (then waits for that one), holding the cross-process lock while it runs.
 */
export async function downloadOnce(path: string, what: string, download: () => Promise<void>): Promise<void> {
    const running = inflight.get(path);
    if (running) return running;
    const lock = `${path}.partial.lock`;
    const job = (async () => {
        await acquire(lock, what);
        try {
            await download();
        } finally {
            await rm(lock, { force: true });
        }
    })();
    inflight.set(path, job);
    try {
        await job;
    } finally {
        inflight.delete(path);
    }
}
