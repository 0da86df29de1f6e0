/**
 * Deterministic tiny models for tests and the CLI's built-in demo.
 *
 * The models use llama.cpp's `llama` architecture with the real LLaMA SPM
 * tokenizer (copied from llama.cpp's vocab-only test file) and pseudo-random
 * weights, so they load and generate like a real model, only fast and nonsense;
 * the embedding fixtures also use the `bert` architecture (lib/demo/bert.ts) with
 * BGE's WordPiece tokenizer. The same inputs always give byte-identical files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

import { z } from 'zod';
import { LlamaConfigError, LlamaModelLoadError } from '../errors.js';
import { GGUF_VALUE_TYPE, type GgufMetadata } from '../gguf/types.js';
import { parseGguf } from '../gguf/reader.js';
import { defaults } from '../options/defaults.js';
import { filePath, parseOptions, suggest } from '../options/validate.js';
import { writeGguf, type GgufKvEntry, type GgufTensorEntry } from '../gguf/writer.js';
import { bertEntries, bertTensorPlans, type BertNetwork } from './bert.js';
import { planTensor, type TensorPlan } from './weights.js';
import { packageRoot } from '../native/binding.js';

export { randomWeights, tensorSeed, type TensorPlan } from './weights.js';

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
    | 'bench-small-q8_0'
    | 'embed-bert-f16'
    | 'rerank-bert-f16'
    | 'embed-llama-last-f16'
    | 'bench-embed-bert-f16';

/**
 * A vocabulary-only GGUF of llama.cpp's `models/` whose `tokenizer.ggml.*` keys a fixture
 * copies: `llama-spm` (LLaMA's SentencePiece, 32000 tokens) or `bert-bge` (BGE's
 * WordPiece, 30522 tokens, two token types). See {@link findVocabFile}.
 */
export type FixtureVocab = 'llama-spm' | 'bert-bge';

/** llama.cpp's pooling types, as a fixture names them (`<arch>.pooling_type`: none 0, mean 1, cls 2, last 3, rank 4). */
export type FixturePooling = 'none' | 'mean' | 'cls' | 'last' | 'rank';

/** llama_pooling_type of each {@link FixturePooling}. */
const POOLING_TYPE: Readonly<Record<FixturePooling, number>> = { none: 0, mean: 1, cls: 2, last: 3, rank: 4 };

/** File names of the vocabularies in llama.cpp's `models/`. */
const VOCAB_FILES: Readonly<Record<FixtureVocab, string>> = {
    'llama-spm': 'ggml-vocab-llama-spm.gguf',
    'bert-bge': 'ggml-vocab-bert-bge.gguf',
};

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
    /** Key/value heads (GQA when less than nHead); equal to nHead for `bert`, which writes no head_count_kv. */
    nHeadKv: number;
    /** Feed-forward width (a multiple of 256 so K-quants apply). */
    nFf: number;
    /** Training context length. */
    contextLength: number;
    /** RoPE base frequency (unused by `bert`, whose positions are learned embeddings). */
    ropeFreqBase: number;
    /**
     * Norm epsilon: the RMS norm's for `llama` (`layer_norm_rms_epsilon`), the LayerNorm's for
     * `bert` (`bert.attention.layer_norm_epsilon`).
     */
    rmsEps: number;
    /** PRNG seed for the weights. */
    seed: number;
    /** Experts per layer (a Mixtral-style MoE feed-forward); absent or 0 for a dense model. */
    nExpert?: number;
    /**
     * llama.cpp architecture: absent for `llama`; `qwen2vl` is the same network with M-RoPE
     * (four position sections per token), whose KV cache llama.cpp cannot shift; `bert` is
     * an encoder (lib/demo/bert.ts): learned position and token-type embeddings (the
     * vocabulary's `tokenizer.ggml.token_type_count` rows), LayerNorm with biases, GELU,
     * non-causal attention (`bert.attention.causal` false) and no KV cache; it needs a
     * vocabulary with token types (`vocab: 'bert-bge'`).
     */
    architecture?: 'qwen2vl' | 'bert';
    /** Experts used per token (MoE only). */
    nExpertUsed?: number;
    /**
     * A chat template for `tokenizer.chat_template`: the name of a file in llama.cpp's
     * `models/templates/` (see {@link findChatTemplateFile}); absent for none.
     */
    chatTemplate?: string;
    /** The vocabulary whose tokenizer is copied; absent for `llama-spm`. */
    vocab?: FixtureVocab;
    /**
     * The model's own pooling, written as `<arch>.pooling_type` (what llama.cpp uses when a
     * context leaves pooling unspecified); absent writes no key, which llama.cpp reads as
     * none (one vector per token).
     */
    pooling?: FixturePooling;
    /**
     * The sequence-classification head RANK pooling applies (`bert` only): `cls.weight`
     * [nEmbd, nEmbd] and `cls.bias`, then tanh, then `cls.output.weight` [nEmbd, n_cls_out]
     * and `cls.output.bias`. `labels` are written as `<arch>.classifier.output_labels`, one
     * output each; absent writes no key, which llama.cpp reads as one output (n_cls_out 1,
     * a reranker's score). Absent for no head.
     */
    classifier?: { labels?: readonly string[] };
    /**
     * `tokenizer.ggml.add_eos_token`, replacing the copied vocabulary's value (or adding the
     * key when it has none): true makes llama.cpp's tokenizer append EOS when special tokens
     * are added, as last-token pooling models (Qwen3-Embedding) need. Absent keeps the vocabulary's.
     */
    addEosToken?: boolean;
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

/** A small BERT encoder (2 layers of 128 with BGE's WordPiece vocabulary; 9.5 MB, mostly the 30522-token embeddings): the base of the embedding fixtures. */
const BERT_BASE = {
    architecture: 'bert',
    vocab: 'bert-bge',
    nLayer: 2,
    nEmbd: 128,
    nHead: 4,
    nHeadKv: 4,
    nFf: 512,
    contextLength: 512,
    ropeFreqBase: 10000,
    rmsEps: 1e-12,
    seed: 0x6e7b3e,
    weightType: 'F16',
    fileType: 1,
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
    // A BERT sentence embedder with mean pooling, as BGE's (bidirectional attention, no KV cache).
    'embed-bert-f16': { ...BERT_BASE, displayName: 'llama-kv embed bert f16', pooling: 'mean' },
    // The same network with a one-output classification head and RANK pooling: a cross-encoder reranker
    // (llama.cpp joins query and document with the vocabulary's [SEP]; no rerank template).
    'rerank-bert-f16': { ...BERT_BASE, displayName: 'llama-kv rerank bert f16', pooling: 'rank', classifier: {} },
    // The micro llama network marked for last-token pooling, as Qwen3-Embedding is: causal attention, EOS appended.
    'embed-llama-last-f16': { ...CHAT_BASE, displayName: 'llama-kv embed llama last f16', pooling: 'last', addEosToken: true },
    // About 109M parameters (219 MB, BGE-base's shape): for embedding benchmarks, generated on demand, never in tests.
    'bench-embed-bert-f16': {
        ...BERT_BASE,
        nLayer: 12,
        nEmbd: 768,
        nHead: 12,
        nHeadKv: 12,
        nFf: 3072,
        displayName: 'llama-kv bench embed bert f16',
        pooling: 'mean',
    },
};

/** Options for {@link ensureFixtureModel}. */
export interface EnsureFixtureModelOptions {
    /**
     * Cache directory. Defaults to `$LLAMA_KV_CACHE_DIR`, else
     * `~/.cache/llama-kv/models`.
     */
    dir?: string;
    /** Vocab GGUF to copy the tokenizer from. Defaults to {@link findVocabFile} of the spec's `vocab`. */
    vocabPath?: string;
}

const MODELS_RELATIVE_PATH = join('vendor', 'llama.cpp', 'models');

/** The llama-kv package root, or undefined when this module is not inside one. */
function findPackageRoot(): string | undefined {
    try {
        return packageRoot();
    } catch {
        return undefined;
    }
}

/**
 * The SPM vocabulary the published package carries (dist/assets/<file>.gz, written by
 * scripts/pack-assets.mjs at pack time), decompressed once into the fixture cache
 * directory; undefined when the package has none (a checkout before packing).
 */
function shippedVocab(root: string, file: string): string | undefined {
    const packed = join(root, 'dist', 'assets', `${file}.gz`);
    if (!existsSync(packed)) return undefined;
    const bytes = gunzipSync(readFileSync(packed));
    const dir = join(defaultFixtureCacheDir(), 'vocab');
    const target = join(dir, `${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}-${file}`);
    if (!existsSync(target)) {
        mkdirSync(dir, { recursive: true });
        const partial = `${target}.${process.pid}.partial`;
        writeFileSync(partial, bytes);
        renameSync(partial, target);
    }
    return target;
}

/**
 * Locate the vocab GGUF a fixture model copies its tokenizer from.
 *
 * `llama-spm` (the default): `$LLAMA_KV_VOCAB` when set, else
 * `vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf` under the package root.
 * `$LLAMA_KV_VOCAB` names the SPM file only; another vocabulary is looked up by its
 * llama.cpp file name (`ggml-vocab-bert-bge.gguf`) in the folder of `$LLAMA_KV_VOCAB`
 * when that is set and has it (as chat templates are looked up beside it), else in
 * `vendor/llama.cpp/models/`.
 *
 * @param vocab Which vocabulary. Defaults to `'llama-spm'`.
 * @throws LlamaConfigError (code INVALID_ARGUMENT) for an unknown vocabulary.
 * @throws LlamaModelLoadError (code MODEL_NOT_FOUND) when the file does not exist (run `npm run vendor`).
 */
export function findVocabFile(vocab: FixtureVocab = 'llama-spm'): string {
    if (!Object.prototype.hasOwnProperty.call(VOCAB_FILES, vocab)) throw unknownFixture('fixture vocabulary', vocab, Object.keys(VOCAB_FILES));
    const file = VOCAB_FILES[vocab];
    const fromEnv = process.env.LLAMA_KV_VOCAB;
    if (fromEnv && vocab === 'llama-spm') {
        if (!existsSync(fromEnv)) {
            throw new LlamaModelLoadError('MODEL_NOT_FOUND', `LLAMA_KV_VOCAB points to ${fromEnv}, which does not exist`);
        }
        return resolve(fromEnv);
    }
    const root = findPackageRoot();
    const candidates = [
        ...(fromEnv ? [join(dirname(resolve(fromEnv)), file)] : []),
        ...(root === undefined ? [] : [join(root, MODELS_RELATIVE_PATH, file)]),
    ];
    const found = candidates.find((path) => existsSync(path)) ?? (vocab === 'llama-spm' && root !== undefined ? shippedVocab(root, file) : undefined);
    if (found === undefined) {
        throw new LlamaModelLoadError(
            'MODEL_NOT_FOUND',
            `llama.cpp vocab file not found (${candidates.length > 0 ? candidates.join(', ') : join(MODELS_RELATIVE_PATH, file)}); ` +
                `run \`npm run vendor\` to fetch llama.cpp, or set LLAMA_KV_VOCAB to ${vocab === 'llama-spm' ? 'a vocab GGUF' : `the SPM vocab GGUF in a folder that has ${file}`}`,
        );
    }
    return found;
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
    const vocabPath = opts.vocabPath ?? findVocabFile(spec.vocab);
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
 * @param vocabPath Vocab GGUF to copy the tokenizer from (default {@link findVocabFile} of the spec's `vocab`).
 */
export async function writeFixtureModel(
    spec: Readonly<FixtureModelSpec>,
    path: string,
    vocabPath: string = findVocabFile(spec.vocab),
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
    const tokenizerKv = tokenizerEntries(vocab, spec.addEosToken);
    const nVocab = vocabSize(tokenizerKv);
    const nTokenTypes = tokenTypeCount(tokenizerKv);
    const templateKv: GgufKvEntry[] = chatTemplate === undefined ? [] : [{ key: 'tokenizer.chat_template', type: GGUF_VALUE_TYPE.STRING, value: chatTemplate }];
    if (spec.architecture === 'bert' && nTokenTypes === 0) {
        throw new LlamaModelLoadError('INVALID_MODEL_FILE', 'a bert fixture needs a vocab file with tokenizer.ggml.token_type_count (such as ggml-vocab-bert-bge.gguf)');
    }
    await writeGguf(path, {
        kv: [...modelEntries(spec, nVocab, nTokenTypes), ...tokenizerKv, ...templateKv],
        tensors: modelTensors(spec, nVocab, nTokenTypes),
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
    if (spec.pooling !== undefined && !Object.prototype.hasOwnProperty.call(POOLING_TYPE, spec.pooling)) {
        throw new Error(`pooling must be one of ${Object.keys(POOLING_TYPE).join(', ')}`);
    }
    if (spec.architecture === 'bert' && (spec.nHeadKv !== spec.nHead || (spec.nExpert ?? 0) > 0)) {
        throw new Error('a bert fixture has nHeadKv equal to nHead and no experts');
    }
    if (spec.classifier !== undefined && spec.architecture !== 'bert') {
        throw new Error('classifier is for bert fixtures only');
    }
    if (spec.classifier?.labels !== undefined && spec.classifier.labels.length === 0) {
        throw new Error('classifier.labels, when given, names at least one output');
    }
}

/** Copy every `tokenizer.ggml.*` key of the vocab file, types preserved; `addEosToken` replaces (or adds) `tokenizer.ggml.add_eos_token`. */
function tokenizerEntries(vocab: GgufMetadata, addEosToken: boolean | undefined): GgufKvEntry[] {
    const entries: GgufKvEntry[] = [];
    for (const key of Object.keys(vocab.kv)) {
        if (!key.startsWith('tokenizer.ggml.')) {
            continue;
        }
        const { type, arrayType } = vocab.kvTypes[key];
        entries.push({ key, type, arrayType, value: vocab.kv[key] });
    }
    if (addEosToken !== undefined) {
        const entry: GgufKvEntry = { key: 'tokenizer.ggml.add_eos_token', type: GGUF_VALUE_TYPE.BOOL, value: addEosToken };
        const at = entries.findIndex((e) => e.key === entry.key);
        if (at >= 0) entries[at] = entry;
        else entries.push(entry);
    }
    return entries;
}

/** `tokenizer.ggml.token_type_count` of the copied tokenizer (BERT's segment embeddings), 0 when absent. */
function tokenTypeCount(tokenizerKv: GgufKvEntry[]): number {
    const entry = tokenizerKv.find((e) => e.key === 'tokenizer.ggml.token_type_count');
    return typeof entry?.value === 'number' && Number.isInteger(entry.value) && entry.value > 0 ? entry.value : 0;
}

/** Number of tokens in the copied tokenizer. */
function vocabSize(tokenizerKv: GgufKvEntry[]): number {
    const tokens = tokenizerKv.find((e) => e.key === 'tokenizer.ggml.tokens');
    if (tokens === undefined || typeof tokens.value !== 'object') {
        throw new LlamaModelLoadError('INVALID_MODEL_FILE', 'vocab file has no tokenizer.ggml.tokens array');
    }
    return tokens.value.length;
}

/** The shape of a bert spec's network. */
function bertNetwork(spec: Readonly<FixtureModelSpec>, nTokenTypes: number): BertNetwork {
    return {
        nLayer: spec.nLayer,
        nEmbd: spec.nEmbd,
        nHead: spec.nHead,
        nFf: spec.nFf,
        contextLength: spec.contextLength,
        normEps: spec.rmsEps,
        nTokenTypes,
        poolingType: spec.pooling === undefined ? undefined : POOLING_TYPE[spec.pooling],
        classifier: spec.classifier,
    };
}

/** The general.* and <arch>.* metadata entries. */
function modelEntries(spec: Readonly<FixtureModelSpec>, nVocab: number, nTokenTypes: number): GgufKvEntry[] {
    const u32 = (key: string, value: number): GgufKvEntry => ({ key, type: GGUF_VALUE_TYPE.UINT32, value });
    const f32 = (key: string, value: number): GgufKvEntry => ({ key, type: GGUF_VALUE_TYPE.FLOAT32, value });
    const str = (key: string, value: string): GgufKvEntry => ({ key, type: GGUF_VALUE_TYPE.STRING, value });
    const arch = spec.architecture ?? 'llama';
    const general = [
        str('general.architecture', arch),
        str('general.name', spec.displayName),
        u32('general.file_type', spec.fileType),
        u32('general.quantization_version', 2),
    ];
    if (arch === 'bert') return [...general, ...bertEntries(bertNetwork(spec, nTokenTypes))];
    const head = spec.nEmbd / spec.nHead;
    // M-RoPE sections (temporal, height, width, extra) over the head's rotary pairs: text broadcasts one position to all.
    const mrope: GgufKvEntry[] = arch === 'qwen2vl' ? [{ key: 'qwen2vl.rope.dimension_sections', type: GGUF_VALUE_TYPE.ARRAY, arrayType: GGUF_VALUE_TYPE.INT32, value: [head / 4, head / 8, head / 8, 0] }] : [];
    return [
        ...general,
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
        ...(spec.pooling === undefined ? [] : [u32(`${arch}.pooling_type`, POOLING_TYPE[spec.pooling])]),
    ];
}

/**
 * All tensors of the model with their shapes and initial scales; `nTokenTypes` (the
 * vocabulary's token types) sizes a bert model's `token_types`.
 * @internal
 */
export function tensorPlans(spec: Readonly<FixtureModelSpec>, nVocab: number, nTokenTypes = 0): TensorPlan[] {
    if (spec.architecture === 'bert') return bertTensorPlans(bertNetwork(spec, nTokenTypes), nVocab);
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
function modelTensors(spec: Readonly<FixtureModelSpec>, nVocab: number, nTokenTypes: number): GgufTensorEntry[] {
    return tensorPlans(spec, nVocab, nTokenTypes).map((plan) => planTensor(plan, spec.seed, spec.weightType));
}
