/**
 * Turns the byte pieces of generated tokens into text that never splits a UTF-8
 * character and never shows the beginning of a stop string before it is known
 * not to be one.
 * @internal
 */

const decoder = new TextDecoder('utf-8');

/** Length of the longest prefix of `bytes[0, limit)` that ends on a character boundary. */
function completeUtf8Length(bytes: Uint8Array, limit: number): number {
    // Look back at most 3 bytes for the lead byte of an unfinished sequence.
    for (let i = limit - 1; i >= Math.max(0, limit - 4); i--) {
        const b = bytes[i];
        if ((b & 0xc0) === 0x80) continue; // continuation byte
        const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
        return i + need <= limit ? limit : i;
    }
    return limit;
}

export class TextStream {
    #bytes = new Uint8Array(256);
    #length = 0;
    #emitted = 0;
    /** Byte offset where a stop string starts, once one has been seen. */
    #stopAt: number | null = null;
    readonly #stops: Buffer[];
    readonly #holdback: number;

    constructor(stops: readonly string[]) {
        this.#stops = stops.filter((s) => s.length > 0).map((s) => Buffer.from(s, 'utf8'));
        const longest = this.#stops.reduce((max, s) => Math.max(max, s.length), 0);
        this.#holdback = Math.max(0, longest - 1);
    }

    /** Byte offset of the first stop string seen, or null. */
    get stopOffset(): number | null {
        return this.#stopAt;
    }

    /** Appends a token's bytes; returns the text that can be shown now. */
    push(piece: Uint8Array): string {
        if (this.#length + piece.length > this.#bytes.length) {
            const grown = new Uint8Array(Math.max(this.#bytes.length * 2, this.#length + piece.length));
            grown.set(this.#bytes.subarray(0, this.#length));
            this.#bytes = grown;
        }
        const before = this.#length;
        this.#bytes.set(piece, this.#length);
        this.#length += piece.length;
        if (this.#stopAt !== null) return '';
        this.#stopAt = this.#findStop(before);
        return this.#emitUpTo(this.#stopAt ?? this.#length - this.#holdback);
    }

    /** The earliest stop string that ends in the bytes appended after `before` (as the native loop checks). */
    #findStop(before: number): number | null {
        const haystack = Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset, this.#length);
        let found: number | null = null;
        for (const stop of this.#stops) {
            const from = Math.max(0, before - stop.length + 1);
            const at = haystack.indexOf(stop, from);
            if (at >= 0 && (found === null || at < found)) found = at;
        }
        return found;
    }

    /** Bytes received but not yet emitted as text. */
    get pendingBytes(): number {
        return this.#length - this.#emitted;
    }

    /** Emits the rest: up to `end` bytes (the start of a stop string) or everything. */
    finish(end: number | null): string {
        const limit = end === null ? this.#length : Math.min(end, this.#length);
        if (limit <= this.#emitted) return '';
        const text = decoder.decode(this.#bytes.subarray(this.#emitted, limit));
        this.#emitted = limit;
        return text;
    }

    /** The whole text, up to `end` bytes or everything. */
    fullText(end: number | null): string {
        return decoder.decode(this.#bytes.subarray(0, end === null ? this.#length : Math.min(end, this.#length)));
    }

    #emitUpTo(limit: number): string {
        if (limit <= this.#emitted) return '';
        const safe = completeUtf8Length(this.#bytes, limit);
        if (safe <= this.#emitted) return '';
        const text = decoder.decode(this.#bytes.subarray(this.#emitted, safe));
        this.#emitted = safe;
        return text;
    }
}
