/** The model placement flags of `run`, named as llama.cpp names them. */
import type { ModelLoadOptions } from '../options.js';
import { UsageError, type FlagSpec, type ParsedFlags } from './args.js';

export const modelFlags: FlagSpec[] = [
    { names: ['--gpu'], key: 'gpu', type: 'string', help: 'auto | cuda | rocm | vulkan | metal | none (default auto)' },
    { names: ['-ngl', '--gpu-layers'], key: 'gpuLayers', type: 'string', help: "layers on the GPU: a number, 'auto' or 'all' (default auto)" },
    { names: ['-dev', '--device'], key: 'devices', type: 'string', help: 'comma-separated devices to offload to, e.g. CUDA0,CUDA1' },
    { names: ['-ts', '--tensor-split'], key: 'tensorSplit', type: 'string', help: 'proportions of layers per device, e.g. 3,1' },
    { names: ['--n-cpu-moe'], key: 'cpuMoeLayers', type: 'int', help: 'keep the MoE expert weights of the first N layers on the CPU' },
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
    return options;
}
