/**
 * The names users bring from llama.cpp (its CLI flags in common/arg.cpp, the fields of
 * llama.h's params structs, the server's JSON fields) and from the tools around it
 * (Ollama's num_*, OpenAI's max_tokens), mapped to llama-kv's option names, for "did you
 * mean" suggestions: `n_ctx` and `-c` suggest contextSize, `temp` temperature, `ctk`
 * cacheTypeK. Names that are ours in another spelling (`top_k`, `cache-type-k`,
 * `batch_size`) need no entry: {@link sameName} finds them.
 */

/** `ctxSize`, `ctx-size`, `--ctx_size` and `CTXSIZE` all become `ctxsize`: no dashes, underscores or case. */
export function squashName(name: string): string {
    return name.replace(/^-+/, '').replace(/[-_]/g, '').toLowerCase();
}

/** Whether two names differ only in case, dashes and underscores (`cache_type_k` and `cacheTypeK`). */
export function sameName(a: string, b: string): boolean {
    return squashName(a) === squashName(b);
}

/** llama.cpp's (and neighbours') name → our options, most likely first; the first one an API has is suggested. */
const ENTRIES: readonly (readonly [readonly string[], readonly string[]])[] = [
    // llama_context_params and the context flags
    [['n_ctx', 'ctx_size', 'c', 'ctx', 'ctx_len', 'context', 'context_length', 'context_len', 'num_ctx', 'n_ctx_train'], ['contextSize', 'minContextSize']],
    [['n_batch', 'b', 'batch', 'num_batch'], ['batchSize']],
    [['n_ubatch', 'ub', 'ubatch', 'micro_batch_size'], ['ubatchSize']],
    [['n_parallel', 'np', 'n_seq_max', 'ns', 'sequences', 'n_seq', 'slots'], ['parallel']],
    [['n_threads', 't', 'num_thread', 'num_threads', 'nthread', 'nthreads', 'thread'], ['threads']],
    [['n_threads_batch', 'tb', 'threads_batch'], ['threadsBatch']],
    [['ctk', 'type_k', 'cache_k', 'k_type', 'kv_type_k'], ['cacheTypeK']],
    [['ctv', 'type_v', 'cache_v', 'v_type', 'kv_type_v'], ['cacheTypeV']],
    [['fa', 'flash_attn', 'flash_attn_type', 'flash'], ['flashAttention']],
    [['kvu', 'unified_kv'], ['kvUnified']],
    [['nkvo', 'no_kv_offload', 'kvo', 'kv_offload', 'offload_kv'], ['offloadKqv']],
    [['kv', 'preset', 'kv_cache_preset'], ['kvPreset']],
    // sampling (common_params_sampling, the server's fields)
    [['temp', 'temperature'], ['temperature']],
    [['n_predict', 'n', 'predict', 'max_tokens', 'max_new_tokens', 'max_completion_tokens', 'num_predict', 'n_tokens', 'tokens'], ['maxTokens', 'generationTokens']],
    [['penalty_repeat', 'repetition_penalty', 'repeat_pen'], ['repeatPenalty']],
    [['penalty_last_n', 'last_n', 'repeat_n'], ['repeatLastN']],
    [['s', 'random_seed', 'rng_seed'], ['seed']],
    [['r', 'reverse_prompt', 'antiprompt', 'stop_strings', 'stops', 'stop_sequences'], ['stop']],
    [['special', 'sp', 'parse_special_tokens'], ['parseSpecial']],
    // llama_model_params and the load flags
    [['ngl', 'n_gpu_layers', 'num_gpu', 'gpu_layers', 'layers'], ['gpuLayers']],
    [['mmap', 'no_mmap'], ['useMmap']],
    [['mlock'], ['useMlock']],
    [['nr', 'no_repack', 'extra_bufts', 'use_extra_bufts'], ['repack']],
    [['ncmoe', 'n_cpu_moe', 'cmoe', 'cpu_moe'], ['cpuMoeLayers']],
    [['ts', 'split'], ['tensorSplit']],
    [['dev', 'device', 'gpus'], ['devices']],
    [['ot', 'override_tensor', 'override_tensors', 'tensor_buft_overrides'], ['tensorOverrides']],
    [['backend', 'gpu_backend', 'accelerator'], ['gpu']],
    // files: each API calls its model something
    [['model', 'm', 'model_path', 'file'], ['path', 'model', 'input']],
    [['path', 'model_path', 'gguf'], ['model', 'path', 'input']],
    [['lora', 'adapters', 'lora_adapters'], ['loras']],
    // planFit and quantizeModel
    [['budget', 'memory', 'bytes', 'memory_budget', 'max_memory'], ['budgetBytes']],
    [['min_context', 'min_ctx', 'context_size'], ['minContextSize', 'contextSize']],
    [['ftype', 'quant', 'quantization', 'quant_type', 'quantization_type'], ['type']],
    [['o', 'out', 'output_file', 'dest'], ['output']],
    [['in', 'source', 'input_file', 'src'], ['input']],
];

const table = new Map<string, readonly string[]>();
for (const [names, options] of ENTRIES) {
    for (const name of names) {
        const key = squashName(name);
        // The first entry of a name wins (e.g. 'model_path' is listed under 'model').
        if (!table.has(key)) table.set(key, options);
    }
}

/** Our option, among `known`, for a name from llama.cpp or a tool around it; undefined when it has none there. */
export function llamaCppAlias(name: string, known: readonly string[]): string | undefined {
    return table.get(squashName(name))?.find((option) => known.includes(option));
}
