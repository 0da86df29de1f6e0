import { stat } from 'node:fs/promises';
import { resolveModelFile } from '../../download/resolve.js';
import type { DownloadProgress } from '../../download/options.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { formatBytes } from '../format/bytes.js';
import { progressBar } from '../format/progress.js';

/** The flags of `llama-kv pull`. */
export const pullFlags: FlagSpec[] = [
    { names: ['--dir'], key: 'dir', type: 'string', help: 'folder to download into (default $LLAMA_KV_MODELS_DIR, else ~/.cache/llama-kv/models)' },
    { names: ['--sha256'], key: 'sha256', type: 'string', help: "the file's sha256, checked instead of the one the server gives" },
    { names: ['--json'], key: 'json', type: 'bool', help: 'print JSON: { uri, path, bytes }' },
];

/** `llama-kv pull`'s usage text. */
export const pullUsage =
    `usage: llama-kv pull URI [--dir D] [--sha256 HEX] [--json]\n` +
    'URI: hf:owner/repo/file.gguf, hf:owner/repo@revision/file.gguf or an http(s):// URL. Downloads the file (resuming an\n' +
    'interrupted download, checking its sha256 when the server gives one) unless it is there already, and prints its path.\n' +
    `${flagHelp(pullFlags)}`;

/** `1.50 MiB / 4.00 MiB, 2.10 MiB/s (resumed at 1.00 MiB)`. */
function progressLabel(p: DownloadProgress, startedAt: number): string {
    const seconds = (performance.now() - startedAt) / 1000;
    const rate = seconds > 0.5 ? `, ${formatBytes((p.downloadedBytes - p.resumedFromBytes) / seconds)}/s` : '';
    const resumed = p.resumedFromBytes > 0 ? ` (resumed at ${formatBytes(p.resumedFromBytes)})` : '';
    return `${formatBytes(p.downloadedBytes)}${p.totalBytes !== undefined ? ` / ${formatBytes(p.totalBytes)}` : ''}${rate}${resumed}`;
}

/** `llama-kv pull URI`: downloads a model file and prints its local path (a progress bar on stderr when it is a terminal). */
export async function pull(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, pullFlags);
    if (positional.length === 0) throw new UsageError('give the URI to download, e.g. hf:owner/repo/model-Q4_K_M.gguf');
    if (positional.length > 1) throw new UsageError(`unexpected argument "${positional[1]}": pull takes one URI`);
    const uri = positional[0];
    const bar = progressBar();
    const startedAt = performance.now();
    let path: string;
    try {
        path = await resolveModelFile(uri, {
            ...(typeof flags.dir === 'string' ? { dir: flags.dir } : {}),
            ...(typeof flags.sha256 === 'string' ? { sha256: flags.sha256 } : {}),
            onProgress: (p) => bar.update(p.totalBytes ? p.downloadedBytes / p.totalBytes : null, progressLabel(p, startedAt)),
        });
    } finally {
        bar.clear();
    }
    if (flags.json) {
        process.stdout.write(JSON.stringify({ uri, path, bytes: (await stat(path)).size }) + '\n');
        return 0;
    }
    process.stdout.write(`${path}\n`);
    return 0;
}
