#!/usr/bin/env node
// RPC (issue 23): the bench model split across two `llama-kv rpc-server`s on loopback against
// the local CPU alone. Prompt processing and generation tokens/s of llama-kv over RPC and on
// the CPU, interleaved, medians and the ratio RPC / CPU; the same pair from llama.cpp's own
// llama-bench (`--rpc`, on the same servers) when build-bench/ has it, and ours / llama-bench.
// Then, through a counting proxy in front of each server, what crosses the network: bytes
// each way and round trips per generated token and per prompt token, by command, and the
// bytes of the load (the weights) and of a context's creation.
//
//   node scripts/bench-rpc.mjs [--model PATH|fixture-name] [-p 128] [-n 32] [-r 3] [-t 2] [--server-threads N] [--llama-bench PATH | --ours-only] [--json FILE]
//
// npm run bench:rpc [-- flags]. Default model: bench-f16 (generated on first use). -t is the
// client's threads (and the CPU-alone run's); each server gets --server-threads, by default half
// the CPUs: the two servers share this one machine, and ggml's CPU threads spin a while after
// each graph, so servers with every CPU each take it from one another (on 2 vCPUs, tg fell
// from about 440 to about 11 tokens/s with 2 threads per server instead of 1).
import { fork, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { LlamaModel, ensureFixtureModel } = await import(join(root, 'dist', 'index.js'));
const ours = await import(join(root, 'dist', 'cli', 'bench', 'ours.js'));
const { median } = await import(join(root, 'dist', 'cli', 'bench', 'stats.js'));
const { findLlamaBench, runLlamaBench } = await import(join(root, 'dist', 'cli', 'bench', 'llama-bench.js'));
const { cpuIdentity } = await import(join(root, 'dist', 'cli', 'bench', 'cpu-facts.js'));

const argv = process.argv.slice(2);
const values = (flag) => argv.flatMap((a, i) => (a === flag && i + 1 < argv.length ? [argv[i + 1]] : []));
const value = (flag, fallback) => Number(values(flag).at(-1) ?? fallback);
const P = value('-p', 128);
const N = value('-n', 32);
const reps = value('-r', 3);
const threads = value('-t', 2);
const serverThreads = value('--server-threads', Math.max(1, Math.floor(cpus().length / 2)));
const modelArg = values('--model').at(-1) ?? 'bench-f16';
const jsonOut = values('--json').at(-1);
const llamaBench = argv.includes('--ours-only') ? null : (values('--llama-bench').at(-1) ?? findLlamaBench());
const path = modelArg.endsWith('.gguf') ? modelArg : await ensureFixtureModel(modelArg);
const serverBinary = join(root, 'build', 'Release', 'llama-kv-rpc-server');
if (!existsSync(serverBinary)) throw new Error(`${serverBinary} is not built: run npm run build`);

const settings = { threads, cacheTypeK: 'f16', cacheTypeV: 'f16', flashAttention: 'on', batchSize: 2048, ubatchSize: 512 };
const contextSize = Math.ceil((P + N) / 256) * 256;
const children = [];
const cleanup = () => children.forEach((c) => c.kill('SIGKILL'));
process.on('exit', cleanup);

/** A free loopback port below the ephemeral range (32768-60999), where the kernel could hand it to another socket before the server binds it. */
async function freePort() {
    for (;;) {
        const port = 20000 + Math.floor(Math.random() * 12000);
        const s = createServer();
        const bound = await new Promise((r) => {
            s.once('error', () => r(false));
            s.listen(port, '127.0.0.1', () => r(true));
        });
        if (!bound) continue;
        await new Promise((r) => s.close(r));
        return port;
    }
}

/** Resolves once something accepts connections on `port`. */
async function listening(port) {
    for (let i = 0; i < 200; i++) {
        const ok = await new Promise((r) => {
            const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
            s.on('error', () => r(false));
        });
        if (ok) return;
        await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

async function startServer() {
    const port = await freePort();
    const child = spawn(serverBinary, ['--port', String(port), '--threads', String(serverThreads)], { stdio: 'ignore' });
    children.push(child);
    await listening(port);
    if (child.exitCode !== null) throw new Error(`llama-kv-rpc-server exited (${child.exitCode}) instead of serving on port ${port}`);
    return `127.0.0.1:${port}`;
}

/** A counting proxy (scripts/bench/rpc-count-proxy.mjs, a process of its own) in front of `endpoint`. */
async function startProxy(endpoint) {
    const child = fork(join(root, 'scripts', 'bench', 'rpc-count-proxy.mjs'), [endpoint.split(':')[1]], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    const port = await new Promise((r) => child.once('message', (m) => r(m.port)));
    return {
        endpoint: `127.0.0.1:${port}`,
        count: () => new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`the counting proxy for ${endpoint} did not answer`)), 10_000);
            child.once('message', (m) => (clearTimeout(timer), resolve(m.count)));
            child.send('count');
        }),
    };
}

const servers = [await startServer(), await startServer()];
const remoteLoad = (rpcServers) => ({ path, gpu: false, rpcServers, tensorSplit: [1, 1], rpcTimeoutMs: 30_000 });
const local = await LlamaModel.load({ path, gpu: false });
const remote = await LlamaModel.load(remoteLoad(servers));
const layers = local.metadata.layerCount;

// Timings: llama-kv on the CPU and over RPC, interleaved, a fresh context per measurement.
const prompts = ours.promptSource(7, local.metadata.vocabSize, P);
const probe = ours.benchContext(local, settings, contextSize);
const gen = await ours.findGenerationPrompt(probe, N);
probe.dispose();
const rates = { cpu: { pp: [], tg: [] }, rpc: { pp: [], tg: [] } };
const measure = async (model, into) => {
    const ctx = ours.benchContext(model, settings, contextSize);
    try {
        into.pp.push((P * 1000) / (await ours.timePrompt(ctx, prompts())));
    } finally {
        ctx.dispose();
    }
    const g = ours.benchContext(model, settings, contextSize);
    try {
        const t = await ours.timeGeneration(g, gen.prompt, N);
        into.tg.push((t.tokens * 1000) / t.ms);
    } finally {
        g.dispose();
    }
};
await measure(remote, { pp: [], tg: [] }); // warm-up: the servers' first graphs
for (let r = 0; r < reps; r++) {
    await measure(local, rates.cpu);
    await measure(remote, rates.rpc);
}
remote.dispose();
local.dispose();

// llama.cpp's llama-bench on the same servers and the CPU alone, interleaved.
const reference = llamaBench ? { cpu: { pp: [], tg: [] }, rpc: { pp: [], tg: [] } } : null;
if (reference) {
    const args = { model: path, ...settings, promptTokens: P, generatedTokens: N, reps: 1 };
    for (let r = 0; r < reps; r++) {
        for (const [into, extra] of [[reference.cpu, {}], [reference.rpc, { rpcServers: servers }]]) {
            const result = await runLlamaBench(llamaBench, { ...args, ...extra });
            into.pp.push(...result.pp);
            into.tg.push(...result.tg);
        }
    }
}

// Traffic: the same split through a counting proxy in front of each server.
const proxies = [await startProxy(servers[0]), await startProxy(servers[1])];
const counts = async () => Promise.all(proxies.map((p) => p.count()));
const diff = (a, b) =>
    a.map((x, i) => {
        const commands = {};
        for (const [k, v] of Object.entries(b[i].commands)) if (v - (x.commands[k] ?? 0) > 0) commands[k] = v - (x.commands[k] ?? 0);
        return { bytesToServer: b[i].bytesToServer - x.bytesToServer, bytesToClient: b[i].bytesToClient - x.bytesToClient, roundTrips: b[i].roundTrips - x.roundTrips, commands };
    });
const c0 = await counts();
const counted = await LlamaModel.load(remoteLoad(proxies.map((p) => p.endpoint)));
const c1 = await counts();
const ctx = ours.benchContext(counted, settings, contextSize);
const c2 = await counts();
await ours.timePrompt(ctx, prompts());
const c3 = await counts();
ctx.dispose();
const g = ours.benchContext(counted, settings, contextSize);
const c4 = await counts();
const t = await ours.timeGeneration(g, gen.prompt, N);
const c5 = await counts();
g.dispose();
counted.dispose();
const traffic = { load: diff(c0, c1), context: diff(c1, c2), prompt: diff(c2, c3), generation: diff(c4, c5), generatedTokens: t.tokens, promptTokens: P };

const med = (xs) => median(xs);
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const ratio = (a, b) => (b > 0 ? (a / b).toFixed(3) : 'n/a');
const sum = (list, key) => list.reduce((s, d) => s + d[key], 0);
const perToken = (list, n) => ({
    bytesToServer: sum(list, 'bytesToServer') / n,
    bytesToClient: sum(list, 'bytesToClient') / n,
    roundTrips: sum(list, 'roundTrips') / n,
    byServer: list.map((d) => ({ roundTrips: d.roundTrips / n, commands: Object.fromEntries(Object.entries(d.commands).map(([k, v]) => [k, v / n])) })),
});
const summary = {
    cpu: `${cpus()[0]?.model?.trim()} (${cpuIdentity() ?? 'no /proc/cpuinfo'}), ${cpus().length} CPUs`,
    model: modelArg,
    layers,
    promptTokens: P,
    generatedTokens: N,
    threads,
    serverThreads,
    reps,
    llamaKv: { cpu: { pp: med(rates.cpu.pp), tg: med(rates.cpu.tg) }, rpc: { pp: med(rates.rpc.pp), tg: med(rates.rpc.tg) }, samples: rates },
    llamaBench: reference ? { cpu: { pp: med(reference.cpu.pp), tg: med(reference.cpu.tg) }, rpc: { pp: med(reference.rpc.pp), tg: med(reference.rpc.tg) }, samples: reference } : null,
    perGeneratedToken: perToken(traffic.generation, traffic.generatedTokens),
    perPromptToken: perToken(traffic.prompt, P),
    loadBytesToServers: sum(traffic.load, 'bytesToServer'),
    contextCreation: { bytesToServers: sum(traffic.context, 'bytesToServer'), roundTrips: sum(traffic.context, 'roundTrips') },
};

const out = process.stdout;
out.write(`CPU: ${summary.cpu}; model ${modelArg} (${layers} blocks); pp${P}, tg${N}, ${threads} threads, f16/f16 cache, flash attention on; ${reps} repetitions, interleaved, medians\n`);
out.write(`two llama-kv rpc-servers on 127.0.0.1 (--threads ${serverThreads} each), every block offloaded, split [1, 1] between them; the host keeps the token embeddings\n\n`);
out.write(`                          pp${P} t/s    tg${N} t/s\n`);
const row = (name, r) => out.write(`${name.padEnd(26)}${fmt(r.pp).padStart(9)}    ${fmt(r.tg).padStart(9)}\n`);
row('llama-kv, CPU alone', summary.llamaKv.cpu);
row('llama-kv, over RPC', summary.llamaKv.rpc);
out.write(`${'  RPC / CPU'.padEnd(26)}${ratio(summary.llamaKv.rpc.pp, summary.llamaKv.cpu.pp).padStart(9)}    ${ratio(summary.llamaKv.rpc.tg, summary.llamaKv.cpu.tg).padStart(9)}\n`);
if (summary.llamaBench) {
    row('llama-bench, CPU alone', summary.llamaBench.cpu);
    row('llama-bench, over RPC', summary.llamaBench.rpc);
    out.write(`${'  RPC / CPU'.padEnd(26)}${ratio(summary.llamaBench.rpc.pp, summary.llamaBench.cpu.pp).padStart(9)}    ${ratio(summary.llamaBench.rpc.tg, summary.llamaBench.cpu.tg).padStart(9)}\n`);
    out.write(`${'ours / llama-bench, RPC'.padEnd(26)}${ratio(summary.llamaKv.rpc.pp, summary.llamaBench.rpc.pp).padStart(9)}    ${ratio(summary.llamaKv.rpc.tg, summary.llamaBench.rpc.tg).padStart(9)}\n`);
} else {
    out.write('(no llama-bench: npm run bench builds it in build-bench/; or --llama-bench PATH)\n');
}
const g1 = summary.perGeneratedToken;
const pp1 = summary.perPromptToken;
const cmds = (s) => s.byServer.map((d, i) => `RPC${i}: ${Object.entries(d.commands).map(([k, v]) => `${k} ${+v.toFixed(2)}`).join(', ')}`).join('; ');
out.write(`\nper generated token: ${g1.bytesToServer.toFixed(0)} bytes to the servers, ${g1.bytesToClient.toFixed(0)} back, ${g1.roundTrips.toFixed(2)} round trips (${cmds(g1)})\n`);
out.write(`per prompt token (pp${P}): ${pp1.bytesToServer.toFixed(0)} bytes to the servers, ${pp1.bytesToClient.toFixed(0)} back, ${pp1.roundTrips.toFixed(3)} round trips\n`);
out.write(`load: ${(summary.loadBytesToServers / 2 ** 20).toFixed(1)} MiB to the servers; a context's creation: ${(summary.contextCreation.bytesToServers / 1024).toFixed(1)} KiB, ${summary.contextCreation.roundTrips} round trips\n`);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(summary, null, 2));
cleanup();
