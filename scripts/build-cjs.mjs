#!/usr/bin/env node
// The CommonJS entry (dist/index.cjs): the ESM build (dist/index.js, from tsc) bundled into
// one CommonJS file with esbuild, for `require('llama-kv')` where require(esm) is not
// available (Node < 20.19 and < 22.12, Electron 30-34's main process). zod stays an
// external dependency. import.meta.url becomes the bundle's own file URL, so the package
// root, the native addon and the fixture vocabulary are found from dist/ as in the ESM
// build. Run by `npm run build:ts`.
import { build } from 'esbuild';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

await build({
    entryPoints: [join(root, 'dist', 'index.js')],
    outfile: join(root, 'dist', 'index.cjs'),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    external: ['zod'],
    define: { 'import.meta.url': '__llamaKvModuleUrl' },
    banner: { js: "const __llamaKvModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
});
