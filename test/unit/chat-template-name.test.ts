// chatTemplateName: llama.cpp's llm_chat_detect_template, ported (lib/model/chat-template-name.ts).
// The snippets are the parts of real templates that llama.cpp's detection looks at.
import { describe, expect, it } from 'vitest';
import { chatTemplateName, LLAMA_CPP_CHAT_TEMPLATE_NAMES } from '../../lib/model/chat-template-name.js';

const CASES: [name: string | null, source: string][] = [
    ['chatml', "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"],
    ['phi4', "{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>'}}"],
    ['smolvlm', "<|im_start|>{{ message['role'] | capitalize }}: {{ content }}<end_of_utterance>"],
    ['mistral-v7', '{{- "[SYSTEM_PROMPT]" + system_message + "[/SYSTEM_PROMPT]" }}{{- "[INST]" + message["content"] + "[/INST]" }}'],
    ['mistral-v1', "{{- bos_token + ' [INST] ' + system_message }}"],
    ['mistral-v3-tekken', '{{- "[AVAILABLE_TOOLS]" + tools }}{{- "[INST]" + message["content"] }}'],
    ['mistral-v3', '{{- "[AVAILABLE_TOOLS] " + tools }}{{- "[INST] " + message["content"] }}'],
    ['llama2-sys-strip', "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"],
    ['llama2-sys-bos', "{{ bos_token + '[INST] ' + content + ' [/INST]' }}<<SYS>>"],
    ['llama2-sys', "{{ '[INST] <<SYS>>\\n' + content + '\\n<</SYS>>' }}"],
    ['llama2', "{{ '[INST] ' + content + ' [/INST]' }}"],
    ['llama2', 'mistral-ish template without markers'],
    ['phi3', "{{'<|user|>' + '\\n' + message['content'] + '<|end|>' + '\\n' + '<|assistant|>' + '\\n'}}"],
    ['chatglm4', '[gMASK]<sop>{% for item in messages %}<|{{ item.role }}|>'],
    ['exaone-moe', '<|user|>x<|assistant|>y<|tool_declare|>'],
    ['falcon3', "{{ '<|user|>\\n' + content }}{{ '<|assistant|>\\n' + content + '</s>' }}"],
    ['glmedge', "{{ '<|user|>\\n' + content }}{{ '<|assistant|>\\n' }}"],
    ['zephyr', "{{ '<|user|>\\n' + message['content'] + '<|endoftext|>' }}"],
    ['monarch', "{{ bos_token + message['role'] + '\\n' + message['content'] + eos_token }}"],
    ['gemma', "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"],
    ['openchat', "{{ 'GPT4 Correct ' + message['role'] | title + ': ' + message['content'] + '<|end_of_turn|>' }}"],
    ['vicuna-orca', "{{ 'SYSTEM: ' + s }}{{ 'USER: ' + u }}{{ 'ASSISTANT: ' + a }}"],
    ['vicuna', "{{ 'USER: ' + u }}{{ 'ASSISTANT: ' + a }}"],
    ['deepseek', "{{ '### Instruction:\\n' + c }}{{ '<|EOT|>' }}"],
    ['command-r', '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{{ content }}<|END_OF_TURN_TOKEN|>'],
    ['llama3', "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"],
    ['chatglm3', '[gMASK]sop<|user|>'],
    ['minicpm', "{{ '<用户>' + message['content'] + '<AI>' }}"],
    ['deepseek3', "{{ '<｜User｜>' + c + '<｜Assistant｜>' + a + '<｜end▁of▁sentence｜>' }}"],
    ['exaone4', '[|system|][|assistant|][|endofturn|][|tool|]'],
    ['exaone3', '[|system|][|assistant|][|endofturn|]'],
    ['granite', "<|start_of_role|>{{ message['role'] }}<|end_of_role|>"],
    ['granite-4.0', '<|start_of_role|><tools>g4_default_system_message'],
    ['granite-4.1', '<|start_of_role|><tool_call>'],
    ['llama4', "{{ '<|header_start|>' + message['role'] + '<|header_end|>\\n\\n' }}"],
    ['dots1', '<|userprompt|>{{ c }}<|endofuserprompt|>'],
    ['gpt-oss', '<|start|>assistant<|channel|>final<|message|>'],
    ['kimi-k2', '<|im_assistant|>assistant<|im_middle|>'],
    ['seed_oss', '<seed:bos>system'],
    ['solar-open', '<|begin|>user<|content|>x<|end|>'],
    [null, '{% for m in messages %}{{ m.content }}{% endfor %}'],
    [null, ''],
];

describe('chatTemplateName', () => {
    it.each(CASES)('%s', (name, source) => {
        expect(chatTemplateName(source)).toBe(name);
    });

    it('takes one of llama.cpp\'s names as itself', () => {
        for (const name of LLAMA_CPP_CHAT_TEMPLATE_NAMES) expect(chatTemplateName(name)).toBe(name);
        expect(LLAMA_CPP_CHAT_TEMPLATE_NAMES).toHaveLength(54);
    });

    it('checks in llama.cpp\'s order: ChatML markers win over the later rules', () => {
        expect(chatTemplateName('<|im_start|><|start_header_id|><|end_header_id|>')).toBe('chatml');
        expect(chatTemplateName('[INST]<start_of_turn>')).toBe('llama2');
        expect(chatTemplateName('<|assistant|><|end|><|user|>')).toBe('phi3');
    });
});
