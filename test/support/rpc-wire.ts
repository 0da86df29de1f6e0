// ggml's RPC wire format, as much of it as the tests speak (ggml-rpc.cpp at the pin): a
// request is | cmd: 1 byte | size: u64 | data |, a response | size: u64 | data |.
import { createServer, Socket } from 'node:net';

const RPC_CMD_HELLO = 14;
const RPC_CMD_DEVICE_COUNT = 15;
const RPC_CONN_CAPS_SIZE = 24;

/** A port free on loopback now (the kernel's choice, released for the server to take). */
export async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise((r) => server.close(r));
    return port;
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
