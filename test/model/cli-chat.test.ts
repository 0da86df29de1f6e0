import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { forTerminal } from '../../lib/cli/chat/reply.js';
import { findChatTemplateFile } from '../../lib/demo/models.js';
import { cli } from '../support/cli.js';
import { fixtures } from '../support/fixtures.js';

const terminal = join(import.meta.dirname, '..', 'support', 'terminal.py');
const work = mkdtempSync(join(tmpdir(), 'llama-kv-cli-chat-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const env = { ...process.env, LLAMA_KV_CACHE_DIR: fixtures.cacheDir, NO_COLOR: '' };
/** A micro model with Qwen 2.5's ChatML template: replies take milliseconds. */
const model = fixtures.chat.qwen;
const greedy = ['-m', model, '--temp', '0', '-t', '2', '-c', '1024'];

/** `llama-kv ...args` with `input` on stdin (a pipe: stdin is not a terminal, and ends after the input). */
function llamaKv(args: string[], input = '') {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env, input, timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, content: string): string {
    const path = join(work, name);
    writeFileSync(path, content);
    return path;
}

type Step = { send: string } | { expect: string; timeout?: number } | { sleep: number } | { exit: number };
interface Session {
    ok: boolean;
    error: string | null;
    output: string;
    raw: string;
    exitCode: number | null;
    steps: { step: number; at: number; match?: string }[];
}

/** Runs `llama-kv ...args` in a pseudo-terminal (test/support/terminal.py), typing and waiting as `steps` say. */
function atTerminal(args: string[], steps: Step[], extraEnv: Record<string, string> = {}): Session {
    const script = JSON.stringify({ argv: [process.execPath, cli, ...args], env: { ...env, ...extraEnv }, steps });
    const r = spawnSync('python3', [terminal, script], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`terminal.py failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as Session;
}

/** The "> " prompt at the start of a line: the chat waits for the next message. */
const PROMPT = '(^|\\n)> $';
const ENTER = '\r';
const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
/** QwQ's template opens <think> in the generation prompt: all a random model writes is reasoning. */
const thinking = findChatTemplateFile('Qwen-QwQ-32B.jinja');

describe('llama-kv chat with a message (one reply)', () => {
    it('-p, -f and stdin give the same greedy reply on stdout, exit 0, and a timing line on stderr', () => {
        const p = llamaKv(['chat', ...greedy, '-p', 'Hello there', '-n', '12']);
        expect(p.code, p.stderr).toBe(0);
        expect(p.stdout.trim().length).toBeGreaterThan(0);
        expect(p.stderr).toMatch(/prompt: \d+ tokens \(0 reused\), [\d.]+ t\/s \| generation: \d+ tokens, [\d.]+ t\/s \| finish: (length|eos|stop)/);
        // The reply is exactly the result's text (one line break after it).
        const json = llamaKv(['chat', ...greedy, '-p', 'Hello there', '-n', '12', '--json']);
        expect(json.code, json.stderr).toBe(0);
        const result = JSON.parse(json.stdout);
        expect(p.stdout).toBe(`${result.text}\n`);
        expect(result.timings.generatedTokens).toBeGreaterThan(0);
        expect(result.timings.generatedTokens).toBeLessThanOrEqual(12);
        // A message piped to stdin (its final line break dropped), and one in a file, are the same message.
        const piped = llamaKv(['chat', ...greedy, '-n', '12'], 'Hello there\n');
        expect(piped.code, piped.stderr).toBe(0);
        expect(piped.stdout).toBe(p.stdout);
        const fromFile = llamaKv(['chat', ...greedy, '-n', '12', '-f', file('message.txt', 'Hello there\n')]);
        expect(fromFile.stdout).toBe(p.stdout);
    });

    it('the system prompt (-sys, -sysf) is part of the conversation; without -m the demo model answers', () => {
        const sys = llamaKv(['chat', ...greedy, '-n', '12', '-sys', 'You are a pirate.', '-p', 'Hello there', '--json']);
        expect(sys.code, sys.stderr).toBe(0);
        const sysf = llamaKv(['chat', ...greedy, '-n', '12', '-sysf', file('system.txt', 'You are a pirate.\n'), '-p', 'Hello there', '--json']);
        expect(JSON.parse(sysf.stdout).text).toBe(JSON.parse(sys.stdout).text);
        const none = llamaKv(['chat', ...greedy, '-n', '12', '-p', 'Hello there', '--json']);
        // Qwen's template puts its own system prompt in when there is none: a different prompt.
        expect(JSON.parse(sys.stdout).timings.promptTokens).not.toBe(JSON.parse(none.stdout).timings.promptTokens);
        const demo = llamaKv(['chat', '-p', 'Hi', '-n', '4', '--temp', '0']);
        expect(demo.code, demo.stderr).toBe(0);
        expect(demo.stdout.trim().length).toBeGreaterThan(0);
    });

    it('--chat-template-file replaces the model template', () => {
        const template = file('plain.jinja', "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}");
        const own = JSON.parse(llamaKv(['chat', ...greedy, '-n', '4', '-p', 'Hello', '--json']).stdout);
        const r = llamaKv(['chat', ...greedy, '-n', '4', '-p', 'Hello', '--json', '--chat-template-file', template]);
        expect(r.code, r.stderr).toBe(0);
        // "user: Hello\nassistant:" is far shorter than Qwen's ChatML with its default system prompt.
        expect(JSON.parse(r.stdout).timings.promptTokens).toBeLessThan(own.timings.promptTokens);
        const missing = llamaKv(['chat', ...greedy, '-p', 'Hello', '--chat-template-file', join(work, 'nope.jinja')]);
        expect(missing.code).toBe(2);
        expect(missing.stderr).toContain(`llama-kv chat: --chat-template-file: cannot read "${join(work, 'nope.jinja')}": ENOENT`);
    });

    it('the reasoning of a thinking template goes to stderr, the answer to stdout; -rea off turns thinking off', () => {
        const args = ['chat', ...greedy, '-n', '8', '-p', 'Hi', '--chat-template-file', thinking];
        const result = JSON.parse(llamaKv([...args, '--json']).stdout);
        expect(result.text).toBe('');
        expect(result.reasoning.trim().length).toBeGreaterThan(0);
        const r = llamaKv(args);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe('\n');
        expect(r.stderr).toContain(result.reasoning);
        // Qwen 3's template closes an empty think block in the generation prompt when thinking is off.
        const qwen3 = ['chat', ...greedy, '-n', '4', '-p', 'Hi', '--json', '--chat-template-file', findChatTemplateFile('Qwen-Qwen3-0.6B.jinja')];
        const on = JSON.parse(llamaKv([...qwen3, '-rea', 'on']).stdout);
        const off = JSON.parse(llamaKv([...qwen3, '-rea', 'off']).stdout);
        expect(off.timings.promptTokens).toBeGreaterThan(on.timings.promptTokens);
        expect(JSON.parse(llamaKv([...qwen3, '-rea', 'auto']).stdout).timings.promptTokens).toBe(on.timings.promptTokens);
        const bad = llamaKv([...qwen3, '-rea', 'maybe']);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toContain('llama-kv chat: -rea/--reasoning expects on, off or auto but received "maybe"');
    });

    it('-j/--json-schema and -jf: the reply is JSON with the required keys', () => {
        const schema = {
            type: 'object',
            properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 150 } },
            required: ['name', 'age'],
            additionalProperties: false,
        };
        for (const seed of ['1', '2']) {
            const r = llamaKv(['chat', '-m', model, '-c', '1024', '-t', '2', '--temp', '1', '-s', seed, '-n', '200', '-p', 'Describe a person as JSON.', '-j', JSON.stringify(schema)]);
            expect(r.code, r.stderr).toBe(0);
            const value = JSON.parse(r.stdout);
            expect(Object.keys(value).sort()).toEqual(['age', 'name']);
            expect(typeof value.name).toBe('string');
            expect(Number.isInteger(value.age)).toBe(true);
            const f = llamaKv(['chat', '-m', model, '-c', '1024', '-t', '2', '--temp', '1', '-s', seed, '-n', '200', '-p', 'Describe a person as JSON.', '-jf', file('schema.json', JSON.stringify(schema))]);
            expect(f.stdout).toBe(r.stdout);
        }
        const bad = llamaKv(['chat', ...greedy, '-p', 'Hi', '-j', '{"type": "object",']);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/^llama-kv chat: -j\/--json-schema is not JSON: /);
    });
});

describe('llama-kv run and chat: grammars', () => {
    const yesNo = file('yes-no.gbnf', 'root ::= "yes" | "no"\n');

    it('--grammar-file constrains run and chat to the grammar', () => {
        for (const seed of ['1', '2', '3']) {
            const r = llamaKv(['run', '-m', fixtures.f16, '-p', 'Is the sky blue?', '-n', '8', '--temp', '1', '-s', seed, '--grammar-file', yesNo]);
            expect(r.code, r.stderr).toBe(0);
            expect(r.stdout).toMatch(/^(yes|no)\n$/);
            expect(r.stderr).toContain('finish: eos');
        }
        const c = llamaKv(['chat', ...greedy, '-p', 'Is the sky blue?', '-n', '8', '--grammar', 'root ::= "yes" | "no"']);
        expect(c.code, c.stderr).toBe(0);
        expect(c.stdout).toMatch(/^(yes|no)\n$/);
        const j = llamaKv(['run', '-m', fixtures.f16, '-p', 'A number:', '-n', '32', '--temp', '1', '-s', '5', '-j', '{"type": "integer"}', '--json']);
        expect(j.code, j.stderr).toBe(0);
        expect(JSON.parse(j.stdout).text.trim()).toMatch(/^-?\d+$/);
    });

    it("a grammar that does not parse: exit code 1 and llama.cpp's message, without a stack trace", () => {
        const bad = file('bad.gbnf', 'root ::= answer\n');
        for (const command of ['run', 'chat']) {
            const r = llamaKv([command, '-m', model, '-p', 'Is the sky blue?', '-n', '8', '--grammar-file', bad]);
            expect(r.code, command).toBe(1);
            expect(r.stderr).toContain(`llama-kv ${command}: `);
            expect(r.stderr).toContain("Undefined rule identifier 'answer'");
            expect(r.stderr).toContain('[INVALID_GRAMMAR]');
            expect(r.stderr).not.toMatch(/\n\s+at /);
            expect(r.stdout).toBe('');
        }
        // On a terminal every reply would fail: the chat ends at the first message, with the same message.
        const s = atTerminal(['chat', '-m', model, '-n', '8', '--grammar-file', bad], [{ expect: PROMPT, timeout: 30 }, { send: `Hi${ENTER}` }, { exit: 10 }]);
        expect(s.error).toBeNull();
        expect(s.exitCode).toBe(1);
        expect(s.output).toContain("llama-kv chat: the grammar is invalid: Undefined rule identifier 'answer' [INVALID_GRAMMAR]");
        expect(s.output).not.toMatch(/\n\s+at /);
    });

    it('grammar flags: a missing file and two grammars at once are usage errors (exit code 2)', () => {
        const missing = join(work, 'missing.gbnf');
        const cases: [string[], string][] = [
            [['--grammar-file', missing], `--grammar-file: cannot read "${missing}": ENOENT`],
            [['--grammar-file', yesNo, '-j', '{}'], '--grammar-file and -j/--json-schema cannot be used together'],
        ];
        for (const command of ['run', 'chat']) {
            for (const [args, message] of cases) {
                const r = llamaKv([command, '-m', model, '-p', 'Hi', ...args]);
                expect(r.code, args.join(' ')).toBe(2);
                expect(r.stderr).toContain(`llama-kv ${command}: ${message}`);
                expect(r.stderr).toContain(`usage: llama-kv ${command}`);
            }
        }
    });
});

describe('llama-kv run: the prompt from a file or stdin', () => {
    it('-f FILE and the prompt on stdin are the same prompt as -p', () => {
        const args = ['run', '-m', fixtures.f16, '-n', '8', '--temp', '0', '-t', '2', '--json'];
        const p = JSON.parse(llamaKv([...args, '-p', 'Once upon a time']).stdout);
        const f = llamaKv([...args, '-f', file('prompt.txt', 'Once upon a time\n')]);
        expect(f.code, f.stderr).toBe(0);
        expect(JSON.parse(f.stdout)).toMatchObject({ prompt: 'Once upon a time', tokens: p.tokens });
        const piped = llamaKv(args, 'Once upon a time\n');
        expect(piped.code, piped.stderr).toBe(0);
        expect(JSON.parse(piped.stdout)).toMatchObject({ prompt: 'Once upon a time', tokens: p.tokens });
        // A prompt of several lines is kept whole (only the final line break goes).
        const lines = JSON.parse(llamaKv([...args, '-f', file('lines.txt', 'One\nTwo\n\n')]).stdout);
        expect(lines.prompt).toBe('One\nTwo\n');
    });

    it('-f with -p or --prompts-file, and a missing -f file, are usage errors', () => {
        const prompt = file('p.txt', 'Hi');
        const missing = join(work, 'missing.txt');
        const cases: [string[], string][] = [
            [['-f', prompt, '-p', 'Hi'], '-p/--prompt and -f/--file cannot be used together'],
            [['-f', prompt, '--prompts-file', prompt], '-f/--file and --prompts-file cannot be used together'],
            [['-f', missing], `-f/--file: cannot read "${missing}": ENOENT`],
            [[], '-p/--prompt or --prompts-file is required: stdin held no prompt'],
        ];
        for (const [args, message] of cases) {
            const r = llamaKv(['run', '-m', fixtures.f16, ...args]);
            expect(r.code, args.join(' ')).toBe(2);
            expect(r.stderr).toContain(`llama-kv run: ${message}`);
            expect(r.stdout).toBe('');
        }
        const chatCases: [string[], string][] = [
            [[], '-p/--prompt, -f/--file or a message on stdin is required'],
            [['-p', 'Hi', '-f', prompt], '-p/--prompt and -f/--file cannot be used together'],
            [['-p', 'Hi', '--temp', '-1'], 'Expected a number >= 0 for temperature but received -1'],
            [['-p', 'Hi', '--bogus'], 'unknown flag --bogus'],
        ];
        for (const [args, message] of chatCases) {
            const r = llamaKv(['chat', '-m', model, ...args], '\n');
            expect(r.code, args.join(' ')).toBe(2);
            expect(r.stderr).toContain(`llama-kv chat: ${message}`);
            expect(r.stderr).toContain('usage: llama-kv chat');
            expect(r.stdout).toBe('');
        }
    });
});

describe('llama-kv chat on a terminal', () => {
    it('a message gets a reply and the prompt returns; /save, /reset, unknown commands; Ctrl-C on a typed line clears it; Ctrl-D exits 0', () => {
        const first = join(work, 'first.json');
        const cleared = join(work, 'cleared.json');
        const s = atTerminal(
            ['chat', ...greedy, '-n', '8', '-sys', 'You are terse.'],
            [
                { expect: PROMPT, timeout: 30 },
                { send: `Hello there${ENTER}` },
                { expect: `Hello there\\n[\\s\\S]+\\n> $` },
                { send: `/save ${first}${ENTER}` },
                { expect: `\\(saved 3 messages to .*\\)\\n> $` },
                { send: `/frobnicate${ENTER}` },
                { expect: `unknown command /frobnicate\\n/reset[\\s\\S]*/save FILE[\\s\\S]*\\n> $` },
                { send: `/reset${ENTER}` },
                { expect: `\\(the conversation is cleared\\)\\n> $` },
                { send: `/save ${cleared}${ENTER}` },
                { expect: `\\(saved 1 messages to .*\\)\\n> $` },
                { send: 'half a messa' },
                { sleep: 0.3 },
                { send: CTRL_C },
                { expect: `\\^C\\n> $` },
                { send: CTRL_D },
                { exit: 10 },
            ],
        );
        expect(s.error).toBeNull();
        expect(s.exitCode).toBe(0);
        const messages = JSON.parse(readFileSync(first, 'utf8'));
        expect(messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user', 'assistant']);
        expect(messages[0].content).toBe('You are terse.');
        expect(messages[1].content).toBe('Hello there');
        expect(messages[2].content.length).toBeGreaterThan(0);
        // What was shown is the reply (control characters, if any, shown as symbols).
        expect(s.output).toContain(forTerminal(messages[2].content));
        expect(JSON.parse(readFileSync(cleared, 'utf8'))).toEqual([{ role: 'system', content: 'You are terse.' }]);
    });

    it('Ctrl-C during a long reply stops it and the prompt returns; two Ctrl-C during a reply exit 0', () => {
        const saved = join(work, 'stopped.json');
        const s = atTerminal(
            ['chat', ...greedy, '-c', '2048', '-n', '1900', '--grammar', 'root ::= [a-z] root'],
            [
                { expect: PROMPT, timeout: 30 },
                { send: `Tell me a long story${ENTER}` },
                // Some of the reply, then Ctrl-C while it is still being generated.
                { expect: 'Tell me a long story\\n[a-z]{20}' },
                { send: CTRL_C },
                { expect: `\\(stopped\\)\\n> $`, timeout: 10 },
                { send: `/save ${saved}${ENTER}` },
                { expect: `\\(saved 2 messages to .*\\)\\n> $` },
                { send: `And another one${ENTER}` },
                { expect: 'And another one\\n[a-z]{20}' },
                { send: CTRL_C + CTRL_C },
                { exit: 10 },
            ],
        );
        expect(s.error).toBeNull();
        expect(s.exitCode).toBe(0);
        const messages = JSON.parse(readFileSync(saved, 'utf8'));
        expect(messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant']);
        // What was generated before Ctrl-C is kept, and it is far from the 1900 tokens of -n.
        expect(messages[1].content).toMatch(/^[a-z]{20,}$/);
        expect(messages[1].content.length).toBeLessThan(1900);
        // The prompt came back soon after Ctrl-C.
        const [sent, stopped] = [s.steps[3].at, s.steps[4].at];
        expect(stopped - sent).toBeLessThan(5);
    });

    it('the reasoning is dimmed, or between [Start thinking] and [End thinking] with NO_COLOR; Ctrl-C at an empty prompt exits 0', () => {
        const steps: Step[] = [{ expect: PROMPT, timeout: 30 }, { send: `Hi${ENTER}` }, { expect: `Hi\\n[\\s\\S]+\\n> $` }, { send: CTRL_C }, { exit: 10 }];
        const args = ['chat', ...greedy, '-n', '8', '--chat-template-file', thinking];
        const colored = atTerminal(args, steps);
        expect(colored.error).toBeNull();
        expect(colored.raw).toMatch(/Hi\r*\n\x1b\[2m[^\x1b]+\x1b\[22m/);
        expect(colored.output).not.toContain('[Start thinking]');
        expect(colored.exitCode).toBe(0);
        const plain = atTerminal(args, steps, { NO_COLOR: '1' });
        expect(plain.error).toBeNull();
        expect(plain.exitCode).toBe(0);
        expect(plain.raw).not.toContain('\x1b[2m');
        expect(plain.output).toMatch(/Hi\n\[Start thinking\]\n[\s\S]+\n\[End thinking\]\n\n\(stopped after 8 tokens: -n\)\n> \^C\n$/);
    });

    it('a conversation that outgrows the context: the reply ends with a note, or with --context-shift the oldest turns go', () => {
        const steps: Step[] = [{ expect: PROMPT, timeout: 30 }];
        for (let i = 0; i < 3; i++) steps.push({ send: `Tell me more please${ENTER}` }, { expect: 'please\\n[\\s\\S]+?\\n> $' });
        steps.push({ send: CTRL_D }, { exit: 10 });
        // Qwen's system prompt and two turns of 40 tokens fill most of 160 tokens.
        const args = ['chat', ...greedy, '-c', '160', '-n', '40'];
        const full = atTerminal(args, steps);
        expect(full.error).toBeNull();
        expect(full.steps.map((s) => s.match?.match(/\((stopped after|the context is full)[^\n]*\)/)?.[0])).toEqual([
            undefined, undefined, '(stopped after 40 tokens: -n)', undefined, '(stopped after 40 tokens: -n)', undefined, '(the context is full: /reset to start over, or a larger -c)', undefined, undefined,
        ]);
        const shifted = atTerminal([...args, '--context-shift'], steps);
        expect(shifted.error).toBeNull();
        expect(shifted.steps[6].match).toContain('(stopped after 40 tokens: -n)');
    });
});
