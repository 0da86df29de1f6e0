import { basename } from 'node:path';
import type { ReadStream, WriteStream } from 'node:tty';
import { LlamaChatSession } from '../../chat/session.js';
import { chatPromptOptionsSchema, type ChatPromptOptions } from '../../options/chat-options.js';
import { parseOptions } from '../../options/validate.js';
import { LlamaContext } from '../../context/context.js';
import { ensureFixtureModel } from '../../demo/models.js';
import { setLogger } from '../../logger.js';
import { loadModel } from '../flags/load-model.js';
import { chatCommandsHelp, chatInteractively } from '../chat/interactive.js';
import { formatTimings, ReplyWriter } from '../chat/reply.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec, type ParsedFlags } from '../flags/args.js';
import { contextFlags, contextOptionsFromFlags } from '../flags/context-flags.js';
import { grammarFlags, grammarOptionsFromFlags } from '../flags/grammar-flags.js';
import { promptFromArgs, readFlagFile, readStdin, withoutFinalNewline } from '../flags/input.js';
import { modelFlags, modelOptionsFromFlags } from '../flags/model-flags.js';
import { samplingFlags, samplingOptionsFromFlags } from '../flags/sampling-flags.js';
import { inFlagNames } from '../format/flag-names.js';

export const chatFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'string', help: 'GGUF model file (default: the built-in demo model)' },
    { names: ['-p', '--prompt'], key: 'prompt', type: 'string', help: 'the message: print the reply and exit (so does a message on stdin, or -f)' },
    { names: ['-f', '--file'], key: 'file', type: 'string', help: 'file holding the message, without its final line break; instead of -p' },
    { names: ['-sys', '--system-prompt'], key: 'systemPrompt', type: 'string', help: 'system prompt (default none)' },
    { names: ['-sysf', '--system-prompt-file'], key: 'systemPromptFile', type: 'string', help: 'file holding the system prompt, without its final line break' },
    { names: ['--chat-template-file'], key: 'chatTemplateFile', type: 'string', help: "Jinja chat template to use instead of the model's" },
    { names: ['-rea', '--reasoning'], key: 'reasoning', type: 'string', help: 'on | off | auto: whether a thinking model thinks (enable_thinking; default auto, which is on)' },
    { names: ['-n', '--n-predict'], key: 'maxTokens', type: 'int', help: 'most tokens per reply (default 256)' },
    { names: ['--context-shift'], key: 'contextShift', type: 'bool', help: 'when the conversation outgrows the context, drop its oldest turns and go on (default: the reply ends)' },
    ...contextFlags,
    ...modelFlags,
    { names: ['-t', '--threads'], key: 'threads', type: 'int', help: 'threads (default: number of CPUs)' },
    ...samplingFlags,
    ...grammarFlags,
    { names: ['--json'], key: 'json', type: 'bool', help: 'with a message (-p, -f, stdin): print the whole result as one JSON object' },
    { names: ['--verbose'], key: 'verbose', type: 'bool', help: "show llama.cpp's info log on stderr" },
];

export const chatUsage =
    'usage: llama-kv chat [-m model.gguf] [-sys PROMPT] [-p MESSAGE | [--] MESSAGE | -f FILE | < MESSAGE] [--chat-template-file t.jinja] [-rea on|off|auto] [-n 256] ' +
    `[-c 4096] [-ctk q8_0 -ctv q4_0] [--temp 0.8] [--grammar-file F | -j SCHEMA] [--json]\n${flagHelp(chatFlags)}\n` +
    'On a terminal, without a message: a conversation at the "> " prompt; the reply streams as it is generated, a\n' +
    "thinking model's reasoning dimmed (with NO_COLOR set: between [Start thinking] and [End thinking] lines). Commands:\n" +
    chatCommandsHelp.replace(/^/gm, '  ') +
    '\nWith a message (-p, the one argument, -f, or stdin when it is not a terminal): the reply on stdout, the reasoning on\n' +
    'stderr, then a timing line on stderr; exit code 0. After --, the argument may start with a dash: chat -- "-h?"';

export async function chat(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, chatFlags);
    if (typeof flags.systemPrompt === 'string' && typeof flags.systemPromptFile === 'string') {
        throw new UsageError('-sys/--system-prompt and -sysf/--system-prompt-file cannot be used together');
    }
    // Everything read before the model loads: a bad file fails at once.
    const systemPrompt =
        typeof flags.systemPromptFile === 'string' ? withoutFinalNewline(await readFlagFile('-sysf/--system-prompt-file', flags.systemPromptFile)) : (flags.systemPrompt as string | undefined);
    const template = typeof flags.chatTemplateFile === 'string' ? await readFlagFile('--chat-template-file', flags.chatTemplateFile) : undefined;
    const options: ChatPromptOptions = {
        ...(typeof flags.maxTokens === 'number' ? { maxTokens: flags.maxTokens } : {}),
        ...samplingOptionsFromFlags(flags),
        ...(typeof flags.seed === 'number' ? { seed: flags.seed } : {}),
        ...(await grammarOptionsFromFlags(flags)),
        ...reasoningOption(flags),
        ...(flags.contextShift === true ? { onContextFull: 'shift' as const } : {}),
    };
    // A bad value (--temp -1) fails now, with the API's message, not at the first message typed.
    parseOptions(chatPromptOptionsSchema, options, 'prompt()');
    const given = typeof flags.prompt === 'string' || typeof flags.file === 'string' || positional.length > 0;
    const interactive = !given && process.stdin.isTTY === true && process.stdout.isTTY === true;
    const message = interactive ? undefined : ((await promptFromArgs(flags, positional, 'message')) ?? (await messageFromStdin()));
    if (interactive && flags.json) throw new UsageError('--json needs a message (-p, -f or stdin): a conversation on the terminal streams its replies');
    setLogger((level, text) => process.stderr.write(`[${level}] ${inFlagNames(text, chatFlags)}\n`), { level: flags.verbose ? 'info' : 'warn' });

    const path = typeof flags.model === 'string' ? flags.model : await ensureFixtureModel('tiny-q8_0');
    const model = await loadModel({ path, ...modelOptionsFromFlags(flags) });
    try {
        const context = new LlamaContext({ model, ...contextOptionsFromFlags(flags), threads: flags.threads as number | undefined });
        const session = new LlamaChatSession({ context, ...(systemPrompt !== undefined ? { systemPrompt } : {}), ...(template !== undefined ? { template } : {}) });
        try {
            if (message === undefined) {
                const config = context.config;
                const banner =
                    `llama-kv chat: ${basename(path)} | context ${config.contextSize}, kv ${config.cacheTypeK}/${config.cacheTypeV}` +
                    ' | /help for commands, Ctrl-C stops a reply, Ctrl-D exits';
                return await chatInteractively(session, options, {
                    input: process.stdin as ReadStream,
                    output: process.stdout as WriteStream,
                    errors: process.stderr,
                    banner,
                });
            }
            return await replyOnce(session, message, options, flags.json === true);
        } finally {
            session.dispose();
        }
    } finally {
        model.dispose();
    }
}

/** One message, one reply: streamed to stdout (reasoning to stderr), or as one JSON object with --json. Ctrl-C stops it. */
async function replyOnce(session: LlamaChatSession, message: string, options: ChatPromptOptions, json: boolean): Promise<number> {
    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once('SIGINT', onSigint);
    try {
        if (json) {
            const result = await session.prompt(message, { ...options, signal: controller.signal });
            process.stdout.write(JSON.stringify(result) + '\n');
            return 0;
        }
        const writer = new ReplyWriter({ stream: process.stdout, terminal: process.stdout.isTTY === true }, { stream: process.stderr, terminal: process.stderr.isTTY === true });
        const stream = session.promptStream(message, { ...options, signal: controller.signal });
        for await (const delta of stream) writer.push(delta);
        const result = await stream.result;
        writer.end('always');
        process.stderr.write(formatTimings(result) + '\n');
        return 0;
    } finally {
        process.off('SIGINT', onSigint);
    }
}

/** The message piped to stdin (without its final line break); an empty one is a usage error. */
async function messageFromStdin(): Promise<string> {
    const text = withoutFinalNewline(await readStdin());
    if (text.trim() === '') throw new UsageError('-p/--prompt, -f/--file or a message on stdin is required (stdin held none); on a terminal, chat starts a conversation');
    return text;
}

function reasoningOption(flags: ParsedFlags): Pick<ChatPromptOptions, 'enableThinking'> {
    const value = flags.reasoning;
    if (value === undefined || value === 'auto') return {};
    if (value === 'on') return { enableThinking: true };
    if (value === 'off') return { enableThinking: false };
    throw new UsageError(`-rea/--reasoning expects on, off or auto but received "${String(value)}"`);
}
