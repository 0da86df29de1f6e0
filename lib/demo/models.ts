/**
 * Deterministic tiny llama models for tests and the CLI's built-in demo.
 *
 * The models use llama.cpp's `llama` architecture with the real LLaMA SPM
 * tokenizer (copied from llama.cpp's vocab-only test file) and pseudo-random
 * weights, so they load and generate like a real model, only fast and nonsense.
 * The same inputs always give byte-identical files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { z } from 'zod';
import { LlamaConfigError, LlamaModelLoadError } from '../errors.js';
import { GGUF_VALUE_TYPE, type GgufMetadata } from '../gguf/types.js';
import { parseGguf } from '../gguf/reader.js';
import { defaults } from '../options/defaults.js';
import { filePath, parseOptions, suggest } from '../options/validate.js';
import {
    f32ToBytes,
    f32ToF16Bytes,
    quantizeQ4_0,
    quantizeQ8_0,
    writeGguf,
    type GgufKvEntry,
    type GgufTensorEntry,
} from '../gguf/writer.js';

/**
 * Version of the generator's output. Bump it whenever anything changes the bytes
 * of a generated model, so cached files from older versions are never reused.
 */
export const GENERATOR_VERSION = 1;

/** Names of the built-in fixture models. */
export type FixtureModelName =
    | 'tiny-f16'
    | 'tiny-q8_0'
    | 'tiny-q4_0'
    | 'tiny-hd48-f16'
    | 'tiny-moe-f16'
    | 'tiny-mrope-f16'
    | 'micro-f16'
    | 'chat-llama3-f16'
    | 'chat-qwen-f16'
    | 'chat-gemma-f16'
    | 'chat-tools-f16'
    | 'bench-f16'
    | 'bench-small-q8_0';

/** Everything that determines a fixture model. */
export interface FixtureModelSpec {
    /** Value of `general.name`. */
    displayName: string;
    /** Storage type of the weight matrices (norms are always F32). */
    weightType: 'F16' | 'Q8_0' | 'Q4_0';
    /** `general.file_type` (llama_ftype): 1 = mostly F16, 7 = mostly Q8_0, 2 = mostly Q4_0. */
    fileType: number;
    /** Number of transformer blocks. */
    nLayer: number;
    /** Embedding width. */
    nEmbd: number;
    /** Attention heads. */
    nHead: number;
    /** Key/value heads (GQA when less than nHead). */
    nHeadKv: number;
    /** Feed-forward width (a multiple of 256 so K-quants apply). */
    nFf: number;
    /** Training context length. */
    contextLength: number;
    /** RoPE base frequency. */
    ropeFreqBase: number;
    /** RMS norm epsilon. */
    rmsEps: number;
    /** PRNG seed for the weights. */
    seed: number;
    /** Experts per layer (a Mixtral-style MoE feed-forward); absent or 0 for a dense model. */
    nExpert?: number;
    /**
     * llama.cpp architecture: absent for `llama`; `qwen2vl` is the same network with M-RoPE
     * (four position sections per token), whose KV cache llama.cpp cannot shift.
     */
    architecture?: 'qwen2vl';
    /** Experts used per token (MoE only). */
    nExpertUsed?: number;
    /**
     * A chat template for `tokenizer.chat_template`: the name of a file in llama.cpp's
     * `models/templates/` (see {@link findChatTemplateFile}); absent for none.
     */
    chatTemplate?: string;
}

const TINY_BASE = {
    nLayer: 2,
    nEmbd: 256,
    nHead: 4,
    nHeadKv: 2,
    nFf: 512,
    contextLength: 2048,
    ropeFreqBase: 10000,
    rmsEps: 1e-5,
    seed: 0x11a3a4b,
} as const;

/** micro-f16's network (one small layer; 9 MB, almost all of it the 32000-token embedding and output matrices) with a 2048-token context: the base of the chat fixtures. */
const CHAT_BASE = { ...TINY_BASE, nLayer: 1, nEmbd: 64, nHead: 2, nHeadKv: 1, nFf: 128, weightType: 'F16', fileType: 1 } as const;

/** Specs of the built-in fixture models. */
export const FIXTURE_MODELS: Readonly<Record<FixtureModelName, Readonly<FixtureModelSpec>>> = {
    'tiny-f16': { ...TINY_BASE, displayName: 'llama-kv tiny f16', weightType: 'F16', fileType: 1 },
    'tiny-q8_0': { ...TINY_BASE, displayName: 'llama-kv tiny q8_0', weightType: 'Q8_0', fileType: 7 },
    // Q4_0 weights: the type the CPU backend repacks on every common CPU (CPU_REPACK with
    // AVX2, AVX-512 or ARM dot products; AMX where the CPU has it), so the extra-buffer
    // placement is exercised wherever the tests run.
    'tiny-q4_0': { ...TINY_BASE, displayName: 'llama-kv tiny q4_0', weightType: 'Q4_0', fileType: 2 },
    // Head dimension 48: not a multiple of the 32-value blocks of the quantized KV cache types.
    'tiny-hd48-f16': { ...TINY_BASE, nEmbd: 192, displayName: 'llama-kv tiny hd48 f16', weightType: 'F16', fileType: 1 },
    // A mixture of experts: 4 experts per layer, 2 used per token (for cpuMoeLayers).
    'tiny-moe-f16': { ...TINY_BASE, nFf: 256, nExpert: 4, nExpertUsed: 2, displayName: 'llama-kv tiny moe f16', weightType: 'F16', fileType: 1 },
    // The tiny network as llama.cpp's qwen2vl architecture: M-RoPE, so llama_memory_can_shift() is false.
    'tiny-mrope-f16': { ...TINY_BASE, displayName: 'llama-kv tiny mrope f16', weightType: 'F16', fileType: 1, architecture: 'qwen2vl' },
    // One small layer (4 MB, mostly the 32000-token embeddings): the base of the corrupted-file corpus.
    'micro-f16': { ...TINY_BASE, nLayer: 1, nEmbd: 64, nHead: 2, nHeadKv: 1, nFf: 128, contextLength: 256, displayName: 'llama-kv micro f16', weightType: 'F16', fileType: 1 },
    // The micro network with real chat templates from llama.cpp's models/templates/ (the
    // tokens they name, such as <|im_start|>, are plain text in the SPM vocabulary).
    'chat-llama3-f16': { ...CHAT_BASE, displayName: 'llama-kv chat llama3 f16', chatTemplate: 'meta-llama-Llama-3.1-8B-Instruct.jinja' },
    // ChatML with tools.
    'chat-qwen-f16': { ...CHAT_BASE, displayName: 'llama-kv chat qwen f16', chatTemplate: 'Qwen-Qwen2.5-7B-Instruct.jinja' },
    // No system role (the template folds it into the first user turn).
    'chat-gemma-f16': { ...CHAT_BASE, displayName: 'llama-kv chat gemma f16', chatTemplate: 'google-gemma-2-2b-it.jinja' },
    // Hermes 2 Pro tool calls (<tool_call>{...}</tool_call>), which llama.cpp's chat layer parses.
    'chat-tools-f16': { ...CHAT_BASE, displayName: 'llama-kv chat tools f16', chatTemplate: 'NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja' },
    // About 125M parameters (250 MB): for benchmarks, generated on demand, never in tests.
    'bench-f16': {
        ...TINY_BASE,
        nLayer: 12,
        nEmbd: 768,
        nHead: 12,
        nHeadKv: 4,
        nFf: 2048,
        displayName: 'llama-kv bench f16',
        weightType: 'F16',
        fileType: 1,
    },
    // About 58M parameters with Q8_0 weights (62 MB): the benchmark on a quantized model that
    // fits in the cache of many CPUs; head dimension 64 as bench-f16's.
    'bench-small-q8_0': {
        ...TINY_BASE,
        nLayer: 8,
        nEmbd: 512,
        nHead: 8,
        nHeadKv: 4,
        nFf: 1536,
        displayName: 'llama-kv bench small q8_0',
        weightType: 'Q8_0',
        fileType: 7,
    },
};

/** Options for {@link ensureFixtureModel}. */
export interface EnsureFixtureModelOptions {
    /**
     * Cache directory. Defaults to `$LLAMA_KV_CACHE_DIR`, else
     * `~/.cache/llama-kv/models`.
     */
    dir?: string;
    /** Vocab GGUF to copy the tokenizer from. Defaults to {@link findVocabFile}. */
    vocabPath?: string;
}

const VOCAB_RELATIVE_PATH = join('vendor', 'llama.cpp', 'models', 'ggml-vocab-llama-spm.gguf');

/** Walk up from this module's directory to the llama-kv package root. */
function findPackageRoot(): string | undefined {
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
        const pkg = join(dir, 'package.json');
        if (existsSync(pkg) && readPackageName(pkg) === 'llama-kv') {
            return dir;
        }
        const parent = dirname(dir);
        if (parent === dir) {
            return undefined;
        }
        dir = parent;
    }
}

/** The `name` field of a package.json, or undefined when unreadable. */
function readPackageName(path: string): string | undefined {
    try {
        const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
        const name = (parsed as { name?: unknown }).name;
        return typeof name === 'string' ? name : undefined;
    } catch {
        return undefined;
    }
}

/**
 * Locate the LLaMA SPM vocab GGUF used for fixture models: `$LLAMA_KV_VOCAB`,
 * else `vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf` under the package root.
 *
 * @throws LlamaModelLoadError (code MODEL_NOT_FOUND) when the file does not exist (run `npm run vendor`).
 */
export function findVocabFile(): string {
    const fromEnv = process.env.LLAMA_KV_VOCAB;
    if (fromEnv) {
        if (!existsSync(fromEnv)) {
            throw new LlamaModelLoadError('MODEL_NOT_FOUND', `LLAMA_KV_VOCAB points to ${fromEnv}, which does not exist`);
        }
        return resolve(fromEnv);
    }
    const root = findPackageRoot();
    const candidate = root === undefined ? undefined : join(root, VOCAB_RELATIVE_PATH);
    if (candidate === undefined || !existsSync(candidate)) {
        throw new LlamaModelLoadError(
            'MODEL_NOT_FOUND',
            `llama.cpp vocab file not found (${candidate ?? VOCAB_RELATIVE_PATH}); ` +
                'run `npm run vendor` to fetch llama.cpp, or set LLAMA_KV_VOCAB to a vocab GGUF',
        );
    }
    return candidate;
}

const TEMPLATES_RELATIVE_PATH = join('vendor', 'llama.cpp', 'models', 'templates');

/**
 * Locate a chat template of llama.cpp's `models/templates/` by file name: in the folder
 * `templates/` beside `$LLAMA_KV_VOCAB` when that is set and has it, else in
 * `vendor/llama.cpp/models/templates/` under the package root.
 *
 * @param name A file name such as `Qwen-Qwen2.5-7B-Instruct.jinja` (no folders).
 * @throws LlamaConfigError (code INVALID_ARGUMENT) for a name with a folder in it.
 * @throws LlamaModelLoadError (code MODEL_NOT_FOUND) when the file does not exist (run `npm run vendor`).
 */
export function findChatTemplateFile(name: string): string {
    if (name === '' || basename(name) !== name || name === '.' || name === '..') {
        throw new LlamaConfigError(`chatTemplate must be a file name in llama.cpp's models/templates/ (received '${name}')`, 'INVALID_ARGUMENT', ['chatTemplate']);
    }
    const fromEnv = process.env.LLAMA_KV_VOCAB;
    const root = findPackageRoot();
    const candidates = [
        ...(fromEnv ? [join(dirname(resolve(fromEnv)), 'templates', name)] : []),
        ...(root === undefined ? [] : [join(root, TEMPLATES_RELATIVE_PATH, name)]),
    ];
    const found = candidates.find((path) => existsSync(path));
    if (found === undefined) {
        throw new LlamaModelLoadError(
            'MODEL_NOT_FOUND',
            `chat template not found (${candidates.length > 0 ? candidates.join(', ') : join(TEMPLATES_RELATIVE_PATH, name)}); run \`npm run vendor\` to fetch llama.cpp`,
        );
    }
    return found;
}

/** The text of a spec's chat template, or undefined when it has none. */
async function readChatTemplate(spec: Readonly<FixtureModelSpec>): Promise<string | undefined> {
    if (spec.chatTemplate === undefined) return undefined;
    const path = findChatTemplateFile(spec.chatTemplate);
    try {
        return await readFile(path, 'utf8');
    } catch (error) {
        throw new LlamaModelLoadError('MODEL_LOAD_FAILED', `Cannot read the chat template ${path}: ${(error as Error).message}`, { cause: error });
    }
}

/** Default cache directory for generated models. */
export function defaultFixtureCacheDir(): string {
    return defaults.demo.dir();
}

/** Look up a fixture spec, with a clear error for unknown names. */
function getSpec(name: FixtureModelName): Readonly<FixtureModelSpec> {
    const spec = Object.prototype.hasOwnProperty.call(FIXTURE_MODELS, name) ? FIXTURE_MODELS[name] : undefined;
    if (spec === undefined) throw unknownFixture('fixture model', name, Object.keys(FIXTURE_MODELS));
    return spec;
}

/** INVALID_ARGUMENT for a name that is no fixture, with the closest one. @internal */
export function unknownFixture(what: string, name: unknown, known: readonly string[]): LlamaConfigError {
    const hint = typeof name === 'string' ? suggest(name, known) : undefined;
    return new LlamaConfigError(
        `unknown ${what} '${String(name)}' (known: ${known.join(', ')})${hint ? `; did you mean '${hint}'?` : ''}`,
        'INVALID_ARGUMENT',
        ['name'],
    );
}

/** The options of ensureFixtureModel() and ensureFixtureLora(). @internal */
export const fixtureOptionsSchema = z.strictObject({ dir: filePath().optional(), vocabPath: filePath().optional() });

/** The vocab file's bytes, with load()'s codes when it cannot be read. */
async function readVocab(path: string): Promise<Uint8Array> {
    try {
        return new Uint8Array(await readFile(path));
    } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw new LlamaModelLoadError('MODEL_NOT_FOUND', `vocab file not found: ${path}`, { cause: error });
        if (code === 'EISDIR') throw new LlamaModelLoadError('INVALID_MODEL_FILE', `vocab file ${path} is a directory, not a GGUF file`, { cause: error });
        throw new LlamaModelLoadError('MODEL_LOAD_FAILED', `Cannot read the vocab file ${path}: ${(error as Error).message}`, { cause: error });
    }
}

/**
 * File name of a fixture model: its name, the generator version and a hash of
 * its spec and vocab, so any change gives a new file.
 */
function fixtureFileName(name: FixtureModelName, spec: Readonly<FixtureModelSpec>, vocab: Uint8Array, chatTemplate: string | undefined): string {
    const hash = createHash('sha256')
        .update(JSON.stringify({ GENERATOR_VERSION, spec }))
        .update(vocab);
    // The template's text, not only its file name: a changed template is a new file.
    if (chatTemplate !== undefined) hash.update(JSON.stringify({ chatTemplate }));
    const digest = hash.digest('hex').slice(0, 12);
    return `llama-kv-${name}-v${GENERATOR_VERSION}-${digest}.gguf`;
}

/**
 * Make sure a fixture model exists in the cache directory and return its path.
 * An existing file is reused; otherwise it is generated under a temporary name
 * and renamed into place, so concurrent callers never see a partial file.
 *
 * @param name Which fixture model.
 * @param options Cache directory and vocab file overrides.
 * @returns Absolute path of the GGUF file.
 */
export async function ensureFixtureModel(
    name: FixtureModelName,
    options: EnsureFixtureModelOptions = {},
): Promise<string> {
    const spec = getSpec(name);
    const opts = parseOptions(fixtureOptionsSchema, options, 'ensureFixtureModel()');
    const vocabPath = opts.vocabPath ?? findVocabFile();
    const vocabBytes = await readVocab(vocabPath);
    const chatTemplate = await readChatTemplate(spec);
    const dir = resolve(opts.dir ?? defaultFixtureCacheDir());
    const path = join(dir, fixtureFileName(name, spec, vocabBytes, chatTemplate));
    if (await isFile(path)) {
        return path;
    }
    await mkdir(dir, { recursive: true });
    const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
        await writeFixtureModelFromVocab(spec, parseGguf(vocabBytes), tmp, chatTemplate);
        await rename(tmp, path);
    } catch (err) {
        await rm(tmp, { force: true });
        throw err;
    }
    return path;
}

/** Whether `path` is an existing regular file. */
async function isFile(path: string): Promise<boolean> {
    try {
        return (await stat(path)).isFile();
    } catch {
        return false;
    }
}

/**
 * Generate a fixture model from a spec and write it to `path` (no caching).
 *
 * @param spec The model spec (e.g. `FIXTURE_MODELS['tiny-f16']`, possibly with changes).
 * @param path Output file.
 * @param vocabPath Vocab GGUF to copy the tokenizer from (default {@link findVocabFile}).
 */
export async function writeFixtureModel(
    spec: Readonly<FixtureModelSpec>,
    path: string,
    vocabPath: string = findVocabFile(),
): Promise<void> {
    const vocab = parseGguf(await readVocab(vocabPath));
    await writeFixtureModelFromVocab(spec, vocab, path, await readChatTemplate(spec));
}

/** Generate and write a model given the parsed vocab file. */
async function writeFixtureModelFromVocab(
    spec: Readonly<FixtureModelSpec>,
    vocab: GgufMetadata,
    path: string,
    chatTemplate: string | undefined,
): Promise<void> {
    validateSpec(spec);
    const tokenizerKv = tokenizerEntries(vocab);
    const nVocab = vocabSize(tokenizerKv);
    const templateKv: GgufKvEntry[] = chatTemplate === undefined ? [] : [{ key: 'tokenizer.chat_template', type: GGUF_VALUE_TYPE.STRING, value: chatTemplate }];
    await writeGguf(path, {
        kv: [...modelEntries(spec, nVocab), ...tokenizerKv, ...templateKv],
        tensors: modelTensors(spec, nVocab),
    });
}

/** Reject specs llama.cpp could not load. */
function validateSpec(spec: Readonly<FixtureModelSpec>): void {
    const ints = [spec.nLayer, spec.nEmbd, spec.nHead, spec.nHeadKv, spec.nFf, spec.contextLength];
    if (ints.some((v) => !Number.isInteger(v) || v <= 0)) {
        throw new Error('fixture spec sizes must be positive integers');
    }
    if (spec.nEmbd % spec.nHead !== 0 || spec.nHead % spec.nHeadKv !== 0) {
        throw new Error('nEmbd must be divisible by nHead, and nHead by nHeadKv');
    }
    if (spec.nExpert !== undefined && spec.nExpert > 0 && !(Number.isInteger(spec.nExpertUsed) && spec.nExpertUsed! > 0 && spec.nExpertUsed! <= spec.nExpert)) {
        throw new Error('nExpertUsed must be an integer in [1, nExpert]');
    }
    if (spec.weightType !== 'F16' && (spec.nEmbd % 32 !== 0 || spec.nFf % 32 !== 0)) {
        throw new Error(`${spec.weightType} fixtures need nEmbd and nFf to be multiples of 32`);
    }
}

/** Copy every `tokenizer.ggml.*` key of the vocab file, types preserved. */
function tokenizerEntries(vocab: GgufMetadata): GgufKvEntry[] {
    const entries: GgufKvEntry[] = [];
    for (const key of Object.keys(vocab.kv)) {
        if (!key.startsWith('tokenizer.ggml.')) {
            continue;
        }
        const { type, arrayType } = vocab.kvTypes[key];
        entries.push({ key, type, arrayType, value: vocab.kv[key] });
    }
    return entries;
}

/** Number of tokens in the copied tokenizer. */
function vocabSize(tokenizerKv: GgufKvEntry[]): number {
    const tokens = tokenizerKv.find((e) => e.key === 'tokenizer.ggml.tokens');
    if (tokens === undefined || typeof tokens.value !== 'object') {
        throw new LlamaModelLoadError('INVALID_MODEL_FILE', 'vocab file has no tokenizer.ggml.tokens array');
    }
    return tokens.value.length;
}

/** The general.* and llama.* metadata entries. */
function modelEntries(spec: Readonly<FixtureModelSpec>, nVocab: number): GgufKvEntry[] {
    const u32 = (key: string, value: number): GgufKvEntry => ({ key, type: GGUF_VALUE_TYPE.UINT32, value });
    const f32 = (key: string, value: number): GgufKvEntry => ({ key, type: GGUF_VALUE_TYPE.FLOAT32, value });
    const str = (key: string, value: string): GgufKvEntry => ({ key, type: GGUF_VALUE_TYPE.STRING, value });
    const arch = spec.architecture ?? 'llama';
    const head = spec.nEmbd / spec.nHead;
    // M-RoPE sections (temporal, height, width, extra) over the head's rotary pairs: text broadcasts one position to all.
    const mrope: GgufKvEntry[] = arch === 'qwen2vl' ? [{ key: 'qwen2vl.rope.dimension_sections', type: GGUF_VALUE_TYPE.ARRAY, arrayType: GGUF_VALUE_TYPE.INT32, value: [head / 4, head / 8, head / 8, 0] }] : [];
    return [
        str('general.architecture', arch),
        str('general.name', spec.displayName),
        u32('general.file_type', spec.fileType),
        u32('general.quantization_version', 2),
        u32(`${arch}.context_length`, spec.contextLength),
        u32(`${arch}.embedding_length`, spec.nEmbd),
        u32(`${arch}.block_count`, spec.nLayer),
        u32(`${arch}.feed_forward_length`, spec.nFf),
        u32(`${arch}.attention.head_count`, spec.nHead),
        u32(`${arch}.attention.head_count_kv`, spec.nHeadKv),
        u32(`${arch}.rope.dimension_count`, spec.nEmbd / spec.nHead),
        f32(`${arch}.rope.freq_base`, spec.ropeFreqBase),
        f32(`${arch}.attention.layer_norm_rms_epsilon`, spec.rmsEps),
        u32(`${arch}.vocab_size`, nVocab),
        ...(spec.nExpert ? [u32(`${arch}.expert_count`, spec.nExpert), u32(`${arch}.expert_used_count`, spec.nExpertUsed ?? 1)] : []),
        ...mrope,
    ];
}

/** A tensor to generate: name, shape (ne0 first) and weight scale. */
/** @internal */
export interface TensorPlan {
    name: string;
    shape: number[];
    /** Standard deviation of the weights; 0 means a norm weight (all ones, F32). */
    std: number;
}

/** All tensors of the model with their shapes and initial scales. */
/** @internal */
export function tensorPlans(spec: Readonly<FixtureModelSpec>, nVocab: number): TensorPlan[] {
    const { nEmbd, nFf } = spec;
    const nEmbdKv = (nEmbd / spec.nHead) * spec.nHeadKv;
    const plans: TensorPlan[] = [{ name: 'token_embd.weight', shape: [nEmbd, nVocab], std: 1 }];
    for (let i = 0; i < spec.nLayer; i++) {
        const p = `blk.${i}.`;
        plans.push(
            { name: `${p}attn_norm.weight`, shape: [nEmbd], std: 0 },
            { name: `${p}attn_q.weight`, shape: [nEmbd, nEmbd], std: 1 / Math.sqrt(nEmbd) },
            { name: `${p}attn_k.weight`, shape: [nEmbd, nEmbdKv], std: 1 / Math.sqrt(nEmbd) },
            { name: `${p}attn_v.weight`, shape: [nEmbd, nEmbdKv], std: 1 / Math.sqrt(nEmbd) },
            { name: `${p}attn_output.weight`, shape: [nEmbd, nEmbd], std: 1 / Math.sqrt(nEmbd) },
            { name: `${p}ffn_norm.weight`, shape: [nEmbd], std: 0 },
        );
        const nExpert = spec.nExpert ?? 0;
        if (nExpert > 0) {
            plans.push(
                { name: `${p}ffn_gate_inp.weight`, shape: [nEmbd, nExpert], std: 1 / Math.sqrt(nEmbd) },
                { name: `${p}ffn_gate_exps.weight`, shape: [nEmbd, nFf, nExpert], std: 1 / Math.sqrt(nEmbd) },
                { name: `${p}ffn_up_exps.weight`, shape: [nEmbd, nFf, nExpert], std: 1 / Math.sqrt(nEmbd) },
                { name: `${p}ffn_down_exps.weight`, shape: [nFf, nEmbd, nExpert], std: 1 / Math.sqrt(nFf) },
            );
        } else {
            plans.push(
                { name: `${p}ffn_gate.weight`, shape: [nEmbd, nFf], std: 1 / Math.sqrt(nEmbd) },
                { name: `${p}ffn_up.weight`, shape: [nEmbd, nFf], std: 1 / Math.sqrt(nEmbd) },
                { name: `${p}ffn_down.weight`, shape: [nFf, nEmbd], std: 1 / Math.sqrt(nFf) },
            );
        }
    }
    plans.push(
        { name: 'output_norm.weight', shape: [nEmbd], std: 0 },
        { name: 'output.weight', shape: [nEmbd, nVocab], std: 0.5 },
    );
    return plans;
}

/** Generate and encode every tensor. */
function modelTensors(spec: Readonly<FixtureModelSpec>, nVocab: number): GgufTensorEntry[] {
    return tensorPlans(spec, nVocab).map((plan) => {
        const count = plan.shape.reduce((a, b) => a * b, 1);
        if (plan.std === 0) {
            return { name: plan.name, type: 'F32', shape: plan.shape, data: f32ToBytes(new Float32Array(count).fill(1)) };
        }
        const values = randomWeights(count, plan.std, tensorSeed(spec.seed, plan.name));
        const data = spec.weightType === 'F16' ? f32ToF16Bytes(values) : spec.weightType === 'Q8_0' ? quantizeQ8_0(values) : quantizeQ4_0(values);
        return { name: plan.name, type: spec.weightType, shape: plan.shape, data };
    });
}

/** Per-tensor seed: FNV-1a of the tensor name mixed with the model seed. */
/** @internal */
export function tensorSeed(seed: number, name: string): number {
    let h = 0x811c9dc5 ^ seed;
    for (let i = 0; i < name.length; i++) {
        h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    }
    return h >>> 0;
}

/**
 * `count` uniform pseudo-random values with mean 0 and standard deviation `std`
 * (mulberry32; integer and basic float arithmetic only, so bit-identical everywhere).
 */
/** @internal */
export function randomWeights(count: number, std: number, seed: number): Float32Array {
    const out = new Float32Array(count);
    const halfWidth = std * Math.sqrt(3);
    let state = seed >>> 0;
    for (let i = 0; i < count; i++) {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = Math.imul(state ^ (state >>> 15), state | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
        out[i] = (2 * u - 1) * halfWidth;
    }
    return out;
}
