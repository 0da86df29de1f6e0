#!/usr/bin/env node
// The CommonJS entry (dist/index.cjs): the ESM build (dist/index.js, from tsc) bundled into
// one CommonJS file with esbuild, for `require('llama-kv')` where require(esm) is not
// available (Node < 20.19 and < 22.12, Electron 30-34's main process). zod stays an
// external dependency. import.meta.url becomes the bundle's own file URL, so the package
// root, the native addon and the fixture vocabulary are found from dist/ as in the ESM
// build. Its types: a .d.cts beside every .d.ts, whose relative imports name .cjs files, so
// that TypeScript's node16/nodenext resolution gives CommonJS code CommonJS types (an ESM
// .d.ts for a require() is an error there, TS1479). Run by `npm run build:ts`.
import { build } from 'esbuild';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** Every .d.ts under dir, recursively. */
function declarations(dir) {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? declarations(join(dir, e.name)) : e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
    );
}

const RELATIVE_JS = /((?:from\s+|import\s*\(\s*)(['"]))(\.{1,2}\/[^'"]+)\.js\2/g;
for (const file of declarations(join(root, 'dist'))) {
    const text = readFileSync(file, 'utf8').replace(RELATIVE_JS, (_m, head, quote, path) => `${head}${path}.cjs${quote}`);
    writeFileSync(file.replace(/\.d\.ts$/, '.d.cts'), text);
}
