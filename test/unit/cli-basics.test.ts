// The CLI's basics without a model: `--` and `-h` in the flag parser, the prompt as an
// argument, the version, and the progress bar (a terminal stand-in with a fake clock).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HelpRequested, parseFlags, UsageError } from '../../lib/cli/flags/args.js';
import { promptFromArgs } from '../../lib/cli/flags/input.js';
import { embedFlags } from '../../lib/cli/commands/embed.js';
import { runFlags } from '../../lib/cli/commands/run.js';
import { progressBar, progressLine } from '../../lib/cli/format/progress.js';
import { packageVersion } from '../../lib/cli/version.js';

function thrown(fn: () => unknown): unknown {
    try {
        fn();
    } catch (error) {
        return error;
    }
    throw new Error('did not throw');
}

describe('parseFlags: -- and -h', () => {
    it('-- ends the flags: what follows is positional, dashes and all', () => {
        expect(parseFlags(['--', '-p'], runFlags)).toEqual({ flags: {}, positional: ['-p'] });
        expect(parseFlags(['-n', '4', '--', '-h', '--', '--json'], runFlags)).toEqual({ flags: { maxTokens: 4 }, positional: ['-h', '--', '--json'] });
        expect(parseFlags(['-m', 'e.gguf', 'a', '--', '-b'], embedFlags)).toEqual({ flags: { model: 'e.gguf' }, positional: ['a', '-b'] });
    });

    it("-h or --help is a flag's value where one is expected, and help elsewhere", () => {
        expect(parseFlags(['-p', '-h'], runFlags).flags).toEqual({ prompt: '-h' });
        expect(parseFlags(['--prompt', '--help', '-n', '2'], runFlags).flags).toEqual({ prompt: '--help', maxTokens: 2 });
        expect(parseFlags(['--prompt=-h'], runFlags).flags).toEqual({ prompt: '-h' });
        expect(parseFlags(['-p', '--'], runFlags).flags).toEqual({ prompt: '--' }); // a value, not the end of the flags
        for (const argv of [['-h'], ['--help'], ['-p', 'x', '-h'], ['--json', '--help', '--bogus']]) {
            const error = thrown(() => parseFlags(argv, runFlags));
            expect(error, argv.join(' ')).toBeInstanceOf(HelpRequested);
            expect(error).toBeInstanceOf(UsageError); // callers that know only UsageError still print the usage
        }
    });
});

describe('promptFromArgs', () => {
    it('takes the one argument as the prompt, and refuses it twice over', async () => {
        expect(await promptFromArgs({}, ['-p'])).toBe('-p');
        expect(await promptFromArgs({ prompt: 'from -p' }, [])).toBe('from -p');
        expect(await promptFromArgs({}, [])).toBeUndefined();
        await expect(promptFromArgs({ prompt: 'x' }, ['y'])).rejects.toThrow('give the prompt one way: as an argument or with -p/--prompt, not both');
        await expect(promptFromArgs({ file: 'f.txt' }, ['y'], 'message')).rejects.toThrow('give the message one way: as an argument or with -f/--file, not both');
        await expect(promptFromArgs({}, ['Once', 'upon'])).rejects.toThrow('unexpected argument "upon": the prompt is one argument (quote it: "Once upon")');
    });
});

describe('packageVersion', () => {
    it("is package.json's version", () => {
        const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
        expect(packageVersion()).toBe(version);
    });
});

/** A terminal stand-in: what was written, and a clock the test moves. */
function terminal(columns?: number) {
    const out: string[] = [];
    let t = 0;
    return {
        stream: { isTTY: true, columns, write: (s: string) => out.push(s) },
        now: () => t,
        tick: (ms: number) => void (t += ms),
        out,
    };
}

describe('progressBar', () => {
    it('draws one line with \\r, at most every intervalMs, 100% at once, and ends it on finish', () => {
        const term = terminal();
        const bar = progressBar({ stream: term.stream, now: term.now, width: 10 });
        bar.update(0.1, 'a');
        bar.update(0.2, 'a'); // held back: within 100 ms
        term.tick(50);
        bar.update(0.3, 'a'); // still held back
        term.tick(60);
        bar.update(0.4, 'a');
        bar.update(1, 'a'); // 100%: drawn at once
        bar.update(1, 'a'); // the same line: not drawn again
        bar.finish();
        expect(term.out).toEqual(['\r[#.........]  10% a\x1b[K', '\r[####......]  40% a\x1b[K', '\r[##########] 100% a\x1b[K', '\n']);
    });

    it('draws a held-back state at finish, erases on clear, and writes log lines above the bar', () => {
        const term = terminal();
        const bar = progressBar({ stream: term.stream, now: term.now, width: 4 });
        bar.update(null, 'step 1');
        bar.log('note\n');
        bar.update(null, 'step 2'); // held back
        bar.finish();
        bar.update(0.5);
        bar.clear();
        bar.clear(); // nothing on screen: nothing written
        expect(term.out).toEqual(['\rstep 1\x1b[K', '\r\x1b[Knote\n\rstep 1\x1b[K', '\rstep 2\x1b[K', '\n', '\r[##..]  50%\x1b[K', '\r\x1b[K']);
    });

    it('shows nothing for work done within delayMs, and cuts the line to the terminal width', () => {
        const term = terminal(14);
        const bar = progressBar({ stream: term.stream, now: term.now, delayMs: 250, width: 4 });
        bar.update(0.5, 'loading');
        bar.update(1, 'loading');
        bar.clear();
        bar.finish();
        expect(term.out).toEqual([]);
        term.tick(300);
        bar.update(0.5, 'loading a long name');
        expect(term.out).toEqual(['\r[##..]  50% l\x1b[K']);
    });

    it('writes nothing but log lines when the stream is not a terminal', () => {
        const out: string[] = [];
        const bar = progressBar({ stream: { write: (s: string) => out.push(s) } });
        bar.update(0.5, 'x');
        bar.update(1);
        bar.log('note\n');
        bar.finish();
        bar.clear();
        expect(out).toEqual(['note\n']);
    });

    it('formats a fraction as a bar and a whole percent, clamped', () => {
        expect([progressLine(0, '', 4), progressLine(0.999, 'x', 4), progressLine(2, '', 4), progressLine(Number.NaN, '', 4), progressLine(null, 'a\nb\x1b[2J')]).toEqual([
            '[....]   0%', '[####]  99% x', '[####] 100%', '[....]   0%', 'a b [2J',
        ]);
    });
});
