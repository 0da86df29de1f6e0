// Module init: registers the native classes and functions. Context-aware: all state
// lives in per-environment instance data.
#include "addon_data.h"
#include "backends.h"
#include "chat_templates.h"
#include "context.h"
#include "heap.h"
#include "logger.h"
#include "lora.h"
#include "model.h"
#include "workers/chat.h"
#include "workers/create_context.h"
#include "workers/load_model.h"
#include "workers/quantize.h"

namespace llama_kv {

Napi::Object init(Napi::Env env, Napi::Object exports) {
    backends_init_once();
    auto * data = new addon_data();  // owned by the environment, deleted at its teardown
    env.SetInstanceData(data);

    Napi::Function model_ctor   = model_wrap::define(env);
    Napi::Function context_ctor = context_wrap::define(env);
    data->model_ctor            = Napi::Persistent(model_ctor);
    data->context_ctor          = Napi::Persistent(context_ctor);
    Napi::Function lora_ctor    = lora_wrap::define(env);
    data->lora_ctor             = Napi::Persistent(lora_ctor);

    exports.Set("NativeModel", model_ctor);
    exports.Set("NativeContext", context_ctor);
    exports.Set("NativeLora", lora_ctor);
    exports.Set("loadLora", Napi::Function::New(env, load_lora, "loadLora"));
    exports.Set("quantize", Napi::Function::New(env, quantize_model, "quantize"));
    exports.Set("loadModel", Napi::Function::New(env, load_model, "loadModel"));
    exports.Set("prepareContext", Napi::Function::New(env, prepare_context, "prepareContext"));
    exports.Set("chatInit", Napi::Function::New(env, chat_init, "chatInit"));
    exports.Set("chatApply", Napi::Function::New(env, chat_apply, "chatApply"));
    exports.Set("chatParse", Napi::Function::New(env, chat_parse, "chatParse"));
    exports.Set("jsonSchemaToGrammar", Napi::Function::New(env, json_schema_to_gbnf, "jsonSchemaToGrammar"));
    exports.Set("checkGrammar", Napi::Function::New(env, check_grammar, "checkGrammar"));
    exports.Set("setLogger", Napi::Function::New(env, set_logger, "setLogger"));
    exports.Set("setLogLevel", Napi::Function::New(env, set_log_level, "setLogLevel"));
    exports.Set("systemInfo", Napi::Function::New(env, system_info, "systemInfo"));
    exports.Set("trimHeap", Napi::Function::New(env, trim_heap, "trimHeap"));
    exports.Set("loadBackends", Napi::Function::New(env, load_backends, "loadBackends"));
    exports.Set("backendInfo", Napi::Function::New(env, backend_info, "backendInfo"));
    exports.Set("flashAttentionSupported", Napi::Function::New(env, flash_attn_supported, "flashAttentionSupported"));
    exports.Set("llamaVersion", Napi::String::New(env, llama_version()));
    return exports;
}

}  // namespace llama_kv

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    return llama_kv::init(env, exports);
}

NODE_API_MODULE(llama_kv, Init)
