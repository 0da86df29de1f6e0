// Generates the fixture models once (cached across runs) and builds the test-only
// llama.cpp reference program, before any test file runs.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureFixtureLora } from '../../lib/demo/loras.js';
import { ensureFixtureModel } from '../../lib/demo/models.js';

export const root = resolve(import.meta.dirname, '..', '..');

function buildReference(): string {
    const buildDir = join(root, 'build');
    if (!existsSync(join(buildDir, 'CMakeCache.txt'))) {
        throw new Error('build/ is not configured: run `npm install` (or `npm run build`) before `npm test`');
    }
    execFileSync('cmake', ['--build', buildDir, '--target', 'llama-kv-reference', '--parallel', '2'], { stdio: 'pipe', maxBuffer: 256 * 2 ** 20 });
    for (const candidate of ['Release/llama-kv-reference', 'bin/llama-kv-reference']) {
        const file = join(buildDir, candidate);
        if (existsSync(file)) return file;
    }
    throw new Error('llama-kv-reference was built but not found under build/');
}

export default async function setup(project: TestProject): Promise<void> {
    const dir = join(root, '.cache', 'models');
    project.provide('fixtures', {
        f16: await ensureFixtureModel('tiny-f16', { dir }),
        q8_0: await ensureFixtureModel('tiny-q8_0', { dir }),
        q4_0: await ensureFixtureModel('tiny-q4_0', { dir }),
        hd48: await ensureFixtureModel('tiny-hd48-f16', { dir }),
        moe: await ensureFixtureModel('tiny-moe-f16', { dir }),
        loraAttn: await ensureFixtureLora('tiny-lora-r8-attn', { dir }),
        loraFfn: await ensureFixtureLora('tiny-lora-r4-ffn', { dir }),
        loraHd48: await ensureFixtureLora('tiny-hd48-lora-r8-attn', { dir }),
        reference: buildReference(),
        cacheDir: dir,
    });
}

declare module 'vitest' {
    export interface ProvidedContext {
        fixtures: { f16: string; q8_0: string; q4_0: string; hd48: string; moe: string; loraAttn: string; loraFfn: string; loraHd48: string; reference: string; cacheDir: string };
    }
}
