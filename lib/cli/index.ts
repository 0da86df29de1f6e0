#!/usr/bin/env node
import { LlamaConfigError, LlamaError } from '../errors.js';
import { HelpRequested, UsageError } from './flags/args.js';
import { packageVersion } from './version.js';
import { backends, backendsUsage } from './commands/backends.js';
import { calibrate, calibrateUsage } from './commands/calibrate.js';
import { chat, chatUsage } from './commands/chat.js';
import { embed, embedUsage } from './commands/embed.js';
import { bench, benchUsage } from './commands/bench.js';
import { fit, fitUsage } from './commands/fit.js';
import { info, infoUsage } from './commands/info.js';
import { memory, memoryUsage } from './commands/memory.js';
import { pull, pullUsage } from './commands/pull.js';
import { quantize, quantizeUsage } from './commands/quantize.js';
import { rerank, rerankUsage } from './commands/rerank.js';
import { run, runUsage } from './commands/run.js';
import { rpcServer, rpcServerUsage } from './commands/rpc-server.js';

const commands: Record<string, { main: (argv: readonly string[]) => Promise<number>; usage: string }> = {
    run: { main: run, usage: runUsage },
    chat: { main: chat, usage: chatUsage },
    info: { main: info, usage: infoUsage },
    embed: { main: embed, usage: embedUsage },
    rerank: { main: rerank, usage: rerankUsage },
    memory: { main: memory, usage: memoryUsage },
    fit: { main: fit, usage: fitUsage },
    pull: { main: pull, usage: pullUsage },
    backends: { main: backends, usage: backendsUsage },
    quantize: { main: quantize, usage: quantizeUsage },
    calibrate: { main: calibrate, usage: calibrateUsage },
    bench: { main: bench, usage: benchUsage },
    'rpc-server': { main: rpcServer, usage: rpcServerUsage },
};

const usage =
    'usage: llama-kv <command> [flags] [--] [arguments]   (after --, every argument is text: llama-kv run -- "-p is a flag")\n' +
    '       llama-kv --version\n\ncommands:\n  run     generate text from a prompt\n  chat    talk with a model: a conversation on the terminal, or one reply to a message\n  info    print a model\'s metadata\n' +
    '  embed   embed texts: vectors, cosine similarities (llama-embedding)\n  rerank  sort documents by a reranker\'s score for a query\n' +
    '  memory  estimate (and measure) the memory of a context\n  fit     choose context size and K/V types for a memory budget\n' +
    '  pull    download a model (hf:owner/repo/file.gguf or a URL), resumable, checksum-verified\n' +
    '  backends  list the compute backends (CPU variant, GPUs) and why any is unavailable\n' +
    '  quantize  quantize a model (Q8_0, Q4_K_M, ...)\n  bench   tokens/s against llama.cpp\'s llama-bench, TTFT, event-loop lag, memory, load time\n' +
    '  calibrate  what each K/V cache type costs in quality (KL divergence, top-1, perplexity) against f16\n' +
    '  rpc-server  serve this machine\'s devices to llama.cpp RPC clients (loopback unless --allow-remote)\n\n' +
    `${runUsage}\n\n${chatUsage}\n\n${infoUsage}\n\n${embedUsage}\n\n${rerankUsage}\n\n${memoryUsage}\n\n${fitUsage}\n\n${pullUsage}\n\n${backendsUsage}\n\n${quantizeUsage}\n\n${benchUsage}\n\n${calibrateUsage}\n\n${rpcServerUsage}\n`;

async function main(argv: string[]): Promise<number> {
    const [name, ...rest] = argv;
    if (name === '--version' || name === '-v' || name === 'version') {
        process.stdout.write(`${packageVersion()}\n`);
        return 0;
    }
    if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
        process.stdout.write(usage);
        return name === undefined ? 2 : 0;
    }
    const command = commands[name];
    if (!command) {
        process.stderr.write(`llama-kv: unknown command "${name}"\n${usage}`);
        return 2;
    }
    try {
        return await command.main(rest);
    } catch (error) {
        // -h/--help where a flag stands (not a flag's value, not after --), seen by the command's flag parser.
        if (error instanceof HelpRequested) {
            process.stdout.write(command.usage + '\n');
            return 0;
        }
        // A bad flag value, reported by the API's own validation, is a usage error too.
        if (error instanceof UsageError || error instanceof LlamaConfigError) {
            process.stderr.write(`llama-kv ${name}: ${error.message}\n${command.usage}\n`);
            return 2;
        }
        if (error instanceof LlamaError) {
            process.stderr.write(`llama-kv ${name}: ${error.message} [${error.code}]\n`);
            return 1;
        }
        throw error;
    }
}

// `llama-kv info model.gguf | head` closes stdout early: end quietly, as Unix tools do.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
});

process.exitCode = await main(process.argv.slice(2));
