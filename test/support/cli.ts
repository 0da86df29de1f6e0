import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fixtures } from './fixtures.js';

/** The built CLI (npm test builds dist/ first). */
export const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'index.js');

/** Runs `llama-kv ...args` with the fixtures' cache as the demo model's cache. */
export function llamaKv(...args: string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [cli, ...args], {
        encoding: 'utf8',
        env: { ...process.env, LLAMA_KV_CACHE_DIR: fixtures.cacheDir },
        timeout: 60_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
