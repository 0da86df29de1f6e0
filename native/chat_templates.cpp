#include "chat_templates.h"

#include "errors.h"
#include "model.h"

#include "llama-vocab.h"

namespace llama_kv {

namespace {

const napi_type_tag chat_templates_tag = { 0x6c6c616d614b5601ULL, 0x6368617400000001ULL };

}  // namespace

template_limits read_template_limits(Napi::Env env, Napi::Value value) {
    if (!value.IsObject()) {
        throw_error(env, code::invalid_argument, "template limits must be an object");
    }
    Napi::Object    o = value.As<Napi::Object>();
    template_limits l;
    auto            get = [&](const char * name, int64_t max) -> int64_t {
        Napi::Value v = o.Get(name);
        if (!v.IsNumber()) {
            throw_error(env, code::invalid_argument, std::string("template limit ") + name + " must be a number");
        }
        return checked_integer(env, v.As<Napi::Number>().DoubleValue(), 0, max, std::string("template limit ") + name);
    };
    l.max_steps = static_cast<uint64_t>(get("maxSteps", INT64_C(1) << 50));
    l.max_depth = static_cast<uint32_t>(get("maxDepth", 100000));
    l.max_bytes = static_cast<uint64_t>(get("maxBytes", INT64_C(1) << 50));
    return l;
}

chat_templates_ptr unwrap_chat_templates(Napi::Env env, Napi::Value value) {
    bool tagged = false;
    if (value.IsExternal()) {
        napi_check_object_type_tag(env, value, &chat_templates_tag, &tagged);
    }
    if (!tagged) {
        throw_error(env, code::invalid_argument, "expected a chat templates handle");
    }
    return *value.As<Napi::External<chat_templates_ptr>>().Data();
}

Napi::Value wrap_chat_templates(Napi::Env env, chat_templates_ptr holder) {
    auto handle = Napi::External<chat_templates_ptr>::New(env, new chat_templates_ptr(std::move(holder)),
                                                          [](Napi::Env, chat_templates_ptr * p) { delete p; });
    napi_type_tag_object(env, handle, &chat_templates_tag);
    return handle;
}

chat_templates_ptr chat_templates_init(const llama_model_ptr & model, const std::string & override_src, const template_limits & limits,
                                       const std::atomic<bool> * abort, std::string & info_json, std::string & error) {
    const llama_vocab * vocab = llama_model_get_vocab(model.get());
    if (!vocab_has_tokenizer(vocab)) {
        error = no_tokenizer_message;
        return nullptr;
    }
    auto holder = std::make_shared<chat_templates_holder>();
    holder->tmpls.reset(chat_common_init(model.get(), override_src, limits, abort, info_json, error));
    if (!holder->tmpls) {
        return nullptr;
    }
    holder->special_texts = chat_special_texts(vocab);
    return holder;
}

bool chat_templates_apply(const llama_model_ptr & model, const chat_templates_holder & holder, const std::string & inputs_json,
                          const template_limits & limits, const std::atomic<bool> * abort, std::string & out_json,
                          const chat_tokenize_request & tok, std::string & error) {
    const llama_vocab * vocab = llama_model_get_vocab(model.get());
    const tokenize_fn   tokenize = [vocab](const std::string & text, bool add_special, const std::vector<std::pair<size_t, size_t>> & literal,
                                         std::vector<llama_token> & out, std::string & err) {
        struct literal_scope {
            explicit literal_scope(const std::vector<std::pair<size_t, size_t>> * r) { llama_kv_set_literal_ranges(r); }
            ~literal_scope() { llama_kv_set_literal_ranges(nullptr); }
        } scope(&literal);
        return tokenize_text(vocab, text, add_special, true, out, err);
    };
    return chat_common_apply(holder.tmpls.get(), vocab, holder.special_texts, tokenize, inputs_json, limits, abort, out_json, tok,
                             error);
}

Napi::Value chat_parse(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsBoolean() || !info[2].IsString()) {
        throw_error(env, code::invalid_argument, "chatParse(text: string, isPartial: boolean, params: string)");
    }
    return Napi::String::New(env, chat_common_parse(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Boolean>().Value(),
                                                    info[2].As<Napi::String>().Utf8Value()));
}

Napi::Value json_schema_to_gbnf(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
        throw_error(env, code::invalid_argument, "jsonSchemaToGrammar(schema: string)");
    }
    std::string grammar;
    std::string error;
    if (!chat_common_schema_to_grammar(info[0].As<Napi::String>().Utf8Value(), grammar, error)) {
        throw_error(env, code::invalid_grammar, "llama.cpp's json-schema-to-grammar refused the schema: " + error);
    }
    return Napi::String::New(env, grammar);
}

Napi::Value check_grammar(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[1].IsString() || !info[2].IsString()) {
        throw_error(env, code::invalid_argument, "checkGrammar(model, grammar: string, root: string)");
    }
    llama_model_ptr   model   = model_wrap::unwrap(env, info[0])->model(env);
    const std::string grammar = info[1].As<Napi::String>().Utf8Value();
    const std::string root    = info[2].As<Napi::String>().Utf8Value();
    log_capture_reset();
    llama_sampler * smpl = nullptr;
    try {
        smpl = llama_sampler_init_grammar(llama_model_get_vocab(model.get()), grammar.c_str(), root.c_str());
    } catch (const std::exception & e) {
        throw_error(env, code::invalid_grammar, std::string("the grammar is invalid: ") + e.what());
    }
    if (smpl == nullptr) {
        // llama.cpp logs "parse: error parsing grammar: <what> at <rest>" and then the whole
        // grammar (vendor/patches/0005): keep the first line, which says what and where
        // (the capture joins lines with ';').
        std::string log = log_capture_take();
        const size_t at = log.find("error parsing grammar: ");
        std::string  why = at == std::string::npos ? log : log.substr(at + 23);
        const size_t nl  = why.find(';');
        if (nl != std::string::npos) {
            why.resize(nl);
        }
        if (why.size() > 400) {
            why = why.substr(0, 400) + "...";
        }
        throw_error(env, code::invalid_grammar, "the grammar is invalid: " + (why.empty() ? std::string("llama.cpp refused it") : why));
    }
    llama_sampler_free(smpl);
    return env.Undefined();
}

}  // namespace llama_kv
