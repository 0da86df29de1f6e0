/**
 * Deterministic LoRA adapters for the fixture models, in the GGUF layout llama.cpp's
 * src/llama-adapter.cpp reads: general.type 'adapter', adapter.type 'lora',
 * adapter.lora.alpha, and for each adapted tensor W (ne0 = inputs, ne1 = outputs) a pair
 * `W.lora_a` [inputs, rank] and `W.lora_b` [rank, outputs], in F32.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { GGUF_VALUE_TYPE } from '../gguf/types.js';
import { f32ToBytes, writeGguf, type GgufKvEntry, type GgufTensorEntry } from '../gguf/writer.js';
import { parseOptions } from '../options/validate.js';
import { defaultFixtureCacheDir, FIXTURE_MODELS, fixtureOptionsSchema, GENERATOR_VERSION, randomWeights, tensorPlans, tensorSeed, unknownFixture, type FixtureModelName } from './models.js';

/** Names of the built-in fixture adapters. */
export type FixtureLoraName = 'tiny-lora-r8-attn' | 'tiny-lora-r4-ffn' | 'tiny-hd48-lora-r8-attn' | 'micro-lora-r4-attn';

/** Everything that determines a fixture adapter. */
export interface FixtureLoraSpec {
    /** The fixture model it adapts (its architecture and shapes). */
    base: FixtureModelName;
    rank: number;
    alpha: number;
    /** Tensor kinds adapted in every layer, e.g. 'attn_q' for blk.N.attn_q.weight. */
    targets: readonly string[];
    seed: number;
}

/** Specs of the built-in fixture adapters. */
export const FIXTURE_LORAS: Readonly<Record<FixtureLoraName, Readonly<FixtureLoraSpec>>> = {
    // q/k/v/o of every layer, rank 8, alpha 16: for tiny-f16 and tiny-q8_0 (same shapes).
    'tiny-lora-r8-attn': { base: 'tiny-f16', rank: 8, alpha: 16, targets: ['attn_q', 'attn_k', 'attn_v', 'attn_output'], seed: 0x10a8 },
    // The feed-forward of every layer, rank 4, alpha 4.
    'tiny-lora-r4-ffn': { base: 'tiny-f16', rank: 4, alpha: 4, targets: ['ffn_gate', 'ffn_up', 'ffn_down'], seed: 0x10a4 },
    // Made for the head-dim-48 model (embedding 192): the wrong shapes for tiny-f16.
    'tiny-hd48-lora-r8-attn': { base: 'tiny-hd48-f16', rank: 8, alpha: 16, targets: ['attn_q', 'attn_k', 'attn_v', 'attn_output'], seed: 0x10b8 },
    // For the micro model (stress tests).
    'micro-lora-r4-attn': { base: 'micro-f16', rank: 4, alpha: 4, targets: ['attn_q', 'attn_k', 'attn_v', 'attn_output'], seed: 0x10c4 },
};

/** The tensors of an adapter. */
function loraTensors(spec: Readonly<FixtureLoraSpec>): GgufTensorEntry[] {
    const base = FIXTURE_MODELS[spec.base];
    const targets = tensorPlans(base, 0).filter((p) => spec.targets.some((t) => p.name.endsWith(`.${t}.weight`)));
    return targets.flatMap((plan) => {
        const [inputs, outputs] = plan.shape;
        const a = randomWeights(inputs * spec.rank, 1 / Math.sqrt(inputs), tensorSeed(spec.seed, `${plan.name}.lora_a`));
        const b = randomWeights(spec.rank * outputs, 0.5 / Math.sqrt(spec.rank), tensorSeed(spec.seed, `${plan.name}.lora_b`));
        return [
            { name: `${plan.name}.lora_a`, type: 'F32', shape: [inputs, spec.rank], data: f32ToBytes(a) },
            { name: `${plan.name}.lora_b`, type: 'F32', shape: [spec.rank, outputs], data: f32ToBytes(b) },
        ];
    });
}

function loraEntries(name: string, spec: Readonly<FixtureLoraSpec>): GgufKvEntry[] {
    const str = (key: string, value: string): GgufKvEntry => ({ key, type: GGUF_VALUE_TYPE.STRING, value });
    return [
        str('general.architecture', 'llama'),
        str('general.type', 'adapter'),
        str('general.name', `llama-kv ${name}`),
        str('adapter.type', 'lora'),
        { key: 'adapter.lora.alpha', type: GGUF_VALUE_TYPE.FLOAT32, value: spec.alpha },
    ];
}

/**
 * Makes sure a fixture adapter exists in the cache directory and returns its path
 * (generated once, then reused; written under a temporary name and renamed).
 */
export async function ensureFixtureLora(name: FixtureLoraName, options: { dir?: string } = {}): Promise<string> {
    const spec = Object.prototype.hasOwnProperty.call(FIXTURE_LORAS, name) ? FIXTURE_LORAS[name] : undefined;
    if (!spec) throw unknownFixture('fixture adapter', name, Object.keys(FIXTURE_LORAS));
    const opts = parseOptions(fixtureOptionsSchema.omit({ vocabPath: true }), options, 'ensureFixtureLora()');
    const hash = createHash('sha256').update(JSON.stringify({ GENERATOR_VERSION, spec, base: FIXTURE_MODELS[spec.base] })).digest('hex').slice(0, 12);
    const dir = resolve(opts.dir ?? defaultFixtureCacheDir());
    const path = join(dir, `llama-kv-${name}-v${GENERATOR_VERSION}-${hash}.gguf`);
    try {
        if ((await stat(path)).isFile()) return path;
    } catch {
        // not generated yet
    }
    await mkdir(dir, { recursive: true });
    const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
        await writeGguf(tmp, { kv: loraEntries(name, spec), tensors: loraTensors(spec) });
        await rename(tmp, path);
    } catch (error) {
        await rm(tmp, { force: true });
        throw error;
    }
    return path;
}
