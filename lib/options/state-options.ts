/** Options of saved state: a state file's path, and a context's prompt cache. */
import { z } from 'zod';
import { filePath, nonNegativeInt } from './validate.js';

/** A state file's path: a non-empty string without NUL characters. */
export const statePathSchema = filePath().refine((p) => !p.includes('\0'), { error: 'a file path without NUL characters' });

/** The `promptCache` context option. */
export const promptCacheOption = () =>
    z.strictObject({
        ramBytes: nonNegativeInt().optional(),
        dir: filePath().optional(),
        diskBytes: nonNegativeInt().optional(),
        minTokens: nonNegativeInt().optional(),
    });

/**
 * A context's prompt cache (llama.cpp server's `--cache-ram` and `--slot-save-path`): states of
 * sequences kept in RAM and on disk, restored for a later prompt that starts with their tokens.
 */
export interface PromptCacheOptions {
    /** Bytes of states kept in RAM, least recently used out first; 0 keeps none in RAM. Defaults to `268435456` (256 MiB). */
    ramBytes?: number;
    /**
     * A folder to keep states in as files (created if missing): they outlive the process, so a
     * restarted app restores its prompts instead of decoding them. Defaults to none (RAM only).
     */
    dir?: string;
    /** Bytes of state files kept in `dir`, least recently used deleted first. Defaults to `4294967296` (4 GiB). */
    diskBytes?: number;
    /** States of fewer tokens are not kept (restoring them saves less than it costs). Defaults to `32`. */
    minTokens?: number;
}
