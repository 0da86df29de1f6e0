// ctx.setLoras(): the active LoRA adapters of a context, swapped without recreating it.
#include "context.h"
#include "context_state.h"
#include "errors.h"
#include "lora.h"

#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace llama_kv {

// setLoras([{ lora: NativeLora, scale: number }]): [] returns to the base model.
Napi::Value context_wrap::set_loras(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    // Reading the list runs JS (getters) that may dispose this context or start an
    // operation on it: hold the state, and check both again once the list is read.
    const std::shared_ptr<context_state> state = state_;
    if (!state) {
        throw_error(env, code::disposed, "the context has been disposed");
    }
    if (info.Length() < 1 || !info[0].IsArray()) {
        throw_error(env, code::invalid_argument, "setLoras(adapters: { lora, scale }[])");
    }
    Napi::Array                             list = info[0].As<Napi::Array>();
    std::vector<std::pair<lora_ptr, float>> next;
    for (uint32_t i = 0; i < list.Length(); ++i) {
        const std::string what = "adapters[" + std::to_string(i) + "]";
        Napi::Value       item = list.Get(i);
        if (!item.IsObject()) {
            throw_error(env, code::invalid_argument, what + " must be { lora, scale }");
        }
        Napi::Value scale = item.As<Napi::Object>().Get("scale");
        if (!scale.IsNumber() || !std::isfinite(scale.As<Napi::Number>().DoubleValue()) ||
            std::fabs(scale.As<Napi::Number>().DoubleValue()) > std::numeric_limits<float>::max()) {
            throw_error(env, code::invalid_argument, what + ".scale must be a finite number within float range");
        }
        lora_ptr lora = lora_wrap::unwrap(env, item.As<Napi::Object>().Get("lora"))->lora(env);
        if (lora->model.get() != state->model.get()) {
            throw_error(env, code::invalid_argument, what + ": this adapter was loaded for another model; load it with this context's model");
        }
        for (const auto & [other, s] : next) {
            if (other == lora) {
                throw_error(env, code::invalid_argument, what + ": the same adapter is listed twice; give it one scale");
            }
        }
        next.emplace_back(std::move(lora), static_cast<float>(scale.As<Napi::Number>().DoubleValue()));
    }
    if (state_ != state) {
        throw_error(env, code::disposed, "the context was disposed while its adapters were being read");
    }
    // The context holds raw pointers to its adapters while it decodes, and the cache of a
    // running request was computed with the previous set.
    if (state->engine->any_claimed()) {
        throw_error(env, code::busy, "setLoras() cannot change the adapters while a request runs on the context; call it when the requests have finished");
    }
    if (next == state->loras) {
        return env.Undefined();  // same adapters, same scales: keep the cache
    }
    std::vector<llama_adapter_lora *> adapters;
    std::vector<float>                scales;
    for (const auto & [lora, scale] : next) {
        adapters.push_back(lora->adapter);
        scales.push_back(scale);
    }
    {
        std::unique_lock<std::mutex> lock = state->lock_between_steps();
        llama_set_adapters_lora(state->ctx.get(), adapters.empty() ? nullptr : adapters.data(), adapters.size(),
                                scales.empty() ? nullptr : scales.data());
        state->reserve_pending = true;
        state->loras.swap(next);  // the context points at these adapters now, whatever follows
        // The KV cache was computed with the previous adapters: a prompt must not reuse it.
        try {
            state->clear_memory();
        } catch (const context_broken &) {
            lock.unlock();
            throw make_error(env, state->broken_failure());
        }
    }
    return env.Undefined();  // the previous set is released here, after the context let it go
}

}  // namespace llama_kv
