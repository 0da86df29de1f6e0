// `llama-kv rpc-server` with llama.cpp's own RPC client (test/support/reference/rpc-greedy.cpp:
// ggml_backend_rpc_add_server, the model's layers on the servers): a model split across two
// servers on loopback generates what the local CPU generates, for every K/V cache type pair;
// and what that client does when a server is missing or dies (it aborts its process), which
// is what llama-kv's own client (issue 23) has to contain.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KV_CACHE_TYPES, LlamaModel } from '../../lib/index.js';
import { fixtures, referenceGreedy } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';
import { freePort, handshake } from '../support/rpc-wire.js';

const cli = join(root, 'dist', 'cli', 'index.js');
const PROMPT = 'Once upon a time';

async function startServer(): Promise<{ endpoint: string; child: ChildProcess }> {
    const port = await freePort();
    const child = spawn(process.execPath, [cli, 'rpc-server', '--port', String(port), '-t', '1'], { stdio: 'ignore' });
    await handshake(port);
    return { endpoint: `127.0.0.1:${port}`, child };
}

/** llama.cpp's client with the layers on `endpoints`: the tokens, or how it ended. */
function overRpc(k: string, v: string, fa: 'on' | 'off' | 'auto', n: number, endpoints: string[]) {
    const r = spawnSync(fixtures.rpcReference, [fixtures.f16, PROMPT, String(n), k, v, fa, ...endpoints], { encoding: 'utf8', timeout: 120_000 });
    return { status: r.status, signal: r.signal, tokens: r.stdout.trim().split(/\s+/).filter(Boolean).map(Number), stderr: r.stderr };
}

describe('llama-kv rpc-server with llama.cpp\'s own client', () => {
    const servers: ChildProcess[] = [];
    let endpoints: string[] = [];
    beforeAll(async () => {
        const started = [await startServer(), await startServer()];
        servers.push(...started.map((s) => s.child));
        endpoints = started.map((s) => s.endpoint);
    });
    afterAll(() => {
        for (const s of servers) s.kill('SIGKILL');
    });

    it('a model split across two servers generates exactly what the local CPU generates (32 greedy tokens, f16/f16)', () => {
        const r = overRpc('f16', 'f16', 'auto', 32, endpoints);
        expect(r.status, r.stderr).toBe(0);
        expect(r.tokens).toEqual(referenceGreedy(fixtures.f16, PROMPT, 32));
    });

    it('every K/V cache type pair runs over RPC with flash attention, and gives what llama-kv gives on the CPU', async () => {
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
        const failures: string[] = [];
        const differ: string[] = [];
        for (const k of KV_CACHE_TYPES) {
            for (const v of KV_CACHE_TYPES) {
                const r = overRpc(k, v, 'on', 8, endpoints);
                if (r.status !== 0 || r.tokens.length !== 8) {
                    failures.push(`${k}/${v}: ${r.status ?? r.signal} ${r.stderr.split('\n').find((l) => /abort|error|fail/i.test(l)) ?? ''}`);
                    continue;
                }
                const ctx = model.createContext({ contextSize: 256, threads: 1, cacheTypeK: k, cacheTypeV: v, flashAttention: 'on' });
                const local = (await ctx.complete(PROMPT, { maxTokens: 8, temperature: 0 })).tokens;
                ctx.dispose();
                if (local.join() !== r.tokens.join()) differ.push(`${k}/${v}`);
            }
        }
        model.dispose();
        expect(failures).toEqual([]);
        console.log(`over RPC (two CPU servers on loopback): 81 of 81 K/V pairs ran with flash attention; ${81 - differ.length} gave llama-kv's CPU tokens exactly${differ.length ? ` (not: ${differ.join(', ')})` : ''}`);
        expect(differ).toEqual([]);
    });

    it("llama.cpp's client aborts its process when a server is not there, or dies during a decode", async () => {
        const missing = overRpc('f16', 'f16', 'auto', 2, [`127.0.0.1:${await freePort()}`]);
        expect(missing.signal).toBe('SIGABRT');
        expect(missing.stderr).toMatch(/ggml-rpc\.cpp:\d+: Failed to connect to 127\.0\.0\.1/);
        // The server executable itself (killing `llama-kv rpc-server` kills its server too, but later).
        const port = await freePort();
        const server = spawn(join(root, 'build', 'Release', 'llama-kv-rpc-server'), ['--port', String(port), '--threads', '1'], { stdio: 'ignore' });
        await handshake(port);
        const victim = { child: server, endpoint: `127.0.0.1:${port}` };
        const run = spawn(fixtures.rpcReference, [fixtures.f16, PROMPT, '250', 'f32', 'f32', 'off', victim.endpoint], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        run.stderr!.on('data', (d) => (stderr += d));
        // Kill the server once the client has produced its first tokens.
        await new Promise<void>((r) => run.stdout!.once('data', () => r()));
        victim.child.kill('SIGKILL');
        const signal = await new Promise((r) => run.on('exit', (_code, s) => r(s)));
        expect(signal).toBe('SIGABRT');
        expect(stderr).toMatch(/Remote RPC server crashed or returned malformed response/);
    });
});
