// A model's chat templates (llama.cpp's common/chat: its Jinja engine, tool-call and
// reasoning formats), rendered and parsed exactly as llama.cpp's server does, with
// bounds on what a template may do (vendor/patches/0004).
#pragma once

#include "chat_common.h"
#include "handles.h"

#include <napi.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace llama_kv {

// Initialized templates (sources and bos/eos texts; no reference to the model, which each
// call passes). Shared by the JS handle and the workers that use it.
struct chat_templates_holder {
    std::unique_ptr<common_chat_templates, void (*)(common_chat_templates *)> tmpls{ nullptr, chat_common_free };
    // Texts of the control and unknown tokens: what parse_special turns into those tokens.
    std::vector<std::string> special_texts;
};
using chat_templates_ptr = std::shared_ptr<chat_templates_holder>;

// Throws INVALID_ARGUMENT unless `value` is a handle made by chatInit.
chat_templates_ptr unwrap_chat_templates(Napi::Env env, Napi::Value value);
Napi::Value        wrap_chat_templates(Napi::Env env, chat_templates_ptr holder);

template_limits read_template_limits(Napi::Env env, Napi::Value value);

// Off the JS thread: initializes the templates of `model` (or of `override_src` when not
// empty). Returns null and sets `error` on failure (TEMPLATE_FAILED).
chat_templates_ptr chat_templates_init(const llama_model_ptr & model, const std::string & override_src, const template_limits & limits,
                                       const std::atomic<bool> * abort, std::string & info_json, std::string & error);

// Off the JS thread: renders `inputs_json` (messages, tools, ... as the server reads them)
// and returns llama.cpp's common_chat_params as JSON. With `tokens`, also the prompt's
// tokens: as the server tokenizes it, except that user text holding a control token's
// text is not turned into that token.
bool chat_templates_apply(const llama_model_ptr & model, const chat_templates_holder & holder, const std::string & inputs_json,
                          const template_limits & limits, const std::atomic<bool> * abort, std::string & out_json,
                          const chat_tokenize_request & tok, std::string & error);

// JS: chatParse(text, isPartial, paramsJson) -> JSON of the message (or { error }).
Napi::Value chat_parse(const Napi::CallbackInfo & info);
// JS: jsonSchemaToGrammar(schemaJson) -> GBNF; throws INVALID_GRAMMAR.
Napi::Value json_schema_to_gbnf(const Napi::CallbackInfo & info);
// JS: checkGrammar(model, grammar, root) -> undefined; throws INVALID_GRAMMAR with llama.cpp's message.
Napi::Value check_grammar(const Napi::CallbackInfo & info);

}  // namespace llama_kv
