/**
 * The name llama.cpp gives a chat template from its source: a port of
 * `llm_chat_detect_template` (vendor/llama.cpp/src/llama-chat.cpp; re-check on a pin
 * bump). It is a heuristic over substrings, not a Jinja parser: the name says which of
 * llama.cpp's built-in formats the template looks like (what `llama_chat_apply_template`
 * would use), not how llama.cpp's Jinja engine renders it.
 */

/** The names of llama.cpp's built-in chat templates (LLM_CHAT_TEMPLATES, which `llama_chat_builtin_templates` lists sorted). */
export const LLAMA_CPP_CHAT_TEMPLATE_NAMES = [
    'chatml', 'llama2', 'llama2-sys', 'llama2-sys-bos', 'llama2-sys-strip', 'mistral-v1', 'mistral-v3',
    'mistral-v3-tekken', 'mistral-v7', 'mistral-v7-tekken', 'phi3', 'phi4', 'falcon3', 'zephyr', 'monarch',
    'gemma', 'orion', 'openchat', 'vicuna', 'vicuna-orca', 'deepseek', 'deepseek2', 'deepseek3', 'deepseek-ocr',
    'command-r', 'llama3', 'chatglm3', 'chatglm4', 'glmedge', 'minicpm', 'exaone3', 'exaone4', 'exaone-moe',
    'rwkv-world', 'granite', 'granite-4.0', 'granite-4.1', 'gigachat', 'megrez', 'yandex', 'bailing',
    'bailing-think', 'bailing2', 'llama4', 'smolvlm', 'hunyuan-moe', 'gpt-oss', 'hunyuan-dense', 'hunyuan-vl',
    'kimi-k2', 'seed_oss', 'grok-2', 'pangu-embedded', 'solar-open',
] as const;

/** A name of one of llama.cpp's built-in chat templates. */
export type LlamaCppChatTemplateName = (typeof LLAMA_CPP_CHAT_TEMPLATE_NAMES)[number];

const NAMES: ReadonlySet<string> = new Set(LLAMA_CPP_CHAT_TEMPLATE_NAMES);

/** One rule of the detection: every needle present gives the name. */
type Rule = readonly [name: LlamaCppChatTemplateName | 'dots1', needles: readonly string[]];

/** The rules after the ChatML and Mistral/Llama 2 branches, in llm_chat_detect_template's order. */
const RULES: readonly Rule[] = [
    ['phi3', ['<|assistant|>', '<|end|>']],
    ['chatglm4', ['[gMASK]<sop>']],
    ['exaone-moe', ['<|assistant|>', '<|user|>', '<|tool_declare|>']],
    ['falcon3', ['<|assistant|>', '<|user|>', '</s>']],
    ['glmedge', ['<|assistant|>', '<|user|>']],
    ['glmedge', ["<|{{ item['role'] }}|>", '<|begin_of_image|>']],
    ['zephyr', ['<|user|>', '<|endoftext|>']],
    ['monarch', ["bos_token + message['role']"]],
    ['gemma', ['<start_of_turn>']],
    ['orion', ["'\\n\\nAssistant: ' + eos_token"]],
    ['openchat', ['GPT4 Correct ']],
    ['vicuna-orca', ['USER: ', 'ASSISTANT: ', 'SYSTEM: ']],
    ['vicuna', ['USER: ', 'ASSISTANT: ']],
    ['deepseek', ['### Instruction:', '<|EOT|>']],
    ['command-r', ['<|START_OF_TURN_TOKEN|>', '<|USER_TOKEN|>']],
    ['llama3', ['<|start_header_id|>', '<|end_header_id|>']],
    ['chatglm3', ['[gMASK]sop']],
    ['minicpm', ['<用户>']],
    ['deepseek2', ["'Assistant: ' + message['content'] + eos_token"]],
    ['deepseek3', ['<｜Assistant｜>', '<｜User｜>', '<｜end▁of▁sentence｜>']],
    ['exaone4', ['[|system|]', '[|assistant|]', '[|endofturn|]', '[|tool|]']],
    ['exaone3', ['[|system|]', '[|assistant|]', '[|endofturn|]']],
    ['rwkv-world', ['rwkv-world']],
    ['rwkv-world', ["{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"]],
];

/** The rules after the Granite branch, in llm_chat_detect_template's order. */
const LATE_RULES: readonly Rule[] = [
    ['gigachat', ["message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"]],
    ['megrez', ['<|role_start|>']],
    ['yandex', [' Ассистент:']],
    ['bailing', ['<role>ASSISTANT</role>', "'HUMAN'"]],
    ['bailing-think', ['<role>ASSISTANT</role>', '"HUMAN"', '<think>']],
    ['bailing2', ['<role>ASSISTANT</role>', '<role>HUMAN</role>', '<|role_end|>']],
    ['llama4', ['<|header_start|>', '<|header_end|>']],
    // llama.cpp detects dots.llm1's format (LLM_CHAT_TEMPLATE_DOTS1) but lists no name for it.
    ['dots1', ['<|endofuserprompt|>']],
    ['hunyuan-moe', ['<|extra_0|>', '<|extra_4|>']],
    ['gpt-oss', ['<|start|>', '<|channel|>']],
    ['hunyuan-vl', ['<｜hy_Assistant｜>', '<｜hy_begin▁of▁sentence｜>']],
    ['hunyuan-dense', ['<｜hy_Assistant｜>', '<｜hy_place▁holder▁no▁3｜>']],
    ['kimi-k2', ['<|im_assistant|>assistant<|im_middle|>']],
    ['seed_oss', ['<seed:bos>']],
    ['grok-2', ["'Assistant: '  + message['content'] + '<|separator|>"]],
    ['pangu-embedded', ['[unused9]系统：[unused10]']],
    ['solar-open', ['<|begin|>', '<|end|>', '<|content|>']],
];

/**
 * The name llama.cpp's `llm_chat_detect_template` gives a chat template source (a Jinja
 * template, or one of the built-in names itself): one of {@link LLAMA_CPP_CHAT_TEMPLATE_NAMES},
 * `'dots1'` (a format llama.cpp detects but does not list), or null when it names none
 * (LLM_CHAT_TEMPLATE_UNKNOWN: such a template is only usable through the Jinja engine).
 *
 * @example
 * chatTemplateName(gguf.kv['tokenizer.chat_template']) // 'chatml' for Qwen 2.5's template
 */
export function chatTemplateName(source: string): LlamaCppChatTemplateName | 'dots1' | null {
    if (NAMES.has(source)) return source as LlamaCppChatTemplateName;
    const has = (needle: string) => source.includes(needle);
    if (has('<|im_start|>')) {
        return has('<|im_sep|>') ? 'phi4' : has('<end_of_utterance>') ? 'smolvlm' : 'chatml';
    }
    if (source.startsWith('mistral') || has('[INST]')) return mistralOrLlama2(has);
    const early = RULES.find(([, needles]) => needles.every(has));
    if (early) return early[0];
    if (has('<|start_of_role|>')) {
        if (has('<tool_call>') || has('<tools>')) return has('g4_default_system_message') ? 'granite-4.0' : 'granite-4.1';
        return 'granite';
    }
    return LATE_RULES.find(([, needles]) => needles.every(has))?.[0] ?? null;
}

/** The `[INST]` branch: Mistral v7, the official v1/v3/v3-tekken templates, or a Llama 2 variant. */
function mistralOrLlama2(has: (needle: string) => boolean): LlamaCppChatTemplateName {
    if (has('[SYSTEM_PROMPT]')) return 'mistral-v7';
    if (has("' [INST] ' + system_message") || has('[AVAILABLE_TOOLS]')) {
        if (has(' [INST]')) return 'mistral-v1';
        if (has('"[INST]"')) return 'mistral-v3-tekken';
        return 'mistral-v3';
    }
    if (has('content.strip()')) return 'llama2-sys-strip';
    if (has("bos_token + '[INST]")) return 'llama2-sys-bos';
    if (has('<<SYS>>')) return 'llama2-sys';
    return 'llama2';
}
