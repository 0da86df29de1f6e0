// getHostMemory's cgroup limit from fake /proc and /sys trees: this process's own cgroup and
// its parents (v2 and v1), process.constrainedMemory() as a cross-check, and files that are
// missing or hold garbage (no limit, never an exception).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileProbe, getHostMemory, readCgroupMemory, readHostMemory } from '../../lib/memory/host-memory.js';

const GIB = 2 ** 30;
const MIB = 2 ** 20;
const roots: string[] = [];

/** A directory holding `files` (absolute paths as keys, e.g. '/proc/self/cgroup'). */
function tree(files: Record<string, string | number>): string {
    const root = mkdtempSync(join(tmpdir(), 'llama-kv-host-memory-'));
    roots.push(root);
    for (const [path, text] of Object.entries(files)) {
        mkdirSync(dirname(join(root, path)), { recursive: true });
        writeFileSync(join(root, path), `${text}\n`);
    }
    return root;
}

afterAll(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
});

const none = () => undefined;

describe('readCgroupMemory', () => {
    it('v2: walks from the own cgroup to the root and takes the tightest, here a parent whose limit is smaller than the child', () => {
        const root = tree({
            '/proc/self/cgroup': '0::/user.slice/app.scope',
            '/sys/fs/cgroup/user.slice/app.scope/memory.max': 8 * GIB,
            '/sys/fs/cgroup/user.slice/app.scope/memory.current': 512 * MIB,
            '/sys/fs/cgroup/user.slice/app.scope/memory.stat': `anon 1\ninactive_file ${256 * MIB}\nactive_file 3`,
            '/sys/fs/cgroup/user.slice/memory.max': 2 * GIB,
            '/sys/fs/cgroup/user.slice/memory.current': GIB,
            '/sys/fs/cgroup/user.slice/memory.stat': `inactive_file ${128 * MIB}`,
            '/sys/fs/cgroup/memory.stat': 'inactive_file 0', // the real root has no memory.max
        });
        expect(readCgroupMemory(fileProbe(root, none))).toEqual({
            limitBytes: 2 * GIB,
            availableBytes: 2 * GIB - (GIB - 128 * MIB),
            from: '/sys/fs/cgroup/user.slice/memory.max',
        });
    });

    it("v2: a parent shared with siblings can leave less room than a smaller child's limit", () => {
        const root = tree({
            '/proc/self/cgroup': '0::/a/b',
            '/sys/fs/cgroup/a/b/memory.max': GIB,
            '/sys/fs/cgroup/a/b/memory.current': 100 * MIB,
            '/sys/fs/cgroup/a/memory.max': 4 * GIB,
            '/sys/fs/cgroup/a/memory.current': 4 * GIB - 300 * MIB,
        });
        expect(readCgroupMemory(fileProbe(root, none))).toEqual({ limitBytes: 4 * GIB, availableBytes: 300 * MIB, from: '/sys/fs/cgroup/a/memory.max' });
    });

    it("v2: 'max' everywhere is no limit", () => {
        const root = tree({
            '/proc/self/cgroup': '0::/a/b',
            '/sys/fs/cgroup/a/b/memory.max': 'max',
            '/sys/fs/cgroup/a/b/memory.current': GIB,
            '/sys/fs/cgroup/a/memory.max': 'max',
            '/sys/fs/cgroup/memory.max': 'max',
        });
        expect(readCgroupMemory(fileProbe(root, none))).toBeNull();
        expect(readHostMemory(fileProbe(root, none), 'linux').limits.map((l) => l.source)).not.toContain('cgroup');
    });

    it('v2: the mount root is read when the own path is not under it (a cgroup namespace shows the host path)', () => {
        const root = tree({
            '/proc/self/cgroup': '0::/kubepods/pod1/abc',
            '/sys/fs/cgroup/memory.max': 3 * GIB,
            '/sys/fs/cgroup/memory.current': GIB,
        });
        expect(readCgroupMemory(fileProbe(root, none))).toEqual({ limitBytes: 3 * GIB, availableBytes: 2 * GIB, from: '/sys/fs/cgroup/memory.max' });
    });

    it('v1: the memory controller\'s line, its path and parents under /sys/fs/cgroup/memory', () => {
        const root = tree({
            '/proc/self/cgroup': '12:pids:/docker/abc\n4:cpu,memory:/docker/abc\n0::/',
            '/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes': GIB,
            '/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes': 600 * MIB,
            '/sys/fs/cgroup/memory/docker/abc/memory.stat': `cache 5\ninactive_file 1\ntotal_inactive_file ${100 * MIB}`,
            '/sys/fs/cgroup/memory/docker/memory.limit_in_bytes': 9223372036854771712, // v1's "no limit"
            '/sys/fs/cgroup/memory/memory.limit_in_bytes': 9223372036854771712,
        });
        expect(readCgroupMemory(fileProbe(root, none))).toEqual({
            limitBytes: GIB,
            availableBytes: GIB - 500 * MIB,
            from: '/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes',
        });
    });

    it('missing files: no limit; a limit whose usage cannot be read leaves the whole limit', () => {
        expect(readCgroupMemory(fileProbe(tree({}), none))).toBeNull();
        const root = tree({ '/proc/self/cgroup': '0::/a', '/sys/fs/cgroup/a/memory.max': GIB });
        expect(readCgroupMemory(fileProbe(root, none))).toEqual({ limitBytes: GIB, availableBytes: GIB, from: '/sys/fs/cgroup/a/memory.max' });
    });

    it('garbage content is no limit and never throws', () => {
        const garbage = tree({
            '/proc/self/cgroup': '\u0000\u00ff::::\n0::/../../etc\nnot a line\n9:memory\n',
            '/sys/fs/cgroup/memory.max': '12abc',
            '/sys/fs/cgroup/memory.current': '-5',
            '/sys/fs/cgroup/memory.stat': 'inactive_file lots',
            '/sys/fs/cgroup/memory/memory.limit_in_bytes': '1e9',
            '/etc/memory.max': GIB, // a path leaving the namespace is not followed
        });
        expect(readCgroupMemory(fileProbe(garbage, () => Number.NaN))).toBeNull();
        const deep = tree({ '/proc/self/cgroup': `0::/${'x/'.repeat(5000)}`, '/sys/fs/cgroup/memory.max': 'max' });
        expect(readCgroupMemory(fileProbe(deep, none))).toBeNull();
        // A usage above the limit (the kernel reclaiming) leaves 0, not a negative figure.
        const over = tree({ '/proc/self/cgroup': '0::/', '/sys/fs/cgroup/memory.max': GIB, '/sys/fs/cgroup/memory.current': 2 * GIB });
        expect(readCgroupMemory(fileProbe(over, none))?.availableBytes).toBe(0);
    });

    it('process.constrainedMemory(): taken when smaller than every file, with the own cgroup\'s usage; ignored when 0, undefined or huge', () => {
        const root = tree({
            '/proc/self/cgroup': '0::/app',
            '/sys/fs/cgroup/app/memory.max': 'max',
            '/sys/fs/cgroup/app/memory.current': 256 * MIB,
        });
        expect(readCgroupMemory(fileProbe(root, () => GIB))).toEqual({ limitBytes: GIB, availableBytes: 768 * MIB, from: 'process.constrainedMemory()' });
        for (const value of [0, undefined, 2 ** 64, 9223372036854771712]) expect(readCgroupMemory(fileProbe(root, () => value)), String(value)).toBeNull();
        // No usage file at all: the whole limit.
        expect(readCgroupMemory(fileProbe(tree({}), () => GIB))).toEqual({ limitBytes: GIB, availableBytes: GIB, from: 'process.constrainedMemory()' });
        // A file with the same or a smaller limit names the file.
        const limited = tree({ '/proc/self/cgroup': '0::/app', '/sys/fs/cgroup/app/memory.max': GIB, '/sys/fs/cgroup/app/memory.current': 0 });
        expect(readCgroupMemory(fileProbe(limited, () => GIB))?.from).toBe('/sys/fs/cgroup/app/memory.max');
        expect(readCgroupMemory(fileProbe(limited, () => 2 * GIB))?.limitBytes).toBe(GIB);
    });
});

describe('readHostMemory', () => {
    it('puts the cgroup limit, with its source, among the others, tightest first', () => {
        const root = tree({
            '/proc/meminfo': `MemTotal:       16000000 kB\nMemAvailable:    8000000 kB\nSwapFree:        1000000 kB`,
            '/proc/self/cgroup': '0::/app',
            '/sys/fs/cgroup/app/memory.max': 2 * GIB,
            '/sys/fs/cgroup/app/memory.current': GIB,
            '/proc/self/limits': 'Limit                     Soft Limit           Hard Limit           Units\nMax address space         unlimited            unlimited            bytes',
        });
        const m = readHostMemory(fileProbe(root, none), 'linux');
        expect(m.limits).toEqual([
            { source: 'cgroup', availableBytes: GIB, limitBytes: 2 * GIB, from: '/sys/fs/cgroup/app/memory.max' },
            { source: 'system', availableBytes: 9000000 * 1024 },
        ]);
        expect(m.availableBytes).toBe(GIB);
    });

    it('reads the real files without throwing', () => {
        const m = getHostMemory();
        expect(m.availableBytes).toBe(m.limits[0].availableBytes);
        const cgroup = m.limits.find((l) => l.source === 'cgroup');
        if (cgroup) expect(cgroup.from).toMatch(/^(\/sys\/fs\/cgroup\/.*(memory\.max|memory\.limit_in_bytes)|process\.constrainedMemory\(\))$/);
    });
});
