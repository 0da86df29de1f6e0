#include "model.h"

#include "addon_data.h"
#include "errors.h"
#include "llama_internals.h"
#include "workers/tokenize.h"

#include <cstdlib>
#include <string>
#include <vector>

namespace llama_kv {

const napi_type_tag model_handle_tag = { 0x6c6c616d614b5601ULL, 0x6d6f64656c000001ULL };
// Marks the JS objects that a model_wrap constructor completed on: unwrap trusts this tag,
// not the prototype chain, which JS can change (Object.setPrototypeOf).
const napi_type_tag model_instance_tag = { 0x6c6c616d614b5601ULL, 0x6d6f64656c000002ULL };

Napi::Function model_wrap::define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceMethod<&model_wrap::metadata>("metadata"),
                           InstanceMethod<&model_wrap::weight_placement>("weightPlacement"),
                           InstanceMethod<&model_wrap::tokenize>("tokenize"),
                           InstanceMethod<&model_wrap::tokenize_async>("tokenizeAsync"),
                           InstanceMethod<&model_wrap::detokenize>("detokenize"),
                           InstanceMethod<&model_wrap::token_to_piece>("tokenToPiece"),
                           InstanceMethod<&model_wrap::dispose>("dispose"),
                           InstanceAccessor<&model_wrap::disposed>("disposed"),
                       });
}

model_wrap::model_wrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<model_wrap>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    bool      tagged = false;
    if (info.Length() == 1 && info[0].IsExternal()) {
        napi_check_object_type_tag(env, info[0], &model_handle_tag, &tagged);
    }
    if (!tagged) {
        throw_error(env, code::invalid_argument, "NativeModel cannot be constructed directly; use LlamaModel.load()");
    }
    auto * handle = info[0].As<Napi::External<llama_model_ptr>>().Data();
    if (handle == nullptr || !*handle) {
        throw_error(env, code::disposed, "the model handle was already taken");
    }
    model_ = std::move(*handle);
    // A dry-run (no_alloc) model holds no weights in memory: nothing to report to the GC.
    external_bytes_ = model_is_dry_run(model_.get()) ? 0 : static_cast<int64_t>(llama_model_size(model_.get()));
    Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
    napi_type_tag_object(env, info.This(), &model_instance_tag);
}

model_wrap::~model_wrap() {
    if (external_bytes_ != 0 && env_ != nullptr) {
        napi_adjust_external_memory(env_, -external_bytes_, nullptr);
    }
}

llama_model_ptr model_wrap::model(Napi::Env env) const {
    if (!model_) {
        throw_error(env, code::disposed, "the model has been disposed");
    }
    return model_;
}

model_wrap * model_wrap::unwrap(Napi::Env env, Napi::Value value) {
    bool tagged = false;
    if (value.IsObject()) {
        napi_check_object_type_tag(env, value, &model_instance_tag, &tagged);
    }
    if (!tagged) {  // not one of ours, e.g. Object.create(NativeModel.prototype) or a context
        throw_error(env, code::invalid_argument, "expected a native model");
    }
    return model_wrap::Unwrap(value.As<Napi::Object>());
}

namespace {

std::string meta_string(const llama_model * model, const char * key) {
    char    buf[512];
    int32_t n = llama_model_meta_val_str(model, key, buf, sizeof(buf));
    if (n < 0) {
        return {};
    }
    if (static_cast<size_t>(n) >= sizeof(buf)) {
        std::vector<char> big(static_cast<size_t>(n) + 1);
        llama_model_meta_val_str(model, key, big.data(), big.size());
        return std::string(big.data(), static_cast<size_t>(n));
    }
    return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

Napi::Value model_wrap::metadata(const Napi::CallbackInfo & info) {
    Napi::Env       env   = info.Env();
    llama_model_ptr m     = model(env);
    const auto *    model = m.get();
    const auto *    vocab = llama_model_get_vocab(model);

    // A vocabulary-only model has no hyperparameters: llama_model_n_head() and
    // friends would GGML_ABORT on it (they index per-layer arrays of size 0).
    const bool        has_weights = model_has_weights(model);
    const std::string arch        = meta_string(model, "general.architecture");
    const int32_t     n_embd      = has_weights ? llama_model_n_embd(model) : 0;
    const int32_t     n_head      = has_weights ? llama_model_n_head(model) : 0;
    const layer_head_dims dims    = model_layer_head_dims(model);

    char desc[256] = { 0 };
    llama_model_desc(model, desc, sizeof(desc));

    Napi::Object out = Napi::Object::New(env);
    out.Set("architecture", arch);
    out.Set("name", meta_string(model, "general.name"));
    out.Set("description", std::string(desc));
    out.Set("hasWeights", has_weights);
    out.Set("trainedContextSize", has_weights ? llama_model_n_ctx_train(model) : 0);
    out.Set("layerCount", has_weights ? llama_model_n_layer(model) : 0);
    out.Set("embeddingSize", n_embd);
    out.Set("headCount", n_head);
    out.Set("headCountKv", has_weights ? llama_model_n_head_kv(model) : 0);
    out.Set("headDimK", dims.k.empty() ? 0 : dims.k[0]);
    out.Set("headDimV", dims.v.empty() ? 0 : dims.v[0]);
    Napi::Array layer_k = Napi::Array::New(env, dims.k.size());
    Napi::Array layer_v = Napi::Array::New(env, dims.v.size());
    for (size_t il = 0; il < dims.k.size(); ++il) {
        layer_k.Set(static_cast<uint32_t>(il), dims.k[il]);
        layer_v.Set(static_cast<uint32_t>(il), dims.v[il]);
    }
    out.Set("layerHeadDimK", layer_k);
    out.Set("layerHeadDimV", layer_v);
    out.Set("kvTypesMustMatch", model_needs_equal_kv_types(model));
    out.Set("slidingWindow", has_weights ? llama_model_n_swa(model) : 0);
    out.Set("vocabSize", llama_vocab_n_tokens(vocab));
    out.Set("vocabType", static_cast<int32_t>(llama_vocab_type(vocab)));
    out.Set("sizeBytes", static_cast<double>(llama_model_size(model)));
    out.Set("parameterCount", static_cast<double>(llama_model_n_params(model)));
    out.Set("fileType", static_cast<int32_t>(llama_model_ftype(model)));
    out.Set("bos", llama_vocab_bos(vocab));
    out.Set("eos", llama_vocab_eos(vocab));
    out.Set("addBos", llama_vocab_get_add_bos(vocab));
    out.Set("isRecurrent", llama_model_is_recurrent(model));
    out.Set("hasEncoder", llama_model_has_encoder(model));
    out.Set("hasDecoder", llama_model_has_decoder(model));
    const model_embedding_facts embd = model_embedding_facts_of(model);
    out.Set("poolingType", embd.pooling_type);
    out.Set("causalAttention", embd.causal_attn);
    out.Set("hasClassifier", embd.classifier);
    out.Set("embeddingOutputSize", has_weights ? llama_model_n_embd_out(model) : 0);
    out.Set("classifierOutputs", has_weights ? static_cast<double>(llama_model_n_cls_out(model)) : 0.0);
    const char * rerank = llama_model_chat_template(model, "rerank");
    out.Set("rerankTemplate", rerank != nullptr ? Napi::Value(Napi::String::New(env, rerank)) : env.Null());
    out.Set("addEos", llama_vocab_get_add_eos(vocab));
    out.Set("addSep", llama_vocab_get_add_sep(vocab));
    out.Set("sep", llama_vocab_sep(vocab));
    return out;
}

// weightPlacement() -> { names: string[], buffers: string[], bytes: number[] }: each weight
// tensor, the buffer type llama.cpp placed it in ('' for none) and its bytes.
Napi::Value model_wrap::weight_placement(const Napi::CallbackInfo & info) {
    Napi::Env                       env    = info.Env();
    llama_model_ptr                 m      = model(env);
    const std::vector<tensor_place> places = model_tensor_placement(m.get());
    Napi::Array                     names  = Napi::Array::New(env, places.size());
    Napi::Array                     bufts  = Napi::Array::New(env, places.size());
    Napi::Array                     bytes  = Napi::Array::New(env, places.size());
    for (size_t i = 0; i < places.size(); ++i) {
        const auto idx = static_cast<uint32_t>(i);
        names.Set(idx, places[i].name);
        bufts.Set(idx, places[i].buft != nullptr ? ggml_backend_buft_name(places[i].buft) : "");
        bytes.Set(idx, static_cast<double>(places[i].bytes));
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("names", names);
    out.Set("buffers", bufts);
    out.Set("bytes", bytes);
    return out;
}

bool model_has_weights(const llama_model * model) {
    return llama_model_n_layer(model) > 0;
}

bool vocab_has_tokenizer(const llama_vocab * vocab) {
    return llama_vocab_type(vocab) != LLAMA_VOCAB_TYPE_NONE;
}

const char * const no_tokenizer_message =
    "this model has no tokenizer (its tokenizer.ggml.model is 'none'): its tokens have no text, so it can only "
    "evaluate token ids";

// llama.cpp's tokenizers take about 60 bytes of memory per byte of text (measured on an
// SPM vocabulary): larger inputs risk the process being killed for memory.
constexpr size_t max_tokenize_bytes = size_t(64) << 20;

bool tokenize_text(const llama_vocab * vocab, const std::string & text, bool add_special, bool parse_special,
                   std::vector<llama_token> & out, std::string & error) {
    if (!vocab_has_tokenizer(vocab)) {
        error = no_tokenizer_message;
        return false;
    }
    if (text.size() > max_tokenize_bytes) {
        error = "text is too long to tokenize in one call (" + std::to_string(text.size()) +
                " bytes, at most 64 MiB): split it";
        return false;
    }
    const int32_t len = static_cast<int32_t>(text.size());
    out.resize(static_cast<size_t>(len) + 2);
    int32_t n = llama_tokenize(vocab, text.data(), len, out.data(), static_cast<int32_t>(out.size()), add_special,
                               parse_special);
    if (n == INT32_MIN) {
        error = "tokenization result overflows int32";
        return false;
    }
    if (n < 0) {
        out.resize(static_cast<size_t>(-n));
        n = llama_tokenize(vocab, text.data(), len, out.data(), static_cast<int32_t>(out.size()), add_special,
                           parse_special);
        if (n < 0) {
            error = "llama_tokenize failed";
            return false;
        }
    }
    out.resize(static_cast<size_t>(n));
    return true;
}

int64_t find_invalid_token(const llama_vocab * vocab, const llama_token * tokens, size_t n) {
    const llama_token n_vocab = llama_vocab_n_tokens(vocab);
    for (size_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            return static_cast<int64_t>(i);
        }
    }
    return -1;
}

std::vector<llama_token> read_tokens(Napi::Env env, Napi::Value value, const char * what) {
    std::vector<llama_token> tokens;
    if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
        auto arr = value.As<Napi::Int32Array>();
        tokens.assign(arr.Data(), arr.Data() + arr.ElementLength());
        return tokens;
    }
    if (value.IsArray()) {
        auto arr = value.As<Napi::Array>();
        tokens.reserve(arr.Length());
        for (uint32_t i = 0; i < arr.Length(); ++i) {
            Napi::Value v = arr.Get(i);
            if (!v.IsNumber()) {
                throw_error(env, code::invalid_argument, std::string(what) + " must contain only integers");
            }
            tokens.push_back(static_cast<llama_token>(
                checked_integer(env, v.As<Napi::Number>().DoubleValue(), INT32_MIN, INT32_MAX, std::string(what) + " entries")));
        }
        return tokens;
    }
    throw_error(env, code::invalid_argument, std::string(what) + " must be an Int32Array or an array of integers");
}

Napi::Value model_wrap::tokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsBoolean() || !info[2].IsBoolean()) {
        throw_error(env, code::invalid_argument, "tokenize(text: string, addSpecial: boolean, parseSpecial: boolean)");
    }
    llama_model_ptr          m = model(env);
    std::vector<llama_token> tokens;
    std::string              error;
    if (!tokenize_text(llama_model_get_vocab(m.get()), info[0].As<Napi::String>().Utf8Value(),
                       info[1].As<Napi::Boolean>().Value(), info[2].As<Napi::Boolean>().Value(), tokens, error)) {
        throw_error(env, code::tokenize_failed, error);
    }
    auto out = Napi::Int32Array::New(env, tokens.size());
    std::copy(tokens.begin(), tokens.end(), out.Data());
    return out;
}

Napi::Value model_wrap::tokenize_async(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsBoolean() || !info[2].IsBoolean()) {
        throw_error(env, code::invalid_argument, "tokenizeAsync(text: string, addSpecial: boolean, parseSpecial: boolean)");
    }
    return queue_tokenize(env, model(env), info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Boolean>().Value(),
                          info[2].As<Napi::Boolean>().Value());
}

Napi::Value model_wrap::detokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[1].IsBoolean() || !info[2].IsBoolean()) {
        throw_error(env, code::invalid_argument,
                    "detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean)");
    }
    llama_model_ptr          m      = model(env);
    const llama_vocab *      vocab  = llama_model_get_vocab(m.get());
    std::vector<llama_token> tokens = read_tokens(env, info[0], "tokens");
    int64_t                  bad    = find_invalid_token(vocab, tokens.data(), tokens.size());
    if (bad >= 0) {
        throw_error(env, code::invalid_argument,
                    "token id " + std::to_string(tokens[static_cast<size_t>(bad)]) + " at index " + std::to_string(bad) +
                        " is outside the vocabulary [0, " + std::to_string(llama_vocab_n_tokens(vocab)) + ")");
    }
    if (!vocab_has_tokenizer(vocab)) {
        throw_error(env, code::tokenize_failed, no_tokenizer_message);
    }
    const bool remove_special  = info[1].As<Napi::Boolean>().Value();
    const bool unparse_special = info[2].As<Napi::Boolean>().Value();
    // llama_detokenize sums the text length in an int32: size the text first (pieces only
    // ever add bytes, and the SPM leading-space rule removes one) and refuse what would overflow.
    int64_t need = 16;
    for (llama_token t : tokens) {
        need += std::abs(static_cast<int64_t>(llama_token_to_piece(vocab, t, nullptr, 0, 0, unparse_special)));
        if (need > INT32_MAX) {
            throw_error(env, code::invalid_argument,
                        "the text of these " + std::to_string(tokens.size()) + " tokens would exceed 2 GiB: detokenize fewer at a time");
        }
    }
    std::vector<char> text(static_cast<size_t>(need));
    int32_t n = llama_detokenize(vocab, tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                                 static_cast<int32_t>(text.size()), remove_special, unparse_special);
    if (n < 0 && n != INT32_MIN) {
        text.resize(static_cast<size_t>(-static_cast<int64_t>(n)));
        n = llama_detokenize(vocab, tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                             static_cast<int32_t>(text.size()), remove_special, unparse_special);
    }
    if (n < 0) {
        throw_error(env, code::tokenize_failed, "llama_detokenize failed");
    }
    return Napi::Buffer<char>::Copy(env, text.data(), static_cast<size_t>(n));
}

Napi::Value model_wrap::token_to_piece(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBoolean()) {
        throw_error(env, code::invalid_argument, "tokenToPiece(token: number, special: boolean)");
    }
    llama_model_ptr     m     = model(env);
    const llama_vocab * vocab = llama_model_get_vocab(m.get());
    const llama_token   token = static_cast<llama_token>(
        checked_integer(env, info[0].As<Napi::Number>().DoubleValue(), INT32_MIN, INT32_MAX, "token"));
    if (find_invalid_token(vocab, &token, 1) >= 0) {
        throw_error(env, code::invalid_argument, "token id is outside the vocabulary");
    }
    if (!vocab_has_tokenizer(vocab)) {
        throw_error(env, code::tokenize_failed, no_tokenizer_message);
    }
    const bool        special = info[1].As<Napi::Boolean>().Value();
    std::vector<char> buf(256);
    int32_t           n = llama_token_to_piece(vocab, token, buf.data(), static_cast<int32_t>(buf.size()), 0, special);
    if (n < 0) {
        buf.resize(static_cast<size_t>(-n));
        n = llama_token_to_piece(vocab, token, buf.data(), static_cast<int32_t>(buf.size()), 0, special);
    }
    if (n < 0) {
        throw_error(env, code::tokenize_failed, "llama_token_to_piece failed");
    }
    return Napi::Buffer<char>::Copy(env, buf.data(), static_cast<size_t>(n));
}

Napi::Value model_wrap::dispose(const Napi::CallbackInfo & info) {
    // Contexts hold their own reference: the weights are freed when the last one goes.
    model_.reset();
    if (external_bytes_ != 0) {
        Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -external_bytes_);
        external_bytes_ = 0;
    }
    return info.Env().Undefined();
}

Napi::Value model_wrap::disposed(const Napi::CallbackInfo & info) {
    return Napi::Boolean::New(info.Env(), !model_);
}

}  // namespace llama_kv
