#!/usr/bin/env node
// GPU check, for a Linux machine with one NVIDIA GPU, nvcc and cuBLAS (the CUDA toolkit's,
// or the nvidia-cublas Python wheel's): builds the CUDA backend against the vendored
// llama.cpp, beside the addon in build/, then checks with gpu 'cuda' that CUDA is found
// with FA kernels for every K/V pair; that a model offloaded to it generates with its
// weights and KV cache on the GPU, for f16/f16, q8_0/q8_0 and q8_0/q4_0 with flash
// attention; and that cpuMoeLayers keeps layer 0's experts on the CPU. Sized for about
// 8 minutes on 16 cores: one CUDA architecture (CUDA_ARCH, default 90: H100/H200) and the
// tiny fixture models. Prints one line per check; exits 1 if any failed, 2 if it cannot
// build. Needs npm install done (node_modules, dist/) and vendor/llama.cpp.
//
//   node scripts/gpu-check.mjs [--no-build]
// (on a machine without node: xz -dc .device/node.xz > /tmp/node && /tmp/node scripts/gpu-check.mjs)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { build } from './build.mjs';

function findCublas() {
    if (existsSync('/usr/local/cuda/include/cublas_v2.h')) return [];
    const r = spawnSync('python3', ['-c', 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))'], { encoding: 'utf8' });
    const wheel = r.status === 0 ? r.stdout.trim() : '';
    if (!wheel) {
        process.stderr.write('gpu-check: no cuBLAS: neither /usr/local/cuda/include/cublas_v2.h nor the nvidia-cublas wheel\n');
        process.exit(2);
    }
    // The wheel has versioned libraries only: unversioned links for the linker.
    const links = '/tmp/llama-kv-cublas';
    rmSync(links, { recursive: true, force: true });
    mkdirSync(links, { recursive: true });
    const libs = readdirSync(join(wheel, 'lib'));
    for (const name of ['cublas', 'cublasLt']) {
        const file = libs.find((f) => f.startsWith(`lib${name}.so.`));
        if (file) symlinkSync(join(wheel, 'lib', file), join(links, `lib${name}.so`));
    }
    process.env.LD_LIBRARY_PATH = [join(wheel, 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
    return [
        `--CDCUDA_cublas_LIBRARY=${join(links, 'libcublas.so')}`,
        `--CDCUDA_cublasLt_LIBRARY=${join(links, 'libcublasLt.so')}`,
        `--CDCMAKE_CUDA_FLAGS=-I${join(wheel, 'include')}`,
        `--CDCMAKE_CXX_FLAGS=-I${join(wheel, 'include')}`,
    ];
}

if (!process.argv.includes('--no-build')) {
    const nvcc = spawnSync('which', ['nvcc'], { encoding: 'utf8' }).stdout.trim() || '/usr/local/cuda/bin/nvcc';
    try {
        process.stdout.write(execFileSync('nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader'], { encoding: 'utf8' }));
    } catch {
        process.stdout.write('gpu-check: nvidia-smi not found\n');
    }
    const extra = findCublas();
    process.env.LLAMA_KV_BUILD_JOBS ??= String(availableParallelism());
    const started = Date.now();
    build(['--CDLLAMA_KV_GPU_BACKENDS=cuda', `--CDCMAKE_CUDA_ARCHITECTURES=${process.env.CUDA_ARCH ?? '90'}`, `--CDCMAKE_CUDA_COMPILER=${nvcc}`, ...extra]);
    process.stdout.write(`gpu-check: build took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}
// LD_LIBRARY_PATH is read by the dynamic loader at process start: run the checks in a child.
if (!process.argv.includes('--checks')) {
    const r = spawnSync(process.execPath, [process.argv[1], '--no-build', '--checks'], { stdio: 'inherit', env: process.env });
    process.exit(r.status ?? 1);
}

const { ensureFixtureModel, getBackends, LlamaModel, readGgufMetadata, setLogger } = await import('../dist/index.js');

let failed = 0;
function check(name, ok, detail = '') {
    if (!ok) failed++;
    process.stdout.write(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}\n`);
}

const warnings = [];
setLogger((level, message) => level === 'warn' && warnings.push(message), { level: 'warn' });

const backends = getBackends();
const cuda = backends.find((b) => b.kind === 'cuda');
check('CUDA backend available', cuda?.available === true, cuda ? `${cuda.path ?? ''} ${cuda.reason ?? ''}` : 'not listed');
if (!cuda?.available) process.exit(1);
check('CUDA device', cuda.devices.length > 0, cuda.devices.map((d) => `${d.name}: ${d.description}, ${(d.totalBytes / 2 ** 30).toFixed(1)} GiB`).join('; '));
check('FA kernels for every K/V pair (GGML_CUDA_FA_ALL_QUANTS)', cuda.features.FA_ALL_QUANTS === '1', JSON.stringify(cuda.features));

const f16 = await ensureFixtureModel('tiny-f16');
const prompt = 'Once upon a time';
const greedy = { maxTokens: 32, temperature: 0 };

const cpuModel = await LlamaModel.load({ path: f16, gpu: false });
const cpuTokens = (await cpuModel.createContext({ contextSize: 512 }).complete(prompt, greedy)).tokens;
cpuModel.dispose();

const model = await LlamaModel.load({ path: f16, gpu: 'cuda' });
for (const [k, v] of [['f16', 'f16'], ['q8_0', 'q8_0'], ['q8_0', 'q4_0']]) {
    warnings.length = 0;
    const ctx = model.createContext({ contextSize: 2048, cacheTypeK: k, cacheTypeV: v, flashAttention: 'on' });
    const report = ctx.memoryReport();
    const gpu = report.devices.find((d) => d.kind === 'gpu');
    const r = await ctx.complete(prompt, greedy);
    const same = r.tokens.filter((t, i) => t === cpuTokens[i]).length;
    check(`${k}/${v}: weights and KV cache on ${gpu?.name ?? 'no GPU'}`, !!gpu && gpu.weightsBytes > 0 && gpu.kvBytes === report.kv.bytes,
        `weights ${gpu?.weightsBytes}, kv ${gpu?.kvBytes} of ${report.kv.bytes}`);
    check(`${k}/${v}: generates 32 tokens with flash attention`, r.tokens.length === 32 && ctx.config.flashAttention === true,
        `${(r.timings.generatedTokens / (r.timings.generationMs / 1000)).toFixed(0)} t/s; ${same}/32 tokens as on the CPU`);
    check(`${k}/${v}: no backend warning`, warnings.length === 0, warnings.join(' | '));
    ctx.dispose();
}
model.dispose();

const moePath = await ensureFixtureModel('tiny-moe-f16');
const gguf = await readGgufMetadata(moePath);
const expertsOf = (layer) => gguf.tensors.filter((t) => t.name.startsWith(`blk.${layer}.`) && /_exps\./.test(t.name)).reduce((s, t) => s + t.byteSize, 0);
const moe = await LlamaModel.load({ path: moePath, gpu: 'cuda', cpuMoeLayers: 1 });
const moeCtx = moe.createContext({ contextSize: 512 });
const devices = moeCtx.memoryReport().devices;
const cpuExperts = devices.find((d) => d.kind === 'cpu')?.expertWeightsBytes ?? 0;
const gpuExperts = devices.find((d) => d.kind === 'gpu')?.expertWeightsBytes ?? 0;
check('cpuMoeLayers: 1 keeps layer 0 experts on the CPU, layer 1 on the GPU', cpuExperts === expertsOf(0) && gpuExperts === expertsOf(1),
    `CPU ${cpuExperts} (layer 0: ${expertsOf(0)}), GPU ${gpuExperts} (layer 1: ${expertsOf(1)})`);
const moeRun = await moeCtx.complete(prompt, { maxTokens: 8, temperature: 0 });
check('MoE model generates with split experts', moeRun.tokens.length === 8);
moe.dispose();

process.stdout.write(failed === 0 ? 'gpu-check: all checks passed\n' : `gpu-check: ${failed} check(s) failed\n`);
process.exit(failed === 0 ? 0 : 1);
