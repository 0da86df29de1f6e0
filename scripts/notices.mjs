#!/usr/bin/env node
// Writes THIRD_PARTY_NOTICES.md from the pinned llama.cpp tree (npm run vendor first): the
// licenses of the code compiled into the addon and ggml's libraries, and of the vocabulary
// the demo model copies. `node scripts/notices.mjs --check` fails when the committed file
// differs from what the tree gives (test/model/notices.test.ts runs it).
//
// What is compiled in (CMakeLists.txt): llama.cpp's src/, ggml/ and a part of common/
// (llama_kv_common), which link vendor/nlohmann (JSON), vendor/sheredom (subprocess.h) and
// vendor/hash (sha1, sha256, xxhash, rotate-bits); ggml-cpu includes llamafile's sgemm.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const llama = join(root, 'vendor', 'llama.cpp');
const out = join(root, 'THIRD_PARTY_NOTICES.md');

/** The leading comment block of a source file, without comment markers. */
function leadingComment(file, lines) {
    const text = readFileSync(join(llama, file), 'utf8').split('\n').slice(0, lines);
    return text
        .map((l) => l.replace(/^\s*(\/\/ ?|\/\*+ ?|\*\/|\* ?)/, '').replace(/\s*\*\/\s*$/, ''))
        .join('\n')
        .trim();
}

const read = (file) => readFileSync(join(llama, file), 'utf8').trim();

/** Each notice: what it covers, where it is in the pinned tree, and its text. */
function notices() {
    const pin = JSON.parse(readFileSync(join(root, 'vendor', 'llama.cpp.json'), 'utf8'));
    return [
        {
            title: 'llama.cpp and ggml',
            covers:
                `llama.cpp at commit ${pin.commit} (${pin.gitUrl}), including ggml: the addon, libllama-kv-ggml*, every ggml backend ` +
                'library, and the LLaMA SentencePiece vocabulary (models/ggml-vocab-llama-spm.gguf) that the demo model copies',
            file: 'LICENSE',
            text: read('LICENSE'),
        },
        {
            title: 'llamafile sgemm',
            covers: 'ggml-cpu/llamafile/sgemm.cpp, part of the CPU backend libraries',
            file: 'ggml/src/ggml-cpu/llamafile/sgemm.cpp',
            text: leadingComment('ggml/src/ggml-cpu/llamafile/sgemm.cpp', 20),
        },
        {
            title: 'JSON for Modern C++ (nlohmann/json)',
            covers: 'vendor/nlohmann/json.hpp, used by the chat and grammar code in the addon',
            file: 'vendor/nlohmann/json.hpp',
            text: `${leadingComment('vendor/nlohmann/json.hpp', 7)}\n\n${MIT_TEMPLATE('2013 - 2025 Niels Lohmann')}`,
        },
        {
            title: 'subprocess.h (sheredom)',
            covers: 'vendor/sheredom/subprocess.h, linked into the addon with llama.cpp common',
            file: 'vendor/sheredom/subprocess.h',
            text: leadingComment('vendor/sheredom/subprocess.h', 30),
        },
        { title: 'SHA-1 in C', covers: 'vendor/hash/sha1', file: 'vendor/hash/sha1/sha1.c', text: leadingComment('vendor/hash/sha1/sha1.c', 4) },
        { title: 'SHA-256', covers: 'vendor/hash/sha256', file: 'vendor/hash/sha256/LICENSE', text: read('vendor/hash/sha256/LICENSE') },
        { title: 'xxHash', covers: 'vendor/hash/xxhash', file: 'vendor/hash/xxhash/LICENSE', text: read('vendor/hash/xxhash/LICENSE') },
        { title: 'rotate-bits', covers: 'vendor/hash/rotate-bits', file: 'vendor/hash/rotate-bits/LICENSE.md', text: read('vendor/hash/rotate-bits/LICENSE.md') },
    ];
}

/** The MIT license text, for a notice whose file names the license only by its SPDX id. */
function MIT_TEMPLATE(holder) {
    return `MIT License

Copyright (c) ${holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.`;
}

/** THIRD_PARTY_NOTICES.md as the pinned tree gives it. */
export function renderNotices() {
    if (!existsSync(join(llama, 'LICENSE'))) throw new Error('vendor/llama.cpp is missing: run `npm run vendor` first');
    const parts = [
        '# Third-party notices',
        '',
        'llama-kv itself is MIT-licensed (LICENSE). Its native binaries (the addon, ggml and its backends, in the',
        '`@llama-kv/*` packages and in a build from source) are built from the pinned llama.cpp',
        '(vendor/llama.cpp.json) and contain the code below, under these licenses. This file is written by',
        '`node scripts/notices.mjs` from that tree and ships in every package.',
    ];
    for (const n of notices()) {
        parts.push('', `## ${n.title}`, '', `Covers: ${n.covers}. Source: llama.cpp \`${n.file}\`.`, '', '```', n.text, '```');
    }
    return `${parts.join('\n')}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    try {
        const text = renderNotices();
        if (process.argv.includes('--check')) {
            const committed = existsSync(out) ? readFileSync(out, 'utf8') : '';
            if (committed !== text) {
                process.stderr.write('THIRD_PARTY_NOTICES.md is out of date with vendor/llama.cpp: run `node scripts/notices.mjs`\n');
                process.exit(1);
            }
        } else {
            writeFileSync(out, text);
        }
    } catch (error) {
        process.stderr.write(`[llama-kv notices] ${error.message}\n`);
        process.exit(1);
    }
}
