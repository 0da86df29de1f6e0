// scripts/bench-rpc.mjs (npm run bench:rpc) on the tiny fixture, briefly: it runs to its end,
// and its counting proxies count what the RPC protocol must carry for each generated token
// (the logits come back from the server of the output layer; each server's result is one
// round trip). Its timings are not checked here: they are the benchmark's, not a test's.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readGgufMetadata } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';

describe('npm run bench:rpc', () => {
    it('runs on the tiny model and counts the bytes and round trips of a generated token', async () => {
        const json = join(mkdtempSync(join(tmpdir(), 'llama-kv-bench-rpc-')), 'r.json');
        const out = execFileSync(process.execPath, [join(root, 'scripts', 'bench-rpc.mjs'), '--model', fixtures.f16, '-p', '32', '-n', '8', '-r', '1', '--ours-only', '--json', json], {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'ignore'],
            timeout: 120_000,
        });
        expect(out).toMatch(/per generated token: \d+ bytes to the servers/);
        const r = JSON.parse(readFileSync(json, 'utf8'));
        const gguf = await readGgufMetadata(fixtures.f16);
        const vocab = (gguf.kv['tokenizer.ggml.tokens'] as unknown[]).length;
        for (const side of ['cpu', 'rpc'] as const) {
            expect(r.llamaKv[side].pp, side).toBeGreaterThan(0);
            expect(r.llamaKv[side].tg, side).toBeGreaterThan(0);
        }
        expect(r.llamaBench).toBeNull();
        const token = r.perGeneratedToken;
        // The output layer's server sends one row of f32 logits per token.
        expect(token.bytesToClient).toBeGreaterThanOrEqual(vocab * 4);
        expect(token.byServer).toHaveLength(2);
        for (const server of token.byServer) {
            expect(server.commands.GET_TENSOR).toBeGreaterThanOrEqual(1);
            expect(server.roundTrips).toBeGreaterThanOrEqual(1);
        }
        // The weights of block 1 and the output layer went to the servers (the token embeddings stay here).
        const remoteWeights = gguf.tensors.filter((t) => t.name.startsWith('blk.1.') || t.name.startsWith('output')).reduce((s, t) => s + t.byteSize, 0);
        expect(r.loadBytesToServers).toBeGreaterThanOrEqual(remoteWeights);
    });
});
