// The docs' TypeScript examples must run as written. Every ```ts block of README.md and
// docs/*.md is a complete program importing 'llama-kv' (a signature or a fragment is fenced
// as another language, e.g. ```text), written in the TypeScript that is also JavaScript (no type
// annotations or assertions): each runs in its own node process, as .mjs, against the fixture
// models, with 'model.gguf', 'adapter.gguf', 'moe.gguf', 'tools-model.gguf' (a chat model
// with a tool-use template), 'embedding-model.gguf' and 'reranker.gguf' standing for them. Every
// `npx llama-kv` line of a ```sh block runs too (the lines of one block in order, in one
// folder: a report one line writes is the baseline of the next); a usage line with
// [optional] parts is fenced as ```text. (`npm` lines are the project's own commands,
// which CI runs.) Also: the
// bench table of docs/performance.md is what bench-results/*.json give, every export is in
// docs/api.md, and every link between the pages resolves.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { fixtures } from '../support/fixtures.js';

const root = join(import.meta.dirname, '..', '..');
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const text = Object.fromEntries(pages.map((page) => [page, readFileSync(join(root, page), 'utf8')]));

/** Languages whose blocks are programs: each must import 'llama-kv' and run. */
const PROGRAM_LANGUAGES = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs']);
const IMPORT = /from 'llama-kv'/;

interface Block {
    page: string;
    line: number;
    lang: string;
    code: string;
}

/** The fenced code blocks of a page, with the line of their opening fence. */
function fencedBlocks(page: string): Block[] {
    const blocks: Block[] = [];
    let open: { line: number; lang: string; fence: string; body: string[] } | null = null;
    for (const [i, line] of text[page].split('\n').entries()) {
        const fence = /^\s*(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
        if (open === null) {
            if (fence) open = { line: i + 1, lang: fence[2].toLowerCase(), fence: fence[1], body: [] };
        } else if (fence && fence[1][0] === open.fence[0] && fence[1].length >= open.fence.length && fence[2] === '') {
            blocks.push({ page, line: open.line, lang: open.lang, code: open.body.join('\n') + '\n' });
            open = null;
        } else {
            open.body.push(line);
        }
    }
    if (open !== null) throw new Error(`${page}: the code block opened at line ${open.line} is never closed`);
    return blocks;
}

const blocks = pages.flatMap(fencedBlocks);
const programs = blocks.filter((b) => PROGRAM_LANGUAGES.has(b.lang));
const where = (b: Block) => `${b.page}:${b.line}`;

describe('docs examples', () => {
    it('README.md and every docs page are read, and there are examples to run', () => {
        expect(pages).toEqual(expect.arrayContaining(['README.md', 'docs/api.md', 'docs/kv-cache.md', 'docs/memory.md', 'docs/lora.md', 'docs/backends.md', 'docs/cli.md', 'docs/performance.md', 'docs/reliability.md', 'docs/embeddings.md']));
        expect(programs.filter((b) => b.page === 'README.md').length).toBeGreaterThanOrEqual(1);
        expect(programs.length).toBeGreaterThanOrEqual(20);
    });

    it('every ts block is a complete program that imports llama-kv (fence anything else as another language)', () => {
        expect(programs.filter((b) => !IMPORT.test(b.code)).map(where)).toEqual([]);
    });

    it.each(programs.map((b) => [where(b), b] as const))('%s runs', (_where, block) => {
        const dir = mkdtempSync(join(tmpdir(), 'llama-kv-docs-'));
        const file = join(dir, 'example.mjs');
        const source = block.code
            .replaceAll("from 'llama-kv'", `from ${JSON.stringify(pathToFileURL(join(root, 'dist', 'index.js')).href)}`)
            .replaceAll("'model.gguf'", JSON.stringify(fixtures.f16))
            .replaceAll("'adapter.gguf'", JSON.stringify(fixtures.loraAttn))
            .replaceAll("'moe.gguf'", JSON.stringify(fixtures.moe))
            .replaceAll("'tools-model.gguf'", JSON.stringify(fixtures.chat.tools))
            .replaceAll("'embedding-model.gguf'", JSON.stringify(fixtures.embed.bert))
            .replaceAll("'reranker.gguf'", JSON.stringify(fixtures.embed.rerank));
        writeFileSync(file, source);
        const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000, cwd: dir });
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        expect(r.stdout.length).toBeGreaterThan(0);
    });
});

/** The `npx llama-kv` lines of the shell blocks: [block, args per line]. */
const SHELL_LANGUAGES = new Set(['sh', 'bash', 'shell', 'console']);
const cliBlocks = blocks
    .filter((b) => SHELL_LANGUAGES.has(b.lang))
    .map((b) => ({ block: b, lines: b.code.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l.startsWith('npx llama-kv ')) }))
    .filter((c) => c.lines.length > 0);

/** Splits a command line as a shell would for these examples (words, "double" and 'single' quotes). */
function shellWords(line: string): string[] {
    return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** The files the examples name: fixtures for inputs; outputs land in the example's folder. */
const CLI_FILES: Record<string, () => string> = {
    'model.gguf': () => fixtures.f16,
    'base.gguf': () => fixtures.f16,
    'model-f16.gguf': () => fixtures.f16,
    'adapter.gguf': () => fixtures.loraAttn,
    'other.gguf': () => fixtures.loraFfn,
    'embedding-model.gguf': () => fixtures.embed.bert,
    'reranker.gguf': () => fixtures.embed.rerank,
};

describe('docs CLI examples', () => {
    it('there are CLI examples to run, and none is a usage line (those are fenced as text)', () => {
        expect(cliBlocks.filter((c) => c.block.page === 'README.md').length).toBeGreaterThanOrEqual(1);
        const usage = cliBlocks.flatMap((c) => c.lines.filter((l) => /\[|<\w/.test(l)).map((l) => `${where(c.block)}: ${l}`));
        expect(usage).toEqual([]);
    });

    it.each(cliBlocks.map((c) => [where(c.block), c.lines] as const))('%s runs', (_where, lines) => {
        const dir = mkdtempSync(join(tmpdir(), 'llama-kv-docs-cli-'));
        // A prompt set for the examples that read one (calibrate --prompts).
        writeFileSync(join(dir, 'my-workload.jsonl'), ['{"name":"greeting","text":"Hello, how are you today? I am fine, thank you."}', '{"name":"story","category":"creative","text":"Once upon a time there was a llama."}'].join('\n') + '\n');
        // And one prompt per line, for `run --prompts-file`.
        writeFileSync(join(dir, 'prompts.txt'), ['Once upon a time', '', 'The llama said', 'Hello, how are you today?'].join('\n') + '\n');
        for (const line of lines) {
            const args = shellWords(line).slice(2).map((w) => CLI_FILES[w]?.() ?? w);
            const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000, cwd: dir, env: { ...process.env, LLAMA_KV_CACHE_DIR: fixtures.cacheDir } });
            expect(r.status, `${line}\n${r.stderr}`).toBe(0);
            expect(r.stdout.length, line).toBeGreaterThan(0);
        }
    }, 300_000);
});

describe('docs/performance.md', () => {
    const script = join(root, 'scripts', 'bench-table.mjs');

    it("its bench table is the one scripts/bench-table.mjs renders from bench-results/*.json", () => {
        const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8', cwd: root });
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
    });

    it('bench-table.mjs --check fails on a table edited by hand', () => {
        const dir = mkdtempSync(join(tmpdir(), 'llama-kv-bench-table-'));
        const doc = join(dir, 'performance.md');
        const original = text['docs/performance.md'];
        const edited = original.replace('| 1 | f16/f16 | 197.9 |', '| 1 | f16/f16 | 199.9 |');
        expect(edited).not.toBe(original);
        writeFileSync(doc, edited);
        const r = spawnSync(process.execPath, [script, '--check', '--doc', doc], { encoding: 'utf8', cwd: root });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain('differs');
    });
});

describe('docs/api.md', () => {
    it('names every export of the package', async () => {
        const exports = Object.keys(await import(pathToFileURL(join(root, 'dist', 'index.js')).href));
        expect(exports.length).toBeGreaterThan(20);
        const api = text['docs/api.md'];
        const missing = exports.filter((name) => !new RegExp(`(?<![\\w$])${name.replace(/\$/g, '\\$')}(?![\\w$])`).test(api));
        expect(missing).toEqual([]);
    });
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen; repeats get -1, -2, ... */
function anchors(page: string): Set<string> {
    const seen = new Map<string, number>();
    const out = new Set<string>();
    const inCode = new Set(fencedBlocks(page).flatMap((b) => Array.from({ length: b.code.split('\n').length }, (_, i) => b.line + i)));
    text[page].split('\n').forEach((line, i) => {
        const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
        if (!m || inCode.has(i + 1)) return;
        const base = m[1].toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
        const n = seen.get(base) ?? 0;
        seen.set(base, n + 1);
        out.add(n === 0 ? base : `${base}-${n}`);
    });
    return out;
}

describe('links between the docs', () => {
    it('every relative link points at a file that exists (and at a heading of it), never into lib/', () => {
        const broken: string[] = [];
        for (const page of pages) {
            const prose = text[page].replace(/^\s*```[\s\S]*?^\s*```/gm, '');
            for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
                if (/^[a-z]+:/i.test(target)) continue;
                const [path, anchor] = target.split('#');
                const file = path === '' ? join(root, page) : resolve(dirname(join(root, page)), path);
                const name = relative(root, file);
                if (name === 'lib' || name.startsWith(`lib/`)) broken.push(`${page}: ${target} links into lib/, whose paths change`);
                else if (!existsSync(file)) broken.push(`${page}: ${target} (no such file)`);
                else if (anchor !== undefined && (!(name in text) || !anchors(name).has(anchor))) broken.push(`${page}: ${target} (no such heading)`);
            }
        }
        expect(broken).toEqual([]);
    });
});
