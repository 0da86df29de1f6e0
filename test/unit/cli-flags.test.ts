import { describe, expect, it } from 'vitest';
import { parseFlags, suggestFlag, UsageError } from '../../lib/cli/flags/args.js';
import { runFlags } from '../../lib/cli/commands/run.js';

function unknownFlag(argv: string[]): string {
    try {
        parseFlags(argv, runFlags);
    } catch (error) {
        expect(error).toBeInstanceOf(UsageError);
        return (error as Error).message;
    }
    throw new Error('did not throw');
}

describe('CLI flags', () => {
    it("suggests the flag for llama.cpp's names and near-misses", () => {
        expect(unknownFlag(['--ctx', '512'])).toBe('unknown flag --ctx; did you mean -c/--ctx-size?');
        expect(unknownFlag(['--ctk', 'q8_0'])).toBe('unknown flag --ctk; did you mean -ctk/--cache-type-k?');
        expect(unknownFlag(['--ctv', 'q8_0'])).toBe('unknown flag --ctv; did you mean -ctv/--cache-type-v?');
        const cases: [string, string][] = [
            ['--n-ctx', '-c'], ['--context-size', '-c'], ['--ctx_size', '-c'], ['-ctx-size', '-c'], ['--predict', '-n'], ['--max-tokens', '-n'],
            ['--n-gpu-layers', '-ngl'], ['--ngl', '-ngl'], ['--temperature', '--temp'], ['--flash-attention', '-fa'], ['--fa', '-fa'],
            ['--batch', '-b'], ['--np', '-np'], ['--n-parallel', '-np'], ['--topk', '--top-k'], ['--top_p', '--top-p'], ['--repeat-penalt', '--repeat-penalty'],
        ];
        for (const [typed, flag] of cases) expect(suggestFlag(typed, runFlags)?.names[0], typed).toBe(flag);
    });

    it("takes llama.cpp's -f/--file (one prompt read from a file) and --prompts-file (one prompt per line)", () => {
        expect(parseFlags(['-f', 'prompt.txt'], runFlags).flags).toEqual({ file: 'prompt.txt' });
        expect(parseFlags(['--prompts-file', 'a.txt', '-np', '2'], runFlags).flags).toEqual({ promptsFile: 'a.txt', parallel: 2 });
    });

    it('says nothing when no flag is close', () => {
        expect(unknownFlag(['--zzzzzz'])).toBe('unknown flag --zzzzzz');
        expect(suggestFlag('--frobnicate', runFlags)).toBeUndefined();
    });
});
