#include "chat_common.h"

#include "chat.h"
#include "jinja/string.h"
#include "json-schema-to-grammar.h"
#include "log.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace llama_kv {

using json = common_json;

namespace {

// llama.cpp's common library logs through its own thread to stderr; the library never
// writes there. What matters of it (a template's parse error) reaches JS as an error.
void silence_common_log() {
    static const bool once = [] {
        common_log_set_verbosity_thold(-1);
        return true;
    }();
    (void) once;
}

// Sets this thread's template budget for a scope (vendor/patches/0004).
class limits_scope {
  public:
    limits_scope(const template_limits & limits, const std::atomic<bool> * abort) {
        silence_common_log();
        limits_.max_steps = limits.max_steps;
        limits_.max_depth = limits.max_depth;
        limits_.max_bytes = limits.max_bytes;
        limits_.abort     = abort;
        jinja::exec_limits_set(&limits_);
    }
    ~limits_scope() { jinja::exec_limits_set(nullptr); }
    limits_scope(const limits_scope &)             = delete;
    limits_scope & operator=(const limits_scope &) = delete;

    jinja::exec_limits & limits() { return limits_; }

    // The first limit the template ran into (even where llama.cpp caught it), else `what`.
    std::string error(const std::string & what) const {
        if (limits_.tripped.empty()) {
            return what;
        }
        return limits_.tripped == "aborted" ? "aborted" : "the chat template was stopped: " + limits_.tripped;
    }
    bool tripped() const { return !limits_.tripped.empty(); }

  private:
    jinja::exec_limits limits_;
};

// A span of the prompt that came from the caller's data (message content, tool results).
struct input_span {
    size_t begin;
    size_t end;
};

// The input spans of `prompt` from the rendering that produced it: common_chat trims a
// leading bos and a trailing eos from the rendering, so it matches with those or without.
bool input_spans_of(const std::string & prompt, const std::vector<jinja::string> & renders, const std::string & bos,
                    const std::string & eos, std::vector<input_span> & spans) {
    for (auto it = renders.rbegin(); it != renders.rend(); ++it) {
        const std::string full = it->str();
        size_t            skip = 0;
        if (full != prompt) {
            const bool has_bos = !bos.empty() && full.compare(0, bos.size(), bos) == 0;
            skip               = has_bos ? bos.size() : 0;
            if (full.size() < skip + prompt.size() || full.compare(skip, prompt.size(), prompt) != 0 ||
                full.size() - skip - prompt.size() > eos.size()) {
                continue;
            }
        }
        size_t at = 0;
        for (const auto & part : it->parts) {
            const size_t b = at;
            at += part.val.size();
            if (!part.is_input || part.val.empty()) {
                continue;
            }
            const size_t pb = b > skip ? b - skip : 0;
            const size_t pe = std::min(at > skip ? at - skip : 0, prompt.size());
            if (pe > pb) {
                spans.push_back({ pb, pe });
            }
        }
        return true;
    }
    return false;
}

// Tokenizes the rendered prompt as llama.cpp's server does (special tokens parsed, the
// vocabulary's bos/eos added), except that a control token's text inside user text stays
// text: one llama_tokenize call with the user text's spans marked literal.
bool tokenize_prompt(const tokenize_fn & tokenize, const std::string & prompt, const std::vector<input_span> & spans,
                     bool add_special, std::vector<llama_token> & out, std::string & error) {
    std::vector<std::pair<size_t, size_t>> literal;
    for (const auto & span : spans) {
        literal.emplace_back(span.begin, span.end);
    }
    return tokenize(prompt, add_special, literal, out, error);
}

// Whether tokenizing prompt[from..] alone gives what the whole prompt's tokenization has
// there. llama.cpp splits the text at control-token texts first and tokenizes each piece
// of text apart, a SentencePiece vocabulary prefixing a space to a piece after a control
// token or at the start: so a cut just before or just after a control token's text is clean
// for every vocabulary, and a cut anywhere else may not be (a merge, a space prefix).
bool clean_cut(const std::string & prompt, size_t from, const std::vector<std::string> & special_texts) {
    if (from == 0 || from > prompt.size()) {
        return false;
    }
    for (const auto & text : special_texts) {
        if (prompt.compare(from, text.size(), text) == 0 ||
            (from >= text.size() && prompt.compare(from - text.size(), text.size(), text) == 0)) {
            return true;
        }
    }
    return false;
}

// The inputs as llama.cpp's server builds them from an OpenAI-style request body
// (tools/server/server-common.cpp).
common_chat_templates_inputs read_inputs(const json & body) {
    common_chat_templates_inputs inputs;
    inputs.messages = common_chat_msgs_parse_oaicompat(body.at("messages"));
    if (body.contains("tools")) {
        inputs.tools = common_chat_tools_parse_oaicompat(body.at("tools"));
    }
    inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(body.value("tool_choice", std::string("auto")));
    if (body.contains("json_schema") && !body.at("json_schema").is_null()) {
        inputs.json_schema = body.at("json_schema").dump();
    }
    inputs.grammar               = body.value("grammar", std::string());
    inputs.use_jinja             = true;
    inputs.parallel_tool_calls   = body.value("parallel_tool_calls", false);
    inputs.add_generation_prompt = body.value("add_generation_prompt", true);
    inputs.reasoning_format      = common_reasoning_format_from_name(body.value("reasoning_format", std::string("deepseek")));
    inputs.enable_thinking       = body.value("enable_thinking", true);
    if (body.contains("chat_template_kwargs")) {
        json kwargs = body.at("chat_template_kwargs");
        for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
            inputs.chat_template_kwargs[it.key()] = it.value().dump();
        }
    }
    if (body.contains("now")) {
        inputs.now = std::chrono::system_clock::time_point(std::chrono::milliseconds(body.at("now").get<int64_t>()));
    }
    return inputs;
}

const char * trigger_type_name(common_grammar_trigger_type type) {
    switch (type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:
            return "token";
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:
            return "word";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:
            return "pattern";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL:
            return "pattern_full";
    }
    return "unknown";
}

json strings(const std::vector<std::string> & v) {
    json a = json::array();
    for (const auto & s : v) {
        a.push_back(s);
    }
    return a;
}

json params_to_json(const common_chat_params & p) {
    json triggers = json::array();
    for (const auto & t : p.grammar_triggers) {
        json one      = json::object();
        one["type"]   = trigger_type_name(t.type);
        one["value"]  = t.value;
        one["token"]  = static_cast<int64_t>(t.token);
        triggers.push_back(one);
    }
    json o                = json::object();
    o["prompt"]           = p.prompt;
    o["format"]           = static_cast<int64_t>(p.format);
    o["formatName"]       = common_chat_format_name(p.format);
    o["grammar"]          = p.grammar;
    o["grammarLazy"]      = p.grammar_lazy;
    o["grammarTriggers"]  = triggers;
    o["preservedTokens"]  = strings(p.preserved_tokens);
    o["additionalStops"]  = strings(p.additional_stops);
    o["generationPrompt"] = p.generation_prompt;
    o["parser"]           = p.parser;
    o["supportsThinking"] = p.supports_thinking;
    o["thinkingStartTag"] = p.thinking_start_tag;
    o["thinkingEndTags"]  = strings(p.thinking_end_tags);
    return o;
}

}  // namespace

bool finish_apply(const common_chat_params & params, const std::vector<jinja::string> & renders, const llama_vocab * vocab,
                  const std::vector<std::string> & special_texts, const tokenize_fn & tokenize, const chat_tokenize_request & tok,
                  std::string & out_json, std::string & error);

std::vector<std::string> chat_special_texts(const llama_vocab * vocab) {
    std::vector<std::string> out;
    const int32_t            n = llama_vocab_n_tokens(vocab);
    for (llama_token id = 0; id < n; ++id) {
        if (llama_vocab_get_attr(vocab, id) & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN)) {
            const char * text = llama_vocab_get_text(vocab, id);
            if (text != nullptr && text[0] != '\0') {
                out.emplace_back(text);
            }
        }
    }
    return out;
}

// Templates longer than this are refused before parsing (the longest of llama.cpp's
// models/templates is under 32 KiB).
constexpr size_t max_template_bytes = 4u << 20;

common_chat_templates * chat_common_init(const llama_model * model, const std::string & override_src, const template_limits & limits,
                                         const std::atomic<bool> * abort, std::string & info_json, std::string & error) {
    for (const char * name : { static_cast<const char *>(nullptr), "tool_use" }) {
        const char * src  = override_src.empty() ? llama_model_chat_template(model, name) : nullptr;
        const size_t size = src != nullptr ? std::strlen(src) : (name == nullptr ? override_src.size() : 0);
        if (size > max_template_bytes) {
            error = "the chat template is " + std::to_string(size) + " bytes long: at most " + std::to_string(max_template_bytes) + " are accepted";
            return nullptr;
        }
    }
    limits_scope scope(limits, abort);
    try {
        common_chat_templates_ptr tmpls = common_chat_templates_init(model, override_src);
        if (scope.tripped()) {
            error = scope.error("");
            return nullptr;
        }
        json caps = json::object();
        for (const auto & [name, value] : common_chat_templates_get_caps(tmpls.get())) {
            caps[name] = value;
        }
        json info                = json::object();
        info["source"]           = common_chat_templates_source(tmpls.get());
        info["toolUseSource"]    = common_chat_templates_source(tmpls.get(), "tool_use");
        info["explicit"]         = common_chat_templates_was_explicit(tmpls.get());
        info["supportsThinking"] = common_chat_templates_support_enable_thinking(tmpls.get());
        info["caps"]             = caps;
        info_json                = info.dump();
        return tmpls.release();
    } catch (const std::exception & e) {
        error = scope.error(std::string("the chat template could not be parsed: ") + e.what());
        return nullptr;
    }
}

void chat_common_free(common_chat_templates * tmpls) {
    common_chat_templates_free(tmpls);
}

bool chat_common_apply(const common_chat_templates * tmpls, const llama_vocab * vocab, const std::vector<std::string> & special_texts,
                       const tokenize_fn & tokenize, const std::string & inputs_json, const template_limits & limits,
                       const std::atomic<bool> * abort, std::string & out_json, const chat_tokenize_request & tok, std::string & error) {
    std::vector<jinja::string> renders;
    common_chat_params         params;
    {
        limits_scope scope(limits, abort);
        scope.limits().on_render = [&](const jinja::string & s) {
            // Only the latest few: the parser generator renders a template many times.
            if (renders.size() >= 8) {
                renders.erase(renders.begin());
            }
            renders.push_back(s);
        };
        try {
            params = common_chat_templates_apply(tmpls, read_inputs(json::parse(inputs_json)));
        } catch (const std::exception & e) {
            error = scope.error(std::string("the chat template failed: ") + e.what());
            return false;
        }
        if (scope.tripped()) {
            error = scope.error("");
            return false;
        }
    }
    try {
        return finish_apply(params, renders, vocab, special_texts, tokenize, tok, out_json, error);
    } catch (const std::exception & e) {
        error = std::string("the chat template's output could not be used: ") + e.what();  // e.g. not UTF-8 (JSON)
        return false;
    }
}

bool finish_apply(const common_chat_params & params, const std::vector<jinja::string> & renders, const llama_vocab * vocab,
                  const std::vector<std::string> & special_texts, const tokenize_fn & tokenize, const chat_tokenize_request & tok,
                  std::string & out_json, std::string & error) {
    json out = params_to_json(params);
    if (tok.tokens != nullptr) {
        const auto text = [&](llama_token t) {
            return t == LLAMA_TOKEN_NULL ? std::string() : std::string(llama_vocab_get_text(vocab, t));
        };
        std::vector<input_span> spans;
        out["inputMarks"] = input_spans_of(params.prompt, renders, text(llama_vocab_bos(vocab)), text(llama_vocab_eos(vocab)), spans);
        size_t from = 0;
        if (tok.prefix != nullptr && params.prompt.compare(0, tok.prefix->size(), *tok.prefix) == 0 &&
            clean_cut(params.prompt, tok.prefix->size(), special_texts)) {
            from = tok.prefix->size();
        }
        std::vector<input_span> rest;
        for (const auto & span : spans) {
            if (span.end > from) {
                rest.push_back({ std::max(span.begin, from) - from, span.end - from });
            }
        }
        if (!tokenize_prompt(tokenize, params.prompt.substr(from), rest, from == 0, *tok.tokens, error)) {
            return false;
        }
        out["tokensFrom"] = static_cast<int64_t>(from);
    }
    out_json = out.dump();
    return true;
}

std::string chat_common_parse(const std::string & text, bool is_partial, const std::string & params_json) {
    silence_common_log();
    json out = json::object();
    try {
        const json                p = json::parse(params_json);
        common_chat_parser_params params;
        const int64_t             format = p.value("format", static_cast<int64_t>(0));
        if (format < 0 || format >= COMMON_CHAT_FORMAT_COUNT) {
            throw std::invalid_argument("unknown chat format " + std::to_string(format));
        }
        params.format            = static_cast<common_chat_format>(format);
        params.reasoning_format  = common_reasoning_format_from_name(p.value("reasoningFormat", std::string("deepseek")));
        params.generation_prompt = p.value("generationPrompt", std::string());
        params.parse_tool_calls  = p.value("parseToolCalls", true);
        const std::string parser = p.value("parser", std::string());
        if (!parser.empty()) {
            params.parser.load(parser);
        }
        const common_chat_msg msg   = common_chat_parse(text, is_partial, params);
        json                  calls = json::array();
        for (const auto & call : msg.tool_calls) {
            json c         = json::object();
            c["name"]      = call.name;
            c["arguments"] = call.arguments;
            c["id"]        = call.id;
            calls.push_back(c);
        }
        out["content"]   = msg.content;
        out["reasoning"] = msg.reasoning_content;
        out["toolCalls"] = calls;
    } catch (const std::exception & e) {
        out          = json::object();
        out["error"] = e.what();
    }
    return out.dump();
}

bool chat_common_schema_to_grammar(const std::string & schema_json, std::string & grammar, std::string & error) {
    try {
        grammar = json_schema_to_grammar(json::parse(schema_json));
        return true;
    } catch (const std::exception & e) {
        error = e.what();
        return false;
    }
}

}  // namespace llama_kv
