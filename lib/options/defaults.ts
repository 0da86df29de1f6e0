/**
 * The defaults of every public option (TSDoc says each one as "Defaults to `x`").
 * Imports nothing of llama-kv's, so that every layer may read it (gguf/ included); the
 * option types check the values where they are used.
 */
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';

/** Defaults, in one place: every default of a public option is here and nowhere else. */
export const defaults = {
    model: { gpu: 'auto' as const, gpuLayers: 'auto' as const, cpuMoeLayers: 0, useMmap: true, repack: true, useMlock: false, vocabOnly: false, checkTensors: false, checkMemory: true, rpcTimeoutMs: 60_000 },
    context: {
        contextSize: 4096,
        batchSize: 512,
        ubatchSize: 512,
        parallel: 1,
        threads: () => Math.max(1, availableParallelism()),
        cacheTypeK: 'f16' as const,
        cacheTypeV: 'f16' as const,
        flashAttention: 'auto' as const,
        kvUnified: false,
        offloadKqv: true,
        swaFull: true,
        checkMemory: true,
        onContextFull: 'error' as const,
    },
    generate: {
        maxTokens: 256,
        temperature: 0.8,
        topK: 40,
        topP: 0.95,
        minP: 0.05,
        repeatPenalty: 1,
        repeatLastN: 64,
        addSpecial: true,
        parseSpecial: false,
        keep: 0,
    },
    tokenize: { addSpecial: true, parseSpecial: false },
    chat: {
        addGenerationPrompt: true,
        enableThinking: true,
        toolChoice: 'auto' as const,
        /** Model turns of one prompt() that may call tools before it must answer. */
        maxToolRounds: 8,
        /**
         * What a chat template (from a model file or a user) may spend in one init or render:
         * Jinja statements and expressions executed, nesting depth, bytes of text built.
         * Real templates use a few thousand steps per message.
         */
        templateLimits: { maxSteps: 5_000_000, maxDepth: 400, maxBytes: 256 * 1024 * 1024 },
        /** Templates kept initialized per model besides its own (the `template` option). */
        templateCache: 8,
    },
    grammar: {
        /** Nesting of groups in a GBNF grammar, and of a JSON schema (llama.cpp parses both recursively). */
        maxNesting: 128,
        /** Rules of a GBNF grammar (llama.cpp checks left recursion recursively over them). */
        maxRules: 4096,
        /** A JSON schema's JSON text, and its `$ref` entries (json-schema-to-grammar copies the schema per reference). */
        maxSchemaBytes: 1024 * 1024,
        maxSchemaRefs: 256,
    },
    embedding: {
        /** Tokens per decode and per text: the model's trained context, capped here. */
        contextSize: 8192,
        /** Texts decoded together in one llama_decode (llama.cpp sequences). */
        parallel: 64,
        pooling: 'model' as const,
        normalize: 'l2' as const,
        truncate: false,
    },
    calibrate: {
        configurations: ['conservative', 'balanced', 'aggressive', 'extreme'] as const,
        reference: 'conservative' as const,
        contextSize: 2048,
        flashAttention: 'auto' as const,
        generationTokens: 32,
        maxKlIncrease: 0,
    },
    planFit: { prefer: 'quality' as const, parallel: 1 },
    quantize: { threads: () => availableParallelism(), allowRequantize: false },
    inspectModel: { timeoutMs: 120_000 },
    logger: { level: 'warn' as const },
    /** readGgufMetadata(): the first read, and the largest header it reads. */
    /** The promptCache context option's fields. */
    promptCache: { ramBytes: 256 * 1024 * 1024, diskBytes: 4 * 1024 * 1024 * 1024, minTokens: 32 },
    gguf: { initialChunkSize: 256 * 1024, maxHeaderBytes: 512 * 1024 * 1024 },
    detokenize: { renderSpecial: false },
    /** ensureFixtureModel()/ensureFixtureLora(): where the generated demo models are cached. */
    demo: { dir: () => process.env.LLAMA_KV_CACHE_DIR || join(homedir(), '.cache', 'llama-kv', 'models') },
    /** resolveModelFile(), readRemoteGgufMetadata() and `llama-kv pull`. */
    download: {
        /** `$LLAMA_KV_MODELS_DIR`, else `~/.cache/llama-kv/models`. */
        dir: () => process.env.LLAMA_KV_MODELS_DIR || join(homedir(), '.cache', 'llama-kv', 'models'),
        stallTimeoutMs: 30_000,
        retries: 3,
        /** Wait before retry n (1, 2, ...): n times this. */
        retryDelayMs: 1_000,
        /** Least time between two onProgress calls. */
        progressIntervalMs: 100,
        /** The first range of a remote header read; later ones grow until the header parses. */
        initialHeaderBytes: 4 * 1024 * 1024,
        maxRedirects: 10,
        /** `$LLAMA_KV_HF_ENDPOINT`, else `$HF_ENDPOINT`, else Hugging Face. */
        hfEndpoint: () => process.env.LLAMA_KV_HF_ENDPOINT || process.env.HF_ENDPOINT || 'https://huggingface.co',
    },
} as const;

/** A random sampling seed in [0, 0xFFFFFFFE] (0xFFFFFFFF is llama.cpp's "random", not a seed). */
export function randomSeed(): number {
    return Math.floor(Math.random() * 0xffffffff);
}

/** The seed of a context's request `index` (0, 1, ...) when the context has a seed: seed + index, wrapping below 0xFFFFFFFF. */
export function requestSeed(contextSeed: number, index: number): number {
    return (contextSeed + index) % 0xffffffff;
}
