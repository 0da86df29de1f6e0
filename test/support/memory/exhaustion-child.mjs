// Child process of test/model/memory-exhaustion.test.ts: lowers its own address-space
// limit (RLIMIT_AS, through prlimit) to just above what it uses, then asks for models and
// contexts that do not fit, with and without the pre-check. Prints one JSON line with
// each step's outcome; a crash or an abort is the parent's failure.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const { LlamaError, LlamaMemoryError, LlamaModel } = await import(process.env.LLAMA_KV_DIST);
const { model: path } = JSON.parse(process.env.LLAMA_KV_OOM);
const MIB = 2 ** 20;

const vmSize = () => Number(/^VmSize:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
/** Soft RLIMIT_AS: `room` bytes above the current address-space size, or unlimited. */
const limitAddressSpace = (room) =>
    execFileSync('prlimit', ['--pid', String(process.pid), `--as=${room === null ? 'unlimited' : vmSize() + room}:`]);

const steps = {};
const outcome = (error) => {
    if (!(error instanceof LlamaError)) throw error;
    return {
        code: error.code,
        memoryError: error instanceof LlamaMemoryError,
        neededBytes: error.neededBytes ?? null,
        availableBytes: error.availableBytes ?? null,
        location: error.location ?? null,
        message: error.message,
    };
};
const step = async (name, fn) => {
    try {
        await fn();
        steps[name] = { code: 'ok' };
    } catch (error) {
        steps[name] = outcome(error);
    }
};

const model = await LlamaModel.load({ path, gpu: false });
// 2^20 tokens of this model's f16 KV cache are 1 GiB; leave 512 MiB of address space.
limitAddressSpace(512 * MIB);
await step('context, checked', () => model.createContext({ contextSize: 2 ** 20, threads: 1 }).dispose());
await step('context, unchecked', () => model.createContext({ contextSize: 2 ** 20, threads: 1, checkMemory: false }).dispose());
await step('small context', async () => {
    const ctx = model.createContext({ contextSize: 256, threads: 1 });
    await ctx.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
    ctx.dispose();
});
// The 34 MiB model in 16 MiB of address space (V8 runs out below about 8 MiB). First a
// moment for what the small context freed to leave the address space (its threads' stacks):
// measured before, it would be room the limit gives on top of the 16 MiB.
await new Promise((r) => setTimeout(r, 500));
limitAddressSpace(16 * MIB);
await step('model without mmap, checked', () => LlamaModel.load({ path, gpu: false, useMmap: false }).then((m) => m.dispose()));
await step('model with mmap, checked', () => LlamaModel.load({ path, gpu: false }).then((m) => m.dispose()));
await step('model with mmap, unchecked', () => LlamaModel.load({ path, gpu: false, checkMemory: false }).then((m) => m.dispose()));
limitAddressSpace(null);
await step('after the limit is lifted', async () => {
    const m = await LlamaModel.load({ path, gpu: false, useMmap: false });
    const ctx = m.createContext({ contextSize: 2 ** 20, threads: 1 });
    await ctx.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
    m.dispose();
});
model.dispose();
process.stdout.write(`${JSON.stringify(steps)}\n`);
