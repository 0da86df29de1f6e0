// Models and contexts that are never disposed are freed by the GC (issue 16): the native
// objects hold what they need (a context its model), so the GC may collect them in any
// order; nothing in llama-kv keeps them reachable. In a child process with --expose-gc.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { root } from '../support/global-setup.js';
import { fixtures } from '../support/fixtures.js';

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

describe('lifetimes without dispose()', () => {
    it('RSS returns after GC: 20 undisposed models with contexts, 30 undisposed contexts on a kept model', () => {
        const r = spawnSync(process.execPath, ['--expose-gc', join(root, 'test', 'support', 'stress', 'undisposed.mjs')], {
            encoding: 'utf8',
            env: {
                ...process.env,
                LLAMA_KV_DIST: pathToFileURL(join(root, 'dist', 'index.js')).href,
                LLAMA_KV_UNDISPOSED: JSON.stringify({ path: fixtures.f16, models: 20, contexts: 30 }),
            },
            timeout: 300_000,
        });
        expect(r.signal, r.stderr).toBeNull();
        expect(r.status, r.stderr).toBe(0);
        type Run = { before: number; peak: number; after: number; each: number; n: number };
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { models: Run; contexts: Run };
        for (const [kind, m] of Object.entries(out)) {
            process.stdout.write(`[finalizers] ${m.n} undisposed ${kind} (${mib(m.each)} each): RSS ${mib(m.before)}, peak ${mib(m.peak)}, after GC ${mib(m.after)}\n`);
            // Leaked, they would add n x each (20 x 33.5 MiB of weights, 30 KV caches of 4 MiB).
            // Collected, what stays is what disposed ones leave too: measured on Sapphire Rapids,
            // +90 MiB after 20 models either way (the AMX copies of each load are malloc'd) and
            // nothing after the contexts. Bounded at half of a leak.
            expect(m.each, kind).toBeGreaterThan(0);
            expect(m.after - m.before, kind).toBeLessThan((m.n * m.each) / 2);
        }
    }, 300_000);
});
