// Child process of the prompt cache test: one "app start" with a prompt cache folder. Runs
// `system + question` greedily, waits for the cache's files, prints the timings and tokens.
const { LlamaContext, LlamaModel } = await import(process.env.LLAMA_KV_DIST);
const [modelPath, dir, system, question] = process.argv.slice(2);
const model = await LlamaModel.load({ path: modelPath, gpu: false });
const ctx = new LlamaContext({ model, contextSize: 4096, threads: 2, promptCache: { dir } });
const r = await ctx.complete(system + question, { temperature: 0, maxTokens: 8 });
await ctx.flushPromptCache();
process.stdout.write(`${JSON.stringify({ timings: r.timings, tokens: r.tokens, cache: ctx.promptCache })}\n`);
ctx.dispose();
model.dispose();
