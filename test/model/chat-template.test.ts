// Chat templates: every template of llama.cpp's models/templates renders exactly as llama.cpp's
// server renders it (common_chat_templates_apply in the test-only reference program), errors
// included; model.chatTemplate says where the template came from; tokenizeChat tokenizes as
// the server does, except that control-token text in a message stays text.
import { readdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_MODELS } from '../../lib/demo/models.js';
import { readGgufMetadata } from '../../lib/gguf/reader.js';
import { LlamaError, LlamaModel, type ChatMessage } from '../../lib/index.js';
import { CASES, CONVERSATION, NOW, referenceBody, TOOLS } from '../support/chat/conversation.js';
import { fixtures, referenceChatApply, type ReferenceChatResult } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';

const TEMPLATES = join(root, 'vendor', 'llama.cpp', 'models', 'templates');
const templateFiles = readdirSync(TEMPLATES).filter((f) => f.endsWith('.jinja')).sort();
const templatePath = (file: string) => join(TEMPLATES, file);
const templateSource = (file: string) => readFileSync(templatePath(file), 'utf8');
const bodies = CASES.map((c) => referenceBody(c));

/** A source as llama.cpp's Jinja lexer keeps it (common_chat_template::source()): CR LF and CR made LF, one trailing LF dropped. */
const asLlamaCppKeepsIt = (source: string) => source.replace(/\r\n?/g, '\n').replace(/\n$/, '');

/** CHATML_TEMPLATE_SRC of the vendored common/chat.cpp: llama.cpp's fallback template. */
function chatmlFallbackSource(): string {
    const lines = readFileSync(join(root, 'vendor', 'llama.cpp', 'common', 'chat.cpp'), 'utf8').split('\n');
    const start = lines.findIndex((l) => l.startsWith('#define CHATML_TEMPLATE_SRC'));
    expect(start).toBeGreaterThan(0);
    let source = '';
    for (let i = start + 1; ; i++) {
        const literal = /^\s*"((?:[^"\\]|\\.)*)"/.exec(lines[i]);
        expect(literal, lines[i]).not.toBeNull();
        source += literal![1].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        if (!lines[i].trimEnd().endsWith('\\')) return source;
    }
}

async function rejection(p: Promise<unknown>): Promise<LlamaError> {
    try {
        await p;
    } catch (error) {
        expect(error).toBeInstanceOf(LlamaError);
        return error as LlamaError;
    }
    throw new Error('expected a rejection');
}

/** Renders every case on `model` (with `template` when given) and compares with llama.cpp's results. */
async function expectSameAsReference(model: LlamaModel, expected: ReferenceChatResult[], template: string | undefined, label: string): Promise<void> {
    expect(expected).toHaveLength(CASES.length);
    for (const [i, c] of CASES.entries()) {
        const ref = expected[i];
        const ours = model.applyChatTemplate(c.messages, { ...c.options, now: NOW, ...(template !== undefined ? { template } : {}) });
        if ('error' in ref) {
            const error = await rejection(ours);
            expect(error.code, `${label}, ${c.name}: ${error.message}`).toBe('TEMPLATE_FAILED');
            expect(error.message, `${label}, ${c.name}`).toContain(ref.error);
        } else {
            expect(await ours, `${label}, ${c.name}`).toBe(ref.prompt);
        }
    }
}

describe('applyChatTemplate against llama.cpp', () => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.f16, gpu: false });
    });
    afterAll(() => model.dispose());

    it('finds the templates', () => {
        expect(templateFiles.length).toBeGreaterThanOrEqual(60);
    });

    it.each(templateFiles)('%s renders as llama.cpp renders it', async (file) => {
        const expected = referenceChatApply(fixtures.f16, templatePath(file), bodies);
        // The plain conversation renders with every template of the pin.
        expect(expected[0], file).not.toHaveProperty('error');
        await expectSameAsReference(model, expected, templateSource(file), file);
        // Without control-token text in the messages, the tokens are the server's tokenization of the text.
        for (const c of CASES.slice(0, 2)) {
            const options = { ...c.options, now: NOW, template: templateSource(file) };
            const tokens = await model.tokenizeChat(c.messages, options);
            const text = await model.applyChatTemplate(c.messages, options);
            expect(Array.from(tokens), `${file}, ${c.name}`).toEqual(Array.from(model.tokenize(text, { addSpecial: true, parseSpecial: true })));
        }
    });
});

describe.each([
    ['llama3', 'meta-llama-Llama-3.1-8B-Instruct.jinja'],
    ['qwen', 'Qwen-Qwen2.5-7B-Instruct.jinja'],
    ['gemma', 'google-gemma-2-2b-it.jinja'],
    ['tools', 'NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja'],
] as const)('the chat fixture %s (%s)', (name, file) => {
    let model: LlamaModel;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.chat[name], gpu: false });
    });
    afterAll(() => model.dispose());

    it('is a micro model whose tokenizer.chat_template is the file, byte for byte', async () => {
        const meta = await readGgufMetadata(fixtures.chat[name]);
        expect(meta.kv['tokenizer.chat_template']).toBe(templateSource(file));
        expect(meta.kv['llama.context_length']).toBe(2048);
        expect(meta.kv['llama.block_count']).toBe(1);
        expect(FIXTURE_MODELS[`chat-${name}-f16`].chatTemplate).toBe(file);
    });

    it("reports the file's template", () => {
        const info = model.chatTemplate!;
        expect(info.origin).toBe('file');
        // None of the four has the texts llama.cpp patches in a source (gpt-oss' channels, [TOOL_CALLS]).
        expect(info.source).toBe(asLlamaCppKeepsIt(templateSource(file)));
        expect(info.toolUseSource).toBeNull();
        expect(info.supportsThinking).toBe(false);
        expect(info.capabilities.supports_system_role).toBe(name !== 'gemma'); // Gemma 2 raises on a system message
        expect(info.capabilities.supports_tools).toBe(name !== 'gemma');
    });

    it('renders with its own template as llama.cpp does', async () => {
        await expectSameAsReference(model, referenceChatApply(fixtures.chat[name], null, bodies), undefined, name);
    });

    it('renders the same without thinking (it has no thinking mode)', async () => {
        const on = await model.applyChatTemplate(CONVERSATION, { now: NOW, enableThinking: true });
        expect(await model.applyChatTemplate(CONVERSATION, { now: NOW, enableThinking: false })).toBe(on);
    });
});

describe('a model without a template, and the chatTemplate load option', () => {
    const created: LlamaModel[] = [];
    const load = async (path: string, chatTemplate?: string) => {
        const model = await LlamaModel.load({ path, gpu: false, ...(chatTemplate !== undefined ? { chatTemplate } : {}) });
        created.push(model);
        return model;
    };
    afterAll(() => {
        for (const model of created) model.dispose();
    });

    it("falls back to llama.cpp's ChatML", async () => {
        const model = await load(fixtures.f16);
        const info = model.chatTemplate!;
        expect(info.origin).toBe('fallback');
        expect(info.source).toBe(chatmlFallbackSource());
        expect(info.source).toContain("'<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n'");
        expect(info.toolUseSource).toBeNull();
        expect(info.supportsThinking).toBe(false);
        expect(info.capabilities.supports_tools).toBe(false);
        const expected = referenceChatApply(fixtures.f16, null, bodies);
        expect(expected[0]).toMatchObject({ prompt: expect.stringContaining('<|im_start|>user\nAnd of Germany?<|im_end|>\n<|im_start|>assistant\n') });
        await expectSameAsReference(model, expected, undefined, 'fallback');
        // The reported source is the one in use: as an override, it renders the same.
        await expectSameAsReference(model, expected, info.source, 'fallback source as an override');
    });

    it("uses the chatTemplate option instead of the file's", async () => {
        const gemma = templateSource('google-gemma-2-2b-it.jinja');
        const plain = await load(fixtures.f16, gemma);
        expect(plain.chatTemplate).toMatchObject({ origin: 'override', source: asLlamaCppKeepsIt(gemma), toolUseSource: null });
        await expectSameAsReference(plain, referenceChatApply(fixtures.f16, templatePath('google-gemma-2-2b-it.jinja'), bodies), undefined, 'override');
        // Over a file's own template too.
        const llama3 = templateSource('meta-llama-Llama-3.1-8B-Instruct.jinja');
        const qwen = await load(fixtures.chat.qwen, llama3);
        expect(llama3.endsWith('\n')).toBe(true);
        expect(qwen.chatTemplate).toMatchObject({ origin: 'override', source: asLlamaCppKeepsIt(llama3) });
        await expectSameAsReference(qwen, referenceChatApply(fixtures.chat.qwen, templatePath('meta-llama-Llama-3.1-8B-Instruct.jinja'), bodies), undefined, 'override over a file');
    });

    it('reports a thinking mode where the template has one', async () => {
        const model = await load(fixtures.f16, templateSource('Qwen-Qwen3-0.6B.jinja'));
        expect(model.chatTemplate!.supportsThinking).toBe(true);
        const on = await model.applyChatTemplate(CONVERSATION, { now: NOW, enableThinking: true });
        const off = await model.applyChatTemplate(CONVERSATION, { now: NOW, enableThinking: false });
        expect(off).not.toBe(on);
        const [refOn, refOff] = referenceChatApply(fixtures.f16, templatePath('Qwen-Qwen3-0.6B.jinja'), [
            referenceBody({ name: 'on', messages: CONVERSATION, options: { enableThinking: true } }),
            referenceBody({ name: 'off', messages: CONVERSATION, options: { enableThinking: false } }),
        ]);
        expect(on).toBe((refOn as { prompt: string }).prompt);
        expect(off).toBe((refOff as { prompt: string }).prompt);
    });

    it('a template in a file that does not parse makes chat calls fail, not the load', async () => {
        const work = mkdtempSync(join(tmpdir(), 'llama-kv-chat-'));
        try {
            const bad = '{% for message in messages %}{{ message.content }';
            const file = join(work, 'bad.jinja');
            writeFileSync(file, bad);
            const model = await load(fixtures.f16, bad);
            expect(model.chatTemplate).toMatchObject({ origin: 'override', source: bad });
            const [ref] = referenceChatApply(fixtures.f16, file, [bodies[0]]);
            expect(ref).toHaveProperty('error');
            const error = await rejection(model.applyChatTemplate(CONVERSATION));
            expect(error.code).toBe('TEMPLATE_FAILED');
            expect(error.message).toContain((ref as { error: string }).error);
            expect((await rejection(model.tokenizeChat(CONVERSATION))).code).toBe('TEMPLATE_FAILED');
        } finally {
            rmSync(work, { recursive: true, force: true });
        }
    });
});

describe('tokenizeChat and control-token text in messages', () => {
    let model: LlamaModel;
    let bos: number;
    let eos: number;
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.chat.qwen, gpu: false });
        ({ bosToken: bos, eosToken: eos } = model.metadata);
    });
    afterAll(() => model.dispose());

    const injected: ChatMessage[] = [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: 'Say </s> and then <s> please' },
    ];

    it('the vocabulary has </s> and <s> as its eos and bos control tokens', () => {
        expect(Array.from(model.tokenize('</s><s>', { addSpecial: false, parseSpecial: true }))).toEqual([eos, bos]);
    });

    it('keeps </s> and <s> in a message as text', async () => {
        const text = await model.applyChatTemplate(injected);
        expect(text).toContain('<|im_start|>user\nSay </s> and then <s> please<|im_end|>');
        const tokens = Array.from(await model.tokenizeChat(injected));
        expect(tokens[0]).toBe(bos); // added by the tokenizer, as the model's tokenizer says
        expect(tokens.slice(1)).not.toContain(bos);
        expect(tokens).not.toContain(eos);
        // The server's tokenization would have made them control tokens:
        expect(Array.from(model.tokenize(text, { addSpecial: true, parseSpecial: true }))).toContain(eos);
    });

    it('tokenizes the text around them as the rest of the prompt', async () => {
        // The ChatML markers are plain text in this vocabulary, so the whole prompt is text: its
        // tokens are the prompt's tokens with no special token parsed.
        const text = await model.applyChatTemplate(injected);
        const tokens = Array.from(await model.tokenizeChat(injected));
        expect(tokens).toEqual(Array.from(model.tokenize(text, { addSpecial: true, parseSpecial: false })));
        expect(model.detokenize(tokens.slice(1))).toBe(text);
    });

    it("still parses the template's own control tokens", async () => {
        // The template writes eos after every message: those are tokens, the user's are text.
        const template = '{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}';
        const messages: ChatMessage[] = [
            { role: 'user', content: 'a </s> b' },
            { role: 'assistant', content: 'c' },
        ];
        const text = await model.applyChatTemplate(messages, { template });
        expect(text).toBe('user: a </s> b</s>assistant: c</s>assistant:');
        const raw = (s: string) => Array.from(model.tokenize(s, { addSpecial: false, parseSpecial: false }));
        const expected = [bos, ...raw('user: a </s> b'), eos, ...raw('assistant: c'), eos, ...raw('assistant:')];
        expect(Array.from(await model.tokenizeChat(messages, { template }))).toEqual(expected);
        // Without control text in the messages, exactly the server's tokenization.
        const clean: ChatMessage[] = [{ role: 'user', content: 'a b' }, { role: 'assistant', content: 'c' }];
        const cleanText = await model.applyChatTemplate(clean, { template });
        const cleanTokens = Array.from(await model.tokenizeChat(clean, { template }));
        expect(cleanTokens).toEqual(Array.from(model.tokenize(cleanText, { addSpecial: true, parseSpecial: true })));
        expect(cleanTokens.filter((t) => t === eos)).toHaveLength(2);
    });

    it.each([
        ['a tool result', '{"city":"Paris"}', '{"result":"</s><s>"}', '{"result":"</s><s>"}'],
        ["a tool call's arguments", '{"city":"</s><s>"}', '{"result":"sunny"}', '"</s><s>"'],
    ])('keeps control text in %s as text', async (_what, args, result, rendered) => {
        const messages: ChatMessage[] = [
            { role: 'user', content: 'Weather?' },
            { role: 'assistant', content: '', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: args }] },
            { role: 'tool', content: result, toolCallId: 'call_1', name: 'get_weather' },
        ];
        const text = await model.applyChatTemplate(messages, { tools: TOOLS });
        expect(text).toContain(rendered);
        const tokens = Array.from(await model.tokenizeChat(messages, { tools: TOOLS }));
        expect(tokens.slice(1)).not.toContain(bos);
        expect(tokens).not.toContain(eos);
    });
});
