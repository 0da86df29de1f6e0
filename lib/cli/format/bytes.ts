import { UsageError } from '../flags/args.js';

const UNITS: Record<string, number> = {
    '': 1, b: 1,
    kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
    kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
    k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40,
};

/** Parses "6GiB", "6 GB", "512MiB", "6g" or a plain byte count. */
export function parseBytes(flag: string, text: string): number {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
    const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
    if (!m || unit === undefined || Number(m[1]) <= 0) {
        throw new UsageError(`${flag} expects a size such as 6GiB, 512MiB or 8GB but received "${text}"`);
    }
    return Math.round(Number(m[1]) * unit);
}

/** 1536 -> "1.50 KiB". */
export function formatBytes(bytes: number): string {
    const abs = Math.abs(bytes);
    const [unit, div] = abs >= 2 ** 30 ? ['GiB', 2 ** 30] : abs >= 2 ** 20 ? ['MiB', 2 ** 20] : abs >= 2 ** 10 ? ['KiB', 2 ** 10] : ['B', 1];
    return unit === 'B' ? `${bytes} B` : `${(bytes / div).toFixed(2)} ${unit}`;
}
