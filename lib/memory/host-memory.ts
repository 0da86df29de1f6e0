/**
 * How much host memory a new allocation can get, from what the operating system says:
 * available RAM and swap, the cgroup's limit (containers), and this process's
 * address-space and data-size limits (ulimit -v / -d). Read fresh on every call: the
 * figures change as other processes run.
 */
import { readFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';

/** One limit on host allocations, and the bytes left under it. */
export interface HostMemoryLimit {
    /**
     * 'system': available RAM (MemAvailable) plus free swap (Linux); 'physical': the machine's RAM
     * (elsewhere: see {@link getHostMemory}); 'cgroup': the container's memory limit;
     * 'address-space' / 'data-size': this process's RLIMIT_AS / RLIMIT_DATA.
     */
    source: 'system' | 'physical' | 'cgroup' | 'address-space' | 'data-size';
    /** Bytes an allocation can still take under this limit. */
    availableBytes: number;
}

/** The limits in force, tightest first. */
export interface HostMemory {
    /** Bytes the tightest limit leaves: what one more allocation can take at most. */
    availableBytes: number;
    /** Every limit that applies, tightest first. */
    limits: HostMemoryLimit[];
}

function read(path: string): string | null {
    try {
        return readFileSync(path, 'utf8');
    } catch {
        return null;
    }
}

/** A `Name:  123 kB` field of /proc/meminfo or /proc/self/status, in bytes. */
function kbField(text: string | null, name: string): number | null {
    const m = text?.match(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm'));
    return m ? Number(m[1]) * 1024 : null;
}

/** A finite byte count, or null for "max", "unlimited", absurd values or a missing file. */
function bytes(text: string | null): number | null {
    const t = text?.trim();
    if (!t || !/^\d+$/.test(t)) return null;
    const n = Number(t);
    // cgroup v1 writes "no limit" as a page-rounded 2^63.
    return n >= 2 ** 60 ? null : n;
}

/** The soft limit of an rlimit row of /proc/self/limits, in bytes, or null when unlimited. */
function rlimit(limits: string | null, row: string): number | null {
    const m = limits?.match(new RegExp(`^${row}\\s+(\\S+)`, 'm'));
    return m && m[1] !== 'unlimited' ? bytes(m[1]) : null;
}

/** A cgroup's unused memory: limit minus usage, not counting page cache it can reclaim. */
function cgroupAvailable(): number | null {
    // v2 (the unified hierarchy mounted at /sys/fs/cgroup, as seen from inside the cgroup).
    let limit = bytes(read('/sys/fs/cgroup/memory.max'));
    let usage = bytes(read('/sys/fs/cgroup/memory.current'));
    let stat = read('/sys/fs/cgroup/memory.stat');
    let inactive = stat?.match(/^inactive_file (\d+)$/m);
    if (limit === null) {
        // v1.
        limit = bytes(read('/sys/fs/cgroup/memory/memory.limit_in_bytes'));
        usage = bytes(read('/sys/fs/cgroup/memory/memory.usage_in_bytes'));
        stat = read('/sys/fs/cgroup/memory/memory.stat');
        inactive = stat?.match(/^total_inactive_file (\d+)$/m);
    }
    if (limit === null || usage === null) return null;
    return Math.max(0, limit - Math.max(0, usage - (inactive ? Number(inactive[1]) : 0)));
}

/**
 * The host memory a new allocation can get now: what LlamaModel.load and LlamaContext
 * check their estimate against. On Linux: MemAvailable plus free swap, the cgroup's
 * limit, RLIMIT_AS and RLIMIT_DATA; on other systems the machine's RAM (os.totalmem()).
 *
 * @example
 * const { availableBytes, limits } = getHostMemory();
 */
export function getHostMemory(): HostMemory {
    const limits: HostMemoryLimit[] = [];
    if (process.platform === 'linux') {
        const meminfo = read('/proc/meminfo');
        const available = kbField(meminfo, 'MemAvailable') ?? freemem();
        limits.push({ source: 'system', availableBytes: available + (kbField(meminfo, 'SwapFree') ?? 0) });
        const cgroup = cgroupAvailable();
        if (cgroup !== null) limits.push({ source: 'cgroup', availableBytes: cgroup });
        const procLimits = read('/proc/self/limits');
        const status = read('/proc/self/status');
        const as = rlimit(procLimits, 'Max address space');
        const vmSize = kbField(status, 'VmSize');
        if (as !== null && vmSize !== null) limits.push({ source: 'address-space', availableBytes: Math.max(0, as - vmSize) });
        const data = rlimit(procLimits, 'Max data size');
        const vmData = kbField(status, 'VmData');
        if (data !== null && vmData !== null) limits.push({ source: 'data-size', availableBytes: Math.max(0, data - vmData) });
    } else {
        // os.freemem() is no measure there: macOS counts only never-used pages (a few hundred
        // MiB while gigabytes are reclaimable), and Windows fails an allocation past its commit
        // limit cleanly, without an overcommit killer. Only what exceeds the RAM is refused.
        limits.push({ source: 'physical', availableBytes: totalmem() });
    }
    limits.sort((a, b) => a.availableBytes - b.availableBytes);
    return { availableBytes: limits[0].availableBytes, limits };
}

/** Words for a limit's source, for messages. @internal */
export function describeLimit(source: HostMemoryLimit['source']): string {
    switch (source) {
        case 'system':
            return 'available RAM and swap';
        case 'physical':
            return "the machine's RAM";
        case 'cgroup':
            return "the cgroup's (container's) memory limit";
        case 'address-space':
            return "this process's address-space limit (ulimit -v)";
        case 'data-size':
            return "this process's data-size limit (ulimit -d)";
    }
}
