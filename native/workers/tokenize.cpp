#include "tokenize.h"

#include "../errors.h"
#include "../model.h"

#include <algorithm>
#include <vector>

namespace llama_kv {

namespace {

class tokenize_worker : public Napi::AsyncWorker {
  public:
    tokenize_worker(Napi::Env env, llama_model_ptr model, std::string text, bool add_special, bool parse_special) :
        Napi::AsyncWorker(env, "llama-kv:tokenize"),
        deferred_(Napi::Promise::Deferred::New(env)),
        model_(std::move(model)),
        text_(std::move(text)),
        add_special_(add_special),
        parse_special_(parse_special) {}

    Napi::Promise promise() const { return deferred_.Promise(); }

  protected:
    void Execute() override {
        // The worker holds its own model reference: disposing the model meanwhile is safe.
        if (!tokenize_text(llama_model_get_vocab(model_.get()), text_, add_special_, parse_special_, tokens_, error_)) {
            SetError(error_);
        }
    }

    void OnOK() override {
        outside_js([&] {
            auto out = Napi::Int32Array::New(Env(), tokens_.size());
            std::copy(tokens_.begin(), tokens_.end(), out.Data());
            deferred_.Resolve(out);
        });
    }

    void OnError(const Napi::Error & e) override {
        outside_js([&] {
            deferred_.Reject((error_.empty() ? escaped_error(Env(), e) : make_error(Env(), code::tokenize_failed, error_)).Value());
        });
    }

  private:
    Napi::Promise::Deferred  deferred_;
    llama_model_ptr          model_;
    std::string              text_;
    bool                     add_special_;
    bool                     parse_special_;
    std::vector<llama_token> tokens_;
    std::string              error_;
};

}  // namespace

Napi::Promise queue_tokenize(Napi::Env env, llama_model_ptr model, std::string text, bool add_special, bool parse_special) {
    auto * worker = new tokenize_worker(env, std::move(model), std::move(text), add_special, parse_special);  // freed by node-addon-api
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
}

}  // namespace llama_kv
