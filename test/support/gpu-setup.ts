// The global setup of the gpu project (vitest.gpu.config.ts): the fixture models of the
// model project, and the GPU backend package of LLAMA_KV_TEST_GPU linked into
// node_modules/@llama-kv/ so that the addon finds it exactly as it finds an installed
// package (lib/native/backend-packages.ts: require.resolve of <name>/package.json, its
// version, its bin/ folder). The link is removed afterwards, so that `npm test` in the
// same checkout stays on the CPU.
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import fixtureSetup, { root } from './global-setup.js';

export type GpuKind = 'vulkan' | 'cuda' | 'rocm';
const LIBRARY: Record<GpuKind, string> = { vulkan: 'vulkan', cuda: 'cuda', rocm: 'hip' };

export default async function setup(project: TestProject): Promise<() => void> {
    const kind = process.env.LLAMA_KV_TEST_GPU as GpuKind | undefined;
    if (kind === undefined || !(kind in LIBRARY)) {
        throw new Error(`set LLAMA_KV_TEST_GPU to vulkan, cuda or rocm to run the gpu project (got ${kind ?? 'nothing'})`);
    }
    const key = `${process.platform}-${process.arch}-${kind}`;
    const packageDir = join(root, 'npm', key);
    const library = join(packageDir, 'bin', `${process.platform === 'win32' ? '' : 'lib'}ggml-${LIBRARY[kind]}.${process.platform === 'win32' ? 'dll' : 'so'}`);
    if (!existsSync(library)) {
        throw new Error(`${library} is missing: build the package first with npm run prebuild -- --variant ${kind}`);
    }
    const link = join(root, 'node_modules', '@llama-kv', key);
    let created = false;
    if (!existsSync(link)) {
        mkdirSync(join(root, 'node_modules', '@llama-kv'), { recursive: true });
        rmSync(link, { force: true }); // a dangling link from an interrupted run
        symlinkSync(packageDir, link, 'junction');
        created = true;
    }
    await fixtureSetup(project);
    const dir = join(root, '.cache', 'models');
    project.provide('gpu', {
        kind,
        packageName: `@llama-kv/${key}`,
        packageDir,
        library,
        version: (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version,
        modelsDir: dir,
    });
    return () => {
        if (created) rmSync(link, { force: true });
    };
}

declare module 'vitest' {
    export interface ProvidedContext {
        gpu: {
            kind: GpuKind;
            /** @llama-kv/<platform>-<arch>-<kind> */
            packageName: string;
            /** npm/<platform>-<arch>-<kind>, linked as node_modules/<packageName> */
            packageDir: string;
            /** The backend library in the package's bin/. */
            library: string;
            version: string;
            modelsDir: string;
        };
    }
}
