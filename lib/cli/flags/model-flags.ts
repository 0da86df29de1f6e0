/** The model placement flags of `run`, named as llama.cpp names them. */
import type { ModelLoadOptions } from '../../options/model-options.js';
import { UsageError, type FlagSpec, type ParsedFlags } from './args.js';

/** How the weights are loaded: the flags of `run`, `memory`, `fit` and `calibrate`. */
export const weightFlags: FlagSpec[] = [
    { names: ['--no-mmap'], key: 'noMmap', type: 'bool', help: 'read the weights into memory instead of memory-mapping the file' },
    { names: ['--no-repack'], key: 'noRepack', type: 'bool', help: "keep every CPU weight in the mapped file: no copies in the CPU's extra buffer types (AMX, CPU_REPACK)" },
];

/** The weight-loading options given on the command line. */
export function weightOptionsFromFlags(flags: ParsedFlags): { useMmap?: boolean; repack?: boolean } {
    return { ...(flags.noMmap === true ? { useMmap: false } : {}), ...(flags.noRepack === true ? { repack: false } : {}) };
}

/** llama.cpp's --rpc: the servers whose devices join the load. */
export const rpcFlag: FlagSpec = {
    names: ['--rpc'], key: 'rpcServers', type: 'string', help: 'comma-separated host:port of llama-kv rpc-servers whose devices join the load, e.g. 127.0.0.1:50052',
};

/** The --rpc servers given on the command line, if any. */
export function rpcServersFromFlags(flags: ParsedFlags): string[] | undefined {
    return typeof flags.rpcServers === 'string' ? list('--rpc', flags.rpcServers) : undefined;
}

export const modelFlags: FlagSpec[] = [
    ...weightFlags,
    { names: ['--gpu'], key: 'gpu', type: 'string', help: 'auto | cuda | rocm | vulkan | metal | none (default auto)' },
    { names: ['-ngl', '--gpu-layers'], key: 'gpuLayers', type: 'string', help: "layers on the GPU: a number, 'auto' or 'all' (default auto)" },
    { names: ['-dev', '--device'], key: 'devices', type: 'string', help: 'comma-separated devices to offload to, e.g. CUDA0,CUDA1' },
    { names: ['-ts', '--tensor-split'], key: 'tensorSplit', type: 'string', help: 'proportions of layers per device, e.g. 3,1' },
    { names: ['--n-cpu-moe'], key: 'cpuMoeLayers', type: 'int', help: 'keep the MoE expert weights of the first N layers on the CPU' },
    rpcFlag,
];

function list(flag: string, raw: string): string[] {
    const items = raw.split(',').map((s) => s.trim());
    if (items.some((s) => s === '')) throw new UsageError(`${flag} expects a comma-separated list but received "${raw}"`);
    return items;
}

/** The model options given on the command line; the API validates the values. */
export function modelOptionsFromFlags(flags: ParsedFlags): Omit<ModelLoadOptions, 'path'> {
    const options: Omit<ModelLoadOptions, 'path'> = {};
    if (typeof flags.gpu === 'string') {
        options.gpu = ['none', 'off', 'false', 'cpu'].includes(flags.gpu) ? false : (flags.gpu as ModelLoadOptions['gpu']);
    }
    if (typeof flags.gpuLayers === 'string') {
        const raw = flags.gpuLayers;
        options.gpuLayers = raw === 'auto' ? 'auto' : raw === 'all' || raw === 'max' ? 'max' : Number(raw);
        if (typeof options.gpuLayers === 'number' && (raw.trim() === '' || !Number.isInteger(options.gpuLayers))) {
            throw new UsageError(`-ngl/--gpu-layers expects a number, 'auto' or 'all' but received "${raw}"`);
        }
    }
    if (typeof flags.devices === 'string') options.devices = list('-dev/--device', flags.devices);
    if (typeof flags.tensorSplit === 'string') {
        options.tensorSplit = list('-ts/--tensor-split', flags.tensorSplit).map((s) => {
            const n = Number(s);
            if (!Number.isFinite(n)) throw new UsageError(`-ts/--tensor-split expects numbers but received "${s}"`);
            return n;
        });
    }
    if (typeof flags.cpuMoeLayers === 'number') options.cpuMoeLayers = flags.cpuMoeLayers;
    const rpcServers = rpcServersFromFlags(flags);
    if (rpcServers) options.rpcServers = rpcServers;
    return { ...options, ...weightOptionsFromFlags(flags) };
}
