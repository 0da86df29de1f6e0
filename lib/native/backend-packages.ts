/**
 * Where ggml's GPU backend libraries are looked for, before the addon loads them: the
 * optional per-platform packages installed beside llama-kv (of our version only) and
 * the folders of LLAMA_KV_BACKEND_PATH. Below the binding (which calls
 * backendSearchDirs() once, at load); backends/ reads what was found.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

/** A GPU backend a model can be asked to use (`gpu` of {@link LlamaModel.load}). */
export type GpuBackendKind = 'cuda' | 'rocm' | 'vulkan' | 'metal';

/** ggml's library name for each GPU kind (libggml-<name>.so). */
export const LIBRARY_NAMES: Record<GpuBackendKind, string> = { cuda: 'cuda', rocm: 'hip', vulkan: 'vulkan', metal: 'metal' };

/**
 * The platforms with a released package @llama-kv/<platform>-<arch> (the addon, ggml and the
 * CPU backend): the committed npm/<platform>-<arch>/package.json manifests, each built by the
 * release workflow's cpu job. test/unit/packages.test.ts keeps the three in step.
 */
export const RELEASED_PLATFORMS: readonly string[] = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'win32-x64'];

/**
 * The GPU kinds released for each platform: the GPU packages that the release workflow
 * builds (npm/<platform>-<arch>-<kind>/), plus Metal, which is part of the darwin-arm64
 * package. Only these are ever named as installable.
 */
export const PLATFORM_GPU_KINDS: Record<string, readonly GpuBackendKind[]> = {
    'linux-x64': ['cuda', 'rocm', 'vulkan'],
    'linux-arm64': [],
    'win32-x64': ['cuda'],
    'darwin-arm64': ['metal'],
};

export const platformKey = `${process.platform}-${process.arch}`;

/** The package that holds the addon for this platform. */
export function platformPackageName(): string {
    return `@llama-kv/${platformKey}`;
}

/** The optional package that carries a GPU backend for this platform (none for Metal). */
export function gpuPackageName(kind: GpuBackendKind): string | null {
    return kind === 'metal' ? null : `@llama-kv/${platformKey}-${kind}`;
}

export interface PackageProbe {
    name: string;
    dir: string | null;
    problem: string | null;
}

/** llama-kv's version, from the package.json at `root`. @internal */
export function ownVersion(root: string): string {
    return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Finds the GPU packages installed beside llama-kv; a version other than ours is not loaded. */
function probePackages(root: string): PackageProbe[] {
    const require = createRequire(join(root, 'package.json'));
    const version = ownVersion(root);
    const probes: PackageProbe[] = [];
    for (const kind of PLATFORM_GPU_KINDS[platformKey] ?? []) {
        const name = gpuPackageName(kind);
        if (!name) continue;
        let manifest: string;
        try {
            manifest = require.resolve(`${name}/package.json`);
        } catch {
            probes.push({ name, dir: null, problem: null });
            continue;
        }
        const found = (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version;
        probes.push(
            found === version
                ? { name, dir: join(dirname(manifest), 'bin'), problem: null }
                : { name, dir: null, problem: `${name}@${found} is installed, but llama-kv is ${version} and the two must match` },
        );
    }
    return probes;
}

/** Extra folders from LLAMA_KV_BACKEND_PATH (path-delimited). */
function envDirs(): string[] {
    return (process.env.LLAMA_KV_BACKEND_PATH ?? '').split(delimiter).filter((d) => d.length > 0);
}

let probed: PackageProbe[] = [];
let packageVersion = '';

/**
 * The folders to load GPU backends from, for the native loadBackends() call made when
 * the addon is first loaded. @internal
 */
export function backendSearchDirs(root: string): string[] {
    try {
        packageVersion = ownVersion(root);
        probed = probePackages(root);
    } catch {
        probed = [];
    }
    // LLAMA_KV_BACKEND_PATH first: of two libraries of one backend, the first one loaded wins.
    return [...envDirs(), ...probed.flatMap((p) => (p.dir ? [p.dir] : []))];
}


/** What backendSearchDirs() found of the GPU packages (empty before the addon is loaded). @internal */
export function probedPackages(): readonly PackageProbe[] {
    return probed;
}

/** llama-kv's version as read by backendSearchDirs() ('' before the addon is loaded). @internal */
export function ownPackageVersion(): string {
    return packageVersion;
}
