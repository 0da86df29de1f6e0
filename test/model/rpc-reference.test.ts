// `llama-kv rpc-server` with llama.cpp's own RPC client (test/support/reference/rpc-greedy.cpp:
// ggml_backend_rpc_add_server, the model's layers on the servers): a model split across two
// servers on loopback generates what the local CPU generates, for every K/V cache type pair;
// and with vendor patch 0010, a server that is missing, dies, never answers or answers
// garbage makes the client's call fail with an error instead of aborting its process: what
// llama-kv's own client (issue 23) will build on.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KV_CACHE_TYPES, LlamaModel } from '../../lib/index.js';
import { fixtures, referenceGreedy } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';
import { faultProxy, freePort, handshake, silentServer, startRpcServer, type StreamFault } from '../support/rpc-wire.js';

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

    /** The client, to completion: its exit, and its error line. TIMEOUT_MS: the client sockets' timeout (vendor patch 0010). */
    function client(endpoint: string, n: number, timeoutMs = 2000) {
        return new Promise<{ code: number | null; signal: NodeJS.Signals | null; tokens: number; error: string }>((resolve) => {
            const c = spawn(fixtures.rpcReference, [fixtures.f16, PROMPT, String(n), 'f32', 'f32', 'off', endpoint], {
                stdio: ['ignore', 'pipe', 'pipe'],
                env: { ...process.env, RPC_GREEDY_TIMEOUT_MS: String(timeoutMs) },
            });
            let out = '';
            let err = '';
            c.stdout!.on('data', (d) => (out += d));
            c.stderr!.on('data', (d) => (err += d));
            const hung = setTimeout(() => c.kill('SIGKILL'), 30_000);
            c.on('exit', (code, signal) => {
                clearTimeout(hung);
                resolve({ code, signal, tokens: out.trim().split(/\s+/).filter(Boolean).length, error: err.split('\n').find((l) => /error/i.test(l)) ?? '' });
            });
        });
    }

    it('a server that is not there: the client gets an error (vendor patch 0010; it aborted before)', async () => {
        const r = await client(`127.0.0.1:${await freePort()}`, 2);
        expect(r).toMatchObject({ code: 1, signal: null });
        expect(r.error).toMatch(/^error: Failed to connect to 127\.0\.0\.1:\d+$/);
    });

    it('a server killed (SIGKILL) during a decode: llama_decode throws, and the context and model are freed', async () => {
        const victim = await startRpcServer();
        const c = spawn(fixtures.rpcReference, [fixtures.f16, PROMPT, '250', 'f32', 'f32', 'off', `127.0.0.1:${victim.port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
        let tokens = 0;
        let err = '';
        c.stderr!.on('data', (d) => (err += d));
        c.stdout!.on('data', (d: Buffer) => {
            tokens += d.toString().trim().split(/\s+/).length;
            if (tokens >= 10) victim.child.kill('SIGKILL'); // mid-generation, after ten tokens
        });
        const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => c.on('exit', (code, signal) => r([code, signal])));
        expect({ code, signal }).toEqual({ code: 1, signal: null });
        expect(tokens).toBeLessThan(250);
        expect(err).toContain('error: a decode threw: Remote RPC server crashed or returned malformed response');
        expect(err).toContain('freed the context and the model');
    });

    it('a server that accepts and never answers: the call fails when the socket times out', async () => {
        const silent = await silentServer();
        const started = performance.now();
        const r = await client(`127.0.0.1:${silent.port}`, 2, 1000);
        silent.close();
        expect(r).toMatchObject({ code: 1, signal: null });
        expect(r.error).toMatch(/RPC handshake failed/);
        expect(performance.now() - started).toBeLessThan(20_000);
    });

    // The server-to-client stream cut, or one byte of it inverted, or replaced by noise, at
    // offsets through the handshake, the load (device queries, allocations, tensor uploads)
    // and the decodes (logits downloads): every case ends with tokens or an error, never a
    // signal or a hang. A fresh server for each, since a client fed garbage can send garbage.
    const offsets = [...Array.from({ length: 12 }, (_, i) => i * 4), ...Array.from({ length: 28 }, (_, i) => Math.round(48 * 1.45 ** i))];
    const faults: StreamFault[] = [
        ...offsets.map((at) => ({ kind: 'cut' as const, at })),
        ...offsets.map((at) => ({ kind: 'flip' as const, at })),
        ...offsets.filter((_, i) => i % 2 === 0).map((at, i) => ({ kind: 'garbage' as const, at, seed: 0x9e3779b9 + i })),
    ];
    it(`a corpus of ${faults.length} broken server answers: the client ends with tokens or an error, never a signal or a hang`, async () => {
        const outcomes = { tokens: 0, error: 0 };
        const bad: string[] = [];
        for (const fault of faults) {
            const server = await startRpcServer();
            const proxy = await faultProxy(server.port, fault);
            const r = await client(`127.0.0.1:${proxy.port}`, 4);
            proxy.close();
            server.child.kill('SIGKILL');
            if (r.code === 0 && r.tokens === 4) outcomes.tokens++;
            else if (r.code === 1) outcomes.error++;
            else bad.push(`${JSON.stringify(fault)}: code ${r.code}, signal ${r.signal}, ${r.tokens} tokens, ${r.error}`);
        }
        console.log(`rpc fault corpus: ${faults.length} cases, ${outcomes.error} failed with an error, ${outcomes.tokens} generated (the byte hit data, not framing)`);
        expect(bad).toEqual([]);
        expect(faults.length).toBeGreaterThanOrEqual(100);
        expect(outcomes.error).toBeGreaterThan(faults.length / 2);
    }, 600_000);
});
