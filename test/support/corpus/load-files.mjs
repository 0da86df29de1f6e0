// Child process of the corpus test: loads each file given on stdin (a JSON array) and,
// when it loads, generates one token; prints one JSON line per file. A crash or a hang
// here is what the parent counts.
import { readFileSync } from 'node:fs';

const { LlamaError, LlamaModel } = await import(process.env.LLAMA_KV_DIST);
const files = JSON.parse(readFileSync(0, 'utf8'));

const describe = (e) => (e instanceof LlamaError ? `error:${e.code}` : `foreign:${e?.name}:${String(e?.message).slice(0, 200)}`);

for (const file of files) {
    let outcome;
    try {
        const model = await LlamaModel.load({ path: file, gpu: false });
        try {
            const ctx = model.createContext({ contextSize: 64, threads: 1 });
            await ctx.complete('Hi', { maxTokens: 1, temperature: 0 });
            outcome = 'generated';
        } catch (e) {
            outcome = `loaded, then ${describe(e)}`;
        } finally {
            model.dispose();
        }
    } catch (e) {
        outcome = describe(e);
    }
    process.stdout.write(`${JSON.stringify({ file, outcome })}\n`);
}
