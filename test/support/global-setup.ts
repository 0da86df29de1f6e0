// Generates the fixture models once (cached across runs) and builds the test-only
// llama.cpp reference program, before any test file runs.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureFixtureLora } from '../../lib/demo/loras.js';
import { ensureFixtureModel } from '../../lib/demo/models.js';

export const root = resolve(import.meta.dirname, '..', '..');

/** Builds one test-only reference program of the CMake build and returns its path. */
export function buildReference(target: string): string {
    const buildDir = join(root, 'build');
    if (!existsSync(join(buildDir, 'CMakeCache.txt'))) {
        throw new Error('build/ is not configured: run `npm install` (or `npm run build`) before `npm test`');
    }
    execFileSync('cmake', ['--build', buildDir, '--target', target, '--parallel', '2'], { stdio: 'pipe', maxBuffer: 256 * 2 ** 20 });
    for (const candidate of [`Release/${target}`, `bin/${target}`]) {
        const file = join(buildDir, candidate);
        if (existsSync(file)) return file;
    }
    throw new Error(`${target} was built but not found under build/`);
}

export default async function setup(project: TestProject): Promise<void> {
    const dir = join(root, '.cache', 'models');
    project.provide('fixtures', {
        f16: await ensureFixtureModel('tiny-f16', { dir }),
        q8_0: await ensureFixtureModel('tiny-q8_0', { dir }),
        q4_0: await ensureFixtureModel('tiny-q4_0', { dir }),
        hd48: await ensureFixtureModel('tiny-hd48-f16', { dir }),
        moe: await ensureFixtureModel('tiny-moe-f16', { dir }),
        loraAttn: await ensureFixtureLora('tiny-lora-r8-attn', { dir }),
        loraFfn: await ensureFixtureLora('tiny-lora-r4-ffn', { dir }),
        loraHd48: await ensureFixtureLora('tiny-hd48-lora-r8-attn', { dir }),
        reference: buildReference('llama-kv-reference'),
        cacheDir: dir,
        chat: {
            llama3: await ensureFixtureModel('chat-llama3-f16', { dir }),
            qwen: await ensureFixtureModel('chat-qwen-f16', { dir }),
            gemma: await ensureFixtureModel('chat-gemma-f16', { dir }),
            tools: await ensureFixtureModel('chat-tools-f16', { dir }),
        },
        chatReference: buildReference('llama-kv-chat-reference'),
        embed: {
            bert: await ensureFixtureModel('embed-bert-f16', { dir }),
            rerank: await ensureFixtureModel('rerank-bert-f16', { dir }),
            llamaLast: await ensureFixtureModel('embed-llama-last-f16', { dir }),
        },
        embeddingReference: buildReference('llama-kv-embedding-reference'),
        rpcReference: buildReference('llama-kv-rpc-greedy'),
    });
}

declare module 'vitest' {
    export interface ProvidedContext {
        fixtures: {
            f16: string;
            q8_0: string;
            q4_0: string;
            hd48: string;
            moe: string;
            loraAttn: string;
            loraFfn: string;
            loraHd48: string;
            reference: string;
            cacheDir: string;
            /** Micro models whose tokenizer.chat_template is a template of llama.cpp's models/templates/ (see lib/demo/models.ts). */
            chat: { llama3: string; qwen: string; gemma: string; tools: string };
            /** llama.cpp's common_chat_templates_apply as its server calls it (test/support/reference/chat-apply.cpp). */
            chatReference: string;
            /**
             * Embedding fixtures (see lib/demo/models.ts): a BERT encoder with mean pooling, the
             * same with a one-output classification head and RANK pooling, and the micro llama
             * network with last-token pooling and EOS appended.
             */
            embed: { bert: string; rerank: string; llamaLast: string };
            /** The logic of llama.cpp's examples/embedding without its argument parser (test/support/reference/embedding.cpp). */
            embeddingReference: string;
            /** Greedy generation with the layers on RPC servers, through llama.cpp's own RPC client (test/support/reference/rpc-greedy.cpp). */
            rpcReference: string;
        };
    }
}
