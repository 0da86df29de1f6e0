/**
 * How much host memory a new allocation can get, from what the operating system says:
 * available RAM and swap, the cgroup's limit (containers: this process's own cgroup and its
 * parents, cross-checked with process.constrainedMemory()), and this process's address-space
 * and data-size limits (ulimit -v / -d). Read fresh on every call: the figures change as other
 * processes run.
 */
import { readFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { join, posix } from 'node:path';

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
    /** For 'cgroup': the limit itself, in bytes (what the cgroup may use in all). */
    limitBytes?: number;
    /**
     * For 'cgroup': where the limit was read: the file (`/sys/fs/cgroup/<path>/memory.max`, or
     * cgroup v1's `/sys/fs/cgroup/memory/<path>/memory.limit_in_bytes`, of this process's
     * cgroup or the parent that is tightest), or `process.constrainedMemory()` when Node's
     * figure is smaller than any file shows.
     */
    from?: string;
}

/** The limits in force, tightest first. */
export interface HostMemory {
    /** Bytes the tightest limit leaves: what one more allocation can take at most. */
    availableBytes: number;
    /** Every limit that applies, tightest first. */
    limits: HostMemoryLimit[];
}

/**
 * What the host memory is read from: the files of /proc and /sys, and Node's own view of the
 * cgroup limit. {@link getHostMemory} reads the real ones; tests give a tree of files. @internal
 */
export interface HostProbe {
    /** A file's text by its absolute path, or null when it cannot be read. Never throws. */
    readFile(path: string): string | null;
    /** `process.constrainedMemory()`: the limit libuv finds, or 0, undefined or a huge number when none. */
    constrainedMemory(): number | undefined;
}

/**
 * A probe that reads the absolute paths under `root` (`/` for the real files; a directory
 * holding `proc/self/cgroup` and `sys/fs/cgroup/...` in tests). @internal
 */
export function fileProbe(root = '/', constrainedMemory: () => number | undefined = nodeConstrainedMemory): HostProbe {
    return {
        readFile(path) {
            try {
                return readFileSync(join(root, path), 'utf8');
            } catch {
                return null;
            }
        },
        constrainedMemory,
    };
}

/** process.constrainedMemory() where Node has it (>= 19.6), else undefined. */
function nodeConstrainedMemory(): number | undefined {
    const fn = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory;
    try {
        return typeof fn === 'function' ? fn.call(process) : undefined;
    } catch {
        return undefined;
    }
}

/** A `Name:  123 kB` field of /proc/meminfo or /proc/self/status, in bytes. */
function kbField(text: string | null, name: string): number | null {
    const m = text?.match(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm'));
    return m ? Number(m[1]) * 1024 : null;
}

/** A real limit in bytes: finite, positive and below 2^60 (cgroup v1 writes "no limit" as a page-rounded 2^63, libuv as 2^64). */
function realLimit(n: number | null | undefined): n is number {
    return typeof n === 'number' && Number.isFinite(n) && n > 0 && n < 2 ** 60;
}

/** A finite byte count, or null for "max", "unlimited", absurd values or a missing file. */
function bytes(text: string | null): number | null {
    const t = text?.trim();
    if (!t || !/^\d+$/.test(t)) return null;
    const n = Number(t);
    return n < 2 ** 60 ? n : null;
}

/** The soft limit of an rlimit row of /proc/self/limits, in bytes, or null when unlimited. */
function rlimit(limits: string | null, row: string): number | null {
    const m = limits?.match(new RegExp(`^${row}\\s+(\\S+)`, 'm'));
    return m && m[1] !== 'unlimited' ? bytes(m[1]) : null;
}

/** The files of one cgroup version's memory controller. */
interface CgroupLayout {
    mount: string;
    limit: string;
    usage: string;
    /** The memory.stat row of page cache the kernel reclaims before it refuses memory. */
    inactive: string;
}

const V2: CgroupLayout = { mount: '/sys/fs/cgroup', limit: 'memory.max', usage: 'memory.current', inactive: 'inactive_file' };
const V1: CgroupLayout = { mount: '/sys/fs/cgroup/memory', limit: 'memory.limit_in_bytes', usage: 'memory.usage_in_bytes', inactive: 'total_inactive_file' };

/** Deeper paths than this in /proc/self/cgroup are not walked (a real one has a handful of levels). */
const MAX_CGROUP_DEPTH = 64;

/**
 * This process's cgroup paths from /proc/self/cgroup: the v2 line `0::/path` and the v1 line
 * whose controllers include `memory` (`4:memory:/path`). A path that leaves the namespace
 * (`/..`, a cgroup outside this container's view) or that no line gives is null.
 */
function ownCgroupPaths(text: string | null): { v2: string[] | null; v1: string[] | null } {
    let v2: string[] | null = null;
    let v1: string[] | null = null;
    for (const line of text?.split('\n') ?? []) {
        const first = line.indexOf(':');
        const second = line.indexOf(':', first + 1);
        if (first < 0 || second < 0) continue;
        const id = line.slice(0, first);
        const controllers = line.slice(first + 1, second);
        const segments = line.slice(second + 1).split('/').filter((s) => s !== '' && s !== '.');
        const path = segments.includes('..') || segments.length > MAX_CGROUP_DEPTH ? null : segments;
        if (id === '0' && controllers === '') v2 = path;
        else if (controllers.split(',').includes('memory')) v1 = path;
    }
    return { v2, v1 };
}

/** One cgroup's limit and the bytes left under it. */
interface CgroupLevel {
    limitBytes: number;
    /** The limit less what the cgroup uses, reclaimable page cache not counted; the limit when usage cannot be read. */
    availableBytes: number;
    /** The limit's file. */
    from: string;
}

/** What the cgroup in `dir` uses, reclaimable page cache not counted, or null when its usage file cannot be read. */
function usedBytes(probe: HostProbe, layout: CgroupLayout, dir: string): number | null {
    const usage = bytes(probe.readFile(posix.join(dir, layout.usage)));
    if (usage === null) return null;
    const inactive = probe.readFile(posix.join(dir, 'memory.stat'))?.match(new RegExp(`^${layout.inactive} (\\d+)$`, 'm'));
    return Math.max(0, usage - (inactive ? Number(inactive[1]) : 0));
}

/** The cgroup at `segments` under `layout.mount` and each parent up to the mount's root, deepest first; those without a limit left out. */
function cgroupLevels(probe: HostProbe, layout: CgroupLayout, segments: string[] | null): CgroupLevel[] {
    const levels: CgroupLevel[] = [];
    const path = segments ?? [];
    for (let depth = path.length; depth >= 0; depth--) {
        const dir = posix.join(layout.mount, ...path.slice(0, depth));
        const file = posix.join(dir, layout.limit);
        const limit = bytes(probe.readFile(file));
        if (limit === null || limit === 0) continue;
        const used = usedBytes(probe, layout, dir);
        levels.push({ limitBytes: limit, availableBytes: used === null ? limit : Math.max(0, limit - used), from: file });
    }
    return levels;
}

/**
 * The cgroup limit on this process, or null when none is set: this process's own cgroup
 * (from /proc/self/cgroup; v2 `memory.max`, else v1 `memory.limit_in_bytes`) and each parent up
 * to the root, each limit less that cgroup's usage; the tightest wins (usually the smallest
 * limit, but a parent shared with siblings can have less room left than a larger child's).
 * process.constrainedMemory() is taken when it is a real limit smaller than any of them (a
 * cgroup whose files are not where /proc/self/cgroup says), with the own cgroup's usage.
 * Garbage or missing files count as no limit; it never throws. @internal
 */
export function readCgroupMemory(probe: HostProbe): { limitBytes: number; availableBytes: number; from: string } | null {
    const paths = ownCgroupPaths(probe.readFile('/proc/self/cgroup'));
    const levels = [...cgroupLevels(probe, V2, paths.v2), ...cgroupLevels(probe, V1, paths.v1)];
    const tightest = levels.reduce<CgroupLevel | null>((min, l) => (min === null || l.availableBytes < min.availableBytes ? l : min), null);
    const constrained = probe.constrainedMemory();
    const smallest = Math.min(...levels.map((l) => l.limitBytes));
    if (realLimit(constrained) && constrained < smallest) {
        // Node's limit is below every file's: its usage is the own cgroup's, as far as a file shows it.
        const own = ownUsage(probe, V2, paths.v2) ?? ownUsage(probe, V1, paths.v1);
        const available = own === null ? constrained : Math.max(0, constrained - own);
        if (tightest === null || available < tightest.availableBytes) {
            return { limitBytes: constrained, availableBytes: available, from: 'process.constrainedMemory()' };
        }
    }
    return tightest === null ? null : { limitBytes: tightest.limitBytes, availableBytes: tightest.availableBytes, from: tightest.from };
}

/** What this process's own cgroup uses (see {@link usedBytes}), or null when /proc/self/cgroup gives no path or the file cannot be read. */
function ownUsage(probe: HostProbe, layout: CgroupLayout, segments: string[] | null): number | null {
    return segments === null ? null : usedBytes(probe, layout, posix.join(layout.mount, ...segments));
}

/**
 * {@link getHostMemory} from `probe` on `platform`: what the tests call with a tree of files.
 * @internal
 */
export function readHostMemory(probe: HostProbe, platform: NodeJS.Platform = process.platform): HostMemory {
    const limits: HostMemoryLimit[] = [];
    if (platform === 'linux') {
        const meminfo = probe.readFile('/proc/meminfo');
        const available = kbField(meminfo, 'MemAvailable') ?? freemem();
        limits.push({ source: 'system', availableBytes: available + (kbField(meminfo, 'SwapFree') ?? 0) });
        const cgroup = readCgroupMemory(probe);
        if (cgroup !== null) limits.push({ source: 'cgroup', ...cgroup });
        const procLimits = probe.readFile('/proc/self/limits');
        const status = probe.readFile('/proc/self/status');
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

/**
 * The host memory a new allocation can get now: what LlamaModel.load and LlamaContext
 * check their estimate against. On Linux: MemAvailable plus free swap, the cgroup's
 * limit (this process's own cgroup and its parents, and process.constrainedMemory()),
 * RLIMIT_AS and RLIMIT_DATA; on other systems the machine's RAM (os.totalmem()).
 *
 * @example
 * const { availableBytes, limits } = getHostMemory();
 */
export function getHostMemory(): HostMemory {
    return readHostMemory(fileProbe());
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
