// The backend table and the gpu/devices choice, on synthetic backend lists: the GPU
// cases this CPU-only machine cannot produce (several backends, integrated GPUs,
// accelerators).
import { describe, expect, it } from 'vitest';
import { chooseGpu, describeBackends, type BackendDevice, type BackendInfo } from '../../lib/backends/backends.js';
import { LlamaConfigError, LlamaError } from '../../lib/errors.js';

const device = (name: string, type: BackendDevice['type']): BackendDevice => ({ name, description: name, type, totalBytes: 8 << 30, freeBytes: 4 << 30, extraBufferTypes: [] });
const backend = (name: string, kind: BackendInfo['kind'], devices: BackendDevice[]): BackendInfo => ({ name, kind, available: devices.length > 0, devices, features: {} });

const cpu = backend('CPU', 'cpu', [device('CPU', 'cpu')]);
const cuda = backend('CUDA', 'cuda', [device('CUDA0', 'gpu'), device('CUDA1', 'gpu')]);
const vulkan = backend('Vulkan', 'vulkan', [device('Vulkan0', 'gpu'), device('Vulkan1', 'igpu')]);
const accel = backend('BLAS', 'blas', [device('BLAS', 'accel')]);

describe('chooseGpu', () => {
    it("'auto' prefers CUDA, then ROCm, Metal, Vulkan, and takes the backend's discrete GPUs", () => {
        expect(chooseGpu([cpu, vulkan, cuda], 'auto', undefined)).toMatchObject({ backend: { kind: 'cuda' }, devices: ['CUDA0', 'CUDA1'], warning: null });
        expect(chooseGpu([cpu, vulkan, accel], 'auto', undefined).devices).toEqual(['Vulkan0']);
    });

    it('takes integrated GPUs only when the backend has no discrete one, and never accelerators', () => {
        const laptop = backend('Vulkan', 'vulkan', [device('Vulkan0', 'igpu')]);
        expect(chooseGpu([cpu, laptop], 'auto', undefined).devices).toEqual(['Vulkan0']);
        const onlyAccel = chooseGpu([cpu, accel], 'auto', undefined);
        expect(onlyAccel.devices).toEqual([]);
        expect(onlyAccel.warning).toMatch(/no GPU backend is available, running on the CPU/);
    });

    it('a named backend is used even when another is preferred; an unavailable one throws BACKEND_UNAVAILABLE', () => {
        expect(chooseGpu([cpu, cuda, vulkan], 'vulkan', undefined).devices).toEqual(['Vulkan0']);
        const noDevice: BackendInfo = { ...backend('CUDA', 'cuda', []), reason: 'the CUDA backend loaded but found no device', fix: 'check the NVIDIA driver' };
        expect(() => chooseGpu([cpu, noDevice], 'cuda', undefined)).toThrow(/gpu: 'cuda' was requested .*found no device; fix: check the NVIDIA driver/);
        const error = (() => {
            try {
                chooseGpu([cpu], 'rocm', undefined);
                return null;
            } catch (e) {
                return e;
            }
        })();
        expect(error).toBeInstanceOf(LlamaError);
        expect((error as LlamaError).code).toBe('BACKEND_UNAVAILABLE');
    });

    it('devices are matched case-insensitively, must exist, not repeat, and agree with gpu', () => {
        expect(chooseGpu([cpu, cuda], 'auto', ['cuda1'])).toMatchObject({ backend: { kind: 'cuda' }, devices: ['CUDA1'] });
        expect(chooseGpu([cpu, cuda], 'cuda', ['CPU', 'CUDA0']).devices).toEqual(['CUDA0']);
        expect(() => chooseGpu([cpu, cuda], 'auto', ['CUDA9'])).toThrow(/no device named 'CUDA9'; available devices: CPU, CUDA0, CUDA1/);
        expect(() => chooseGpu([cpu, cuda], 'auto', ['CUDA0', 'cuda0'])).toThrow(/listed twice/);
        expect(() => chooseGpu([cpu, cuda, vulkan], 'cuda', ['Vulkan0'])).toThrow(LlamaConfigError);
        expect(() => chooseGpu([cpu, cuda], false, ['CUDA0'])).toThrow(/'CUDA0' is a CUDA device, but gpu is false/);
        expect(chooseGpu([cpu, cuda], false, ['CPU']).devices).toEqual([]);
    });
});

describe.runIf(process.platform === 'linux' && process.arch === 'x64')('describeBackends', () => {
    const info = (registries: Parameters<typeof describeBackends>[0]['registries'], attempts: Parameters<typeof describeBackends>[0]['attempts'] = []) =>
        describeBackends({ addonDir: '/pkg/prebuilds/linux-x64', hasCpu: registries.some((r) => r.name === 'CPU'), registries, attempts });
    const cpuRegistry = (path: string) => ({ name: 'CPU', path, features: { AVX2: '1' }, devices: [{ name: 'CPU', description: 'x', type: 'cpu', freeBytes: 1, totalBytes: 2, extraBufferTypes: ['AMX'] }] });

    it('names the CPU variant from the library that was loaded', () => {
        expect(info([cpuRegistry('/pkg/prebuilds/linux-x64/libggml-cpu-haswell.so')])[0].variant).toBe('haswell');
        expect(info([cpuRegistry('/w/build/Release/libggml-cpu.so')])[0].variant).toBe('native');
        // A build from source says which ggml variant it compiled the one CPU backend as.
        const built = describeBackends({ addonDir: '/w/build/Release', hasCpu: true, cpuVariantBuilt: 'sapphirerapids', registries: [cpuRegistry('/w/build/Release/libggml-cpu.so')], attempts: [] });
        expect(built[0].variant).toBe('native (sapphirerapids)');
    });

    it("turns the loader's message into a reason and a fix", () => {
        const path = '/x/node_modules/@llama-kv/linux-x64-cuda/libggml-cuda.so';
        const list = info([cpuRegistry('/p/libggml-cpu-zen4.so')], [
            { name: 'cuda', path, error: `load_backend: failed to load ${path}: libcublas.so.12: cannot open shared object file: No such file or directory` },
            { name: 'vulkan', path: '/y/libggml-vulkan.so', error: 'load_backend: failed to load /y/libggml-vulkan.so: libvulkan.so.1: cannot open shared object file: No such file or directory' },
        ]);
        const cudaEntry = list.find((b) => b.kind === 'cuda')!;
        expect(cudaEntry.reason).toBe(`${path} failed to load: libcublas.so.12: cannot open shared object file: No such file or directory`);
        expect(cudaEntry.fix).toMatch(/^install the CUDA runtime that provides libcublas\.so\.12/);
        expect(list.find((b) => b.kind === 'vulkan')!.fix).toMatch(/install the Vulkan loader \(libvulkan\.so\.1/);
        expect(list.find((b) => b.kind === 'rocm')!.reason).toBe('the package @llama-kv/linux-x64-rocm is not installed');
    });

    it('says so when no CPU backend loaded', () => {
        const list = info([]);
        expect(list.find((b) => b.kind === 'cpu')).toMatchObject({ available: false, fix: `reinstall @llama-kv/${process.platform}-${process.arch}` });
    });
});
