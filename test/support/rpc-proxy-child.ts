// A fault proxy (rpc-wire.ts) in a process of its own: `node <bundle> UPSTREAM_PORT FAULT_JSON`
// prints the port it listens on. For clients that block the test's JS thread while they talk
// to their server (context creation over RPC): a proxy on that thread could not forward.
import { faultProxy, type StreamFault } from './rpc-wire.js';

const proxy = await faultProxy(Number(process.argv[2]), JSON.parse(process.argv[3]!) as StreamFault);
process.stdout.write(`${proxy.port}\n`);
