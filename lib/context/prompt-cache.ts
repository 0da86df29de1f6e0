/**
 * A context's prompt cache (llama.cpp server's `--cache-ram` and `--slot-save-path`): the
 * states of sequences that are about to be overwritten, kept in RAM (least recently used out
 * first) and, with a folder, as state files that outlive the process (written after each
 * request, in the background). A request whose prompt shares a longer prefix with an entry
 * than with its sequence's own cache restores the entry instead of decoding those tokens.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LlamaError } from '../errors.js';
import { log } from '../logger.js';
import { defaults } from '../options/defaults.js';
import type { PromptCacheOptions } from '../options/state-options.js';
import { commonPrefix } from './sequence-pool.js';
import { checkStateTarget, readStateFileHeader, type StateTarget } from './state.js';

/** What {@link LlamaContext.promptCache} reports. */
export interface PromptCacheStats {
    /** States held: in RAM, on disk, or both. */
    entries: number;
    /** Bytes of the states held in RAM (at most `ramBytes`). */
    ramBytes: number;
    /** Bytes of the state files in `dir` that belong to this context's model and settings. */
    diskBytes: number;
    /** Requests that restored a state from the cache. */
    hits: number;
    /** Requests that found no state sharing more tokens with their prompt than their sequence already did. */
    misses: number;
    /** Tokens restored instead of decoded, over all hits. */
    tokensRestored: number;
}

interface Entry {
    /** The settings it was saved with (the hash of its StateTarget): entries of other settings (another LoRA set) are skipped. */
    settings: string;
    tokens: Int32Array;
    key: string;
    ram: Buffer | null;
    file: string | null;
    fileBytes: number;
    lastUsed: number;
}

/** What the cache does with a sequence (the context implements it on the sequence it holds). */
export interface PromptCacheHost {
    target(): StateTarget;
    /** The cells the sequence holds on the native side (what it holds after a failed load). */
    cells(sequence: number): number;
    save(sequence: number, path?: string): Promise<Buffer | number>;
    load(sequence: number, source: Buffer | string): Promise<Int32Array>;
}

const SUFFIX = '.lkvstate';
/** The settings hash of each target object (a context keeps one per LoRA set). */
const settingsHashes = new WeakMap<StateTarget, string>();

export class PromptCache {
    readonly #ramLimit: number;
    readonly #diskLimit: number;
    readonly #minTokens: number;
    readonly #dir: string | null;
    readonly #host: PromptCacheHost;
    readonly #entries = new Map<string, Entry>();
    #clock = 0;
    #hits = 0;
    #misses = 0;
    #tokensRestored = 0;
    #indexed: Promise<void> | null = null;
    readonly #pending = new Set<Promise<void>>();

    constructor(options: PromptCacheOptions, host: PromptCacheHost) {
        this.#ramLimit = options.ramBytes ?? defaults.promptCache.ramBytes;
        this.#diskLimit = options.diskBytes ?? defaults.promptCache.diskBytes;
        this.#minTokens = Math.max(1, options.minTokens ?? defaults.promptCache.minTokens);
        this.#dir = options.dir ?? null;
        this.#host = host;
    }

    get stats(): PromptCacheStats {
        let ram = 0;
        let disk = 0;
        for (const e of this.#entries.values()) {
            ram += e.ram?.length ?? 0;
            disk += e.file === null ? 0 : e.fileBytes;
        }
        return { entries: this.#entries.size, ramBytes: ram, diskBytes: disk, hits: this.#hits, misses: this.#misses, tokensRestored: this.#tokensRestored };
    }

    /** Bytes it may hold in RAM (for memory reports and plans). */
    get ramLimit(): number {
        return this.#ramLimit;
    }

    /**
     * Before a request runs `prompt` on `sequence` (held by the caller), which caches `cached`:
     * keeps the tokens the request would overwrite, then restores the entry sharing the longest
     * prefix with the prompt if it shares more than the sequence does. Returns what the sequence
     * caches afterwards. Failures are logged and leave the request to decode as usual.
     */
    async prepare(sequence: number, cached: Int32Array, prompt: ArrayLike<number>): Promise<Int32Array> {
        await this.#index();
        const shared = commonPrefix(cached, prompt);
        if (cached.length > shared) await this.keep(sequence, cached);
        let best: Entry | null = null;
        let bestShared = shared;
        const settings = this.#settings();
        for (const e of this.#entries.values()) {
            if (e.settings !== settings) continue;
            const s = commonPrefix(e.tokens, prompt);
            if (s > bestShared) {
                best = e;
                bestShared = s;
            }
        }
        if (best === null || bestShared - shared < this.#minTokens) {
            this.#misses++;
            return cached;
        }
        try {
            const tokens = await this.#host.load(sequence, best.ram ?? best.file!);
            best.lastUsed = ++this.#clock;
            this.#hits++;
            this.#tokensRestored += bestShared - shared;
            return tokens;
        } catch (error) {
            if (!quiet(error)) log('warn', `prompt cache: restoring ${best.tokens.length} tokens failed (${(error as Error).message}); decoding instead`);
            if (error instanceof LlamaError && error.code === 'INVALID_STATE_FILE') this.#drop(best); // damaged: of no use to anyone
            this.#misses++;
            // Refused before llama.cpp read it: the sequence is as it was; after: empty.
            return this.#host.cells(sequence) === 0 ? new Int32Array(0) : cached;
        }
    }

    /** Keeps `sequence`'s state (caching `cached`) before it is overwritten or cleared. */
    async keep(sequence: number, cached: Int32Array): Promise<void> {
        if (cached.length < this.#minTokens) return;
        const key = this.#keyOf(cached);
        const known = this.#entries.get(key);
        if (known !== undefined && (known.ram !== null || this.#ramLimit === 0)) {
            known.lastUsed = ++this.#clock;
            return;
        }
        try {
            if (this.#ramLimit > 0) {
                const buffer = (await this.#host.save(sequence)) as Buffer;
                if (buffer.length <= this.#ramLimit) this.#add(key, cached, { ram: buffer });
            }
            if (this.#dir !== null && this.#entries.get(key)?.file == null) await this.#writeFile(sequence, key, cached);
        } catch (error) {
            if (!quiet(error)) log('warn', `prompt cache: keeping ${cached.length} tokens failed: ${(error as Error).message}`);
        }
        this.#evict();
    }

    /** After a request: with a folder, the sequence's state is written there unless a file holds the same tokens. */
    persist(sequence: number, cached: Int32Array): Promise<void> | null {
        if (this.#dir === null || cached.length < this.#minTokens) return null;
        const key = this.#keyOf(cached);
        if (this.#entries.get(key)?.file != null) return null;
        const write = this.#writeFile(sequence, key, cached)
            .then(() => this.#evict())
            .catch((error: unknown) => {
                if (!quiet(error)) log('warn', `prompt cache: writing ${cached.length} tokens to ${this.#dir} failed: ${(error as Error).message}`);
            });
        this.#pending.add(write);
        void write.finally(() => this.#pending.delete(write));
        return write;
    }

    /** Waits for the state files being written (call it before the process exits). */
    async flush(): Promise<void> {
        while (this.#pending.size > 0) await Promise.all([...this.#pending]);
    }

    /** The entry key: the settings and the tokens. */
    #keyOf(tokens: Int32Array): string {
        return createHash('sha256').update(this.#settings()).update(Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength)).digest('hex').slice(0, 32);
    }

    /** A hash of what a state must match to load here (model, K/V layout, adapters), once per target. */
    #settings(): string {
        const target = this.#host.target();
        let hash = settingsHashes.get(target);
        if (hash === undefined) {
            hash = createHash('sha256').update(JSON.stringify({ ...target, writer: '', llamaCpp: '', cellsPerSequence: 0 })).digest('hex').slice(0, 16);
            settingsHashes.set(target, hash);
        }
        return hash;
    }

    #add(key: string, tokens: Int32Array, part: { ram?: Buffer; file?: string; fileBytes?: number }): void {
        const e = this.#entries.get(key) ?? { settings: this.#settings(), tokens: tokens.slice(), key, ram: null, file: null, fileBytes: 0, lastUsed: 0 };
        if (part.ram !== undefined) e.ram = part.ram;
        if (part.file !== undefined) {
            e.file = part.file;
            e.fileBytes = part.fileBytes ?? 0;
        }
        e.lastUsed = ++this.#clock;
        this.#entries.set(key, e);
        // An entry whose tokens start the new one's is covered by it: a prompt shares as much with the new one.
        for (const other of [...this.#entries.values()]) {
            if (other !== e && other.settings === e.settings && other.tokens.length < e.tokens.length && commonPrefix(other.tokens, e.tokens) === other.tokens.length) this.#drop(other);
        }
    }

    async #writeFile(sequence: number, key: string, tokens: Int32Array): Promise<void> {
        await mkdir(this.#dir!, { recursive: true });
        const file = join(this.#dir!, `${this.#settings()}-${key}${SUFFIX}`);
        const bytes = (await this.#host.save(sequence, file)) as number;
        this.#add(key, tokens, { file, fileBytes: bytes });
    }

    #drop(e: Entry): void {
        this.#entries.delete(e.key);
        if (e.file !== null) void rm(e.file, { force: true }).catch(() => undefined);
    }

    /** Least recently used out: RAM copies beyond ramBytes, files beyond diskBytes. */
    #evict(): void {
        const byAge = [...this.#entries.values()].sort((a, b) => a.lastUsed - b.lastUsed);
        let ram = byAge.reduce((n, e) => n + (e.ram?.length ?? 0), 0);
        let disk = byAge.reduce((n, e) => n + (e.file === null ? 0 : e.fileBytes), 0);
        for (const e of byAge) {
            if (ram > this.#ramLimit && e.ram !== null) {
                ram -= e.ram.length;
                e.ram = null;
            }
            if (disk > this.#diskLimit && e.file !== null) {
                disk -= e.fileBytes;
                void rm(e.file, { force: true }).catch(() => undefined);
                e.file = null;
            }
            if (e.ram === null && e.file === null) this.#entries.delete(e.key);
        }
    }

    /** The state files already in `dir` that this context can load (others are left alone), read once. */
    #index(): Promise<void> {
        if (this.#dir === null) return Promise.resolve();
        this.#indexed ??= (async () => {
            let names: string[];
            try {
                names = (await readdir(this.#dir!)).filter((n) => n.endsWith(SUFFIX));
            } catch {
                return; // created at the first write
            }
            const target = this.#host.target();
            for (const name of names) {
                const file = join(this.#dir!, name);
                try {
                    const { header, length } = await readStateFileHeader(file);
                    checkStateTarget(header, target, file);
                    if (header.kind !== 'sequence') continue;
                    const n = header.sequences[0].tokens;
                    const info = await stat(file);
                    if (length + 32 + 4 * n > info.size) continue; // its header claims more tokens than the file has: damaged
                    const handle = await open(file, 'r');
                    let tokens: Int32Array;
                    try {
                        const raw = Buffer.alloc(4 * n);
                        const { bytesRead } = await handle.read(raw, 0, raw.length, length + 32);
                        if (bytesRead !== raw.length) continue;
                        tokens = new Int32Array(raw.buffer, raw.byteOffset, n).slice();
                    } finally {
                        await handle.close();
                    }
                    const key = this.#keyOf(tokens);
                    if (!this.#entries.has(key)) {
                        this.#entries.set(key, { settings: this.#settings(), tokens, key, ram: null, file, fileBytes: info.size, lastUsed: info.mtimeMs / 1e12 });
                    }
                } catch {
                    // another model's, a damaged or foreign file: not ours to use or delete
                }
            }
        })();
        return this.#indexed;
    }
}

/** A failure of the context going away (dispose() during a background write) is not worth a warning. */
function quiet(error: unknown): boolean {
    return error instanceof LlamaError && (error.code === 'DISPOSED' || error.code === 'ABORTED');
}
