#!/usr/bin/env node
// The CUDA package on a machine without a GPU: builds @llama-kv/<platform>-<arch>-cuda with
// Debian bookworm's CUDA 11.8 toolkit (non-free: `nvidia-cuda-toolkit`, with cuBLAS; run as
// root, the script adds `contrib non-free` and installs it when /usr/lib/nvidia-cuda-toolkit
// is missing), for one architecture (CUDA_ARCH, default 75) and, unless FA_ALL_QUANTS=ON,
// without GGML_CUDA_FA_ALL_QUANTS (the long part of the build). Then it checks the loading
// path as an installed app meets it: the package copied into an app's node_modules, where
// getBackends() must list CUDA as unavailable because it finds no device, with the fix;
// gpu: 'cuda' must throw BACKEND_UNAVAILABLE saying so; and gpu: 'auto' must run on the CPU.
// Not part of CI (the build alone takes longer than CI's whole gpu project; see
// docs/backends.md for the figures). The published CUDA 12 package is built by the release
// workflow. Needs `npm install` done.
//
//   node scripts/cuda-local-check.mjs [--no-build]
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const toolkit = '/usr/lib/nvidia-cuda-toolkit';
const key = `${process.platform}-${process.arch}-cuda`;
const pkgDir = join(root, 'npm', key);
const log = (line) => process.stdout.write(`cuda-local-check: ${line}\n`);
const sh = (command) => execFileSync('bash', ['-c', command], { stdio: 'inherit' });

if (!process.argv.includes('--no-build')) {
    if (!existsSync(join(toolkit, 'bin', 'nvcc'))) {
        if (process.getuid?.() !== 0) throw new Error(`${toolkit}/bin/nvcc is missing: install nvidia-cuda-toolkit (Debian non-free) or run this as root`);
        writeFileSync('/etc/apt/sources.list.d/debian-nonfree.sources', 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n');
        sh('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit');
    }
    const started = Date.now();
    // Debian's nvcc (11.8, host compiler g++-11 at most) and its ptxas before any other CUDA in PATH.
    const r = spawnSync('npm', ['run', 'prebuild', '--', '--variant', 'cuda', '--build-dir', join('build-prebuild', 'cuda-11.8'),
        `--CDCMAKE_CUDA_ARCHITECTURES=${process.env.CUDA_ARCH ?? '75'}`, '--CDCMAKE_CUDA_HOST_COMPILER=/usr/bin/g++-11',
        `--CDLLAMA_KV_CUDA_FA_ALL_QUANTS=${process.env.FA_ALL_QUANTS ?? 'OFF'}`, '--CDCUDAToolkit_INCLUDE_DIR=/usr/include'], {
        cwd: root,
        stdio: 'inherit',
        env: { ...process.env, PATH: `${toolkit}/bin:/usr/bin:${process.env.PATH}`, CUDA_PATH: '/usr' },
    });
    if (r.status !== 0) process.exit(2);
    log(`build: ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

// An app folder with llama-kv (this checkout's dist/ and addon) and the CUDA package installed.
const app = mkdtempSync(join(tmpdir(), 'llama-kv-cuda-app-'));
const llamaKv = join(app, 'node_modules', 'llama-kv');
mkdirSync(llamaKv, { recursive: true });
cpSync(join(root, 'package.json'), join(llamaKv, 'package.json'));
cpSync(join(root, 'dist'), join(llamaKv, 'dist'), { recursive: true });
symlinkSync(join(root, 'node_modules', 'zod'), join(app, 'node_modules', 'zod'), 'junction');
cpSync(pkgDir, join(app, 'node_modules', '@llama-kv', key), { recursive: true, dereference: true });

const { ensureFixtureModel } = await import(join(root, 'dist', 'index.js'));
const model = await ensureFixtureModel('tiny-f16');
const script = `
    import { getBackends, LlamaModel } from 'llama-kv';
    const cuda = getBackends().find((b) => b.kind === 'cuda');
    const named = await LlamaModel.load({ path: ${JSON.stringify(model)}, gpu: 'cuda' }).then(() => null, (e) => ({ code: e.code, message: e.message }));
    const auto = await LlamaModel.load({ path: ${JSON.stringify(model)} });
    const ctx = auto.createContext({ contextSize: 256 });
    const out = await ctx.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
    console.log(JSON.stringify({ cuda, named, tokens: out.tokens.length, devices: ctx.memoryReport().devices.map((d) => d.name) }));
`;
let failed = 0;
const check = (name, ok, detail) => {
    if (!ok) failed++;
    log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
};
try {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: app,
        encoding: 'utf8',
        env: { ...process.env, LLAMA_KV_ADDON_PATH: join(root, 'build', 'Release', 'llama_kv.node'), LLAMA_KV_BACKEND_PATH: '' },
    });
    const r = JSON.parse(out.trim().split('\n').at(-1));
    check('CUDA listed from the package, unavailable', r.cuda?.available === false && r.cuda?.package === `@llama-kv/${key}` && r.cuda?.path?.includes(join('node_modules', '@llama-kv', key)), JSON.stringify(r.cuda));
    check('the reason: no device', /found no device|no CUDA-capable device|libcuda\.so\.1/.test(r.cuda?.reason ?? ''), r.cuda?.reason);
    check('the fix', typeof r.cuda?.fix === 'string' && r.cuda.fix.length > 0, r.cuda?.fix);
    check("gpu: 'cuda' throws BACKEND_UNAVAILABLE with the reason", r.named?.code === 'BACKEND_UNAVAILABLE' && r.named.message.includes(r.cuda?.reason ?? '\0'), r.named?.message);
    check("gpu: 'auto' runs on the CPU", r.tokens === 4 && r.devices.join() === 'CPU', JSON.stringify(r.devices));
} finally {
    rmSync(app, { recursive: true, force: true });
}
process.exit(failed === 0 ? 0 : 1);
