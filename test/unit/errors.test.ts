import { describe, expect, it } from 'vitest';
import { captureStack, fromNative, LlamaAbortError, LlamaDecodeError, LlamaError } from '../../lib/errors.js';

describe('errors from the native layer', () => {
    it('keeps each llama_decode outcome apart', () => {
        const full = fromNative(Object.assign(new Error('no KV slot'), { code: 'CONTEXT_FULL', status: 1 }));
        const invalid = fromNative(Object.assign(new Error('bad batch'), { code: 'INVALID_BATCH', status: -1 }));
        const fatal = fromNative(Object.assign(new Error('fatal'), { code: 'DECODE_FAILED', status: -3 }));
        const aborted = fromNative(Object.assign(new Error('aborted'), { code: 'ABORTED', status: 2 }));
        expect(full).toBeInstanceOf(LlamaDecodeError);
        expect([full.code, full.status]).toEqual(['CONTEXT_FULL', 1]);
        expect([invalid.code, invalid.status]).toEqual(['INVALID_BATCH', -1]);
        expect([fatal.code, fatal.status]).toEqual(['DECODE_FAILED', -3]);
        expect(aborted).toBeInstanceOf(LlamaAbortError);
    });

    it('maps unknown codes to INTERNAL and keeps the caller stack', () => {
        const stack = captureStack();
        const e = fromNative(Object.assign(new Error('weird'), { code: 'SOMETHING' }), stack);
        expect(e).toBeInstanceOf(LlamaError);
        expect(e.code).toBe('INTERNAL');
        expect(e.stack).toContain('errors.test.ts');
        expect(e.message).toBe('weird');
    });
});
