// Our K/V cache type table against the pinned llama.cpp source (vendor/llama.cpp): the
// model project, because the unit project runs without the vendor tree.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KV_CACHE_TYPE_INFO, KV_CACHE_TYPES } from '../../lib/options/kv-cache.js';

const root = join(import.meta.dirname, '..', '..');

describe('KV cache types', () => {
    it("match llama.cpp's own list (common/arg.cpp kv_cache_types), in order", () => {
        const source = readFileSync(join(root, 'vendor', 'llama.cpp', 'common', 'arg.cpp'), 'utf8');
        const block = /const std::vector<ggml_type> kv_cache_types = \{([^}]*)\}/.exec(source);
        expect(block, 'kv_cache_types not found in common/arg.cpp').not.toBeNull();
        const theirs = [...block![1].matchAll(/GGML_TYPE_(\w+)/g)].map((m) => m[1].toLowerCase());
        expect([...KV_CACHE_TYPES]).toEqual(theirs);
    });

    it('carry ggml ids and block sizes from ggml.h', () => {
        const header = readFileSync(join(root, 'vendor', 'llama.cpp', 'ggml', 'include', 'ggml.h'), 'utf8');
        for (const type of KV_CACHE_TYPES) {
            const id = new RegExp(`GGML_TYPE_${type.toUpperCase()}\\s*=\\s*(\\d+)`).exec(header);
            expect(Number(id![1]), type).toBe(KV_CACHE_TYPE_INFO[type].ggmlType);
        }
        expect(KV_CACHE_TYPE_INFO.f16).toMatchObject({ blockSize: 1, bytesPerValue: 2, quantized: false });
        expect(KV_CACHE_TYPE_INFO.q8_0).toMatchObject({ blockSize: 32, blockBytes: 34, quantized: true });
        expect(KV_CACHE_TYPE_INFO.q4_0).toMatchObject({ blockSize: 32, blockBytes: 18, quantized: true });
    });
});
