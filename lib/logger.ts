/**
 * llama.cpp and ggml log through one logger per process (per worker thread) that the
 * application sets. With no logger set nothing is written anywhere: the library
 * never prints by itself. Failures still carry llama.cpp's explanation in the error.
 */
import { z } from 'zod';
import { LlamaConfigError } from './errors.js';
import { binding } from './native/binding.js';
import { defaults } from './options/defaults.js';
import { describe, oneOf, parseArgument, parseOptions } from './options/validate.js';

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'none'] as const;

/** Log levels, most verbose first. `'none'` silences the logger. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Receives llama.cpp / ggml log lines (without the trailing newline) and llama-kv's own warnings. */
export type Logger = (level: Exclude<LogLevel, 'none'>, message: string) => void;

/** Options of {@link setLogger}. */
export interface LoggerOptions {
    /** The least severe level passed to the logger. Defaults to `'warn'`. */
    level?: LogLevel;
}

const levelNumbers: Record<LogLevel, number> = { debug: 1, info: 2, warn: 3, error: 4, none: 99 };
const levelNames: Record<number, Exclude<LogLevel, 'none'>> = { 1: 'debug', 2: 'info', 3: 'warn', 4: 'error' };

let current: Logger | null = null;
let currentLevel: LogLevel = 'warn';

const levelSchema = () => z.enum(LOG_LEVELS, { error: oneOf(LOG_LEVELS) });
const loggerOptionsSchema = z.strictObject({ level: levelSchema().optional() });

/**
 * Sets the logger for llama.cpp / ggml output and llama-kv warnings, or removes it
 * with `null`.
 *
 * @example
 * setLogger((level, message) => console.error(`[llama ${level}] ${message}`), { level: 'info' });
 */
export function setLogger(logger: Logger | null, options: LoggerOptions = {}): void {
    if (logger !== null && typeof logger !== 'function') {
        throw new LlamaConfigError(`Expected a function or null for logger but received ${describe(logger)}`, 'INVALID_ARGUMENT', ['logger']);
    }
    currentLevel = parseOptions(loggerOptionsSchema, options, 'setLogger()').level ?? defaults.logger.level;
    current = logger;
    const native = binding();
    if (logger === null) {
        native.setLogger(null);
        return;
    }
    native.setLogger((level, message) => emit(levelNames[level] ?? 'info', message, false), levelNumbers[currentLevel]);
}

/** Changes the level of the current logger. */
export function setLogLevel(level: LogLevel): void {
    currentLevel = parseArgument(levelSchema(), level, 'level');
    if (current) binding().setLogLevel(levelNumbers[currentLevel]);
}

function emit(level: Exclude<LogLevel, 'none'>, message: string, filter: boolean): void {
    if (!current) return;
    if (filter && levelNumbers[level] < levelNumbers[currentLevel]) return;
    try {
        current(level, message);
    } catch {
        // A logger that throws must not break inference.
    }
}

/** Logs llama-kv's own messages through the user's logger. @internal */
export function log(level: Exclude<LogLevel, 'none'>, message: string): void {
    emit(level, `llama-kv: ${message}`, true);
}

/**
 * A user callback (onProgress) as the operations call it: what it throws never changes the
 * outcome of the operation, everywhere the same; it is logged once per call as a warning.
 * @internal
 */
export function userCallback<A extends unknown[]>(fn: (...args: A) => void, what: string): (...args: A) => void {
    let reported = false;
    return (...args) => {
        try {
            fn(...args);
        } catch (error) {
            if (!reported) {
                reported = true;
                log('warn', `${what} threw (ignored: a callback never changes the outcome): ${(error as Error)?.message ?? String(error)}`);
            }
        }
    };
}
