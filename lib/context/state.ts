/**
 * Saved state of sequences: the header this context writes, the checks a state must pass
 * before any of its bytes reach llama.cpp (each field compared, STATE_MISMATCH naming it and
 * both values), and the native save and load calls with their abort signals.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { captureStack, fromNative, LlamaAbortError, LlamaError } from '../errors.js';
import { ownPackageVersion } from '../native/backend-packages.js';
import { packageRoot, type NativeContext } from '../native/binding.js';
import { withSignal } from '../native/abortable.js';
import { decodeStateHeader, encodeStateHeader, stateHeaderLength, type StateHeader } from './state-header.js';

export type { StateHeader };

/** What a context is, as a state header describes it (StateHeader without its sequences). */
export type StateTarget = Omit<StateHeader, 'kind' | 'sequences'>;

let pinned: string | null = null;
/** The llama.cpp commit of vendor/llama.cpp.json ('' when it cannot be read). */
export function llamaCppCommit(): string {
    if (pinned === null) {
        try {
            pinned = (JSON.parse(readFileSync(join(packageRoot(), 'vendor', 'llama.cpp.json'), 'utf8')) as { commit?: string }).commit ?? '';
        } catch {
            pinned = '';
        }
    }
    return pinned;
}

/** The writer field of headers this version writes. */
export function stateWriter(): string {
    return `llama-kv ${ownPackageVersion() || 'unknown'}`;
}

const quote = (v: unknown) => (typeof v === 'string' ? `'${v}'` : String(v));
const onOff = (v: boolean) => (v ? 'on' : 'off');

/**
 * Throws STATE_MISMATCH for the first field of `saved` that this context does not match, with
 * both values and what to change; the cells a state needs are checked natively (the numbers).
 */
export function checkStateTarget(saved: StateHeader, current: StateTarget, source: string): void {
    const mismatch = (what: string, was: string, now: string, hint: string) =>
        new LlamaError('STATE_MISMATCH', `${source} was saved with ${what} ${was}, this context has ${now}: ${hint}`);
    const m = saved.model;
    if (m.architecture !== current.model.architecture) {
        throw mismatch('a model of architecture', quote(m.architecture), quote(current.model.architecture), `load it with the model it was saved with (${m.file})`);
    }
    if (m.tensorTable !== current.model.tensorTable) {
        throw mismatch('a model whose tensor table is', m.tensorTable.slice(0, 16), `${current.model.tensorTable.slice(0, 16)} (${current.model.file})`, `it belongs to another model (${m.file}); load it with that one`);
    }
    if (m.tokenizer !== current.model.tokenizer) {
        throw mismatch('a tokenizer whose hash is', m.tokenizer.slice(0, 16), current.model.tokenizer.slice(0, 16), `it belongs to another model's vocabulary (${m.file})`);
    }
    const c = saved.cache;
    const now = current.cache;
    if (c.typeK !== now.typeK) throw mismatch('cacheTypeK', quote(c.typeK), quote(now.typeK), `create the context with cacheTypeK: ${quote(c.typeK)}`);
    if (c.typeV !== now.typeV) throw mismatch('cacheTypeV', quote(c.typeV), quote(now.typeV), `create the context with cacheTypeV: ${quote(c.typeV)}`);
    if (c.vTransposed !== now.vTransposed) {
        throw mismatch('flashAttention', quote(onOff(!c.vTransposed)), quote(onOff(!now.vTransposed)), `the V cache layout differs; create the context with flashAttention: ${quote(onOff(!c.vTransposed))}`);
    }
    if (c.rotateK !== now.rotateK || c.rotateV !== now.rotateV) {
        throw mismatch(
            'K/V rotation',
            `${onOff(c.rotateK)}/${onOff(c.rotateV)}`,
            `${onOff(now.rotateK)}/${onOff(now.rotateV)}`,
            'llama.cpp rotates quantized caches unless LLAMA_ATTN_ROT_DISABLE is set: set it (or not) as it was when the state was saved',
        );
    }
    if (c.cellExt !== now.cellExt || c.caches !== now.caches) {
        throw mismatch('a cache layout of', `${c.caches} cache(s)${c.cellExt ? ' with cell extensions' : ''}`, `${now.caches}${now.cellExt ? ' with cell extensions' : ''}`, 'it was saved by another model');
    }
    const list = (l: StateHeader['loras']) => (l.length === 0 ? 'none' : l.map((u) => `${u.name}@${u.scale}`).join(', '));
    const same = saved.loras.length === current.loras.length && saved.loras.every((u, i) => u.identity === current.loras[i].identity && u.scale === current.loras[i].scale);
    if (!same) throw mismatch('the LoRA adapters', `[${list(saved.loras)}]`, `[${list(current.loras)}]`, 'apply the same adapters with the same scales (setLoras) before loading it');
}

/** The header of a state file: read, bounded and decoded (INVALID_STATE_FILE, STATE_IO_FAILED). */
export async function readStateFileHeader(path: string): Promise<{ header: StateHeader; length: number }> {
    let handle;
    try {
        handle = await open(path, 'r');
    } catch (error) {
        throw new LlamaError('STATE_IO_FAILED', `cannot open state file ${path}: ${(error as Error).message}`, { cause: error });
    }
    try {
        const fixed = Buffer.alloc(16);
        const { bytesRead } = await handle.read(fixed, 0, 16, 0);
        const length = stateHeaderLength(fixed.subarray(0, bytesRead), path);
        if (length === null) throw new LlamaError('INVALID_STATE_FILE', `${path} is not a llama-kv state: it has ${bytesRead} bytes`);
        const all = Buffer.alloc(length);
        const read = await handle.read(all, 0, length, 0);
        return decodeStateHeader(all.subarray(0, read.bytesRead), path);
    } finally {
        await handle.close();
    }
}


/** Saves `sequences` (none running a request) to a Buffer, or to `path` through a temporary file. */
export async function saveSequences(
    native: NativeContext,
    target: StateTarget,
    kind: StateHeader['kind'],
    sequences: { id: number; tokens: number }[],
    path: string | undefined,
    signal: AbortSignal | undefined,
): Promise<Buffer | number> {
    const stack = captureStack();
    const prefix = encodeStateHeader({ kind, ...target, sequences });
    const ids = sequences.map((s) => s.id);
    const counts = sequences.map((s) => s.tokens);
    if (path === undefined) return withSignal(() => native.saveState(ids, prefix, counts), signal, stack);
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
        return await withSignal(() => native.saveState(ids, prefix, counts, path, tmp), signal, stack);
    } catch (error) {
        await rm(tmp, { force: true }).catch(() => undefined); // native code removes it; this covers a call that never started
        throw error;
    }
}

/** A state's header, checked against this context: every field first, before a byte reaches llama.cpp. */
export async function readCheckedHeader(source: Buffer | string, target: StateTarget): Promise<{ header: StateHeader; length: number }> {
    const name = typeof source === 'string' ? source : 'the state';
    const read = typeof source === 'string' ? await readStateFileHeader(source) : decodeStateHeader(source, name);
    checkStateTarget(read.header, target, name);
    return read;
}

/** Loads a checked state's sections into `sequences` (one per section); resolves with their tokens. */
export function loadSequences(
    native: NativeContext,
    source: Buffer | string,
    read: { header: StateHeader; length: number },
    sequences: number[],
    signal: AbortSignal | undefined,
): Promise<Int32Array[]> {
    const stack = captureStack();
    return withSignal(() => native.loadState(source, read.length, sequences, read.header.sequences.map((s) => s.tokens)), signal, stack);
}
