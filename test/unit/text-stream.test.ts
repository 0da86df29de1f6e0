import { describe, expect, it } from 'vitest';
import { TextStream } from '../../lib/context/text-stream.js';

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));

describe('TextStream', () => {
    it('never emits half of a multi-byte character', () => {
        const text = 'a世🦙b';
        const all = bytes(text);
        const stream = new TextStream([]);
        const out: string[] = [];
        for (const b of all) out.push(stream.push(Uint8Array.of(b)));
        out.push(stream.finish(null));
        for (const piece of out) expect(piece).not.toContain('\uFFFD');
        expect(out.join('')).toBe(text);
        // "世" is 3 bytes: nothing until its last byte arrives.
        expect(out.slice(1, 4)).toEqual(['', '', '世']);
    });

    it('holds back a possible stop string and cuts at it', () => {
        const stream = new TextStream(['END']);
        expect(stream.push(bytes('hello E'))).toBe('hello');
        expect(stream.push(bytes('N'))).toBe(' ');
        expect(stream.push(bytes('D and more'))).toBe('');
        expect(stream.stopOffset).toBe(6);
        expect(stream.finish(stream.stopOffset)).toBe('');
        expect(stream.fullText(stream.stopOffset)).toBe('hello ');
    });

    it('releases held text that turned out not to be a stop string', () => {
        const stream = new TextStream(['END']);
        expect(stream.push(bytes('xEN'))).toBe('x');
        expect(stream.push(bytes('Xyz'))).toBe('ENX');
        expect(stream.finish(null)).toBe('yz');
        expect(stream.stopOffset).toBeNull();
    });

    it('finds the earliest of several stop strings', () => {
        const stream = new TextStream(['bb', 'abc']);
        stream.push(bytes('xxabcbb'));
        expect(stream.stopOffset).toBe(2);
    });
});
