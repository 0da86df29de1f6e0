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
            ggml_backend_dev_t dev  = ggml_backend_dev_by_name(name.c_str());
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
            out.override_types.push_back(buffer_type_by_name(env, type.As<Napi::String>().Utf8Value(), i));
            out.override_patterns.push_back(std::move(p));
        }
    }
    return out;
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
