// Test-only reference for applyChatTemplate: llama.cpp's own common_chat_templates_apply,
// called as its server calls it (tools/server/server-common.cpp), on a model's template or
// a template file. Prints one JSON object per input: { prompt, grammar, format }.
//
//   llama-kv-chat-reference MODEL.gguf TEMPLATE_FILE|- INPUTS.json
//
// INPUTS.json is an array of request bodies: { messages, tools?, tool_choice?,
// add_generation_prompt?, enable_thinking?, now? (ms since the epoch) }.
#include "chat.h"
#include "llama.h"
#include "log.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

using json = common_json;

static std::string read_file(const char * path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

int main(int argc, char ** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf TEMPLATE_FILE|- INPUTS.json\n", argv[0]);
        return 2;
    }
    common_log_set_verbosity_thold(-1);
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only         = true;
    llama_model * model   = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const std::string override_src = std::string(argv[2]) == "-" ? std::string() : read_file(argv[2]);
    json out = json::array();
    try {
        auto tmpls = common_chat_templates_init(model, override_src);
        for (const auto & body : json::parse(read_file(argv[3]))) {
            common_chat_templates_inputs inputs;
            inputs.messages              = common_chat_msgs_parse_oaicompat(body.at("messages"));
            inputs.tools                 = common_chat_tools_parse_oaicompat(body.value("tools", json::array()));
            inputs.tool_choice           = common_chat_tool_choice_parse_oaicompat(body.value("tool_choice", std::string("auto")));
            inputs.use_jinja             = true;
            inputs.add_generation_prompt = body.value("add_generation_prompt", true);
            inputs.reasoning_format      = COMMON_REASONING_FORMAT_DEEPSEEK;  // the server's default
            inputs.enable_thinking       = body.value("enable_thinking", true);
            if (body.contains("now")) {
                inputs.now = std::chrono::system_clock::time_point(std::chrono::milliseconds(body.at("now").get<int64_t>()));
            }
            try {
                const auto params = common_chat_templates_apply(tmpls.get(), inputs);
                json one = json::object();
                one["prompt"] = params.prompt;
                one["grammar"] = params.grammar;
                one["format"] = common_chat_format_name(params.format);
                out.push_back(one);
            } catch (const std::exception & e) {
                json one = json::object();
                one["error"] = e.what();
                out.push_back(one);
            }
        }
    } catch (const std::exception & e) {
        out = json::array();
        json one = json::object();
        one["error"] = e.what();
        out.push_back(one);
    }
    printf("%s\n", out.dump().c_str());
    llama_model_free(model);
    return 0;
}
