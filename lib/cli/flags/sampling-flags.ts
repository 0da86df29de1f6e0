/** The sampling flags of `run` and `chat`, named as llama.cpp names them. */
import type { FlagSpec, ParsedFlags } from './args.js';

export const samplingFlags: FlagSpec[] = [
    { names: ['--temp'], key: 'temperature', type: 'float', help: 'temperature, 0 = greedy (default 0.8)' },
    { names: ['--top-k'], key: 'topK', type: 'int', help: 'top-k (default 40)' },
    { names: ['--top-p'], key: 'topP', type: 'float', help: 'top-p (default 0.95)' },
    { names: ['--min-p'], key: 'minP', type: 'float', help: 'min-p (default 0.05)' },
    { names: ['--repeat-penalty'], key: 'repeatPenalty', type: 'float', help: 'repeat penalty (default 1)' },
    { names: ['--repeat-last-n'], key: 'repeatLastN', type: 'int', help: 'tokens the repeat penalty looks at (default 64)' },
    { names: ['-s', '--seed'], key: 'seed', type: 'int', help: 'sampling seed (default random)' },
];

/** The sampling options given on the command line, without the seed (each command says whose seed it is). */
export function samplingOptionsFromFlags(flags: ParsedFlags): {
    temperature?: number;
    topK?: number;
    topP?: number;
    minP?: number;
    repeatPenalty?: number;
    repeatLastN?: number;
} {
    const options = {
        temperature: flags.temperature as number | undefined,
        topK: flags.topK as number | undefined,
        topP: flags.topP as number | undefined,
        minP: flags.minP as number | undefined,
        repeatPenalty: flags.repeatPenalty as number | undefined,
        repeatLastN: flags.repeatLastN as number | undefined,
    };
    return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}
