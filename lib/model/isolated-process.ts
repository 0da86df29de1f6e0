/**
 * The child process that {@link inspectModel} vets a model file in. Inside Electron's main
 * process that is a utility process (`utilityProcess.fork`), which needs no
 * `ELECTRON_RUN_AS_NODE` (a fuse that apps commonly turn off); everywhere else, and where
 * Electron offers no utility process, a Node child process (`child_process.spawn` of
 * `process.execPath`, with ELECTRON_RUN_AS_NODE=1 for Electron's other process types).
 */
import { spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';

/** What Electron's `utilityProcess.fork()` returns, as far as it is used here. */
export interface UtilityProcessLike extends EventEmitter {
    /** The child's output, with `stdio: 'pipe'`. */
    stdout: Readable | null;
    stderr: Readable | null;
    kill(): boolean;
}

/** Electron's `utilityProcess` module, as far as it is used here. */
export interface UtilityProcessApi {
    fork(modulePath: string, args: string[], options: { stdio: 'pipe'; env: NodeJS.ProcessEnv; serviceName: string }): UtilityProcessLike;
}

/** A started child, whichever kind it is. */
export interface IsolatedChild {
    /** 'utilityProcess' inside Electron's main process, else 'child_process'. */
    via: 'utilityProcess' | 'child_process';
    stdout: Readable;
    stderr: Readable;
    kill(): void;
    /** Called once when the child is gone: its exit code, and the signal where the platform says (a utility process gives a code only). */
    onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void;
    /** Called when the child could not be started. */
    onError(listener: (error: Error) => void): void;
}

let testApi: UtilityProcessApi | null | undefined;

/**
 * For tests: the utility-process module to use instead of Electron's (null: none). Pass
 * undefined to go back to detecting Electron. @internal
 */
export function setUtilityProcessForTesting(api: UtilityProcessApi | null | undefined): void {
    testApi = api;
}

/** Electron's utilityProcess, when this is Electron's main process. */
function utilityProcess(): UtilityProcessApi | null {
    if (testApi !== undefined) return testApi;
    if (!process.versions.electron || (process as { type?: string }).type !== 'browser') return null;
    try {
        return (createRequire(import.meta.url)('electron') as { utilityProcess?: UtilityProcessApi }).utilityProcess ?? null;
    } catch {
        return null;
    }
}

/** Starts `script` with `args` in a separate process, with its stdout and stderr piped. */
export function startIsolated(script: string, args: string[], env: NodeJS.ProcessEnv): IsolatedChild {
    const api = utilityProcess();
    if (api) {
        let child: UtilityProcessLike | undefined;
        try {
            child = api.fork(script, args, { stdio: 'pipe', env, serviceName: 'llama-kv inspectModel' });
        } catch {
            // Before the app's 'ready' event Electron refuses to fork: fall back to a Node child.
            child = undefined;
        }
        if (child?.stdout && child.stderr) {
            const up = child;
            return {
                via: 'utilityProcess',
                stdout: up.stdout!,
                stderr: up.stderr!,
                kill: () => void up.kill(),
                // 'exit' can come before the output is read to its end: report when both happened.
                onExit: (listener) => {
                    let code: number | null | undefined;
                    let ended = 0;
                    const done = () => {
                        if (code !== undefined && ended === 2) listener(code, null);
                    };
                    up.once('exit', (c: number) => {
                        code = c;
                        done();
                    });
                    for (const stream of [up.stdout!, up.stderr!]) {
                        stream.once('end', () => {
                            ended++;
                            done();
                        });
                    }
                },
                onError: (listener) => up.on('error', (e: unknown) => listener(e instanceof Error ? e : new Error(String(e)))),
            };
        }
        child?.kill();
    }
    const child = spawn(process.execPath, [script, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        // In Electron, process.execPath is the app; ELECTRON_RUN_AS_NODE makes it node.
        env: process.versions.electron ? { ...env, ELECTRON_RUN_AS_NODE: '1' } : env,
        windowsHide: true,
    });
    return {
        via: 'child_process',
        stdout: child.stdout,
        stderr: child.stderr,
        kill: () => void child.kill('SIGKILL'),
        onExit: (listener) => child.once('close', listener),
        onError: (listener) => child.on('error', listener),
    };
}
