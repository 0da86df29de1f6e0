// Child process of the state corpus test: loads each state file given on stdin (a JSON array
// of { file, config }) into a sequence of a context of that config, then decodes on the
// context to show it still works; prints one JSON line per file. A crash or a hang here is
// what the parent counts.
import { readFileSync } from 'node:fs';

const { LlamaContext, LlamaError, LlamaModel } = await import(process.env.LLAMA_KV_DIST);
const cases = JSON.parse(readFileSync(0, 'utf8'));
const model = await LlamaModel.load({ path: process.env.LLAMA_KV_STATE_MODEL, gpu: false });
const configs = {
    fa: { cacheTypeK: 'q8_0', cacheTypeV: 'q4_0', flashAttention: 'on' },
    plain: { cacheTypeK: 'f16', cacheTypeV: 'f16', flashAttention: 'off' },
};
const contexts = {};
const describe = (e) => (e instanceof LlamaError ? `error:${e.code}` : `foreign:${e?.name}:${String(e?.message).slice(0, 200)}`);
const probe = model.tokenize('The end');

for (const { file, config } of cases) {
    contexts[config] ??= new LlamaContext({ model, contextSize: 512, threads: 1, ...configs[config] });
    const ctx = contexts[config];
    const seq = await ctx.acquireSequence();
    let outcome;
    try {
        await seq.loadStateFile(file);
        // Loaded: its tokens are in the cache, and the next decode works on them.
        await seq.evaluate([...seq.tokens, ...probe]);
        outcome = 'loaded';
    } catch (e) {
        outcome = describe(e);
    }
    try {
        await seq.evaluate(probe);
    } catch (e) {
        outcome += ` then broken (${describe(e)})`;
    }
    seq.release();
    process.stdout.write(`${JSON.stringify({ file, outcome })}\n`);
}
for (const ctx of Object.values(contexts)) ctx.dispose();
model.dispose();
