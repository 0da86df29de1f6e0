// The per-platform packages agree everywhere they are named: the committed manifests in npm/,
// llama-kv's optionalDependencies and lockfile, the release workflow's build matrix, and the
// tables the library uses to name packages to install (lib/native/backend-packages.ts).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PLATFORM_GPU_KINDS, RELEASED_PLATFORMS } from '../../lib/native/backend-packages.js';
import { unpackedPath, isInsideAsar } from '../../lib/native/asar-path.js';

const root = resolve(import.meta.dirname, '..', '..');
const json = (file: string) => JSON.parse(readFileSync(join(root, file), 'utf8'));
const main = json('package.json');
const dirs = readdirSync(join(root, 'npm')).filter((d) => existsSync(join(root, 'npm', d, 'package.json')));
const GPU = /^(.+)-(cuda|rocm|vulkan)$/;

/** The (key, variant) pairs of the workflow's cpu and gpu matrices. */
function workflowPackages(): string[] {
    const yml = readFileSync(join(root, '.github', 'workflows', 'prebuild.yml'), 'utf8');
    const cpu = [...nextJob(yml, 'cpu').matchAll(/key: ([\w-]+)/g)].map((m) => m[1]);
    const gpu = [...nextJob(yml, 'gpu').matchAll(/variant: (\w+), key: ([\w-]+)/g)].map((m) => `${m[2]}-${m[1]}`);
    return [...cpu, ...gpu];
}

/** The text of one top-level job of the workflow (up to the next job). */
function nextJob(yml: string, name: string): string {
    const start = yml.indexOf(`\n  ${name}:`);
    const rest = yml.slice(start + 1);
    const end = rest.slice(1).search(/\n {2}[\w-]+:\n/);
    return end === -1 ? rest : rest.slice(0, end + 1);
}

describe('the per-platform packages', () => {
    it('has one committed manifest per released package, each at llama-kv\'s version with os, cpu, libc and the license files', () => {
        expect(dirs.length).toBeGreaterThan(0);
        for (const dir of dirs) {
            const m = json(`npm/${dir}/package.json`);
            const [platform, arch] = (GPU.exec(dir)?.[1] ?? dir).split('-');
            expect(m.name).toBe(`@llama-kv/${dir}`);
            expect(m.version).toBe(main.version);
            expect(m.license).toBe(main.license);
            expect(m.repository).toEqual(main.repository);
            expect(m.homepage).toBe(main.homepage);
            expect(m.bugs).toEqual(main.bugs);
            expect(m.os).toEqual([platform]);
            expect(m.cpu).toEqual([arch]);
            if (platform === 'linux') expect(m.libc).toEqual(['glibc']);
            expect(m.files).toEqual(['bin/', 'LICENSE', 'THIRD_PARTY_NOTICES.md']);
            expect(existsSync(join(root, 'npm', dir, 'README.md'))).toBe(true);
        }
    });

    it('lists every one, and only those, as an optional dependency of llama-kv, with lockfile entries so that npm ci works before they are published', () => {
        expect(main.optionalDependencies).toEqual(Object.fromEntries(dirs.map((d) => [`@llama-kv/${d}`, main.version])));
        const lock = json('package-lock.json');
        for (const d of dirs) {
            const entry = lock.packages[`node_modules/@llama-kv/${d}`];
            expect(entry, d).toMatchObject({ version: main.version, optional: true, os: json(`npm/${d}/package.json`).os, cpu: json(`npm/${d}/package.json`).cpu });
        }
    });

    it('is what the release workflow builds, and what the library names as installable', () => {
        expect(workflowPackages().sort()).toEqual([...dirs].sort());
        expect([...RELEASED_PLATFORMS].sort()).toEqual(dirs.filter((d) => !GPU.test(d)).sort());
        const gpu = Object.entries(PLATFORM_GPU_KINDS).flatMap(([key, kinds]) => kinds.filter((k) => k !== 'metal').map((k) => `${key}-${k}`));
        expect(gpu.sort()).toEqual(dirs.filter((d) => GPU.test(d)).sort());
    });

    it('keeps binaries out of git and out of the llama-kv tarball', () => {
        const ignore = readFileSync(join(root, '.gitignore'), 'utf8');
        expect(ignore).toMatch(/^npm\/\*\/bin\/$/m);
        expect(main.files).not.toContain('prebuilds/');
        expect(main.files.some((f: string) => f.startsWith('npm'))).toBe(false);
        expect(existsSync(join(root, 'binding.gyp'))).toBe(false);
        expect(Object.keys(main.dependencies)).toEqual(['zod']);
    });
});

describe('the Electron archive rewrite', () => {
    it('points every archive segment at its unpacked folder, once', () => {
        expect(unpackedPath('/opt/App/resources/app.asar/node_modules/@llama-kv/linux-x64/bin')).toBe('/opt/App/resources/app.asar.unpacked/node_modules/@llama-kv/linux-x64/bin');
        expect(unpackedPath('C:\\App\\resources\\app.asar\\node_modules\\llama-kv')).toBe('C:\\App\\resources\\app.asar.unpacked\\node_modules\\llama-kv');
        expect(unpackedPath('/r/app.asar')).toBe('/r/app.asar.unpacked');
        expect(unpackedPath('/r/app.asar.unpacked/x')).toBe('/r/app.asar.unpacked/x');
        expect(unpackedPath('/r/my.asarfile/x')).toBe('/r/my.asarfile/x');
        expect(unpackedPath('/home/u/models/m.gguf')).toBe('/home/u/models/m.gguf');
        expect(isInsideAsar('/r/app.asar/x')).toBe(true);
        expect(isInsideAsar('/r/app.asar.unpacked/x')).toBe(false);
    });
});
