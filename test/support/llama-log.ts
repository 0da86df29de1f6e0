// llama.cpp's own log lines, captured through setLogger, as the reference for the memory
// report: "<scope>: <buffer> <what> buffer size = X MiB" and "graph splits = N".
import { setLogger } from '../../lib/index.js';

const MIB = 1024 * 1024;

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

/**
 * The log's MiB per device of the report: a buffer named after a device is that device's;
 * every other one (CPU, CPU_Mapped, CPU_REPACK, AMX, pinned <Backend>_Host) is host memory,
 * which the report counts on the CPU. Also the number of lines, for the rounding allowance.
 */
export function linesPerDevice(lines: readonly string[], what: BufferKind, deviceNames: readonly string[]): Map<string, { mib: number; lines: number }> {
    const out = new Map<string, { mib: number; lines: number }>();
    for (const [name, mib] of bufferLines(lines, what)) {
        const device = deviceNames.includes(name) ? name : 'CPU';
        const entry = out.get(device) ?? { mib: 0, lines: 0 };
        out.set(device, { mib: entry.mib + mib, lines: entry.lines + 1 });
    }
    return out;
}

/** Whether `bytes` is what llama.cpp printed as `mib` (two decimals per line). */
export function sameAsLogged(bytes: number, logged: { mib: number; lines: number } | undefined): boolean {
    const mib = logged?.mib ?? 0;
    return Math.abs(bytes / MIB - mib) <= 0.005 * Math.max(1, logged?.lines ?? 1) + 1e-9;
}

/** llama.cpp's "graph splits = N" of the last context created. */
export function graphSplits(lines: readonly string[]): number {
    return Number(/graph splits = (\d+)/.exec(lines.filter((l) => l.includes('graph splits')).at(-1) ?? '')?.[1]);
}
