// LlamaChatSession on generated chat models: turns that evaluate only what is new, sessions
// on the sequences of one parallel context, tool calls, streaming, aborts and a full context.
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaChatSession, LlamaContext, LlamaModel, type ChatMessage } from '../../lib/index.js';
import { FIXTURE_MODELS, writeFixtureModel } from '../../lib/demo/models.js';
import { fixtures } from '../support/fixtures.js';

const WEATHER = {
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { enum: ['Paris', 'Tokyo', 'Lima'] } }, required: ['city'] },
};

/** A chat fixture with another of llama.cpp's vocabularies, whose turn markers are control tokens. */
async function chatModelWithVocab(name: 'chat-qwen-f16' | 'chat-llama3-f16', vocab: string): Promise<string> {
    const path = join(fixtures.cacheDir, `${name}-${vocab}.gguf`);
    if (!existsSync(path)) {
        const tmp = `${path}.${process.pid}.tmp`;
        await writeFixtureModel({ ...FIXTURE_MODELS[name], displayName: `${FIXTURE_MODELS[name].displayName} ${vocab}` }, tmp, join(import.meta.dirname, '..', '..', 'vendor', 'llama.cpp', 'models', `ggml-vocab-${vocab}.gguf`));
        renameSync(tmp, path);
    }
    return path;
}

describe('a chat session evaluates only what each turn adds', () => {
    let qwen: LlamaModel;
    let llama3: LlamaModel;
    beforeAll(async () => {
        // Qwen 2.5's template with Qwen 2's vocabulary (<|im_start|>, <|im_end|> are control tokens); Llama 3.1's with
        // Llama 3's, whose template trims each reply.
        qwen = await LlamaModel.load({ path: await chatModelWithVocab('chat-qwen-f16', 'qwen2') });
        llama3 = await LlamaModel.load({ path: await chatModelWithVocab('chat-llama3-f16', 'llama-bpe') });
    });
    afterAll(() => {
        qwen.dispose();
        llama3.dispose();
    });

    /** Six turns; per turn the prompt's timings and what the sequence held before it. */
    async function sixTurns(model: LlamaModel) {
        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 2 });
        const session = new LlamaChatSession({ context: ctx, systemPrompt: 'You are terse.' });
        const turns = [];
        let held = 0;
        for (let turn = 0; turn < 6; turn++) {
            const question = `Question number ${turn}: what is ${turn} plus ${turn}?`;
            const r = await session.prompt(question, { maxTokens: 6, temperature: 0 });
            turns.push({ question, held, ...r.timings });
            // What the sequence's KV cache holds now: the last token of a reply cut by maxTokens was sampled, not evaluated.
            held = r.timings.promptTokens + r.timings.generatedTokens - (r.finishReason === 'length' ? 1 : 0);
        }
        expect(session.messages.map((m) => m.role)).toEqual(['system', ...Array.from({ length: 6 }, () => ['user', 'assistant']).flat()]);
        ctx.dispose();
        return turns;
    }

    it('6 turns: each reuses everything the sequence holds and evaluates only the new turn', async () => {
        expect(qwen.chatTemplate?.origin).toBe('file');
        const turns = await sixTurns(qwen);
        for (const t of turns.slice(1)) {
            // The whole previous prompt and reply stayed in the cache...
            expect(t.reusedTokens, t.question).toBe(t.held);
            // ...and what was evaluated is this turn's text: the end of the last reply's turn, the question and the
            // assistant header (a few template tokens more than the question alone).
            const fresh = t.promptTokens - t.reusedTokens;
            const questionTokens = qwen.tokenize(t.question, { addSpecial: false }).length;
            expect(fresh).toBeGreaterThanOrEqual(questionTokens);
            expect(fresh).toBeLessThanOrEqual(questionTokens + 12);
        }
    });

    it('a template that rewrites replies (Llama 3 trims them) still reuses at least the previous prompt', async () => {
        const turns = await sixTurns(llama3);
        for (const [i, t] of turns.entries()) {
            if (i > 0) expect(t.reusedTokens).toBeGreaterThanOrEqual(turns[i - 1].promptTokens);
        }
    });

    it("the prompt a session sends equals llama.cpp's rendering of the conversation (tokenized as the server does)", async () => {
        const ctx = new LlamaContext({ model: qwen, contextSize: 1024, threads: 2 });
        const session = new LlamaChatSession({ context: ctx, systemPrompt: 'S.' });
        const r = await session.prompt('Hello', { maxTokens: 3, temperature: 0 });
        const messages: ChatMessage[] = [{ role: 'system', content: 'S.' }, { role: 'user', content: 'Hello' }];
        const expected = await qwen.tokenizeChat(messages);
        expect(r.timings.promptTokens).toBe(expected.length);
        const text = await qwen.applyChatTemplate(messages);
        expect(Array.from(expected)).toEqual(Array.from(qwen.tokenize(text, { addSpecial: true, parseSpecial: true })));
        expect(text.startsWith('<|im_start|>system\nS.<|im_end|>')).toBe(true);
        ctx.dispose();
    });
});

describe('chat sessions on the chat fixtures', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.chat.tools });
    });
    afterAll(() => model.dispose());

    it('several sessions on the sequences of one parallel context run at once and stay apart', async () => {
        const ctx = new LlamaContext({ model, contextSize: 3072, parallel: 3, threads: 2 });
        const seqs = await Promise.all([0, 1, 2].map(() => ctx.acquireSequence()));
        const sessions = seqs.map((sequence, i) => new LlamaChatSession({ sequence, systemPrompt: `You are assistant ${i}.` }));
        const first = await Promise.all(sessions.map((s, i) => s.prompt(`I am user ${i}.`, { maxTokens: 8, temperature: 0 })));
        const second = await Promise.all(sessions.map((s, i) => s.prompt(`Still user ${i}?`, { maxTokens: 8, temperature: 0 })));
        sessions.forEach((s, i) => {
            expect(second[i].timings.reusedTokens).toBeGreaterThanOrEqual(first[i].timings.promptTokens); // its own sequence kept it
            const text = s.messages.map((m) => m.content).join('\n');
            expect(text).toContain(`user ${i}`);
            for (const j of [0, 1, 2]) if (j !== i) expect(text).not.toContain(`user ${j}`);
        });
        // The same conversation alone gives the same greedy reply as in the batch.
        const alone = new LlamaChatSession({ context: new LlamaContext({ model, contextSize: 1024, threads: 2 }), systemPrompt: 'You are assistant 1.' });
        expect((await alone.prompt('I am user 1.', { maxTokens: 8, temperature: 0 })).text).toBe(first[1].text);
        ctx.dispose();
    });

    it("toolChoice 'required' yields a parsed call with valid arguments, and the handler's result is in the history", async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 2 });
        const session = new LlamaChatSession({ context: ctx, systemPrompt: 'You may call tools.' });
        const seen: unknown[] = [];
        const r = await session.prompt('What is the weather in Paris?', {
            maxTokens: 96,
            temperature: 0.7,
            seed: 7,
            toolChoice: 'required',
            // The demo model's words are random: make it end once the grammar allows it (after the call).
            logitBias: { [model.metadata.eosToken]: 10 },
            tools: { get_weather: { ...WEATHER, handler: (args: Record<string, unknown>) => { seen.push(args); return { temperature: 21, sky: 'clear' }; } } },
        });
        expect(seen).toHaveLength(1);
        expect(WEATHER.parameters.properties.city.enum).toContain((seen[0] as { city: string }).city);
        expect(r.toolCalls).toHaveLength(1);
        expect(r.toolCalls![0]).toMatchObject({ name: 'get_weather', result: '{"temperature":21,"sky":"clear"}' });
        expect(JSON.parse(r.toolCalls![0].arguments)).toEqual(seen[0]);
        expect(r.timings.rounds).toBe(2);
        const roles = session.messages.map((m) => m.role);
        expect(roles).toEqual(['system', 'user', 'assistant', 'tool', 'assistant']);
        const call = session.messages[2] as ChatMessage;
        expect(call.toolCalls?.[0].name).toBe('get_weather');
        expect(session.messages[3]).toMatchObject({ role: 'tool', content: '{"temperature":21,"sky":"clear"}', toolCallId: call.toolCalls![0].id });
        // The rendered history shows the call and its result as the template writes them.
        const history = await model.applyChatTemplate(session.messages as ChatMessage[]);
        expect(history).toContain('<tool_call>');
        expect(history).toContain('{"temperature":21,"sky":"clear"}');
        ctx.dispose();
    });

    it("a handler's error goes back to the model as the tool's result, not out of prompt()", async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 2 });
        const session = new LlamaChatSession({ context: ctx });
        const r = await session.prompt('Weather?', {
            maxTokens: 96, temperature: 0.7, seed: 3, toolChoice: 'required', logitBias: { [model.metadata.eosToken]: 10 },
            tools: { get_weather: { ...WEATHER, handler: () => { throw new Error('the weather service is down'); } } },
        });
        expect(r.toolCalls?.[0]).toMatchObject({ failed: true, result: '{"error":"the weather service is down"}' });
        expect(session.messages.find((m) => m.role === 'tool')?.content).toBe('{"error":"the weather service is down"}');
        // Tools without a handler end the prompt with the calls.
        const plain = await new LlamaChatSession({ context: ctx }).prompt('Weather?', {
            maxTokens: 96, temperature: 0.7, seed: 3, toolChoice: 'required', logitBias: { [model.metadata.eosToken]: 10 }, tools: { get_weather: WEATHER },
        });
        expect(plain.toolCalls?.[0].name).toBe('get_weather');
        expect(plain.toolCalls?.[0].result).toBeUndefined();
        expect(plain.timings.rounds).toBe(1);
        await expect(new LlamaChatSession({ context: ctx }).prompt('x', { tools: { get_weather: WEATHER }, grammar: 'root ::= "a"' })).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
        ctx.dispose();
    });

    it('promptStream: the deltas add up to the answer; a JSON schema shapes a session reply', async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 2 });
        const session = new LlamaChatSession({ context: ctx, systemPrompt: 'Answer in JSON.' });
        const stream = session.promptStream('Your name?', { maxTokens: 60, temperature: 1, seed: 5, jsonSchema: { type: 'object', properties: { name: { enum: ['Ada', 'Bob'] } }, required: ['name'] } });
        let text = '';
        for await (const d of stream) if (d.type === 'text') text += d.text;
        const r = await stream.result;
        expect(text).toBe(r.text);
        expect(['Ada', 'Bob']).toContain(JSON.parse(r.text).name);
        const last = session.messages.at(-1)!;
        expect(last).toMatchObject({ role: 'assistant', content: r.text });
        session.reset();
        expect(session.messages).toEqual([{ role: 'system', content: 'Answer in JSON.' }]);
        ctx.dispose();
    });

    it('an aborted reply ends with finishReason abort and keeps what was generated; a broken-off stream aborts', async () => {
        const ctx = new LlamaContext({ model, contextSize: 2048, threads: 2 });
        const session = new LlamaChatSession({ context: ctx });
        const controller = new AbortController();
        const stream = session.promptStream('Tell me a long story.', { maxTokens: 1500, temperature: 0, signal: controller.signal });
        let n = 0;
        for await (const _ of stream) if (++n === 5) controller.abort();
        const r = await stream.result;
        expect(r.finishReason).toBe('abort');
        expect(r.timings.generatedTokens).toBeLessThan(1500);
        expect(session.messages.at(-1)).toMatchObject({ role: 'assistant', content: r.text });
        const s2 = session.promptStream('Again.', { maxTokens: 1500, temperature: 0 });
        for await (const _ of s2) break; // return() aborts the reply
        expect((await s2.result).finishReason).toBe('abort');
        ctx.dispose();
    });
});

describe('a conversation that outgrows the context', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.chat.qwen });
    });
    afterAll(() => model.dispose());

    const long = (i: number) => `Message ${i}: ${'lorem ipsum dolor sit amet '.repeat(6)}`;

    it("onContextFull 'error': the turn that does not fit ends with contextFull and is not added", async () => {
        const ctx = new LlamaContext({ model, contextSize: 512, threads: 2, onContextFull: 'error' });
        const session = new LlamaChatSession({ context: ctx, systemPrompt: 'Short.' });
        let full = null;
        for (let i = 0; i < 20 && full === null; i++) {
            const before = session.messages.length;
            const r = await session.prompt(long(i), { maxTokens: 24, temperature: 0 });
            if (r.finishReason === 'contextFull') full = { r, before, after: session.messages.length };
        }
        expect(full).not.toBeNull();
        // Either it did not fit at all (not added) or it filled up while generating (kept, cut short).
        if (full!.r.timings.rounds === 0) expect(full!.after).toBe(full!.before);
        ctx.dispose();
    });

    it("onContextFull 'shift': old turns go, the system prompt stays, the conversation goes on", async () => {
        const ctx = new LlamaContext({ model, contextSize: 512, threads: 2, onContextFull: 'shift' });
        const seq = await ctx.acquireSequence();
        const session = new LlamaChatSession({ sequence: seq, systemPrompt: 'You are the shift test.' });
        const system = await model.tokenizeChat([{ role: 'system', content: 'You are the shift test.' }], { addGenerationPrompt: false });
        for (let i = 0; i < 12; i++) {
            const r = await session.prompt(long(i), { maxTokens: 24, temperature: 0 });
            expect(r.finishReason, `turn ${i}`).not.toBe('contextFull');
            // The sequence still starts with the system prompt.
            expect(Array.from(seq.tokens.slice(0, system.length - 2))).toEqual(Array.from(system.slice(0, system.length - 2)));
        }
        expect(session.messages).toHaveLength(1 + 2 * 12); // the session keeps the whole conversation
        ctx.dispose();
    });
});
