#include "chat.h"

#include "../chat_templates.h"
#include "../errors.h"
#include "../model.h"
#include "abortable.h"

#include <algorithm>

namespace llama_kv {

namespace {

// The shared shape: a promise, an abort flag the template's budget polls, and an error
// that is TEMPLATE_FAILED unless the abort flag was the cause.
class chat_worker : public Napi::AsyncWorker {
  public:
    Napi::Promise                      promise() const { return deferred_.Promise(); }
    std::shared_ptr<std::atomic<bool>> abort_flag() const { return abort_; }

  protected:
    chat_worker(Napi::Env env, const char * name, template_limits limits) :
        Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        abort_(std::make_shared<std::atomic<bool>>(false)),
        limits_(limits) {}

    void fail(const std::string & message) {
        error_ = message;
        SetError(message);
    }

    void OnError(const Napi::Error & e) override {
        outside_js([&] {
            if (error_.empty()) {
                deferred_.Reject(escaped_error(Env(), e).Value());
            } else if (abort_->load() && error_ == "aborted") {
                deferred_.Reject(make_error(Env(), code::aborted, "the chat template was aborted").Value());
            } else {
                deferred_.Reject(make_error(Env(), code::template_failed, error_).Value());
            }
        });
    }

    Napi::Promise::Deferred            deferred_;
    std::shared_ptr<std::atomic<bool>> abort_;
    template_limits                    limits_;
    std::string                        error_;
};

class chat_init_worker : public chat_worker {
  public:
    chat_init_worker(Napi::Env env, llama_model_ptr model, std::string override_src, template_limits limits) :
        chat_worker(env, "llama-kv:chat-init", limits),
        model_(std::move(model)),
        override_(std::move(override_src)) {}

  protected:
    void Execute() override {
        std::string error;
        holder_ = chat_templates_init(model_, override_, limits_, abort_.get(), info_, error);
        if (!holder_) {
            fail(error);
        }
    }

    void OnOK() override {
        outside_js([&] {
            Napi::Object out = Napi::Object::New(Env());
            out.Set("handle", wrap_chat_templates(Env(), std::move(holder_)));
            out.Set("info", Napi::String::New(Env(), info_));
            deferred_.Resolve(out);
        });
    }

  private:
    llama_model_ptr    model_;
    std::string        override_;
    chat_templates_ptr holder_;
    std::string        info_;
};

class chat_apply_worker : public chat_worker {
  public:
    chat_apply_worker(Napi::Env env, llama_model_ptr model, chat_templates_ptr holder, std::string inputs, template_limits limits,
                      bool tokenize, bool has_prefix, std::string prefix) :
        chat_worker(env, "llama-kv:chat-apply", limits),
        model_(std::move(model)),
        holder_(std::move(holder)),
        inputs_(std::move(inputs)),
        tokenize_(tokenize),
        has_prefix_(has_prefix),
        prefix_(std::move(prefix)) {}

  protected:
    void Execute() override {
        std::string error;
        chat_tokenize_request tok;
        tok.tokens       = tokenize_ ? &tokens_ : nullptr;
        tok.prefix       = has_prefix_ ? &prefix_ : nullptr;
        if (!chat_templates_apply(model_, *holder_, inputs_, limits_, abort_.get(), params_, tok, error)) {
            fail(error);
        }
    }

    void OnOK() override {
        outside_js([&] {
            Napi::Object out = Napi::Object::New(Env());
            out.Set("params", Napi::String::New(Env(), params_));
            if (tokenize_) {
                auto tokens = Napi::Int32Array::New(Env(), tokens_.size());
                std::copy(tokens_.begin(), tokens_.end(), tokens.Data());
                out.Set("tokens", tokens);
            }
            deferred_.Resolve(out);
        });
    }

  private:
    llama_model_ptr          model_;  // the worker's own reference: disposing the model meanwhile is safe
    chat_templates_ptr       holder_;
    std::string              inputs_;
    bool                     tokenize_;
    bool                     has_prefix_;
    std::string              prefix_;
    std::string              params_;
    std::vector<llama_token> tokens_;
};

}  // namespace

Napi::Value chat_init(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[1].IsString()) {
        throw_error(env, code::invalid_argument, "chatInit(model, override: string, limits)");
    }
    llama_model_ptr model  = model_wrap::unwrap(env, info[0])->model(env);
    auto *          worker = new chat_init_worker(env, std::move(model), info[1].As<Napi::String>().Utf8Value(),
                                                  read_template_limits(env, info[2]));  // freed by node-addon-api
    Napi::Promise   promise = worker->promise();
    auto            abort   = worker->abort_flag();
    worker->Queue();
    return promise_with_abort(env, promise, abort);
}

Napi::Value chat_apply(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[2].IsString() || !info[4].IsBoolean()) {
        throw_error(env, code::invalid_argument, "chatApply(model, handle, inputs: string, limits, tokenize: boolean, prefix?: string)");
    }
    const bool has_prefix = info.Length() > 5 && info[5].IsString();
    llama_model_ptr    model  = model_wrap::unwrap(env, info[0])->model(env);
    chat_templates_ptr holder = unwrap_chat_templates(env, info[1]);
    auto *             worker = new chat_apply_worker(env, std::move(model), std::move(holder), info[2].As<Napi::String>().Utf8Value(),
                                                      read_template_limits(env, info[3]), info[4].As<Napi::Boolean>().Value(), has_prefix,
                                                      has_prefix ? info[5].As<Napi::String>().Utf8Value() : std::string());
    Napi::Promise      promise = worker->promise();
    auto               abort   = worker->abort_flag();
    worker->Queue();
    return promise_with_abort(env, promise, abort);
}

}  // namespace llama_kv
