/**
 * The CLI's one progress bar: a single line on a terminal, redrawn in place with `\r`, at most
 * every `intervalMs`; nothing at all when the stream is not a terminal (a pipe or a log file
 * gets no progress, only what the command prints when it is done).
 */

/** Where the bar is drawn: process.stderr, or a stand-in with the same members (tests). */
export interface ProgressStream {
    write(text: string): unknown;
    /** True on a terminal; the bar draws nothing otherwise. */
    isTTY?: boolean;
    /** The terminal's width: the line is cut to fit, so that it never wraps. */
    columns?: number;
}

/** How the bar is drawn. */
export interface ProgressBarOptions {
    /** Defaults to `process.stderr`. */
    stream?: ProgressStream;
    /** Characters of the bar between `[` and `]`. Defaults to `30`. */
    width?: number;
    /** Fewest milliseconds between two redraws (the last state is drawn at `finish()`, and 100% at once). Defaults to `100`. */
    intervalMs?: number;
    /** Milliseconds after creation before anything is drawn: work done sooner shows no bar. Defaults to `0`. */
    delayMs?: number;
    /** The clock, in milliseconds. Defaults to `performance.now`. */
    now?: () => number;
}

/** A progress bar; on a stream that is not a terminal every method but `log` does nothing. */
export interface ProgressBar {
    /**
     * The progress now: `fraction` in [0, 1] (drawn as `[####......]  40% label`), or null when
     * no fraction is known (the label alone). Redrawn only when the line changes and the
     * interval has passed, or when it reaches 1.
     */
    update(fraction: number | null, label?: string): void;
    /** Writes `text` (whole lines) above the bar, which is redrawn under it; on any stream. */
    log(text: string): void;
    /** Draws the last state if it was held back, and ends the line, leaving the bar in view. */
    finish(): void;
    /** Erases the bar's line. */
    clear(): void;
}

const ERASE_LINE = '\r\x1b[K';

/**
 * The bar's line: `[#########.....]  64% label`, or the label alone when `fraction` is null;
 * control characters in the label (a line break in a file name) are shown as spaces.
 */
export function progressLine(fraction: number | null, text: string, width = 30): string {
    // eslint-disable-next-line no-control-regex
    const label = text.replace(/[\x00-\x1f\x7f]/g, ' ');
    if (fraction === null) return label;
    const p = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
    const filled = Math.round(p * width);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(p * 100)).padStart(3)}%`;
    return label === '' ? line : `${line} ${label}`;
}

/**
 * A progress bar on `stream` (stderr by default), drawn only when it is a terminal.
 *
 * @example
 * const bar = progressBar();
 * await quantizeModel({ ..., onProgress: (p) => bar.update(p) });
 * bar.finish();
 */
export function progressBar(options: ProgressBarOptions = {}): ProgressBar {
    const stream = options.stream ?? process.stderr;
    if (stream.isTTY !== true) {
        return { update() {}, log: (text) => void stream.write(text), finish() {}, clear() {} };
    }
    const width = options.width ?? 30;
    const intervalMs = options.intervalMs ?? 100;
    const now = options.now ?? (() => performance.now());
    const start = now();
    const delayMs = options.delayMs ?? 0;
    let shown = ''; // the line on screen ('' when none)
    let pending: string | null = null; // a line held back by the interval
    let lastDraw = -Infinity;

    const fit = (line: string) => {
        const columns = stream.columns;
        return columns !== undefined && columns > 1 && line.length > columns - 1 ? line.slice(0, columns - 1) : line;
    };
    // After finish() or clear(), the next update draws at once, on a fresh line.
    const reset = () => {
        shown = '';
        pending = null;
        lastDraw = -Infinity;
    };
    const draw = (line: string) => {
        stream.write(`\r${line}\x1b[K`);
        shown = line;
        pending = null;
        lastDraw = now();
    };
    return {
        update(fraction, label = '') {
            const line = fit(progressLine(fraction, label, width));
            const t = now();
            if (line === shown || t - start < delayMs) {
                pending = line === shown ? null : line;
                return;
            }
            if (t - lastDraw >= intervalMs || (fraction !== null && fraction >= 1)) draw(line);
            else pending = line;
        },
        log(text) {
            if (shown === '') {
                stream.write(text);
                return;
            }
            stream.write(`${ERASE_LINE}${text}\r${shown}\x1b[K`);
        },
        finish() {
            if (pending !== null && (shown !== '' || now() - start >= delayMs)) draw(pending);
            if (shown !== '') stream.write('\n');
            reset();
        },
        clear() {
            if (shown !== '') stream.write(ERASE_LINE);
            reset();
        },
    };
}
