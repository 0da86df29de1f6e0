// llama-kv's own RPC client: LlamaModel.load({ rpcServers }) with `llama-kv rpc-server`s on
// loopback. A model split between two servers and the local CPU generates what the CPU alone
// generates; the memory report lists the remote devices as llama.cpp's log does; and a server
// that is missing, never answers, answers garbage or dies mid-decode ends the call with a
// LlamaError while this process (the test's) goes on, the context then refusing every call.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getBackends, LlamaError, LlamaModel, type LlamaContext } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';
import { bufferLines, captureLlamaLog } from '../support/llama-log.js';
import { deviceCountProxy, freePort, silentServer, startRpcServer, type StreamFault } from '../support/rpc-wire.js';

const PROMPT = 'Once upon a time';
const MiB = 1024 * 1024;

/**
 * rpc-wire's fault proxy in a child process: context creation talks to the servers on the JS
 * thread, so a proxy on this thread would wait for it, and it for the proxy.
 */
function faultProxyProcess(bundle: string, upstream: number, fault: StreamFault): Promise<{ port: number; close: () => void }> {
    const child = spawn(process.execPath, [bundle, String(upstream), JSON.stringify(fault)], { stdio: ['ignore', 'pipe', 'inherit'] });
    return new Promise((resolve, reject) => {
        child.stdout!.once('data', (d: Buffer) => resolve({ port: Number(d.toString().trim()), close: () => child.kill('SIGKILL') }));
        child.once('exit', (code) => reject(new Error(`the fault proxy exited with ${code}`)));
    });
}

async function greedy(ctx: LlamaContext, n: number): Promise<number[]> {
    return (await ctx.complete(PROMPT, { maxTokens: n, temperature: 0 })).tokens;
}

async function failure(p: Promise<unknown>): Promise<LlamaError> {
    const e = await p.then(() => null, (error: unknown) => error);
    expect(e).toBeInstanceOf(LlamaError);
    return e as LlamaError;
}

describe('LlamaModel.load({ rpcServers })', () => {
    const servers: ChildProcess[] = [];
    let endpoints: string[] = [];
    let local: LlamaModel;
    beforeAll(async () => {
        const started = [await startRpcServer(), await startRpcServer()];
        servers.push(...started.map((s) => s.child));
        endpoints = started.map((s) => s.endpoint);
        local = await LlamaModel.load({ path: fixtures.f16, gpu: false });
    });
    afterAll(() => {
        local?.dispose();
        for (const s of servers) s.kill('SIGKILL');
    });

    it('a model split across two servers and the local CPU generates exactly what the CPU alone generates, for f16, q8_0/q8_0 and q8_0/q4_0 caches', async () => {
        const layers = local.metadata.layerCount;
        expect(layers).toBe(2);
        // gpuLayers 2 of the 2 blocks and the output layer: block 0 stays here, block 1 goes to
        // the first server and the output layer to the second (llama.cpp offloads from the top).
        const remote = await LlamaModel.load({ path: fixtures.f16, gpu: false, rpcServers: endpoints, gpuLayers: layers, tensorSplit: [1, 1] });
        try {
            for (const [k, v] of [['f16', 'f16'], ['q8_0', 'q8_0'], ['q8_0', 'q4_0']] as const) {
                const opts = { contextSize: 256, threads: 1, cacheTypeK: k, cacheTypeV: v, flashAttention: 'on' as const };
                const split = remote.createContext(opts);
                const alone = local.createContext(opts);
                const [a, b] = [await greedy(split, 24), await greedy(alone, 24)];
                const devices = split.memoryReport().devices;
                split.dispose();
                alone.dispose();
                expect(a, `${k}/${v}`).toEqual(b);
                expect(devices.map((d) => d.name).sort(), `${k}/${v}`).toEqual(['CPU', 'RPC0', 'RPC1'].sort());
                expect(devices.every((d) => d.weightsBytes > 0), `${k}/${v}: weights on each of the three`).toBe(true);
                expect(devices.filter((d) => d.kvBytes > 0).map((d) => d.name).sort(), `${k}/${v}: the blocks' KV cache`).toEqual(['CPU', 'RPC0']);
            }
        } finally {
            remote.dispose();
        }
    });

    it('memoryReport().devices: each remote device with its endpoint and memory, and the bytes llama.cpp logs for it', async () => {
        const log = captureLlamaLog();
        let report;
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: false, rpcServers: endpoints, tensorSplit: [1, 1] });
        try {
            const ctx = model.createContext({ contextSize: 256, threads: 1, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0', flashAttention: 'on' });
            await greedy(ctx, 2);
            report = ctx.memoryReport();
            ctx.dispose();
        } finally {
            await new Promise((r) => setTimeout(r, 100)); // the log lines of the worker threads arrive in batches
            log.stop();
            model.dispose();
        }
        const byName = new Map(report.devices.map((d) => [d.name, d]));
        const kvLog = bufferLines(log.lines, 'KV');
        const weightLog = bufferLines(log.lines, 'model');
        for (const [i, name] of ['RPC0', 'RPC1'].entries()) {
            const d = byName.get(name)!;
            expect(d.endpoint).toBe(endpoints[i]);
            expect(d.totalBytes).toBeGreaterThan(0);
            // llama.cpp names a remote buffer type after the server's own device index and the endpoint.
            const buffer = `RPC0[${endpoints[i]}]`;
            const lines = log.lines.filter((l) => l.includes('buffer size')).join('');
            expect(Math.abs(d.weightsBytes / MiB - (weightLog.get(buffer) ?? NaN)), lines).toBeLessThan(0.01);
            expect(Math.abs(d.kvBytes / MiB - (kvLog.get(buffer) ?? 0)), lines).toBeLessThan(0.01);
        }
        expect(byName.get('RPC0')!.kvBytes).toBeGreaterThan(0);
        expect(byName.get('CPU')!.endpoint).toBeUndefined();
        // getBackends(): the RPC backend with every remote device connected in this process.
        const rpc = getBackends().find((b) => b.kind === 'rpc');
        expect(rpc?.available).toBe(true);
        expect(rpc!.devices.slice(0, 2).map((d) => [d.name, d.description])).toEqual([['RPC0', endpoints[0]], ['RPC1', endpoints[1]]]);
        expect(rpc!.devices[0]!.totalBytes).toBeGreaterThan(0);
    });

    it('rejects bad rpcServers before connecting: INVALID_CONFIG naming the option', async () => {
        for (const bad of [['localhost'], ['a:b'], [endpoints[0], endpoints[0]], []]) {
            const e = await failure(LlamaModel.load({ path: fixtures.f16, rpcServers: bad }));
            expect(e.code).toBe('INVALID_CONFIG');
            expect(e.message).toContain('rpcServers');
        }
    });

    it('a server that is not there: BACKEND_UNAVAILABLE naming it', async () => {
        const port = await freePort();
        const e = await failure(LlamaModel.load({ path: fixtures.f16, rpcServers: [`127.0.0.1:${port}`] }));
        expect(e.code).toBe('BACKEND_UNAVAILABLE');
        expect(e.message).toBe(`RPC server 127.0.0.1:${port}: Failed to connect to 127.0.0.1:${port}`);
    });

    it('a server that claims too many devices: BACKEND_UNAVAILABLE with the count, before a device is made for each (2^32-1) or used (17)', async () => {
        const upstream = Number(endpoints[0].split(':')[1]);
        for (const [count, message] of [
            [0xffffffff, /reported 4294967295 devices \(at most 256\)/],
            [17, /reports 17 devices: with the others, more than the 16 this build can use/],
        ] as const) {
            const proxy = await deviceCountProxy(upstream, count);
            const started = performance.now();
            const e = await failure(LlamaModel.load({ path: fixtures.f16, gpu: false, rpcServers: [`127.0.0.1:${proxy.port}`] }));
            proxy.close();
            expect(e.code, String(count)).toBe('BACKEND_UNAVAILABLE');
            expect(e.message).toMatch(message);
            expect(performance.now() - started).toBeLessThan(15_000);
        }
    });

    it('a server that accepts and never answers: BACKEND_UNAVAILABLE once rpcTimeoutMs passes', async () => {
        const silent = await silentServer();
        const started = performance.now();
        const e = await failure(LlamaModel.load({ path: fixtures.f16, rpcServers: [`127.0.0.1:${silent.port}`], rpcTimeoutMs: 500 }));
        silent.close();
        expect(e.code).toBe('BACKEND_UNAVAILABLE');
        expect(e.message).toMatch(/handshake/i);
        expect(performance.now() - started).toBeLessThan(15_000);
    });

    it('a server killed (SIGKILL) mid-generation: DECODE_FAILED with the cause, then every call says the context is unusable, and disposing is safe', async () => {
        const victim = await startRpcServer();
        const model = await LlamaModel.load({ path: fixtures.f16, gpu: false, rpcServers: [victim.endpoint], rpcTimeoutMs: 5000 });
        const ctx = model.createContext({ contextSize: 512, threads: 1 });
        let tokens = 0;
        const run = (async () => {
            for await (const _ of ctx.generate(PROMPT, { maxTokens: 400, temperature: 0 })) {
                if (++tokens === 10) victim.child.kill('SIGKILL'); // mid-generation, after ten tokens
            }
        })();
        const e = await failure(run);
        expect(e.code).toBe('DECODE_FAILED');
        expect(e.message).toMatch(/this context is unusable since (llama_decode|a step) threw: .*(RPC|rpc)/);
        expect(tokens).toBeLessThan(400);
        const again = await failure(ctx.complete(PROMPT, { maxTokens: 2 }));
        expect(again.code).toBe('DECODE_FAILED');
        expect(again.message).toContain('this context is unusable since');
        ctx.dispose();
        ctx.dispose();
        model.dispose();
    });

    it('a server killed (SIGKILL) during the load: the load rejects and this process goes on', async () => {
        const victim = await startRpcServer();
        let killed = false;
        const e = await failure(LlamaModel.load({
            path: fixtures.f16,
            gpu: false,
            rpcServers: [victim.endpoint],
            rpcTimeoutMs: 5000,
            onProgress: (p) => {
                if (p > 0.2 && !killed) {
                    killed = true;
                    victim.child.kill('SIGKILL');
                }
            },
        }).then((m) => {
            // The weights may all have gone before the kill landed: the first decode fails then.
            const ctx = m.createContext({ contextSize: 256, threads: 1 });
            return greedy(ctx, 4).finally(() => m.dispose());
        }));
        expect(killed).toBe(true);
        expect(['MODEL_LOAD_FAILED', 'DECODE_FAILED', 'CONTEXT_CREATE_FAILED']).toContain(e.code);
    });

    // The server-to-client stream cut, one byte inverted, or replaced by noise, at offsets
    // through the handshake, the load and the decodes; and the server dying as the client sends
    // the 1st, 2nd or 3rd command of each kind it sends (buffer allocations, tensor uploads and
    // reads, graph computations...): each case ends in this process with tokens or a
    // LlamaError, never a signal or a hang.
    const offsets = [...Array.from({ length: 12 }, (_, i) => i * 4), ...Array.from({ length: 28 }, (_, i) => Math.round(48 * 1.45 ** i))];
    const faults: StreamFault[] = [
        ...offsets.map((at) => ({ kind: 'cut' as const, at })),
        ...offsets.map((at) => ({ kind: 'flip' as const, at })),
        ...offsets.filter((_, i) => i % 2 === 0).map((at, i) => ({ kind: 'garbage' as const, at, seed: 0x9e3779b9 + i })),
        // ALLOC_BUFFER, GET_ALIGNMENT, BUFFER_GET_BASE, BUFFER_CLEAR, SET_TENSOR, GET_TENSOR, GRAPH_COMPUTE, GET_DEVICE_MEMORY, GET_ALLOC_SIZE, GRAPH_RECOMPUTE
        ...[0, 1, 3, 5, 6, 8, 10, 11, 13, 16].flatMap((command) => [1, 2, 3].map((nth) => ({ kind: 'die-at' as const, command, nth }))),
    ];
    it(`a corpus of ${faults.length} broken server answers: tokens or a LlamaError in this process, never a crash or a hang`, async () => {
        const bundle = join(mkdtempSync(join(tmpdir(), 'llama-kv-rpc-proxy-')), 'proxy.mjs');
        execFileSync(join(root, 'node_modules', '.bin', 'esbuild'), [join(root, 'test', 'support', 'rpc-proxy-child.ts'), '--bundle', '--platform=node', '--format=esm', `--outfile=${bundle}`, '--log-level=warning']);
        const outcomes: Record<string, number> = {};
        const bad: string[] = [];
        for (const fault of faults) {
            const server = await startRpcServer();
            const proxy = await faultProxyProcess(bundle, server.port, fault);
            let outcome: string;
            try {
                const model = await LlamaModel.load({ path: fixtures.f16, gpu: false, rpcServers: [`127.0.0.1:${proxy.port}`], rpcTimeoutMs: 2000 });
                try {
                    const ctx = model.createContext({ contextSize: 128, threads: 1 });
                    outcome = (await greedy(ctx, 4)).length === 4 ? 'tokens' : 'short';
                } finally {
                    model.dispose();
                }
            } catch (error) {
                outcome = error instanceof LlamaError ? error.code : `not a LlamaError: ${String(error)}`;
            }
            proxy.close();
            server.child.kill('SIGKILL');
            outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
            if (outcome !== 'tokens' && !['BACKEND_UNAVAILABLE', 'MODEL_LOAD_FAILED', 'CONTEXT_CREATE_FAILED', 'DECODE_FAILED', 'INSUFFICIENT_MEMORY'].includes(outcome)) {
                bad.push(`${JSON.stringify(fault)}: ${outcome}`);
            }
        }
        console.log(`llama-kv rpc fault corpus: ${faults.length} cases: ${JSON.stringify(outcomes)}`);
        expect(bad).toEqual([]);
        expect(faults.length).toBeGreaterThanOrEqual(100);
        expect((outcomes.tokens ?? 0)).toBeLessThan(faults.length / 2);
    }, 900_000);
});
