// ggml's RPC wire format, as much of it as the tests speak (ggml-rpc.cpp at the pin): a
// request is | cmd: 1 byte | size: u64 | data |, a response | size: u64 | data |.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { root } from './global-setup.js';

const RPC_CMD_HELLO = 14;
const RPC_CMD_DEVICE_COUNT = 15;
const RPC_CONN_CAPS_SIZE = 24;

/**
 * A port free on loopback now, released for a server to take. Drawn below Linux's ephemeral
 * range (32768-60999), where the kernel picks the ports of listen(0) and of outgoing
 * connections: one of those, made by a test file running beside this one, could otherwise
 * take the port before the server binds it (and a client then talk to the wrong server).
 */
export async function freePort(): Promise<number> {
    for (;;) {
        const port = 20000 + Math.floor(Math.random() * 12000);
        const server = createServer();
        const bound = await new Promise<boolean>((r) => {
            server.once('error', () => r(false));
            server.listen(port, '127.0.0.1', () => r(true));
        });
        if (!bound) continue;
        await new Promise((r) => server.close(r));
        return port;
    }
}

/** Reads exactly n bytes from a socket. */
function reader(socket: Socket) {
    let buffered = Buffer.alloc(0);
    const waiting: (() => void)[] = [];
    socket.on('data', (d) => {
        buffered = Buffer.concat([buffered, d]);
        waiting.splice(0).forEach((w) => w());
    });
    return async (n: number): Promise<Buffer> => {
        while (buffered.length < n) await new Promise<void>((r) => waiting.push(r));
        const out = buffered.subarray(0, n);
        buffered = buffered.subarray(n);
        return out;
    };
}

/** Connects (retrying while the server starts), says HELLO and asks for the device count. */
export async function handshake(port: number): Promise<{ version: string; devices: number }> {
    let socket: Socket | undefined;
    for (let i = 0; i < 100 && !socket; i++) {
        socket = await new Promise<Socket | undefined>((resolve) => {
            const s = new Socket();
            s.once('error', () => resolve(undefined));
            s.connect(port, '127.0.0.1', () => resolve(s));
        });
        if (!socket) await new Promise((r) => setTimeout(r, 100));
    }
    if (!socket) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    const read = reader(socket);
    const command = (cmd: number, data: Buffer) => {
        const size = Buffer.alloc(8);
        size.writeBigUInt64LE(BigInt(data.length));
        socket.write(Buffer.concat([Buffer.from([cmd]), size, data]));
    };
    const response = async () => read(Number((await read(8)).readBigUInt64LE()));
    command(RPC_CMD_HELLO, Buffer.alloc(RPC_CONN_CAPS_SIZE));
    const hello = await response();
    command(RPC_CMD_DEVICE_COUNT, Buffer.alloc(0));
    const count = await response();
    socket.destroy();
    return { version: `${hello[0]}.${hello[1]}.${hello[2]}`, devices: count.readUInt32LE() };
}

/**
 * What a fault proxy does to each connection: to the server-to-client bytes at byte `at`, or,
 * for 'die-at', to both sides when the client sends its `nth` command `command`.
 */
export type StreamFault =
    | { kind: 'cut'; at: number }
    | { kind: 'flip'; at: number }
    | { kind: 'garbage'; at: number; seed: number }
    | { kind: 'die-at'; command: number; nth: number };

/**
 * Follows a client-to-server stream command by command (| cmd: 1 byte | size: u64 | data |),
 * calling `onCommand` with each command's code as its header completes.
 */
function commandParser(onCommand: (command: number) => void): (chunk: Buffer) => void {
    let header = Buffer.alloc(0);
    let pending = 0; // bytes of the current command's data still to come
    return (chunk) => {
        for (let at = 0; at < chunk.length;) {
            if (pending > 0) {
                const take = Math.min(pending, chunk.length - at);
                pending -= take;
                at += take;
                continue;
            }
            const take = Math.min(9 - header.length, chunk.length - at);
            header = Buffer.concat([header, chunk.subarray(at, at + take)]);
            at += take;
            if (header.length < 9) return;
            onCommand(header[0]);
            pending = Number(header.readBigUInt64LE(1));
            header = Buffer.alloc(0);
        }
    };
}

/**
 * A proxy on loopback in front of `upstream`: for each client connection it opens one to the
 * server and lets `wire` join the two (what each side's bytes do); an error or a close on
 * either side closes both.
 */
export async function proxyTo(upstream: number, wire: (client: Socket, server: Socket) => void): Promise<{ port: number; close: () => void }> {
    const proxy = createServer((client) => {
        const server = new Socket();
        server.connect(upstream, '127.0.0.1');
        wire(client, server);
        for (const s of [client, server]) s.on('error', () => (s === client ? server : client).destroy());
        client.on('close', () => server.destroy());
        server.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    return { port: (proxy.address() as { port: number }).port, close: () => proxy.close() };
}

/**
 * A proxy on loopback in front of `upstream` that applies `fault` to every connection: at
 * byte `at` of the server-to-client stream it closes it ('cut'), inverts that byte ('flip'),
 * or from there on sends pseudo-random bytes instead of the server's ('garbage'); or it closes
 * both sides, as a server that dies, when the client sends its nth such command ('die-at').
 */
export function faultProxy(upstream: number, fault: StreamFault): Promise<{ port: number; close: () => void }> {
    return proxyTo(upstream, (client, server) => {
        let seen = 0;
        let state = fault.kind === 'garbage' ? fault.seed >>> 0 || 1 : 0;
        const random = () => {
            state ^= state << 13;
            state ^= state >>> 17;
            state ^= state << 5;
            return state & 0xff;
        };
        if (fault.kind === 'die-at') {
            let count = 0;
            let dead = false;
            const parse = commandParser((command) => {
                if (command === fault.command && ++count === fault.nth) dead = true;
            });
            client.on('data', (d: Buffer) => {
                parse(d);
                if (!dead) return void server.write(d);
                client.destroy();
                server.destroy();
            });
        } else client.on('data', (d) => server.write(d));
        server.on('data', (chunk: Buffer) => {
            if (fault.kind === 'die-at') return void client.write(chunk);
            const start = seen;
            seen += chunk.length;
            if (seen <= fault.at) return void client.write(chunk);
            const from = Math.max(0, fault.at - start);
            if (fault.kind === 'cut') {
                client.end(chunk.subarray(0, from));
                server.destroy();
                return;
            }
            const out = Buffer.from(chunk);
            if (fault.kind === 'flip') {
                if (start <= fault.at) out[from] ^= 0xff;
            } else {
                for (let i = from; i < out.length; i++) out[i] = random();
            }
            client.write(out);
        });
    });
}

/** A server that accepts connections, reads what comes and never answers. */
export async function silentServer(): Promise<{ port: number; close: () => void }> {
    const sockets: Socket[] = [];
    const server = createServer((s) => {
        sockets.push(s);
        s.on('data', () => {});
        s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as { port: number }).port, close: () => (sockets.forEach((s) => s.destroy()), server.close()) };
}

/** llama-kv's rpc-server executable on a loopback port of its own, once it answers (killing `child` is the server dying). */
export async function startRpcServer(): Promise<{ port: number; endpoint: string; child: ChildProcess }> {
    const port = await freePort();
    const child = spawn(join(root, 'build', 'Release', 'llama-kv-rpc-server'), ['--port', String(port), '--threads', '1'], { stdio: 'ignore' });
    await handshake(port);
    return { port, endpoint: `127.0.0.1:${port}`, child };
}

/**
 * A proxy in front of `upstream` that answers each connection's DEVICE_COUNT with `count`
 * instead of the server's number (the reply that follows the request: | size: u64 | u32 |).
 */
export function deviceCountProxy(upstream: number, count: number): Promise<{ port: number; close: () => void }> {
    return proxyTo(upstream, (client, server) => {
        let rewrite = -1; // bytes of the DEVICE_COUNT reply seen so far, -1 before the request
        const replaced = Buffer.alloc(12);
        replaced.writeBigUInt64LE(4n);
        replaced.writeUInt32LE(count >>> 0, 8);
        const parse = commandParser((command) => {
            if (command === RPC_CMD_DEVICE_COUNT) rewrite = 0;
        });
        client.on('data', (d: Buffer) => {
            parse(d);
            server.write(d);
        });
        server.on('data', (chunk: Buffer) => {
            const out = Buffer.from(chunk);
            for (let i = 0; i < out.length && rewrite >= 0 && rewrite < 12; i++, rewrite++) out[i] = replaced[rewrite];
            client.write(out);
        });
    });
}
