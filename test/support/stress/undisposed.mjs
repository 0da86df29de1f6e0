// Child process of test/model/finalizers.test.ts (run with --expose-gc): models and
// contexts that are dropped without dispose(). Prints one JSON line: RSS before, at the
// peak and after the GC, and the sizes a leak would add.
const { LlamaModel } = await import(process.env.LLAMA_KV_DIST);
const { binding } = await import(new URL('./native/binding.js', process.env.LLAMA_KV_DIST).href);
const { path, models, contexts } = JSON.parse(process.env.LLAMA_KV_UNDISPOSED);

// RSS after full GCs (finalizers run between them) and malloc_trim.
const rss = async () => {
    for (let i = 0; i < 10; i++) {
        global.gc();
        await new Promise((r) => setTimeout(r, 50));
    }
    binding().trimHeap();
    return process.memoryUsage().rss;
};

// Warm-up: the first load and context allocate what stays (backends, threadpools).
const warm = await LlamaModel.load({ path, useMmap: false, gpu: false });
await warm.createContext({ contextSize: 256, threads: 1 }).evaluate([1]);
warm.dispose();

const out = {};
// 1. Models (read into memory, not mapped), each with a context, dropped undisposed.
let before = await rss();
let peak = 0;
let modelBytes = 0;
for (let i = 0; i < models; i++) {
    const model = await LlamaModel.load({ path, useMmap: false, gpu: false });
    modelBytes = model.metadata.sizeBytes;
    await model.createContext({ contextSize: 256, threads: 1 }).evaluate([1, 2, 3]);
    peak = Math.max(peak, process.memoryUsage().rss);
}
out.models = { before, peak, after: await rss(), each: modelBytes, n: models };

// 2. One model kept; contexts on it dropped undisposed (the model must not keep them).
const model = await LlamaModel.load({ path, gpu: false });
let kvBytes = 0;
before = await rss();
peak = 0;
for (let i = 0; i < contexts; i++) {
    const ctx = model.createContext({ contextSize: 4096, threads: 1 });
    await ctx.evaluate([1, 2, 3]);
    kvBytes = ctx.memoryReport().kv.bytes;
    peak = Math.max(peak, process.memoryUsage().rss);
}
out.contexts = { before, peak, after: await rss(), each: kvBytes, n: contexts };
// The model still works, and dispose() still works after its contexts were collected.
await model.createContext({ contextSize: 256, threads: 1 }).evaluate([1]);
model.dispose();
process.stdout.write(`${JSON.stringify(out)}\n`);
