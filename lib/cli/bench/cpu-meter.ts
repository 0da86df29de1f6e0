/**
 * How busy the machine was with other work while the benchmark ran (Linux): a benchmark
 * on a shared machine is only as good as the CPU it had, and the report says how much
 * of it others took.
 */
import { readFileSync } from 'node:fs';

/** CPU time others took during a measured span, in percent of one CPU on average. */
export interface CpuContention {
    /** CPU time of every process but this one and its (finished) children. */
    otherPercent: number;
    /** Time the hypervisor gave the virtual CPUs to someone else (steal). */
    stealPercent: number;
}

// USER_HZ: the unit of /proc/stat and /proc/PID/stat, 100 on every Linux platform node runs on.
const TICKS_PER_SECOND = 100;

function sample(): { busy: number; steal: number; own: number; at: number } | null {
    try {
        const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
        const [user, nice, system, , , irq, softirq, steal] = cpu;
        // /proc/self/stat: fields after the command name, from field 3 (state); utime is field 14.
        const self = readFileSync('/proc/self/stat', 'utf8');
        const f = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number);
        const own = f[11] + f[12] + f[13] + f[14]; // utime, stime, cutime, cstime (waited-for children)
        return { busy: user + nice + system + irq + softirq, steal: steal ?? 0, own, at: performance.now() };
    } catch {
        return null;
    }
}

/**
 * Starts measuring; the returned function ends the span and returns what others took,
 * or null where /proc is not there. Children count as ours once they have exited (the
 * benchmark waits for each of its children before it measures the next thing).
 */
export function startCpuMeter(): () => CpuContention | null {
    const start = sample();
    return () => {
        const end = sample();
        if (start === null || end === null) return null;
        const seconds = (end.at - start.at) / 1000;
        if (seconds <= 0) return null;
        const percent = (ticks: number) => Math.max(0, (100 * ticks) / TICKS_PER_SECOND / seconds);
        return { otherPercent: percent(end.busy - start.busy - (end.own - start.own)), stealPercent: percent(end.steal - start.steal) };
    };
}
