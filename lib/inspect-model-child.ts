/**
 * The child process of {@link inspectModel}: loads the model, decodes one token, and
 * writes one JSON line with what happened. Run as `node inspect-model-child.js PATH`.
 * @internal
 */
import { LlamaError } from './errors.js';
import { LlamaContext } from './context/context.js';
import { LlamaModel } from './model/model.js';

const path = process.argv[2] ?? '';
/**
 * Writes the result line and exits once it is flushed: an Electron utility process does not
 * exit by itself when it runs out of work (electron/electron#47228), and the parent waits for
 * the exit.
 */
const write = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`, () => process.exit(0));

try {
    const model = await LlamaModel.load({ path, gpu: false });
    try {
        const ctx = new LlamaContext({ model, contextSize: 64, threads: 1 });
        const tokens = model.tokenize('Hello');
        await ctx.evaluate(tokens.length > 0 ? tokens : [model.metadata.bosToken]);
        if (process.env.LLAMA_KV_TEST_ABORT_IN_CHILD === '1') process.abort(); // test hook: a crash after the load
        const { gguf: _gguf, ...metadata } = model.metadata;
        write({ ok: true, metadata });
    } finally {
        model.dispose();
    }
} catch (error) {
    const e = error as Error;
    write({ ok: false, code: error instanceof LlamaError ? error.code : 'INTERNAL', message: e?.message ?? String(error) });
}
