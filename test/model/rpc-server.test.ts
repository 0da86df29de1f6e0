// `llama-kv rpc-server`: ggml's RPC server from the pinned tree, started as a user starts it,
// spoken to in ggml's own wire format (tools/rpc, ggml-rpc.cpp: | cmd: 1 byte | size: u64 |
// data | and | size: u64 | data | back): the HELLO handshake gives the protocol version, and
// DEVICE_COUNT the devices it serves. Binding beyond loopback needs --allow-remote.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { root } from '../support/global-setup.js';
import { freePort, handshake } from '../support/rpc-wire.js';

const cli = join(root, 'dist', 'cli', 'index.js');
const children: ChildProcess[] = [];
afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
});

function start(...args: string[]) {
    const child = spawn(process.execPath, [cli, 'rpc-server', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    return { child, output: () => output, exit };
}

describe('llama-kv rpc-server', () => {
    it('ships beside the addon with ggml-rpc', () => {
        expect(existsSync(join(root, 'build', 'Release', 'llama-kv-rpc-server'))).toBe(true);
        expect(existsSync(join(root, 'build', 'Release', 'libggml-rpc.so'))).toBe(true);
    });

    it('serves the CPU on loopback: the HELLO handshake gives protocol 6.0.0, one device; SIGTERM ends it with code 0', async () => {
        const port = await freePort();
        const cache = join(mkdtempSync(join(tmpdir(), 'llama-kv-rpc-')), 'cache');
        const server = start('--port', String(port), '-t', '1', '--cache', cache);
        expect(await handshake(port)).toEqual({ version: '6.0.0', devices: 1 });
        expect(server.output()).toContain(`endpoint       : 127.0.0.1:${port}`);
        expect(server.output()).toContain(`local cache    : ${cache}`);
        expect(existsSync(cache)).toBe(true);
        expect(server.output()).not.toContain('WARNING');
        server.child.kill('SIGTERM');
        expect((await server.exit).code).toBe(0);
    });

    it.runIf(process.platform === 'linux')('the server ends with `llama-kv rpc-server`, even when that is killed with SIGKILL', async () => {
        const port = await freePort();
        const server = start('--port', String(port), '-t', '1');
        await handshake(port);
        server.child.kill('SIGKILL');
        await server.exit;
        const listening = async () =>
            new Promise<boolean>((resolve) => {
                const s = new Socket();
                s.once('error', () => resolve(false));
                s.connect(port, '127.0.0.1', () => {
                    s.destroy();
                    resolve(true);
                });
            });
        let up = true;
        for (let i = 0; i < 50 && up; i++) {
            up = await listening();
            if (up) await new Promise((r) => setTimeout(r, 100));
        }
        expect(up).toBe(false);
    });

    it('refuses an address other than loopback without --allow-remote, and warns with it', async () => {
        const refused = spawnSync(process.execPath, [cli, 'rpc-server', '--host', '0.0.0.0'], { encoding: 'utf8' });
        expect(refused.status).toBe(2);
        expect(refused.stderr).toMatch(/no authentication or encryption: pass --allow-remote/);
        const port = await freePort();
        const server = start('--host', '0.0.0.0', '--allow-remote', '--port', String(port), '-t', '1');
        expect((await handshake(port)).devices).toBe(1);
        expect(server.output()).toMatch(/WARNING: the RPC server is listening on 0\.0\.0\.0:\d+, not on loopback\. Never expose it to an open network: its protocol has no authentication and no encryption/);
        expect(server.output()).toContain('SSH tunnel');
    });

    it('bad flags are usage errors; an unknown device or a port in use fail with the reason', async () => {
        for (const args of [['--port', '70000'], ['--host', 'example.com'], ['-t', '0'], ['--device', 'CPU,'], ['stray']]) {
            const r = spawnSync(process.execPath, [cli, 'rpc-server', ...args], { encoding: 'utf8' });
            expect(r.status, args.join(' ')).toBe(2);
        }
        const unknown = spawnSync(process.execPath, [cli, 'rpc-server', '--device', 'NOPE0', '--port', String(await freePort())], { encoding: 'utf8' });
        expect(unknown.status).toBe(1);
        expect(unknown.stderr).toMatch(/unknown device NOPE0[\s\S]*available devices:[\s\S]*CPU:/);
        const busy = createServer();
        await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
        const port = (busy.address() as { port: number }).port;
        const taken = spawnSync(process.execPath, [cli, 'rpc-server', '--port', String(port), '-t', '1'], { encoding: 'utf8', timeout: 30_000 });
        busy.close();
        expect(taken.status).toBe(1);
        expect(taken.stderr).toContain(`cannot serve on 127.0.0.1:${port}`);
    });
});
