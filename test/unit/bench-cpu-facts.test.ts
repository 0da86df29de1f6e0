import { describe, expect, it } from 'vitest';
import { cpuIdentity, featureList } from '../../lib/cli/bench/cpu-facts.js';

describe('bench CPU facts', () => {
    it('names vendor, family, model and stepping from /proc/cpuinfo (the first processor)', () => {
        const block = (model: number) =>
            `processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: ${model}\nmodel name\t: Intel(R) Xeon(R) Processor\nstepping\t: 8\nflags\t\t: fpu sse2\n`;
        expect(cpuIdentity(`${block(143)}\n${block(1)}`)).toBe('GenuineIntel family 6 model 143 stepping 8');
        // ARM: no family/model fields; the implementer is what there is.
        expect(cpuIdentity('processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n')).toBe('0x41');
        expect(cpuIdentity('')).toBeNull();
    });

    it('lists a backend\'s features as NAME, or NAME=value when not a flag', () => {
        expect(featureList({ AVX2: '1', AMX_INT8: '1', SVE_CNT: '16' })).toEqual(['AVX2', 'AMX_INT8', 'SVE_CNT=16']);
        expect(featureList({})).toEqual([]);
    });
});
