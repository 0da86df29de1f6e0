// THIRD_PARTY_NOTICES.md (shipped in every package) is what the pinned llama.cpp tree gives:
// its license and those of the code compiled into the binaries, word for word.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from '../support/global-setup.js';

describe('third-party notices', () => {
    it('match the pinned tree, and carry llama.cpp\'s license verbatim', () => {
        const r = spawnSync(process.execPath, [join(root, 'scripts', 'notices.mjs'), '--check'], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        const notices = readFileSync(join(root, 'THIRD_PARTY_NOTICES.md'), 'utf8');
        expect(notices).toContain(readFileSync(join(root, 'vendor', 'llama.cpp', 'LICENSE'), 'utf8').trim());
        expect(notices).toContain(readFileSync(join(root, 'vendor', 'llama.cpp', 'vendor', 'hash', 'xxhash', 'LICENSE'), 'utf8').trim());
        for (const title of ['llama.cpp and ggml', 'llamafile sgemm', 'nlohmann/json', 'subprocess.h', 'SHA-1', 'SHA-256', 'xxHash', 'rotate-bits']) expect(notices).toContain(title);
    });
});
