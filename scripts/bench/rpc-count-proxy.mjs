// A counting proxy in front of one ggml RPC server, in a process of its own (forked by
// scripts/bench-rpc.mjs with an IPC channel): `node rpc-count-proxy.mjs UPSTREAM_PORT`.
// It forwards every byte unchanged and counts, over all its connections: the bytes each way,
// the client's commands by name, and the round trips (commands the server answers, so the
// client waits for the network and the server). ggml-rpc.cpp at the pin: a request is
// | cmd: 1 byte | size: u64 | data |, and the commands below without a reply are sent and
// not waited for. It runs apart from the benchmark because context creation over RPC talks
// to the servers on the JS thread: a proxy on that thread could not forward meanwhile.
// IPC: it sends { port } once listening; on 'count' it replies { count: {...} }.
import { createServer, Socket } from 'node:net';

const NAMES = [
    'ALLOC_BUFFER', 'GET_ALIGNMENT', 'GET_MAX_SIZE', 'BUFFER_GET_BASE', 'FREE_BUFFER', 'BUFFER_CLEAR', 'SET_TENSOR',
    'SET_TENSOR_HASH', 'GET_TENSOR', 'COPY_TENSOR', 'GRAPH_COMPUTE', 'GET_DEVICE_MEMORY', 'INIT_TENSOR', 'GET_ALLOC_SIZE',
    'HELLO', 'DEVICE_COUNT', 'GRAPH_RECOMPUTE', 'MEMSET_TENSOR',
];
const NO_REPLY = new Set(['FREE_BUFFER', 'BUFFER_CLEAR', 'SET_TENSOR', 'GRAPH_COMPUTE', 'INIT_TENSOR', 'GRAPH_RECOMPUTE', 'MEMSET_TENSOR']);

const count = { bytesToServer: 0, bytesToClient: 0, roundTrips: 0, commands: {} };

/** Follows one connection's client-to-server stream command by command. */
function commandParser() {
    let header = Buffer.alloc(0);
    let remaining = 0n; // bytes of the current command's data still to come
    return (chunk) => {
        let at = 0;
        while (at < chunk.length) {
            if (remaining > 0n) {
                const take = Number(remaining < BigInt(chunk.length - at) ? remaining : BigInt(chunk.length - at));
                remaining -= BigInt(take);
                at += take;
                continue;
            }
            const need = 9 - header.length;
            header = Buffer.concat([header, chunk.subarray(at, at + need)]);
            at += Math.min(need, chunk.length - at);
            if (header.length < 9) return;
            const name = NAMES[header[0]] ?? `CMD_${header[0]}`;
            count.commands[name] = (count.commands[name] ?? 0) + 1;
            if (!NO_REPLY.has(name)) count.roundTrips++;
            remaining = header.readBigUInt64LE(1);
            header = Buffer.alloc(0);
        }
    };
}

const upstream = Number(process.argv[2]);
const proxy = createServer((client) => {
    const server = new Socket();
    server.connect(upstream, '127.0.0.1');
    const parse = commandParser();
    client.on('data', (d) => {
        count.bytesToServer += d.length;
        parse(d);
        server.write(d);
    });
    server.on('data', (d) => {
        count.bytesToClient += d.length;
        client.write(d);
    });
    for (const s of [client, server]) s.on('error', () => (s === client ? server : client).destroy());
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
});
proxy.listen(0, '127.0.0.1', () => process.send({ port: proxy.address().port }));
process.on('message', (m) => {
    if (m === 'count') process.send({ count: structuredClone(count) });
});
process.on('disconnect', () => process.exit(0));
