/**
 * The sequences of a context and who runs on them: requests wait in FIFO order for a free
 * sequence, take the one whose cache shares the longest prefix with their prompt, and an
 * exclusive task (setLoras) waits for every running request and holds new ones back.
 */
import { LlamaAbortError } from '../errors.js';

/** One sequence of the context, as the scheduler sees it. */
export interface Slot {
    readonly id: number;
    /** The tokens its cache holds while no request runs on it (the engine keeps the authoritative copy). */
    cached: Int32Array;
    /** The holder from acquireSequence(), or null while the pool hands it to requests. */
    owner: object | null;
    /** A request or a score runs on it. */
    busy: boolean;
    /** When a request last ended on it (least recently used goes first among equals). */
    lastUsed: number;
}

interface Waiter {
    /** Picks one of the free slots and takes it (synchronously, inside dispatch). */
    take(free: Slot[]): Slot;
    resolve(slot: Slot): void;
    reject(error: unknown): void;
}

/** Tokens shared at the start of `a` and `b`. */
export function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>): number {
    const n = Math.min(a.length, b.length);
    let i = 0;
    while (i < n && a[i] === b[i]) i++;
    return i;
}

/**
 * llama.cpp server's slot similarity: the free slot whose cache shares the longest prefix
 * with `prompt`; with none shared, an empty slot, else the least recently used.
 * `prompt` is computed only when the choice depends on it.
 */
export function pickByPrefix(free: readonly Slot[], prompt: () => ArrayLike<number>): Slot {
    if (free.length === 1) return free[0];
    const filled = free.filter((s) => s.cached.length > 0);
    let best: Slot | null = null;
    let bestShared = 0;
    if (filled.length > 0) {
        const tokens = prompt();
        for (const slot of filled) {
            const shared = commonPrefix(slot.cached, tokens);
            if (shared > bestShared) {
                best = slot;
                bestShared = shared;
            }
        }
    }
    return best ?? pickEmptiest(free);
}

/** An empty slot if there is one (so no reusable cache is lost), else the least recently used. */
export function pickEmptiest(free: readonly Slot[]): Slot {
    return free.find((s) => s.cached.length === 0) ?? [...free].sort((a, b) => a.lastUsed - b.lastUsed)[0];
}

export class SequencePool {
    readonly slots: readonly Slot[];
    readonly #waiters: Waiter[] = [];
    /** Exclusive tasks pending or running: nothing new starts meanwhile. */
    #exclusive = 0;
    /** Resolved when the last busy slot becomes free (for exclusive tasks). */
    #drained: (() => void)[] = [];
    /** Runs on owned sequences waiting for an exclusive task to end. */
    #gate: (() => void)[] = [];
    #clock = 0;
    #closed: unknown = null;
    /** Called when a waiter finds no free sequence (the context preempts a stalled stream). */
    onBlocked: () => void = () => undefined;

    constructor(count: number) {
        this.slots = Array.from({ length: count }, (_, id) => ({ id, cached: new Int32Array(0), owner: null, busy: false, lastUsed: 0 }));
    }

    /** Requests waiting for a sequence. */
    get waiting(): number {
        return this.#waiters.length;
    }

    /**
     * A free, unowned slot, marked busy: the first waiter gets the first free one, by `pick`.
     * With `own`, the slot is owned instead (acquireSequence) and stays not busy.
     */
    take(pick: (free: Slot[]) => Slot, options: { signal?: AbortSignal; own?: object } = {}): Promise<Slot> {
        if (this.#closed !== null) return Promise.reject(this.#closed);
        const { signal, own } = options;
        if (signal?.aborted) return Promise.reject(new LlamaAbortError('aborted while waiting for a sequence'));
        return new Promise<Slot>((resolve, reject) => {
            const onAbort = () => {
                const at = this.#waiters.indexOf(waiter);
                if (at >= 0) this.#waiters.splice(at, 1);
                reject(new LlamaAbortError('aborted while waiting for a sequence'));
            };
            const waiter: Waiter = {
                take: (free) => {
                    const slot = pick(free);
                    if (own !== undefined) slot.owner = own;
                    else slot.busy = true;
                    return slot;
                },
                resolve: (slot) => {
                    signal?.removeEventListener('abort', onAbort);
                    resolve(slot);
                },
                reject: (error) => {
                    signal?.removeEventListener('abort', onAbort);
                    reject(error);
                },
            };
            signal?.addEventListener('abort', onAbort, { once: true });
            this.#waiters.push(waiter);
            this.#dispatch();
        });
    }

    /** Marks an owned slot busy for one request, after any exclusive task. */
    async enter(slot: Slot): Promise<void> {
        while (this.#exclusive > 0) await new Promise<void>((resolve) => this.#gate.push(resolve));
        if (this.#closed !== null) throw this.#closed;
        slot.busy = true;
    }

    /** A request on `slot` ended; `cached` is what its cache now holds. */
    leave(slot: Slot, cached: Int32Array): void {
        slot.cached = cached;
        slot.busy = false;
        slot.lastUsed = ++this.#clock;
        if (this.slots.every((s) => !s.busy)) for (const done of this.#drained.splice(0)) done();
        this.#dispatch();
    }

    /** An owned slot goes back to the pool. */
    disown(slot: Slot): void {
        slot.owner = null;
        slot.lastUsed = ++this.#clock;
        this.#dispatch();
    }

    /** Runs `task` once no request runs, holding new ones back until it ends. */
    async exclusive<T>(task: () => T | Promise<T>): Promise<T> {
        this.#exclusive++;
        try {
            while (this.slots.some((s) => s.busy)) await new Promise<void>((resolve) => this.#drained.push(resolve));
            return await task();
        } finally {
            this.#exclusive--;
            if (this.#exclusive === 0) for (const open of this.#gate.splice(0)) open();
            this.#dispatch();
        }
    }

    /** Rejects every waiter with `error` and every later take(). */
    close(error: unknown): void {
        this.#closed = error;
        for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
        for (const open of this.#gate.splice(0)) open();
    }

    #dispatch(): void {
        if (this.#exclusive > 0) return;
        while (this.#waiters.length > 0) {
            const free = this.slots.filter((s) => s.owner === null && !s.busy);
            if (free.length === 0) {
                this.onBlocked();
                return;
            }
            const waiter = this.#waiters.shift()!;
            let slot: Slot;
            try {
                slot = waiter.take(free);
            } catch (error) {
                waiter.reject(error); // its prompt could not be read (tokenized) for the choice
                continue;
            }
            waiter.resolve(slot);
        }
    }
}
