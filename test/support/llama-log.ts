// llama.cpp's own log lines, captured through setLogger, as the reference for the memory
// report: "<scope>: <buffer> <what> buffer size = X MiB" and "graph splits = N".
import { setLogger } from '../../lib/index.js';

/** Captures llama.cpp's log (info and up) into an array; call the returned stop() to end it. */
export function captureLlamaLog(): { lines: string[]; stop: () => void } {
    const lines: string[] = [];
    setLogger((_level, message) => lines.push(message), { level: 'info' });
    return { lines, stop: () => setLogger(null) };
}

export type BufferKind = 'model' | 'KV' | 'compute' | 'output';

/** The MiB of each "<buffer> <what> buffer size = X MiB" line, by buffer name: the last one when a name repeats (llama.cpp prints the compute buffers at each reserve). */
export function bufferLines(lines: readonly string[], what: BufferKind): Map<string, number> {
    const out = new Map<string, number>();
    const re = new RegExp(`^\\w+:\\s+(\\S+)\\s+${what} buffer size =\\s+([\\d.]+) MiB`);
    for (const line of lines) {
        const m = re.exec(line.trim());
        if (m) out.set(m[1], Number(m[2]));
    }
    return out;
}

/** llama.cpp's "graph splits = N" of the last context created. */
export function graphSplits(lines: readonly string[]): number {
    return Number(/graph splits = (\d+)/.exec(lines.filter((l) => l.includes('graph splits')).at(-1) ?? '')?.[1]);
}
