// read_engine_request: a request object from JS, checked and copied into plain C++ on the
// JS thread. TypeScript has applied the defaults and validated; this is the second line.
#include "engine.h"

#include "model.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace llama_kv {

namespace {

double read_number(Napi::Env env, Napi::Object obj, const char * key) {
    Napi::Value v = obj.Get(key);
    if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue())) {
        throw_error(env, code::invalid_argument, std::string("request: ") + key + " must be a finite number");
    }
    return v.As<Napi::Number>().DoubleValue();
}

uint32_t read_u32(Napi::Env env, Napi::Object obj, const char * key) {
    return static_cast<uint32_t>(checked_integer(env, read_number(env, obj, key), 0, UINT32_MAX, std::string("request: ") + key));
}

// A sampler parameter: converting a double outside float's range to float is undefined behaviour.
float read_float(Napi::Env env, Napi::Object obj, const char * key) {
    const double d = read_number(env, obj, key);
    if (std::fabs(d) > std::numeric_limits<float>::max()) {
        throw_error(env, code::invalid_argument, std::string("request: ") + key + " is outside the range of a float");
    }
    return static_cast<float>(d);
}

}  // namespace

engine_request read_engine_request(Napi::Env env, Napi::Object obj) {
    engine_request r;
    Napi::Value    kind = obj.Get("kind");
    if (!kind.IsString()) {
        throw_error(env, code::invalid_argument, "request: kind must be 'generate' or 'evaluate'");
    }
    const std::string k = kind.As<Napi::String>().Utf8Value();
    if (k == "evaluate") {
        r.kind = engine_request::kind_t::evaluate;
    } else if (k != "generate") {
        throw_error(env, code::invalid_argument, "request: kind must be 'generate' or 'evaluate', received '" + k + "'");
    }
    r.seq = static_cast<llama_seq_id>(checked_integer(env, read_number(env, obj, "sequence"), 0, static_cast<int64_t>(llama_max_parallel_sequences()) - 1, "request: sequence"));

    Napi::Value prompt = obj.Get("prompt");
    if (prompt.IsString() && r.kind == engine_request::kind_t::generate) {
        r.has_text = true;
        r.text     = prompt.As<Napi::String>().Utf8Value();
    } else {
        r.tokens = read_tokens(env, prompt, "prompt");
    }
    if (r.kind == engine_request::kind_t::evaluate) {
        return r;
    }
    r.add_special   = obj.Get("addSpecial").ToBoolean().Value();
    r.parse_special = obj.Get("parseSpecial").ToBoolean().Value();
    r.max_tokens    = read_u32(env, obj, "maxTokens");

    sampler_params & s = r.sampling;
    s.temperature      = read_float(env, obj, "temperature");
    s.top_k            = static_cast<int32_t>(checked_integer(env, read_number(env, obj, "topK"), 0, INT32_MAX, "request: topK"));
    s.top_p            = read_float(env, obj, "topP");
    s.min_p            = read_float(env, obj, "minP");
    s.repeat_penalty   = read_float(env, obj, "repeatPenalty");
    // Bounded by the context when the request starts (the penalty sampler allocates a ring of this size).
    s.repeat_last_n = static_cast<int32_t>(checked_integer(env, read_number(env, obj, "repeatLastN"), 0, INT32_MAX, "request: repeatLastN"));
    s.seed          = read_u32(env, obj, "seed");
    Napi::Value bias = obj.Get("logitBias");
    if (bias.IsArray()) {
        // [token, bias, token, bias, ...]: tokens checked against the vocabulary, biases finite or -Infinity.
        auto           arr = bias.As<Napi::Array>();
        const uint32_t n   = arr.Length();
        if (n % 2 != 0) {
            throw_error(env, code::invalid_argument, "request: logitBias must be [token, bias] pairs");
        }
        for (uint32_t i = 0; i < n; i += 2) {
            Napi::Value t = arr.Get(i);
            Napi::Value b = arr.Get(i + 1);
            if (!t.IsNumber() || !b.IsNumber()) {
                throw_error(env, code::invalid_argument, "request: logitBias must be [token, bias] pairs of numbers");
            }
            const auto  token = static_cast<llama_token>(checked_integer(env, t.As<Napi::Number>().DoubleValue(), 0, INT32_MAX, "request: logitBias token"));
            const double v    = b.As<Napi::Number>().DoubleValue();
            if (!(std::isfinite(v) && std::fabs(v) <= 1e30) && v != -std::numeric_limits<double>::infinity()) {
                throw_error(env, code::invalid_argument, "request: a logitBias bias must be a finite number or -Infinity");
            }
            s.logit_bias.push_back({ token, static_cast<float>(v) });
        }
    }
    if (s.repeat_penalty <= 0.0f) {
        throw_error(env, code::invalid_argument, "request: repeatPenalty must be > 0");
    }
    if (!obj.Get("unreadLimit").IsUndefined()) {
        r.unread_limit = read_u32(env, obj, "unreadLimit");
    }
    Napi::Value full = obj.Get("onContextFull");
    if (!full.IsUndefined()) {
        const std::string policy = full.IsString() ? full.As<Napi::String>().Utf8Value() : std::string();
        if (policy != "error" && policy != "shift") {
            throw_error(env, code::invalid_argument, "request: onContextFull must be 'error' or 'shift'");
        }
        r.shift = policy == "shift";
    }
    if (!obj.Get("keep").IsUndefined()) {
        r.keep = read_u32(env, obj, "keep");
    }
    Napi::Value grammar = obj.Get("grammar");
    if (!grammar.IsUndefined() && !grammar.IsNull()) {
        if (!grammar.IsObject() || !grammar.As<Napi::Object>().Get("text").IsString()) {
            throw_error(env, code::invalid_argument, "request: grammar must be { text, lazy, patterns, tokens, prefill }");
        }
        Napi::Object     g  = grammar.As<Napi::Object>();
        grammar_params & gp = r.grammar;
        gp.grammar          = g.Get("text").As<Napi::String>().Utf8Value();
        gp.lazy             = g.Get("lazy").ToBoolean().Value();
        Napi::Value patterns = g.Get("patterns");
        if (patterns.IsArray()) {
            auto arr = patterns.As<Napi::Array>();
            for (uint32_t i = 0; i < arr.Length(); ++i) {
                Napi::Value v = arr.Get(i);
                if (!v.IsString()) {
                    throw_error(env, code::invalid_argument, "request: grammar.patterns must be strings");
                }
                gp.trigger_patterns.push_back(v.As<Napi::String>().Utf8Value());
            }
        }
        if (!g.Get("tokens").IsUndefined()) {
            gp.trigger_tokens = read_tokens(env, g.Get("tokens"), "grammar.tokens");
        }
        if (!g.Get("prefill").IsUndefined()) {
            gp.prefill = read_tokens(env, g.Get("prefill"), "grammar.prefill");
        }
    }
    if (!obj.Get("renderSpecial").IsUndefined()) {
        r.render_special = read_tokens(env, obj.Get("renderSpecial"), "renderSpecial");
        std::sort(r.render_special.begin(), r.render_special.end());
    }
    Napi::Value stop = obj.Get("stop");
    if (stop.IsArray()) {
        auto arr = stop.As<Napi::Array>();
        for (uint32_t i = 0; i < arr.Length(); ++i) {
            Napi::Value v = arr.Get(i);
            if (!v.IsString()) {
                throw_error(env, code::invalid_argument, "request: stop must be an array of strings");
            }
            r.stop.push_back(v.As<Napi::String>().Utf8Value());
        }
    }
    return r;
}

}  // namespace llama_kv
