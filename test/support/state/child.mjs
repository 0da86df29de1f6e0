// Child process of the state tests: with argv [mode, model, file, prompt, cacheTypeK, cacheTypeV],
// 'save' evaluates the prompt on a sequence and saves its state to `file`; 'load' loads it
// and evaluates the prompt again (only its last token is decoded). Prints the logits of that
// evaluation and the greedy continuation as one JSON line.
const { LlamaContext, LlamaModel } = await import(process.env.LLAMA_KV_DIST);
const [mode, modelPath, file, prompt, typeK, typeV] = process.argv.slice(2);

const model = await LlamaModel.load({ path: modelPath, gpu: false });
const ctx = new LlamaContext({ model, contextSize: 512, threads: 2, cacheTypeK: typeK, cacheTypeV: typeV, flashAttention: 'on' });
const seq = await ctx.acquireSequence();
const tokens = model.tokenize(prompt);
if (mode === 'save') {
    await seq.evaluate(tokens);
    await seq.saveStateFile(file);
} else {
    await seq.loadStateFile(file);
}
const logits = await seq.evaluate(tokens);
const next = await seq.complete(tokens, { temperature: 0, maxTokens: 16 });
process.stdout.write(`${JSON.stringify({ logits: Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength).toString('base64'), next: next.tokens })}\n`);
ctx.dispose();
model.dispose();
