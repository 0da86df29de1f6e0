#!/usr/bin/env node
// npm prepack: what the published llama-kv carries besides its compiled TypeScript.
//   dist/assets/ggml-vocab-llama-spm.gguf.gz  llama.cpp's LLaMA SentencePiece vocabulary
//     (models/ggml-vocab-llama-spm.gguf of the pinned tree, 707 KiB, 183 KiB compressed),
//     which the demo model copies: `npx llama-kv run -p Hello` needs no vendor tree.
//   THIRD_PARTY_NOTICES.md, checked to match the pinned tree (scripts/notices.mjs).
// Needs vendor/llama.cpp (npm run vendor), as the release workflow has it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const vocab = join(root, 'vendor', 'llama.cpp', 'models', 'ggml-vocab-llama-spm.gguf');
if (!existsSync(vocab)) {
    process.stderr.write('[llama-kv pack] vendor/llama.cpp is missing: run `npm run vendor` before packing (the demo vocabulary comes from it)\n');
    process.exit(1);
}
const dest = join(root, 'dist', 'assets');
mkdirSync(dest, { recursive: true });
writeFileSync(join(dest, 'ggml-vocab-llama-spm.gguf.gz'), gzipSync(readFileSync(vocab), { level: 9 }));
execFileSync(process.execPath, [join(root, 'scripts', 'notices.mjs'), '--check'], { stdio: 'inherit' });
