// Child process of the chat template limits test: renders one hostile template (stdin: JSON
// { model, template, abortAfterMs?, safetyMs, memoryCapBytes }) and then a normal conversation,
// and prints one JSON line { file: 'case', outcome: JSON }. Memory over the cap kills the
// process after saying so; a crash or a hang here is what the parent reports.
import { readFileSync, writeSync } from 'node:fs';

const { LlamaError, LlamaModel } = await import(process.env.LLAMA_KV_DIST);
const input = JSON.parse(readFileSync(0, 'utf8'));
const say = (outcome) => writeSync(1, `${JSON.stringify({ file: 'case', outcome: JSON.stringify(outcome) })}\n`);

const model = await LlamaModel.load({ path: input.model, gpu: false });
const messages = [{ role: 'user', content: 'Hello' }];
const baseline = process.memoryUsage.rss();
let peak = 0;
const watch = setInterval(() => {
    const grown = process.memoryUsage.rss() - baseline;
    peak = Math.max(peak, grown);
    if (grown > input.memoryCapBytes) {
        say({ result: 'over-memory', peakBytes: grown });
        process.kill(process.pid, 'SIGKILL');
    }
}, 10);

const controller = new AbortController();
const safety = setTimeout(() => controller.abort(), input.safetyMs);
let abortedAt;
if (input.abortAfterMs !== undefined) {
    setTimeout(() => {
        abortedAt = performance.now();
        controller.abort();
    }, input.abortAfterMs);
}
const t0 = performance.now();
let result;
let message;
try {
    await model.applyChatTemplate(messages, { template: input.template, signal: controller.signal });
    result = 'rendered';
} catch (error) {
    result = error instanceof LlamaError ? `error:${error.code}` : `foreign:${error?.name}`;
    message = String(error?.message).slice(0, 500);
}
const end = performance.now();
clearTimeout(safety);
clearInterval(watch);
// The process keeps working: a normal rendering after the hostile one.
const after = await model.applyChatTemplate(messages);
say({ result, message, ms: Math.round(end - t0), msAfterAbort: abortedAt === undefined ? undefined : Math.round(end - abortedAt), peakBytes: peak, after });
model.dispose();
