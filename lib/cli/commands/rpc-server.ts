/**
 * `llama-kv rpc-server`: ggml's RPC server (native/rpc-server/main.cpp, beside the addon), so
 * that a llama.cpp client on another machine can use this machine's devices. The policy is
 * here: loopback unless --allow-remote, and then llama.cpp's warning, because the protocol
 * has no authentication and no encryption.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { LlamaError } from '../../errors.js';
import { nativeFolders } from '../../native/binding.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';

const rpcServerFlags: FlagSpec[] = [
    { names: ['-H', '--host'], key: 'host', type: 'string', help: 'IPv4 address to bind to (default 127.0.0.1; any other needs --allow-remote)' },
    { names: ['-p', '--port'], key: 'port', type: 'int', help: 'port to listen on (default 50052)' },
    { names: ['-t', '--threads'], key: 'threads', type: 'int', help: 'threads of the CPU device (default: half the CPUs)' },
    { names: ['-d', '--device'], key: 'device', type: 'string', help: "comma-separated devices to serve, e.g. CUDA0,CPU (default: the GPUs, else the CPU)" },
    { names: ['-c', '--cache'], key: 'cache', type: 'string', help: 'folder where the server keeps the large tensors clients send, so that a reload sends only their hashes' },
    { names: ['--allow-remote'], key: 'allowRemote', type: 'bool', help: 'allow an address other than loopback (the protocol has no authentication or encryption)' },
];

export const rpcServerUsage = `usage: llama-kv rpc-server [--host 127.0.0.1] [--port 50052] [-t N] [--device CUDA0,...] [--cache DIR] [--allow-remote]\n${flagHelp(rpcServerFlags)}`;

/** llama.cpp's own warning (tools/rpc/rpc-server.cpp) and why. */
export const REMOTE_WARNING =
    'WARNING: the RPC server is listening on %s, not on loopback. Never expose it to an open network: ' +
    'its protocol has no authentication and no encryption, so anyone who can reach the port can run ' +
    'computations on this machine and read or write its buffers. Put it behind a private network or an SSH tunnel ' +
    '(e.g. ssh -N -L 50052:127.0.0.1:50052 host, with the server on 127.0.0.1 there).';

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** The address to bind, checked: ggml's server binds IPv4 addresses only. */
function bindAddress(raw: string | undefined): { host: string; loopback: boolean } {
    const host = raw === undefined || raw === 'localhost' ? '127.0.0.1' : raw;
    if (!IPV4.test(host)) throw new UsageError(`--host expects an IPv4 address such as 127.0.0.1 or 0.0.0.0 (ggml's RPC server binds IPv4 only), not "${raw}"`);
    return { host, loopback: host.startsWith('127.') };
}

export async function rpcServer(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, rpcServerFlags);
    if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}"`);
    const { host, loopback } = bindAddress(flags.host as string | undefined);
    if (!loopback && flags.allowRemote !== true) {
        throw new UsageError(
            `--host ${host} would serve this machine's devices to the network, and the RPC protocol has no authentication or encryption: ` +
                'pass --allow-remote as well if it is a private network, or keep the default 127.0.0.1 and reach it through an SSH tunnel',
        );
    }
    const port = (flags.port as number | undefined) ?? 50052;
    if (port < 1 || port > 65535) throw new UsageError(`--port must be in [1, 65535], not ${port}`);
    const threads = (flags.threads as number | undefined) ?? Math.max(1, Math.floor(availableParallelism() / 2));
    if (threads < 1 || threads > 1024) throw new UsageError(`-t/--threads must be in [1, 1024], not ${threads}`);
    const devices = typeof flags.device === 'string' ? flags.device.split(',').map((d) => d.trim()) : [];
    if (devices.some((d) => d === '')) throw new UsageError(`-d/--device expects a comma-separated list of device names, not "${String(flags.device)}"`);
    const args = ['--host', host, '--port', String(port), '--threads', String(threads), ...devices.flatMap((d) => ['--device', d])];
    const cache = typeof flags.cache === 'string' ? resolve(flags.cache) : undefined;
    if (cache !== undefined) args.push('--cache', cache);

    let folders: ReturnType<typeof nativeFolders>;
    try {
        folders = nativeFolders();
    } catch (error) {
        throw new LlamaError('BINDING_LOAD_FAILED', `Could not find llama-kv's native part: ${(error as Error).message}`, { cause: error });
    }
    const server = join(folders.addon, process.platform === 'win32' ? 'llama-kv-rpc-server.exe' : 'llama-kv-rpc-server');
    if (!existsSync(server)) throw new LlamaError('BINDING_LOAD_FAILED', `this llama-kv has no RPC server: ${server} is missing (rebuild, or reinstall the platform package)`);
    if (cache !== undefined) mkdirSync(cache, { recursive: true });
    if (!loopback) process.stderr.write(`\n${REMOTE_WARNING.replace('%s', `${host}:${port}`)}\n\n`);
    // The server loads the GPU backends from the folders the addon loads them from.
    // LLAMA_KV_RPC_SERVER_PARENT: on Linux the server ends with this process, even one killed with SIGKILL.
    const env = { ...process.env, LLAMA_KV_BACKEND_PATH: folders.backends.join(delimiter), LLAMA_KV_RPC_SERVER_PARENT: String(process.pid) };
    const child = spawn(server, args, { stdio: 'inherit', env });
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    return new Promise<number>((done, fail) => {
        child.on('error', fail);
        child.on('exit', (code, signal) => {
            for (const [s, h] of handlers) process.off(s, h);
            if (code !== null) return done(code);
            if (signal === 'SIGINT' || signal === 'SIGTERM' || signal === 'SIGHUP') return done(0);
            process.stderr.write(`llama-kv: llama-kv-rpc-server died of ${signal}\n`);
            done(1);
        });
    });
}
