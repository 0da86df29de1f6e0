// LlamaModel wrapper: metadata, tokenize, detokenize, dispose. Loading happens in
// workers/load_model (off the JS thread) and hands over an owned handle.
#pragma once

#include "handles.h"

#include <napi.h>

namespace llama_kv {

class model_wrap : public Napi::ObjectWrap<model_wrap> {
  public:
    static Napi::Function define(Napi::Env env);
    // JS: new NativeModel(handle): handle is the tagged External made by the load worker.
    explicit model_wrap(const Napi::CallbackInfo & info);
    ~model_wrap() override;

    // The live model, or a DISPOSED error.
    llama_model_ptr model(Napi::Env env) const;
    static model_wrap * unwrap(Napi::Env env, Napi::Value value);

  private:
    Napi::Value metadata(const Napi::CallbackInfo & info);
    Napi::Value weight_placement(const Napi::CallbackInfo & info);
    Napi::Value tokenize(const Napi::CallbackInfo & info);
    Napi::Value tokenize_async(const Napi::CallbackInfo & info);
    Napi::Value detokenize(const Napi::CallbackInfo & info);
    Napi::Value token_to_piece(const Napi::CallbackInfo & info);
    Napi::Value dispose(const Napi::CallbackInfo & info);
    Napi::Value disposed(const Napi::CallbackInfo & info);

    llama_model_ptr model_;
    int64_t         external_bytes_ = 0;
    napi_env        env_            = nullptr;
};

// False for a model loaded with vocab_only: it has no layers, and llama.cpp's
// hyperparameter accessors and context creation must not be called on it.
bool model_has_weights(const llama_model * model);

// Shared by the sync method and the tokenize worker. Returns false and sets `error`.
// Whether the model has a tokenizer (tokenizer.ggml.model is not 'none'). Without one,
// llama.cpp's tokenize and token-to-piece calls GGML_ASSERT: check this before them.
bool vocab_has_tokenizer(const llama_vocab * vocab);
extern const char * const no_tokenizer_message;

bool tokenize_text(const llama_vocab * vocab, const std::string & text, bool add_special, bool parse_special,
                   std::vector<llama_token> & out, std::string & error);
// Checks every id is in [0, n_vocab). Returns the index of the first bad one, or -1.
int64_t find_invalid_token(const llama_vocab * vocab, const llama_token * tokens, size_t n);
// Reads an Int32Array / number[] of token ids.
std::vector<llama_token> read_tokens(Napi::Env env, Napi::Value value, const char * what);

}  // namespace llama_kv
