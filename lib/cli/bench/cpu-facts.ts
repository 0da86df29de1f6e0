/** What the benchmark report says about the CPU, so that a figure can be traced to its hardware. */
import { readFileSync } from 'node:fs';

/**
 * The CPU's vendor, family, model and stepping as the kernel reports them (Linux
 * /proc/cpuinfo), e.g. `GenuineIntel family 6 model 143 stepping 8`: the brand string alone
 * can be generic in a VM ("Intel(R) Xeon(R) Processor"). Null where there is no /proc/cpuinfo
 * or it names none of them.
 */
export function cpuIdentity(cpuinfo?: string): string | null {
    let text = cpuinfo;
    if (text === undefined) {
        try {
            text = readFileSync('/proc/cpuinfo', 'utf8');
        } catch {
            return null;
        }
    }
    // The first processor's block: the fields of every core are the same.
    const block = text.split(/\n\s*\n/)[0] ?? '';
    const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(block)?.[1]?.trim() || null;
    const parts = [
        field('vendor_id') ?? field('CPU implementer'),
        field('cpu family') === null ? null : `family ${field('cpu family')}`,
        field('model') === null ? null : `model ${field('model')}`,
        field('stepping') === null ? null : `stepping ${field('stepping')}`,
    ].filter((p): p is string => p !== null);
    return parts.length > 0 ? parts.join(' ') : null;
}

/**
 * The features a ggml backend reports (its compiled-in instruction sets, e.g. AVX2, AVX512,
 * AMX_INT8, and options such as REPACK), as `NAME` for a flag ("1") and `NAME=value` otherwise.
 */
export function featureList(features: Readonly<Record<string, string>>): string[] {
    return Object.entries(features).map(([name, value]) => (value === '1' ? name : `${name}=${value}`));
}
