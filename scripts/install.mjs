#!/usr/bin/env node
// npm install hook. Uses a prebuilt binary from prebuilds/ when one exists for this
// platform and loads; otherwise vendors llama.cpp (if missing) and builds from
// source, incrementally when build/ already exists.
//
// LLAMA_KV_BUILD_FROM_SOURCE=1 skips the prebuilt check. In a git checkout of llama-kv
// itself the build from source is the default (it is what `npm test` runs against, with
// its reference program), even when `npm run prebuild` left a prebuilds/ folder there;
// LLAMA_KV_USE_PREBUILD=1 uses that prebuild instead.
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from './build.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function log(message) {
    process.stderr.write(`[llama-kv install] ${message}\n`);
}

function usablePrebuild() {
    const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    if (!existsSync(dir) || !readdirSync(dir).some((f) => f.endsWith('.node'))) return null;
    try {
        // node-gyp-build picks the best match for this runtime, ABI and libc.
        const file = require('node-gyp-build').path(root);
        if (!file.includes(`${join('prebuilds', '')}`)) return null;
        // The addon and ggml's libraries load; the CPU backend (one of the variants) must too.
        const addon = require(file);
        addon.loadBackends([]);
        if (!addon.backendInfo().hasCpu) throw new Error('no CPU backend variant in the prebuild loads on this machine');
        return file;
    } catch (error) {
        log(`prebuilt binary not usable here (${error.message.split('\n')[0]}); building from source`);
        return null;
    }
}

try {
    const checkout = existsSync(join(root, '.git')) && process.env.LLAMA_KV_USE_PREBUILD !== '1';
    const prebuilt = process.env.LLAMA_KV_BUILD_FROM_SOURCE === '1' || checkout ? null : usablePrebuild();
    if (prebuilt) {
        log(`using prebuilt binary ${prebuilt}`);
    } else {
        build(process.argv.slice(2));
    }
} catch (error) {
    log(`failed: ${error.message}`);
    log('building from source needs cmake >= 3.18 and a C++17 compiler (g++ or clang++); see docs/backends.md');
    process.exit(1);
}
