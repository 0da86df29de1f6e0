/**
 * Vetting a model file in a separate process before it is loaded into this one.
 *
 * llama.cpp's security policy says untrusted models should run isolated: a malformed
 * file can still hit an assert in llama.cpp that aborts the process. `inspectModel()`
 * loads the file and decodes one token in a child process; a crash there is reported
 * as an error here, and this process is never at risk.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../native/binding.js';
import { startIsolated } from './isolated-process.js';
import { LlamaAbortError, LlamaConfigError, LlamaError } from '../errors.js';
import { defaults } from '../options/defaults.js';
import { inspectModelOptionsSchema } from '../options/model-options.js';
import { describe, parseOptions } from '../options/validate.js';
import type { ModelMetadata } from './metadata.js';

/** What {@link inspectModel} found. */
export interface ModelInspection {
    /** The model's metadata (without the raw GGUF map), as the child read it. */
    metadata: Omit<ModelMetadata, 'gguf'>;
    /** Milliseconds the check took, the child's start-up included. */
    ms: number;
}

/** Options of {@link inspectModel}. */
export interface InspectModelOptions {
    /** Give up (and kill the child) after this long. Defaults to 120 000 ms. */
    timeoutMs?: number;
    /** Kills the child: the promise rejects with ABORTED. Defaults to none. */
    signal?: AbortSignal;
}

/** The compiled child script: beside this module in dist/, or in dist/ when this runs from lib/ (tests). */
function childScript(): string {
    const beside = fileURLToPath(new URL('../inspect-model-child.js', import.meta.url));
    return existsSync(beside) ? beside : join(packageRoot(), 'dist', 'inspect-model-child.js');
}

/**
 * Loads `path` in a child process (llama.cpp load plus a one-token decode) and reports
 * the result. Rejects with the child's LlamaError when the file is refused, and with
 * `MODEL_CRASHED` when loading it killed the child (the signal and llama.cpp's last
 * lines are in the message) or it did not finish within the timeout. Costs a process
 * start and a second load of the file.
 *
 * @example
 * await inspectModel('download.gguf'); // throws if the file would have crashed this process
 * const model = await LlamaModel.load({ path: 'download.gguf' });
 */
export function inspectModel(path: string, options: InspectModelOptions = {}): Promise<ModelInspection> {
    const started = performance.now();
    let opts: InspectModelOptions;
    try {
        if (typeof path !== 'string' || path.length === 0) {
            throw new LlamaConfigError(`Expected a non-empty file path for path but received ${describe(path)}`, 'INVALID_ARGUMENT', ['path']);
        }
        opts = parseOptions(inspectModelOptionsSchema, options, 'inspectModel()');
    } catch (error) {
        return Promise.reject(error);
    }
    const timeoutMs = opts.timeoutMs ?? defaults.inspectModel.timeoutMs;
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(new LlamaAbortError('inspectModel() was aborted before it started'));
    return new Promise((resolve, reject) => {
        const child = startIsolated(childScript(), [path], process.env);
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8192)));
        let timedOut = false;
        let aborted = false;
        const timer = setTimeout(() => {
            timedOut = true;
            child.kill();
        }, timeoutMs);
        const onAbort = () => {
            aborted = true;
            child.kill();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        child.onError((error) => {
            clearTimeout(timer);
            reject(new LlamaError('INTERNAL', `inspectModel could not start a child process: ${error.message}`, { cause: error }));
        });
        child.onExit((code, exitSignal) => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            const line = stdout.trim().split('\n').pop() ?? '';
            let result: { ok: boolean; metadata?: ModelInspection['metadata']; code?: string; message?: string } | null = null;
            try {
                result = line.startsWith('{') ? JSON.parse(line) : null;
            } catch {
                result = null;
            }
            if (aborted) {
                reject(new LlamaAbortError('inspectModel() was aborted: the child was killed'));
            } else if (timedOut) {
                reject(new LlamaError('MODEL_CRASHED', `loading ${path} in a child process did not finish within ${timeoutMs} ms; the child was killed`));
            } else if (result?.ok && code === 0) {
                resolve({ metadata: result.metadata!, ms: performance.now() - started });
            } else if (result && !result.ok) {
                reject(new LlamaError((result.code ?? 'INTERNAL') as LlamaError['code'], result.message ?? 'the model was refused'));
            } else {
                const tail = stderr.trim().split('\n').slice(-3).join(' | ');
                reject(new LlamaError('MODEL_CRASHED', `loading ${path} crashed a child process (${exitSignal ?? `exit code ${code}`})${tail ? `: ${tail}` : ''}; it would have crashed this process`));
            }
        });
    });
}
