#include "placement.h"

#include "errors.h"

#include <algorithm>
#include <regex>

namespace llama_kv {

namespace {

std::string device_names() {
    std::string out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        out += (i ? ", " : "") + std::string(ggml_backend_dev_name(ggml_backend_dev_get(i)));
    }
    return out;
}

// Every buffer type a weight can be placed in: each device's own, its host (pinned)
// type, and the CPU backend's extra types (repacked layouts, AMX).
std::vector<ggml_backend_buffer_type_t> buffer_types() {
    std::vector<ggml_backend_buffer_type_t> out;
    auto add = [&](ggml_backend_buffer_type_t t) {
        if (t != nullptr && std::find(out.begin(), out.end(), t) == out.end()) {
            out.push_back(t);
        }
    };
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        add(ggml_backend_dev_buffer_type(dev));
        add(ggml_backend_dev_host_buffer_type(dev));
        if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) {
            ggml_backend_reg_t reg   = ggml_backend_dev_backend_reg(dev);
            auto *             extra = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(
                ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts"));
            if (extra != nullptr) {
                for (ggml_backend_buffer_type_t * t = extra(dev); t != nullptr && *t != nullptr; ++t) {
                    add(*t);
                }
            }
        }
    }
    add(ggml_backend_cpu_buffer_type());
    return out;
}

ggml_backend_buffer_type_t buffer_type_by_name(Napi::Env env, const std::string & name, size_t index) {
    std::string known;
    for (ggml_backend_buffer_type_t t : buffer_types()) {
        if (name == ggml_backend_buft_name(t)) {
            return t;
        }
        known += (known.empty() ? "" : ", ") + std::string(ggml_backend_buft_name(t));
    }
    throw_error(env, code::invalid_config,
                "tensorOverrides[" + std::to_string(index) + "].bufferType: unknown buffer type '" + name +
                    "'; the loaded backends offer: " + known);
}


// Why std::regex, a backtracking matcher that nothing can interrupt, could take
// exponential time on `p` while llama.cpp matches it against every tensor name (a load
// that never ends), or "" when it cannot: a quantified group that itself holds a
// quantifier or an alternation ((a+)+, (a|aa)*), more than 3 unbounded quantifiers
// (.*.*.*.*x) or more than 8 quantifiers in all (a?a?a?...). Tensor names are short
// (GGML_MAX_NAME), so what is left matches in bounded time.
std::string backtracking_hazard(const std::string & p) {
    struct group {
        bool quantified_inside = false;
        bool alternation       = false;
    };
    std::vector<group> groups;
    int                unbounded = 0, quantifiers = 0;
    bool               after_risky_group = false, after_quantifier = false;
    for (size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == '\\') {
            ++i;
            after_risky_group = after_quantifier = false;
            continue;
        }
        if (c == '[') {  // a class: its characters are literals
            size_t j = i + 1;
            if (j < p.size() && p[j] == '^') ++j;
            for (; j < p.size() && p[j] != ']'; ++j) {
                if (p[j] == '\\') ++j;
            }
            i                 = j;
            after_risky_group = after_quantifier = false;
            continue;
        }
        const bool is_quantifier = c == '*' || c == '+' || c == '{' || (c == '?' && !after_quantifier);
        if (is_quantifier) {
            bool open_ended = c == '*' || c == '+';
            if (c == '{') {
                const size_t end = p.find('}', i);
                if (end == std::string::npos) break;  // not a quantifier; std::regex decides
                open_ended = p.compare(end - 1, 1, ",") == 0;
                i          = end;
            }
            if (after_risky_group) {
                return "a quantified group holds another quantifier or an alternation, e.g. (a+)+ or (a|ab)*";
            }
            unbounded += open_ended ? 1 : 0;
            if (++quantifiers > 8 || unbounded > 3) {
                return "it has more than 3 unbounded quantifiers (*, +, {n,}) or more than 8 quantifiers";
            }
            if (!groups.empty()) groups.back().quantified_inside = true;
            after_risky_group = false;
            after_quantifier  = true;
            continue;
        }
        after_quantifier = false;
        bool risky       = false;
        if (c == '(') {
            groups.push_back({});
            if (i + 2 < p.size() && p[i + 1] == '?') i += 2;  // (?: (?= (?!
        } else if (c == ')' && !groups.empty()) {
            const group g = groups.back();
            groups.pop_back();
            risky = g.quantified_inside || g.alternation;
            if (!groups.empty()) {
                groups.back().quantified_inside |= g.quantified_inside;
            }
        } else if (c == '|' && !groups.empty()) {
            groups.back().alternation = true;
        }
        after_risky_group = risky;
    }
    return "";
}

}  // namespace

model_placement model_placement::parse(Napi::Env env, Napi::Object params) {
    model_placement out;

    Napi::Value devices = params.Get("devices");
    if (devices.IsArray()) {
        out.all_devices   = false;
        Napi::Array names = devices.As<Napi::Array>();
        for (uint32_t i = 0; i < names.Length(); ++i) {
            Napi::Value v = names.Get(i);
            if (!v.IsString()) {
                throw_error(env, code::invalid_config, "devices[" + std::to_string(i) + "] must be a device name");
            }
            const std::string  name = v.As<Napi::String>().Utf8Value();
            ggml_backend_dev_t dev  = name.find('\0') == std::string::npos ? ggml_backend_dev_by_name(name.c_str()) : nullptr;
            if (dev == nullptr) {
                throw_error(env, code::invalid_config,
                            "devices[" + std::to_string(i) + "]: no device named '" + name + "'; available: " + device_names());
            }
            if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) {
                continue;  // the CPU is always used; llama.cpp's device list holds offload targets only
            }
            if (std::find(out.devices.begin(), out.devices.end(), dev) != out.devices.end()) {
                throw_error(env, code::invalid_config, "devices[" + std::to_string(i) + "]: '" + name + "' is listed twice");
            }
            out.devices.push_back(dev);
        }
        // llama.cpp keeps a split proportion per device in an array of llama_max_devices().
        if (out.devices.size() > llama_max_devices()) {
            throw_error(env, code::invalid_config, "devices lists " + std::to_string(out.devices.size()) +
                                                       " devices; this build supports at most " + std::to_string(llama_max_devices()));
        }
        out.devices.push_back(nullptr);
    }

    Napi::Value split = params.Get("tensorSplit");
    if (split.IsArray()) {
        Napi::Array  values = split.As<Napi::Array>();
        const size_t max    = llama_max_devices();
        if (values.Length() > max) {
            throw_error(env, code::invalid_config, "tensorSplit has " + std::to_string(values.Length()) +
                                                       " entries; this build supports at most " + std::to_string(max) + " devices");
        }
        out.tensor_split.assign(max, 0.0f);
        out.tensor_split_given = values.Length();
        for (uint32_t i = 0; i < values.Length(); ++i) {
            Napi::Value v = values.Get(i);
            const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
            if (!(d >= 0.0) || d > 1e9) {
                throw_error(env, code::invalid_config, "tensorSplit[" + std::to_string(i) + "] must be a number in [0, 1e9]");
            }
            out.tensor_split[i] = static_cast<float>(d);
        }
    }

    Napi::Value overrides = params.Get("tensorOverrides");
    if (overrides.IsArray()) {
        Napi::Array list = overrides.As<Napi::Array>();
        for (uint32_t i = 0; i < list.Length(); ++i) {
            Napi::Value item = list.Get(i);
            Napi::Value pattern = item.IsObject() ? item.As<Napi::Object>().Get("pattern") : env.Undefined();
            Napi::Value type    = item.IsObject() ? item.As<Napi::Object>().Get("bufferType") : env.Undefined();
            if (!pattern.IsString() || !type.IsString()) {
                throw_error(env, code::invalid_config,
                            "tensorOverrides[" + std::to_string(i) + "] must be { pattern: string, bufferType: string }");
            }
            std::string p = pattern.As<Napi::String>().Utf8Value();
            // std::regex compiles recursively: a bound keeps a hostile pattern from the stack's end.
            if (p.size() > 4096) {
                throw_error(env, code::invalid_config,
                            "tensorOverrides[" + std::to_string(i) + "].pattern is longer than 4096 characters");
            }
            try {
                std::regex check(p);  // llama.cpp compiles it with std::regex (ECMAScript) during the load
            } catch (const std::regex_error & e) {
                throw_error(env, code::invalid_config,
                            "tensorOverrides[" + std::to_string(i) + "].pattern is not a valid regular expression: " + e.what());
            }
            if (p.find('\0') != std::string::npos) {
                throw_error(env, code::invalid_config, "tensorOverrides[" + std::to_string(i) + "].pattern contains a NUL character");
            }
            if (const std::string why = backtracking_hazard(p); !why.empty()) {
                throw_error(env, code::invalid_config,
                            "tensorOverrides[" + std::to_string(i) + "].pattern could take exponential time to match (" + why +
                                "): write it without nested or repeated quantifiers, e.g. 'blk\\.[0-9]+\\.ffn_(up|down|gate)_exps'");
            }
            out.override_types.push_back(buffer_type_by_name(env, type.As<Napi::String>().Utf8Value(), i));
            out.override_patterns.push_back(std::move(p));
        }
    }
    return out;
}

std::string model_placement::add_remote(const std::vector<ggml_backend_dev_t> & remote) {
    if (all_devices) {  // TypeScript always names the local devices (resolvePlacement); none named: none
        all_devices = false;
        devices     = { nullptr };
    }
    devices.insert(devices.begin(), remote.begin(), remote.end());
    const size_t n = devices.size() - 1;  // without the terminator
    if (n > llama_max_devices()) {
        return "the model would be offloaded to " + std::to_string(n) + " devices with the RPC servers'; this build supports at most " +
               std::to_string(llama_max_devices());
    }
    if (tensor_split_given > n) {
        return "tensorSplit has " + std::to_string(tensor_split_given) + " entries but the model is offloaded to " + std::to_string(n) +
               " device(s), the RPC servers' first";
    }
    return "";
}

void model_placement::apply(llama_model_params & mp) {
    if (!all_devices) {
        mp.devices = devices.data();
    }
    if (!tensor_split.empty()) {
        mp.tensor_split = tensor_split.data();
    }
    overrides.clear();
    if (!override_patterns.empty()) {
        for (size_t i = 0; i < override_patterns.size(); ++i) {
            overrides.push_back({ override_patterns[i].c_str(), override_types[i] });
        }
        overrides.push_back({ nullptr, nullptr });
        mp.tensor_buft_overrides = overrides.data();
    }
}

}  // namespace llama_kv
