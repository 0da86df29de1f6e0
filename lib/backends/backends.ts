/**
 * Compute backends: which are available in this process, why the others are not, and
 * which one a model load uses.
 *
 * ggml's backends are libraries loaded at start-up (GGML_BACKEND_DL): the CPU backend
 * (the best instruction-set variant for this CPU) ships with llama-kv; a GPU backend
 * comes from an optional package (`@llama-kv/linux-x64-cuda`, `-rocm`, `-vulkan`), or
 * from a folder named in `LLAMA_KV_BACKEND_PATH`. A library that fails to load is
 * skipped with its reason; it never takes the process down.
 */
import { basename } from 'node:path';
import { binding, type NativeBackendInfo } from '../native/binding.js';
import { gpuPackageName, LIBRARY_NAMES, ownPackageVersion, PLATFORM_GPU_KINDS, platformKey, platformPackageName, probedPackages, type GpuBackendKind } from '../native/backend-packages.js';
import { LlamaConfigError, LlamaError } from '../errors.js';

export { gpuPackageName, type GpuBackendKind };

/** A kind of compute backend. */
export type BackendKind = 'cpu' | 'cuda' | 'rocm' | 'vulkan' | 'metal' | 'rpc' | 'blas' | 'other';


/** The GPU kinds, in the order `gpu: 'auto'` prefers them. */
export const GPU_BACKEND_KINDS: readonly GpuBackendKind[] = ['cuda', 'rocm', 'metal', 'vulkan'];

/** A device of a backend. */
export interface BackendDevice {
    /** ggml's device name, e.g. `'CPU'`, `'CUDA0'`: what `devices` of LlamaModel.load() takes. */
    name: string;
    /** The hardware, e.g. `'NVIDIA GeForce RTX 4090'` or the CPU's model name. */
    description: string;
    type: 'cpu' | 'gpu' | 'igpu' | 'accel' | 'other';
    totalBytes: number;
    freeBytes: number;
    /**
     * CPU only: the CPU backend's extra buffer types on this CPU (e.g. `'AMX'`, `'CPU_REPACK'`),
     * where llama.cpp puts copies of the weights they have faster kernels for (unless
     * `repack: false`). Empty for other devices.
     */
    extraBufferTypes: string[];
}

/** One backend: available (loaded, with devices) or not, with the reason and the fix. */
export interface BackendInfo {
    /** ggml's registry name (`'CPU'`, `'CUDA'`, `'ROCm'`, `'Vulkan'`, `'MTL'`), or the kind when not loaded. */
    name: string;
    kind: BackendKind;
    /** Loaded and has at least one device. */
    available: boolean;
    /**
     * The CPU variant chosen for this CPU (e.g. `'haswell'`, `'zen4'`); for a build from source
     * `'native (<variant>)'`, the ggml variant it was compiled as for the build machine (e.g.
     * `'native (sapphirerapids)'`), or `'native'` where the build did not say.
     */
    variant?: string;
    /** The library it was loaded from. */
    path?: string;
    devices: BackendDevice[];
    /** Features the backend reports (instruction sets, CUDA architectures, FA_ALL_QUANTS, ...). */
    features: Record<string, string>;
    /** Why it is not available. */
    reason?: string;
    /** What to do about it. */
    fix?: string;
    /** The optional package that provides it, where there is one. */
    package?: string;
}

const REGISTRY_KINDS: Record<string, BackendKind> = {
    CPU: 'cpu', CUDA: 'cuda', ROCM: 'rocm', VULKAN: 'vulkan', MTL: 'metal', METAL: 'metal', RPC: 'rpc', BLAS: 'blas',
};

function deviceType(type: string): BackendDevice['type'] {
    return type === 'cpu' || type === 'gpu' || type === 'igpu' || type === 'accel' ? type : 'other';
}

function cpuVariant(path: string, built: string | null | undefined): string | undefined {
    const file = basename(path).replace(/\.(so|dll|dylib)(\.\d+)*$/, '');
    const match = /^(?:lib)?ggml-cpu(?:-(.+))?$/.exec(file);
    if (!match) return undefined;
    // A build from source compiles one libggml-cpu as the ggml variant that suits the build machine.
    return match[1] ?? (built ? `native (${built})` : 'native');
}

/** The loader's message without ggml's prefixes that repeat the path. */
function loaderDetail(error: string, path: string): string {
    let detail = error.trim();
    for (const prefix of [`load_backend: failed to load ${path}: `, `load_backend: failed to initialize backend from ${path}: `, `${path}: `]) {
        if (detail.startsWith(prefix)) detail = detail.slice(prefix.length);
    }
    return detail;
}

/** What to do about a library that failed to load, from the loader's message. */
function fixFor(kind: GpuBackendKind, error: string, pkg: string | null): string {
    const missing = /(lib[\w+.-]+?\.so(?:\.\d+)*|[\w-]+\.dll)[^\n]*?(?:cannot open shared object file|not found|No such file)/i.exec(error)?.[1];
    if (missing) {
        if (kind === 'cuda') return `install the CUDA runtime that provides ${missing} (the CUDA toolkit or the nvidia-*-cu* runtime packages) and an NVIDIA driver, and make it findable (ldconfig or LD_LIBRARY_PATH)`;
        if (kind === 'rocm') return `install ROCm (it provides ${missing}) and make it findable (ldconfig or LD_LIBRARY_PATH)`;
        if (kind === 'vulkan') return `install the Vulkan loader (${missing}, e.g. the libvulkan1 package) and a Vulkan driver for the GPU`;
        return `install the library ${missing}`;
    }
    return pkg ? `reinstall ${pkg} (npm install ${pkg})` : 'reinstall llama-kv';
}

const GPU_LABELS: Record<GpuBackendKind, string> = { cuda: 'CUDA', rocm: 'ROCm', vulkan: 'Vulkan', metal: 'Metal' };
const DRIVER_CHECKS: Record<GpuBackendKind, string> = {
    cuda: 'check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES',
    rocm: 'check the ROCm driver (rocminfo) and HIP_VISIBLE_DEVICES',
    vulkan: 'check the Vulkan driver (vulkaninfo) and GGML_DISABLE_VULKAN',
    metal: 'Metal needs Apple silicon and macOS',
};

/** Builds the backend table from the native facts. @internal */
export function describeBackends(info: NativeBackendInfo): BackendInfo[] {
    const out: BackendInfo[] = info.registries.map((r) => {
        const kind = REGISTRY_KINDS[r.name.toUpperCase()] ?? 'other';
        const devices = r.devices.map((d) => ({
            name: d.name,
            description: d.description,
            type: deviceType(d.type),
            totalBytes: d.totalBytes,
            freeBytes: d.freeBytes,
            extraBufferTypes: [...(d.extraBufferTypes ?? [])],
        }));
        const entry: BackendInfo = { name: r.name, kind, available: devices.length > 0, devices, features: r.features };
        if (r.path) entry.path = r.path;
        if (kind === 'cpu' && r.path) entry.variant = cpuVariant(r.path, info.cpuVariantBuilt);
        const gpuKind = GPU_BACKEND_KINDS.find((k) => k === kind);
        if (gpuKind) {
            const pkg = gpuPackageName(gpuKind);
            if (pkg) entry.package = pkg;
            if (devices.length === 0) {
                entry.reason = `the ${GPU_LABELS[gpuKind]} backend loaded from ${r.path || 'the addon'} but found no device`;
                entry.fix = DRIVER_CHECKS[gpuKind];
            }
        }
        return entry;
    });
    for (const kind of PLATFORM_GPU_KINDS[platformKey] ?? []) {
        if (out.some((b) => b.kind === kind)) continue;
        const pkg = gpuPackageName(kind);
        const entry: BackendInfo = { name: GPU_LABELS[kind], kind, available: false, devices: [], features: {} };
        if (pkg) entry.package = pkg;
        const failed = info.attempts.filter((a) => a.name === LIBRARY_NAMES[kind] && a.error);
        const probe = probedPackages().find((p) => p.name === pkg);
        if (failed.length > 0) {
            const last = failed[failed.length - 1];
            const detail = loaderDetail(last.error ?? '', last.path);
            entry.reason = `${last.path} failed to load: ${detail}`;
            entry.fix = fixFor(kind, detail, pkg);
        } else if (probe?.problem) {
            entry.reason = probe.problem;
            entry.fix = `npm install ${pkg}@${ownPackageVersion()}`;
        } else if (probe?.dir) {
            entry.reason = `${pkg} is installed in ${probe.dir} but holds no ggml-${LIBRARY_NAMES[kind]} library`;
            entry.fix = `reinstall ${pkg}`;
        } else if (pkg) {
            entry.reason = `the package ${pkg} is not installed`;
            entry.fix = `npm install ${pkg}@${ownPackageVersion()}`;
        } else {
            entry.reason = `this build of llama-kv has no ${GPU_LABELS[kind]} backend`;
            entry.fix = 'use a prebuilt llama-kv for this platform, or build with the backend enabled';
        }
        out.push(entry);
    }
    if (!info.hasCpu) {
        out.push({
            name: 'CPU', kind: 'cpu', available: false, devices: [], features: {},
            reason: `no CPU backend library (ggml-cpu*) was found or loaded in ${info.addonDir}` +
                info.attempts.filter((a) => a.name === 'cpu' && a.error).map((a) => `; ${a.error}`).join(''),
            fix: `reinstall ${platformPackageName()}`,
        });
    }
    return out.sort((a, b) => Number(b.available) - Number(a.available));
}

/** What a model load runs on, resolved from its `gpu` and `devices` options. @internal */
export interface GpuChoice {
    /** The GPU backend used, or null for the CPU only. */
    backend: BackendInfo | null;
    /** Devices to offload to (names), [] for the CPU only. */
    devices: string[];
    /** A warning to log once: 'auto' found no GPU. */
    warning: string | null;
}

/** The problem line for an unavailable backend. */
function unavailableText(b: BackendInfo | undefined, kind: GpuBackendKind): string {
    if (!b) return `there is no ${GPU_LABELS[kind]} backend for ${platformKey}`;
    return `${b.reason ?? 'it is not available'}${b.fix ? `; fix: ${b.fix}` : ''}`;
}

/**
 * Picks the backend and devices for `gpu`: 'auto' takes the first available of
 * {@link GPU_BACKEND_KINDS} and otherwise the CPU, with a warning; an explicit kind
 * that is unavailable throws BACKEND_UNAVAILABLE with the reason and the fix.
 * @internal
 */
export function chooseGpu(backends: BackendInfo[], gpu: GpuBackendKind | 'auto' | false, devices: readonly string[] | undefined): GpuChoice {
    // As llama.cpp's default choice, within one backend: its discrete GPUs, or its
    // integrated ones when it has none (never accelerators, never the CPU).
    const offloadTargets = (b: BackendInfo) => {
        const discrete = b.devices.filter((d) => d.type === 'gpu');
        return (discrete.length > 0 ? discrete : b.devices.filter((d) => d.type === 'igpu')).map((d) => d.name);
    };
    if (devices !== undefined) return chooseDevices(backends, gpu, devices);
    if (gpu === false) return { backend: null, devices: [], warning: null };
    if (gpu === 'auto') {
        for (const kind of GPU_BACKEND_KINDS) {
            const b = backends.find((x) => x.kind === kind && x.available && offloadTargets(x).length > 0);
            if (b) return { backend: b, devices: offloadTargets(b), warning: null };
        }
        const why = (PLATFORM_GPU_KINDS[platformKey] ?? [])
            .map((k) => `${GPU_LABELS[k]}: ${unavailableText(backends.find((x) => x.kind === k), k)}`)
            .join('; ');
        return {
            backend: null,
            devices: [],
            warning: `no GPU backend is available, running on the CPU${why ? ` (${why})` : ''}. Pass gpu: false to silence this.`,
        };
    }
    const b = backends.find((x) => x.kind === gpu);
    if (!b || !b.available || offloadTargets(b).length === 0) {
        throw new LlamaError('BACKEND_UNAVAILABLE', `gpu: '${gpu}' was requested but the ${GPU_LABELS[gpu]} backend is not available: ${unavailableText(b, gpu)}`);
    }
    return { backend: b, devices: offloadTargets(b), warning: null };
}

/** An explicit device list: names matched as ggml does (case-insensitively), checked against `gpu`. */
function chooseDevices(backends: BackendInfo[], gpu: GpuBackendKind | 'auto' | false, devices: readonly string[]): GpuChoice {
    const all = backends.flatMap((b) => b.devices.map((device) => ({ device, backend: b })));
    const seen = new Set<string>();
    for (const name of devices) {
        if (seen.has(name.toLowerCase())) throw new LlamaConfigError(`devices: '${name}' is listed twice`, 'INVALID_CONFIG', ['devices']);
        seen.add(name.toLowerCase());
    }
    const picked = devices.map((name) => {
        const hit = all.find((x) => x.device.name.toLowerCase() === name.toLowerCase());
        if (!hit) {
            throw new LlamaConfigError(
                `devices: there is no device named '${name}'; available devices: ${all.map((x) => x.device.name).join(', ') || 'none'}`,
                'INVALID_CONFIG', ['devices'],
            );
        }
        return hit;
    });
    const offload = picked.filter((x) => x.device.type !== 'cpu');
    const conflict = offload.find((x) => gpu === false || (gpu !== 'auto' && x.backend.kind !== gpu));
    if (conflict) {
        throw new LlamaConfigError(
            `devices: '${conflict.device.name}' is a ${conflict.backend.name} device, but gpu is ${gpu === false ? 'false' : `'${gpu}'`}: ` +
                'leave gpu out (or set it to the device\'s backend) when naming devices',
            'INVALID_CONFIG', ['devices', 'gpu'],
        );
    }
    return { backend: offload[0]?.backend ?? null, devices: offload.map((x) => x.device.name), warning: null };
}

/** The extra buffer types of the loaded CPU backend (e.g. ['AMX', 'CPU_REPACK']), from the native layer. @internal */
export function cpuExtraBufferTypes(info: NativeBackendInfo = binding().backendInfo(false)): string[] {
    const cpu = info.registries.flatMap((r) => r.devices).find((d) => d.type === 'cpu');
    return [...(cpu?.extraBufferTypes ?? [])];
}

/**
 * The compute backends of this process: the available ones first (each with its
 * devices and, for the CPU, the instruction-set variant in use), then each GPU backend
 * known for this platform that is not available, with the reason and the fix.
 *
 * ```ts
 * for (const b of getBackends()) console.log(b.kind, b.available ? b.devices.map((d) => d.name) : b.reason);
 * ```
 */
export function getBackends(): BackendInfo[] {
    return describeBackends(binding().backendInfo(true));
}

/** getBackends() without asking the devices for their memory (which may wake a GPU driver). @internal */
export function listBackends(): BackendInfo[] {
    return describeBackends(binding().backendInfo(false));
}
