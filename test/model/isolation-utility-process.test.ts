// inspectModel inside Electron's main process forks a utility process (utilityProcess.fork)
// instead of re-running the app binary as node (ELECTRON_RUN_AS_NODE, often fused off).
// Electron cannot be installed here, so child_process.fork stands in for utilityProcess:
// the stand-in has Electron's interface (fork(modulePath, args, { stdio: 'pipe', env,
// serviceName }), piped stdout/stderr, kill(), an 'exit' event with a code and no signal),
// and like a utility process it does not exit when it runs out of work (electron#47228): a
// preload keeps it alive, so the child must exit by itself once its result is written.
import { fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureFixtureModel } from '../../lib/demo/models.js';
import { inspectModel, type LlamaError } from '../../lib/index.js';
import { setUtilityProcessForTesting, type UtilityProcessApi, type UtilityProcessLike } from '../../lib/model/isolated-process.js';
import { fixtures } from '../support/fixtures.js';

const keepAlive = join(mkdtempSync(join(tmpdir(), 'llama-kv-utility-')), 'keep-alive.cjs');
writeFileSync(keepAlive, 'setInterval(() => {}, 1 << 30);\n');

/** A utilityProcess look-alike over child_process.fork, recording every fork. */
function standIn(): { api: UtilityProcessApi; forks: { modulePath: string; args: string[]; env: NodeJS.ProcessEnv; serviceName: string }[] } {
    const forks: { modulePath: string; args: string[]; env: NodeJS.ProcessEnv; serviceName: string }[] = [];
    const api: UtilityProcessApi = {
        fork(modulePath, args, options) {
            expect(options.stdio).toBe('pipe');
            forks.push({ modulePath, args, env: options.env, serviceName: options.serviceName });
            const child = fork(modulePath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: options.env, execArgv: ['--require', keepAlive] });
            const up = Object.assign(new EventEmitter(), { stdout: child.stdout, stderr: child.stderr, kill: () => child.kill('SIGKILL') }) as UtilityProcessLike;
            // Electron's 'exit' carries the exit code only; a crash is a non-zero code.
            child.on('exit', (code, signal) => up.emit('exit', code ?? (signal ? 134 : 0)));
            return up;
        },
    };
    return { api, forks };
}

describe('isolation through the utility-process interface', () => {
    let micro = '';
    beforeAll(async () => {
        micro = await ensureFixtureModel('micro-f16', { dir: fixtures.cacheDir });
    });
    afterEach(() => setUtilityProcessForTesting(undefined));

    it('vets a model in a forked utility process, with no ELECTRON_RUN_AS_NODE', async () => {
        const { api, forks } = standIn();
        setUtilityProcessForTesting(api);
        const r = await inspectModel(micro);
        expect(r.metadata.architecture).toBe('llama');
        expect(forks).toHaveLength(1);
        expect(forks[0].modulePath).toMatch(/inspect-model-child\.js$/);
        expect(forks[0].args).toEqual([micro]);
        expect(forks[0].env.ELECTRON_RUN_AS_NODE).toBeUndefined();
    });

    it('a crash in the utility process is MODEL_CRASHED, with its exit code, and a kill on timeout works', async () => {
        const { api } = standIn();
        setUtilityProcessForTesting(api);
        process.env.LLAMA_KV_TEST_ABORT_IN_CHILD = '1';
        try {
            const error = (await inspectModel(micro).catch((e: unknown) => e)) as LlamaError;
            expect(error.code).toBe('MODEL_CRASHED');
            expect(error.message).toMatch(/crashed a child process \(exit code 134\)/);
        } finally {
            delete process.env.LLAMA_KV_TEST_ABORT_IN_CHILD;
        }
        const timeout = (await inspectModel(micro, { timeoutMs: 1 }).catch((e: unknown) => e)) as LlamaError;
        expect(timeout.message).toMatch(/did not finish within 1 ms/);
    });

    it('falls back to a Node child process when the utility process cannot be forked (before app ready)', async () => {
        setUtilityProcessForTesting({
            fork: () => {
                throw new Error('utilityProcess cannot be forked before the app is ready');
            },
        });
        const r = await inspectModel(micro);
        expect(r.metadata.architecture).toBe('llama');
    });
});
