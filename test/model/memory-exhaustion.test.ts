// Memory exhaustion, made real and deterministic: a child process lowers its own
// address-space limit (RLIMIT_AS) to just above what it uses, then asks for a context and
// models that do not fit. The pre-check refuses them with INSUFFICIENT_MEMORY before
// llama.cpp allocates; with checkMemory: false llama.cpp's own failed allocation comes
// back as INSUFFICIENT_MEMORY too; the process survives and works once the limit is lifted.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { root } from '../support/global-setup.js';
import { fixtures } from '../support/fixtures.js';

type Step = { code: string; memoryError?: boolean; neededBytes?: number | null; availableBytes?: number | null; location?: string | null; message?: string };

describe.runIf(process.platform === 'linux')('memory exhaustion', () => {
    it('refuses what does not fit, turns llama.cpp allocation failures into errors, and survives', () => {
        const r = spawnSync(process.execPath, ['--max-semi-space-size=1', join(root, 'test', 'support', 'memory', 'exhaustion-child.mjs')], {
            encoding: 'utf8',
            env: {
                ...process.env,
                LLAMA_KV_DIST: pathToFileURL(join(root, 'dist', 'index.js')).href,
                LLAMA_KV_OOM: JSON.stringify({ model: fixtures.f16 }),
            },
            timeout: 120_000,
        });
        expect(r.signal, r.stderr.slice(-3000)).toBeNull();
        expect(r.status, r.stderr.slice(-3000)).toBe(0);
        const steps = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, Step>;

        const checked = steps['context, checked'];
        expect(checked).toMatchObject({ code: 'INSUFFICIENT_MEMORY', memoryError: true, location: 'host' });
        expect(checked.neededBytes).toBeGreaterThanOrEqual(2 ** 30); // 2^20 cells of f16 K and V
        expect(checked.availableBytes).toBeLessThan(checked.neededBytes!);
        expect(checked.message).toMatch(/needs about 1\.1 GiB of host memory \(KV cache 1\.0 GiB, compute .*address-space limit.*contextSize.*checkMemory: false/);

        const unchecked = steps['context, unchecked'];
        expect(unchecked).toMatchObject({ code: 'INSUFFICIENT_MEMORY', memoryError: true, neededBytes: null });
        expect(unchecked.message).toMatch(/failed to allocate buffer for kv cache/);

        expect(steps['small context'].code).toBe('ok');

        const noMmap = steps['model without mmap, checked'];
        expect(noMmap).toMatchObject({ code: 'INSUFFICIENT_MEMORY', location: 'host', neededBytes: 35_132_416 }); // the weights, padded
        expect(noMmap.message).toMatch(/without mmap needs about 33\.5 MiB of host memory \(weights 33\.5 MiB\).*useMmap: true/);
        const mmap = steps['model with mmap, checked'];
        expect(mmap).toMatchObject({ code: 'INSUFFICIENT_MEMORY', location: 'host' });
        expect(mmap.message).toMatch(/Memory-mapping this model needs about 34\.2 MiB of address space \(file 34\.2 MiB\)/);
        expect(steps['model with mmap, unchecked']).toMatchObject({ code: 'INSUFFICIENT_MEMORY', neededBytes: null });

        expect(steps['after the limit is lifted'].code).toBe('ok');
    });
});
