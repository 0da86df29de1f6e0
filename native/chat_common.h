// The calls into llama.cpp's common/chat, behind an interface of plain types: common's
// headers (llama-cpp.h) define names that native/handles.h defines differently, so no file
// includes both. native/chat_templates.cpp is the N-API side.
#pragma once

#include "llama.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

struct common_chat_templates;

namespace llama_kv {

// What a template may spend in one init or render; 0 is no bound.
struct template_limits {
    uint64_t max_steps = 0;
    uint32_t max_depth = 0;
    uint64_t max_bytes = 0;
};

// (text, add_special, literal, out, error) -> ok: special tokens parsed, except control-token
// texts overlapping the `literal` byte ranges (vendor/patches/0006).
using tokenize_fn = std::function<bool(const std::string &, bool, const std::vector<std::pair<size_t, size_t>> &,
                                       std::vector<llama_token> &, std::string &)>;

// Initializes the templates of `model`, or `override_src` when not empty. Null and `error`
// on failure; `info_json`: { source, toolUseSource, explicit, supportsThinking, caps }.
common_chat_templates * chat_common_init(const llama_model * model, const std::string & override_src, const template_limits & limits,
                                         const std::atomic<bool> * abort, std::string & info_json, std::string & error);
void                    chat_common_free(common_chat_templates * tmpls);

// Texts of the control and unknown tokens: what parse_special turns into those tokens.
std::vector<std::string> chat_special_texts(const llama_vocab * vocab);

// Renders `inputs_json` (an OpenAI-style body as llama.cpp's server reads it) into
// common_chat_params as JSON. With `tokens`, also the prompt's tokens: tokenized as the
// server does, except that user text holding a control token's text stays text.
// With `prefix` (the text of tokens a sequence already holds), only the prompt's text after
// it is tokenized, without bos, when the prompt starts with it and the cut is clean (next to
// a control token's text, where llama.cpp's tokenizer splits anyway); `out_json` says where
// from ("tokensFrom": a byte offset, 0 for the whole prompt).
struct chat_tokenize_request {
    std::vector<llama_token> * tokens = nullptr;  // null: no tokens
    const std::string *        prefix = nullptr;
};
bool chat_common_apply(const common_chat_templates * tmpls, const llama_vocab * vocab, const std::vector<std::string> & special_texts,
                       const tokenize_fn & tokenize, const std::string & inputs_json, const template_limits & limits,
                       const std::atomic<bool> * abort, std::string & out_json, const chat_tokenize_request & tok, std::string & error);

// common_chat_parse of generated text: JSON { content, reasoning, toolCalls } or { error }.
std::string chat_common_parse(const std::string & text, bool is_partial, const std::string & params_json);

// json_schema_to_grammar; false and `error` when llama.cpp refuses the schema.
bool chat_common_schema_to_grammar(const std::string & schema_json, std::string & grammar, std::string & error);

}  // namespace llama_kv
