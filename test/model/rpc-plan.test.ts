// estimateMemory({ simulate: true, rpcServers }) and planFit({ rpcServers }) with two
// `llama-kv rpc-server`s on loopback: the dry run places layers, KV cache and compute buffers
// on the remote devices as the load does, and a plan keeps the host within its budget and
// each remote device within its own.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateMemory, LlamaError, LlamaModel, planFit, readGgufMetadata, type DeviceMemory } from '../../lib/index.js';
import { fixtures } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';
import { llamaKv } from '../support/cli.js';
import { freePort, startRpcServer } from '../support/rpc-wire.js';

const bytesOf = (d: DeviceMemory) => d.weightsBytes + d.kvBytes + d.loraBytes + d.computeBytes + d.outputBytes;
const withoutFree = ({ freeBytes: _f, totalBytes: _t, ...d }: DeviceMemory) => d;

describe('estimateMemory and planFit across RPC servers', () => {
    const servers: ChildProcess[] = [];
    let rpcServers: string[] = [];
    // Block 0 stays here, block 1 goes to the first server and the output layer to the second.
    const remote = () => ({ rpcServers, gpuLayers: 2, tensorSplit: [1, 1] });
    const split = () => ({ gpu: false as const, ...remote() });
    beforeAll(async () => {
        const started = [await startRpcServer(), await startRpcServer()];
        servers.push(...started.map((s) => s.child));
        rpcServers = started.map((s) => s.endpoint);
    });
    afterAll(() => {
        for (const s of servers) s.kill('SIGKILL');
    });

    it('a dry run across two servers gives per device the bytes the loaded context reports, for f16 and q8_0/q4_0 caches', async () => {
        const model = await LlamaModel.load({ path: fixtures.f16, ...split() });
        try {
            for (const [k, v] of [['f16', 'f16'], ['q8_0', 'q4_0']] as const) {
                const settings = { contextSize: 512, parallel: 2, cacheTypeK: k, cacheTypeV: v, flashAttention: 'on' as const };
                const estimate = await estimateMemory({ model: fixtures.f16, simulate: true, ...split(), ...settings });
                const ctx = model.createContext({ ...settings, threads: 1 });
                const live = ctx.memoryReport();
                ctx.dispose();
                expect(estimate.devices, `${k}/${v}`).toEqual(live.devices.map(withoutFree));
                expect(estimate.total.bytes, `${k}/${v}`).toBe(live.total.bytes);
                expect(estimate.devices.map((d) => d.endpoint)).toEqual([...rpcServers, undefined]);
                expect(estimate.devices.filter((d) => d.kvBytes > 0).map((d) => d.name).sort(), `${k}/${v}`).toEqual(['CPU', 'RPC0']);
            }
        } finally {
            model.dispose();
        }
    });

    it('rpcServers in an estimate need simulate: true and a server that answers', async () => {
        const header = await failure(estimateMemory({ model: fixtures.f16, rpcServers }));
        expect(header.code).toBe('INVALID_CONFIG');
        expect(header.message).toMatch(/rpcServers needs simulate: true/);
        const missing = await failure(estimateMemory({ model: fixtures.f16, simulate: true, rpcServers: [`127.0.0.1:${await freePort()}`] }));
        expect(missing.code).toBe('BACKEND_UNAVAILABLE');
        const bad = await failure(estimateMemory({ model: fixtures.f16, simulate: true, rpcServers: ['nowhere'] }));
        expect(bad.code).toBe('INVALID_CONFIG');
    });

    it("planFit keeps the host within budgetBytes and each remote device within its deviceBudgets entry: the plan's context loads within them and one step more does not fit", async () => {
        const settings = { cacheTypeK: 'f16', cacheTypeV: 'f16', flashAttention: 'on' } as const;
        // RPC0 holds block 1's KV cache: its budget, not the host's, is what bounds the context.
        const probe = await estimateMemory({ model: fixtures.f16, simulate: true, ...split(), ...settings, contextSize: 1024 });
        const rpc0 = probe.devices.find((d) => d.name === 'RPC0')!;
        const deviceBudgets = { [rpcServers[0]]: bytesOf(rpc0) + 1 };
        const budgetBytes = 256 * 2 ** 20;
        const plan = await planFit({ model: fixtures.f16, budgetBytes, prefer: 'quality', minContextSize: 256, ...remote(), deviceBudgets });
        expect(plan.settings).toMatchObject({ cacheTypeK: 'f16', cacheTypeV: 'f16', parallel: 1, contextSize: 1024 });
        expect(plan.reason).toMatch(/host total .* RPC0 .* of .* RPC1 /);

        const model = await LlamaModel.load({ path: fixtures.f16, ...split() });
        try {
            const ctx = model.createContext({ ...plan.settings, threads: 1 });
            const live = ctx.memoryReport();
            ctx.dispose();
            const byName = new Map(live.devices.map((d) => [d.name, d]));
            expect(bytesOf(byName.get('RPC0')!)).toBeLessThanOrEqual(deviceBudgets[rpcServers[0]]);
            expect(bytesOf(byName.get('CPU')!)).toBeLessThanOrEqual(budgetBytes);
            expect(bytesOf(byName.get('RPC1')!)).toBe(bytesOf(plan.estimate.devices.find((d) => d.name === 'RPC1')!));
        } finally {
            model.dispose();
        }
        const more = await estimateMemory({ model: fixtures.f16, simulate: true, ...split(), ...settings, contextSize: plan.settings.contextSize + 256 });
        expect(bytesOf(more.devices.find((d) => d.name === 'RPC0')!)).toBeGreaterThan(deviceBudgets[rpcServers[0]]);
    });

    it("a context's memory guard counts the KV cache that goes to the servers in their memory, not the host's", () => {
        // A process whose data-size limit (ulimit -d, 640 MiB) is below the context's KV cache
        // (768 MiB of f32 cells, all on the remote devices): created, where the guard once refused it.
        const script = `
            import { LlamaModel } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
            const [path, ...rpcServers] = process.argv.slice(1);
            const model = await LlamaModel.load({ path, gpu: false, rpcServers });
            try {
                const ctx = model.createContext({ contextSize: 393216, cacheTypeK: 'f32', cacheTypeV: 'f32', flashAttention: 'on', batchSize: 64, ubatchSize: 64, threads: 1 });
                console.log(JSON.stringify(ctx.memoryReport().devices.map((d) => [d.name, d.kvBytes])));
                ctx.dispose();
            } catch (e) {
                console.log(JSON.stringify({ code: e.code, message: e.message }));
            }
            model.dispose();`;
        const out = execFileSync('prlimit', [`--data=${640 * 2 ** 20}`, process.execPath, '--input-type=module', '-e', script, fixtures.f16, ...rpcServers], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 120_000 });
        const result = JSON.parse(out.trim().split('\n').at(-1)!) as [string, number][] | { code: string; message: string };
        expect(Array.isArray(result), JSON.stringify(result)).toBe(true);
        const kv = new Map(result as [string, number][]);
        expect((kv.get('RPC0') ?? 0) + (kv.get('RPC1') ?? 0)).toBeGreaterThan(640 * 2 ** 20);
        expect(kv.get('CPU')).toBe(0);
    });

    it('planFit over RPC: a remote device too small for the smallest settings, unknown deviceBudgets names and options without rpcServers are refused with what to change', async () => {
        const small = await failure(planFit({ model: fixtures.f16, budgetBytes: 2 ** 30, minContextSize: 256, ...remote(), deviceBudgets: { RPC1: 2 ** 20 } }));
        expect(small.code).toBe('INSUFFICIENT_MEMORY');
        expect(small.message).toContain(`on RPC1 (${rpcServers[1]})`);
        expect(small.message).toMatch(/its weights alone need .*raise its deviceBudgets entry/);

        const unknown = await failure(planFit({ model: fixtures.f16, budgetBytes: 2 ** 30, ...remote(), deviceBudgets: { RPC7: 1 } }));
        expect(unknown.code).toBe('INVALID_CONFIG');
        expect(unknown.message).toContain(`they are RPC0 (${rpcServers[0]}), RPC1 (${rpcServers[1]})`);

        const alone = await failure(planFit({ model: fixtures.f16, budgetBytes: 2 ** 30, tensorSplit: [1, 1] }));
        expect(alone.code).toBe('INVALID_CONFIG');
        expect(alone.message).toMatch(/tensorSplit needs rpcServers/);

        const header = await failure(planFit({ model: await readGgufMetadata(fixtures.f16), budgetBytes: 2 ** 30, rpcServers }));
        expect(header.code).toBe('INVALID_CONFIG');
        expect(header.message).toMatch(/local GGUF file path/);
    });

    it('the CLI takes --rpc: memory --simulate lists the remote devices, fit plans the split and prints the run line, run generates what the CPU alone generates', () => {
        const rpc = rpcServers.join(',');
        const memory = llamaKv('memory', '-m', fixtures.f16, '--simulate', '--rpc', rpc, '-ngl', '2', '-ts', '1,1', '-c', '512');
        expect(memory.code, memory.stderr).toBe(0);
        expect(memory.stdout).toContain(`RPC0 (${rpcServers[0]}) weights`);
        expect(memory.stdout).toContain(`RPC1 (${rpcServers[1]}) weights`);

        const fit = llamaKv('fit', '-m', fixtures.f16, '--budget', '256MiB', '--rpc', rpc, '-ngl', '2', '-ts', '1,1', '--device-budget', 'RPC0=4MiB', '--min-ctx', '256');
        expect(fit.code, fit.stderr).toBe(0);
        expect(fit.stdout).toMatch(/host total .* of 256\.0 MiB, RPC0 .* of 4\.0 MiB, RPC1 /);
        expect(fit.stdout).toContain(`--rpc ${rpc} -ngl 2 -ts 1,1 -c `);
        const alone = llamaKv('fit', '-m', fixtures.f16, '--budget', '256MiB', '-ngl', '2');
        expect(alone.code).toBe(2);
        expect(alone.stderr).toMatch(/gpuLayers needs rpcServers/);
        const badBudget = llamaKv('fit', '-m', fixtures.f16, '--budget', '256MiB', '--rpc', rpc, '--device-budget', 'RPC0');
        expect(badBudget.code).toBe(2);
        expect(badBudget.stderr).toMatch(/--device-budget expects NAME=BYTES/);

        const args = ['run', '-m', fixtures.f16, '-n', '8', '--temp', '0', '-p', 'Once upon a time'];
        const split = llamaKv(...args, '--rpc', rpc);
        const local = llamaKv(...args, '--gpu', 'none');
        expect(split.code, split.stderr).toBe(0);
        expect(split.stdout.length).toBeGreaterThan(0);
        expect(split.stdout).toBe(local.stdout);
    });
});

async function failure(p: Promise<unknown>): Promise<LlamaError> {
    const e = await p.then(() => null, (error: unknown) => error);
    expect(e).toBeInstanceOf(LlamaError);
    return e as LlamaError;
}
