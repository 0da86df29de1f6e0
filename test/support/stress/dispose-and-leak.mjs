// Child process of test/model/dispose-leak.test.ts (run with --expose-gc): disposes at
// random moments during each async operation, then create/dispose cycles; prints one
// JSON line with the outcomes and the RSS figures. A crash is the parent's failure.
const { LlamaError, LlamaModel, quantizeModel } = await import(process.env.LLAMA_KV_DIST);
// `only`: one operation's loop, or 'cycles' for the create/dispose cycles. One per child,
// so each RSS comparison starts from a fresh allocator.
const { model: modelPath, lora: loraPath, work, iterations: n, cycles, modelCycles, only } = JSON.parse(process.env.LLAMA_KV_STRESS);

let state = 0x5eed;
const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const later = () => new Promise((r) => (random() < 0.3 ? setImmediate(r) : setTimeout(r, Math.floor(random() * 12))));
const outcomes = {};
const count = (op, outcome) => ((outcomes[op] ??= {})[outcome] = (outcomes[op][outcome] ?? 0) + 1);
const settle = (op, promise) =>
    promise.then(
        () => count(op, 'ok'),
        (e) => {
            if (!(e instanceof LlamaError)) throw new Error(`${op}: not a LlamaError: ${e?.stack ?? e}`);
            count(op, e.code);
        },
    );
// RSS after a full GC and after the allocator has returned its free memory to the OS
// (glibc's malloc_trim over every arena): what stays is memory in use, not freed memory
// that a thread's arena happens to hold, which alone moved RSS 10-25% in these loops.
const { binding } = await import(new URL('./native/binding.js', process.env.LLAMA_KV_DIST).href);
const rss = () => {
    global.gc();
    binding().trimHeap();
    return process.memoryUsage().rss;
};

const base = await LlamaModel.load({ path: modelPath, gpu: false });
const ops = {
    async load() {
        const p = LlamaModel.load({ path: modelPath, gpu: false });
        const abort = new AbortController();
        const loading = LlamaModel.load({ path: modelPath, gpu: false, signal: abort.signal });
        await later();
        abort.abort();
        await Promise.all([settle('load', p.then((m) => m.dispose())), settle('load (aborted)', loading.then((m) => m.dispose()))]);
    },
    async evaluate() {
        const ctx = base.createContext({ contextSize: 256, threads: 1 });
        const p = settle('evaluate', ctx.evaluate(base.tokenize('Once upon a time there was a')));
        await later();
        ctx.dispose();
        await p;
    },
    async generate() {
        const model = random() < 0.5 ? await LlamaModel.load({ path: modelPath, gpu: false }) : base;
        const ctx = model.createContext({ contextSize: 256, threads: 1 });
        const p = settle('generate', ctx.complete('Once upon a time', { maxTokens: 64 }));
        await later();
        if (model !== base && random() < 0.5) model.dispose(); // disposes the context first
        else ctx.dispose();
        await p;
        if (model !== base) model.dispose();
    },
    // Four sequences generating at once, one of them aborted at a random moment, the
    // context disposed at another: the engine's batch loop mid-step.
    async sequences() {
        const ctx = base.createContext({ contextSize: 1024, parallel: 4, threads: 1 });
        const abort = new AbortController();
        const prompts = ['Once upon a time', 'The little dog', 'In the morning', 'She said that'];
        const runs = prompts.map((prompt, i) => settle('sequences', ctx.complete(prompt, { maxTokens: 48, signal: i === 1 ? abort.signal : undefined })));
        const waiting = settle('sequences (queued)', ctx.evaluate(base.tokenize('A fifth request waits')));
        await later();
        abort.abort();
        await later();
        ctx.dispose();
        await Promise.all([...runs, waiting]);
    },
    async quantize() {
        const abort = new AbortController();
        const p = settle('quantize', quantizeModel({ input: modelPath, output: `${work}/q.gguf`, type: 'Q8_0', threads: 1, signal: abort.signal }));
        await later();
        abort.abort();
        await p;
    },
    async lora() {
        const model = await LlamaModel.load({ path: modelPath, gpu: false });
        const p = settle('loadLora', model.loadLora(loraPath).then(async (lora) => {
            const ctx = model.createContext({ contextSize: 256, threads: 1, loras: [{ lora, scale: 1 }] });
            await ctx.complete('Hi', { maxTokens: 4 });
        }));
        await later();
        model.dispose();
        await p;
    },
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const report = { dispose: {}, cycles: {} };
for (const [name, op] of Object.entries(ops).filter(([name]) => name === only)) {
    // Warm-up: RSS climbs over the first ~100 iterations (V8, the allocator's arenas and
    // caches), then stays on a plateau (measured to 1,500 iterations) that moves a few
    // percent from one sample to the next. So: 150 warm-up iterations, then RSS sampled
    // every 25; `before` and `after` are the medians of the first and the last 5 samples.
    for (let i = 0; i < Math.min(150, n); i++) await op();
    const samples = [];
    for (let i = 0; i < n; i++) {
        if (i % 25 === 0) samples.push(rss());
        await op();
    }
    samples.push(rss());
    report.dispose[name] = { before: median(samples.slice(0, 5)), after: median(samples.slice(-5)), max: Math.max(...samples) };
}

let before = 0;
if (only === 'cycles') {
for (let i = 0; i < 100; i++) base.createContext({ contextSize: 256, threads: 1 }).dispose(); // warm-up
before = rss();
// As an app would between requests, the event loop turns now and then (every 10 cycles):
// in a loop that never yields, freed buffers wait for it and RSS measures that instead.
for (let i = 0; i < cycles; i++) {
    base.createContext({ contextSize: 256, threads: 1 }).dispose();
    if (i % 10 === 9) await new Promise((r) => setImmediate(r));
}
report.cycles.context = { n: cycles, before, after: rss() };
// Warm-up: RSS climbs over the first ~100 loads (V8, the allocator), then stays flat.
for (let i = 0; i < 100; i++) {
    (await LlamaModel.load({ path: modelPath, gpu: false })).dispose();
    await new Promise((r) => setImmediate(r));
}
before = rss();
for (let i = 0; i < modelCycles; i++) {
    (await LlamaModel.load({ path: modelPath, gpu: false })).dispose();
    await new Promise((r) => setImmediate(r));
}
report.cycles.model = { n: modelCycles, before, after: rss() };
}
base.dispose();
process.stdout.write(`${JSON.stringify({ outcomes, report })}\n`);
