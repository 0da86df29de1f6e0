// Chat templates as an attacker would write them: every hostile template rejects with
// TEMPLATE_FAILED within seconds and bounded memory (defaults.chat.templateLimits), an abort
// stops a long rendering promptly, and the process keeps working. Each hostile template runs in
// a child process (test/support/chat/hostile-child.mjs) so that a crash, a hang or a runaway
// allocation is reported as that case's failure instead of taking the runner (or the machine) down.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaError, LlamaModel } from '../../lib/index.js';
import { runCorpusChild } from '../support/child-batch.js';
import { fixtures, referenceChatApply } from '../support/fixtures.js';
import { root } from '../support/global-setup.js';

const runner = join(root, 'test', 'support', 'chat', 'hostile-child.mjs');
const dist = pathToFileURL(join(root, 'dist', 'index.js')).href;

/** "Within a few seconds": the limits trip long before this on any machine the tests run on. */
const PROMPT_MS = 5_000;
/** What the child may grow by: the text limit is 256 MiB; a few copies of that, not gigabytes. */
const MEMORY_CAP = 1.5 * 2 ** 30;

interface HostileOutcome {
    result: string;
    message?: string;
    ms?: number;
    msAfterAbort?: number;
    peakBytes?: number;
    after?: string;
}

/** Runs one template in a child; a crash, hang or runaway allocation comes back as `result`. */
function runHostile(template: string, extra: { abortAfterMs?: number } = {}): HostileOutcome {
    const run = runCorpusChild(runner, { model: fixtures.chat.qwen, template, safetyMs: 20_000, memoryCapBytes: MEMORY_CAP, ...extra }, { LLAMA_KV_DIST: dist }, 40_000);
    const line = run.results.get('case');
    if (line !== undefined) return JSON.parse(line) as HostileOutcome;
    if (run.timedOut) return { result: 'HANG (no answer in 40 s, the abort did not stop it)' };
    return { result: `CRASH (${run.signal ?? `exit ${run.status}`}): ${run.stderr.trim().split('\n').slice(-3).join(' | ')}` };
}

const NORMAL = '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n';

const HOSTILE: { name: string; template: string; message: RegExp }[] = [
    {
        name: 'nested range loops of 1e9 iterations',
        template: '{%- for a in range(1000) -%}{%- for b in range(1000) -%}{%- for c in range(1000) -%}{%- endfor -%}{%- endfor -%}{%- endfor -%}',
        message: /ran more than 5000000 steps/,
    },
    {
        name: 'nested loops of 1e9 iterations over one list',
        template: '{%- set xs = range(1000) -%}{%- for a in xs -%}{%- for b in xs -%}{%- for c in xs -%}{%- endfor -%}{%- endfor -%}{%- endfor -%}',
        message: /ran more than 5000000 steps/,
    },
    {
        name: 'unbounded macro recursion',
        template: '{%- macro f(n) -%}{{ f(n + 1) }}{%- endmacro -%}{{ f(0) }}',
        message: /nests deeper than 400 levels/,
    },
    {
        name: 'a string doubled 40 times',
        template: "{%- set ns = namespace(s='x') -%}{%- for i in range(40) -%}{%- set ns.s = ns.s ~ ns.s -%}{%- endfor -%}{{ ns.s }}",
        message: /built more than 268435456 bytes/,
    },
    {
        name: 'a string repeated 1e12 times',
        template: "{{ 'x' * 1000000000000 }}",
        message: /built more than 268435456 bytes|ran more than 5000000 steps/,
    },
    {
        name: 'source nested 100k levels of parentheses',
        template: `{{ ${'('.repeat(100_000)}1${')'.repeat(100_000)} }}`,
        message: /nests deeper than 400 levels/,
    },
    {
        name: 'source nested 100k levels of if blocks',
        template: `${'{% if true %}'.repeat(100_000)}x${'{% endif %}'.repeat(100_000)}`,
        message: /nests deeper than 400 levels/,
    },
    {
        name: 'source of 100k chained conditional expressions',
        template: `{{ ${'1 if false else '.repeat(100_000)}1 }}`,
        message: /nests deeper than 400 levels/,
    },
    {
        name: 'a sum of 100k terms',
        template: `{{ ${'1 + '.repeat(100_000)}1 }}`,
        message: /chains more than 400 operations/,
    },
    // Found in review:
    {
        name: 'a sum of 300k terms (an AST whose release would recurse)',
        template: `{{ 1${'+1'.repeat(300_000)} }}`,
        message: /chains more than 400 operations/,
    },
    {
        name: '300k chained calls',
        template: `{{ x${'()'.repeat(300_000)} }}`,
        message: /nests deeper than 400 levels/,
    },
    {
        name: 'an array that holds itself, turned into JSON',
        template: '{%- set a = [] -%}{%- set _ = a.append(a) -%}{{ a | tojson }}',
        message: /nests deeper than 400 levels/,
    },
    {
        name: 'values nested 200k levels deep (released without recursion)',
        template: '{%- set ns = namespace(a=[]) -%}{%- for i in range(200000) -%}{%- set ns.a = [ns.a] -%}{%- endfor -%}x',
        message: /ran more than 5000000 steps/,
    },
    {
        name: 'an empty string repeated 1e18 times',
        template: "{{ ('x' * 0) * 1000000000000000000 }}",
        message: /ran more than 5000000 steps/,
    },
    {
        name: 'an indent of 12e9 spaces',
        template: "{{ 'a' | indent(12000000000) }}",
        message: /built more than 268435456 bytes/,
    },
    {
        name: 'replace chained to a gigabyte',
        template: `{{ 'a'${'|replace("a", "aaaaaaaaaa")'.repeat(9)} }}`,
        message: /built more than 268435456 bytes/,
    },
    {
        name: 'an array doubled 30 times',
        template: '{%- set ns = namespace(a=[1]) -%}{%- for i in range(30) -%}{%- set ns.a = ns.a + ns.a -%}{%- endfor -%}x',
        message: /ran more than 5000000 steps/,
    },
    {
        name: 'range(10**12)',
        template: '{%- for i in range(1000000000000) -%}{%- endfor -%}',
        message: /ran more than 5000000 steps/,
    },
];

describe('hostile chat templates', () => {
    it.each(HOSTILE)('$name: TEMPLATE_FAILED within seconds, bounded memory, the process keeps working', ({ template, message }) => {
        const out = runHostile(template);
        expect(out.result, out.message).toBe('error:TEMPLATE_FAILED');
        expect(out.message).toMatch(message);
        expect(out.ms).toBeLessThan(PROMPT_MS);
        expect(out.peakBytes).toBeLessThan(MEMORY_CAP);
        expect(out.after).toBe(NORMAL);
    });

    it.each([
        ['a loop that prints', '{%- for i in range(1000000) -%}{{ i }}{%- endfor -%}'],
        ['an empty loop over a list', '{%- set xs = range(4000000) -%}{%- for x in xs -%}{%- endfor -%}'],
    ])('an abort stops %s promptly: ABORTED', (_name, template) => {
        // Both stay inside the limits (under 5e6 steps) but run for minutes.
        const out = runHostile(template, { abortAfterMs: 300 });
        expect(out.result, out.message).toBe('error:ABORTED');
        expect(out.ms).toBeGreaterThanOrEqual(300); // it was still running when aborted
        expect(out.msAfterAbort).toBeLessThan(1_000);
        expect(out.after).toBe(NORMAL);
    });
});

describe('templates that fail', () => {
    let model: LlamaModel;
    const work = mkdtempSync(join(tmpdir(), 'llama-kv-chat-limits-'));
    beforeAll(async () => {
        model = await LlamaModel.load({ path: fixtures.chat.qwen, gpu: false });
    });
    afterAll(() => {
        model.dispose();
        rmSync(work, { recursive: true, force: true });
    });

    /** Our error for `template`, and llama.cpp's (the reference program's) for the same file. */
    async function bothErrors(template: string): Promise<{ ours: LlamaError; reference: string }> {
        const file = join(work, 'template.jinja');
        writeFileSync(file, template);
        const [ref] = referenceChatApply(fixtures.chat.qwen, file, [{ messages: [{ role: 'user', content: 'Hello' }], add_generation_prompt: true }]);
        expect(ref).toHaveProperty('error');
        let ours: unknown;
        try {
            await model.applyChatTemplate([{ role: 'user', content: 'Hello' }], { template });
        } catch (error) {
            ours = error;
        }
        expect(ours).toBeInstanceOf(LlamaError);
        return { ours: ours as LlamaError, reference: (ref as { error: string }).error };
    }

    it("one that does not parse: TEMPLATE_FAILED with llama.cpp's message", async () => {
        const { ours, reference } = await bothErrors('{% for message in messages %}{{ message.content }}{% endfo %}');
        expect(ours.code).toBe('TEMPLATE_FAILED');
        expect(reference).not.toBe('std::exception');
        expect(reference.length).toBeGreaterThan(10);
        expect(ours.message).toContain(reference);
        expect(ours.message).not.toMatch(/std::exception/);
    });

    it("one that raises while rendering: TEMPLATE_FAILED with the template's message", async () => {
        const { ours, reference } = await bothErrors("{{ raise_exception('Only user messages, please') }}");
        expect(ours.code).toBe('TEMPLATE_FAILED');
        expect(reference).toContain('Only user messages, please');
        expect(ours.message).toContain(reference);
    });

    it('after failures and hostile templates in this process, rendering still works', async () => {
        for (const template of ['{%- macro f(n) -%}{{ f(n + 1) }}{%- endmacro -%}{{ f(0) }}', `{{ ${'('.repeat(100_000)}1${')'.repeat(100_000)} }}`, '{% if %}']) {
            const error = await model.applyChatTemplate([{ role: 'user', content: 'Hello' }], { template }).catch((e: unknown) => e);
            expect((error as LlamaError).code).toBe('TEMPLATE_FAILED');
        }
        expect(await model.applyChatTemplate([{ role: 'user', content: 'Hello' }])).toBe(NORMAL);
    });
});
