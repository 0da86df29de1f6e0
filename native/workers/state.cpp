#include "state.h"

#include "../llama_internals.h"
#include "../state_section.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace llama_kv {

namespace {

// Files are written and read in pieces of this size, the abort flag checked between them.
constexpr size_t io_chunk = size_t{ 8 } << 20;

std::string errno_text() {
    return std::strerror(errno);
}

class file_handle {
  public:
    file_handle() = default;
    ~file_handle() { close(); }
    file_handle(const file_handle &)             = delete;
    file_handle & operator=(const file_handle &) = delete;
    bool open(const std::string & path, const char * mode) {
        f_ = std::fopen(path.c_str(), mode);
        return f_ != nullptr;
    }
    int close() {
        const int rc = f_ != nullptr ? std::fclose(f_) : 0;
        f_           = nullptr;
        return rc;
    }
    std::FILE * get() const { return f_; }

  private:
    std::FILE * f_ = nullptr;
};

class state_worker_base : public Napi::AsyncWorker {
  protected:
    state_worker_base(Napi::Env env, const char * name, std::shared_ptr<context_state> state, std::vector<llama_seq_id> seqs,
                      std::shared_ptr<std::atomic<bool>> abort) :
        Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        state_(std::move(state)),
        seqs_(std::move(seqs)),
        abort_(std::move(abort)) {}

  public:
    ~state_worker_base() override {
        for (llama_seq_id seq : seqs_) {
            state_->engine->release(seq);
        }
    }
    Napi::Promise promise() const { return deferred_.Promise(); }

  protected:
    // True (with fail_ set) when the call was aborted or the context is going away.
    bool stopped() {
        if (state_->abort.load()) {
            fail_ = { code::disposed, "the context was disposed" };
            return true;
        }
        if (abort_->load()) {
            fail_ = { code::aborted, "aborted" };
            return true;
        }
        return false;
    }

    void OnError(const Napi::Error & e) override {
        outside_js([&] { deferred_.Reject(escaped_error(Env(), e).Value()); });
    }

    Napi::Promise::Deferred            deferred_;
    std::shared_ptr<context_state>     state_;
    std::vector<llama_seq_id>          seqs_;
    std::shared_ptr<std::atomic<bool>> abort_;
    failure                            fail_;
};

class state_save_worker : public state_worker_base {
  public:
    state_save_worker(Napi::Env env, state_save_request req, std::shared_ptr<std::atomic<bool>> abort) :
        state_worker_base(env, "llama-kv:saveState", req.state, req.seqs, std::move(abort)),
        prefix_(std::move(req.prefix)),
        n_tokens_(std::move(req.n_tokens)),
        path_(std::move(req.path)),
        tmp_path_(std::move(req.tmp_path)) {}

  protected:
    void Execute() override {
        contain_exceptions({ state_.get() }, fail_, [&] { save(); });
    }

    void save() {
        log_capture_reset();
        const bool to_file = !path_.empty();
        if (to_file) {
            if (!file_.open(tmp_path_, "wb")) {
                fail_ = { code::state_io_failed, "cannot create " + tmp_path_ + ": " + errno_text() };
                return;
            }
            created_ = true;
            if (!write(prefix_.data(), prefix_.size())) {
                return cleanup();
            }
        } else {
            out_ = std::move(prefix_);
        }
        std::vector<uint8_t> payload;
        for (size_t i = 0; i < seqs_.size(); ++i) {
            const llama_seq_id seq = seqs_[i];
            std::vector<llama_token> tokens;
            size_t                   at   = 0;
            size_t                   size = 0;
            {
                std::unique_lock<std::mutex> lock = state_->lock_between_steps();
                if (stopped()) {
                    return cleanup();
                }
                llama_context * ctx = state_->ctx.get();
                tokens              = state_->cached[static_cast<size_t>(seq)];
                if (tokens.size() != n_tokens_[i]) {
                    // The header would not describe the section: refuse rather than write a file that cannot load.
                    fail_ = { code::internal, "sequence " + std::to_string(seq) + " holds " + std::to_string(tokens.size()) +
                                                  " tokens where the caller expected " + std::to_string(n_tokens_[i]) };
                    return cleanup();
                }
                size                = llama_state_seq_get_size(ctx, seq);
                if (size == 0) {
                    fail_ = { code::internal, with_log("llama.cpp could not size sequence " + std::to_string(seq) + "'s state", log_capture_take()) };
                    return cleanup();
                }
                uint8_t * dst = nullptr;
                if (to_file) {
                    payload.resize(size);
                    dst = payload.data();
                } else {
                    at = out_.size() + state_section_header_bytes + tokens.size() * sizeof(llama_token);
                    out_.resize(at + size);
                    dst = out_.data() + at;
                }
                if (llama_state_seq_get_data(ctx, dst, size, seq) != size) {
                    fail_ = { code::internal, with_log("llama.cpp could not copy sequence " + std::to_string(seq) + "'s state", log_capture_take()) };
                    return cleanup();
                }
            }
            const uint8_t *      data = to_file ? payload.data() : out_.data() + at;
            state_section_header h;
            h.seq          = seq;
            h.n_tokens     = static_cast<uint32_t>(tokens.size());
            h.payload_size = size;
            h.checksum     = section_checksum(tokens.data(), tokens.size(), data, size);
            uint8_t head[state_section_header_bytes];
            write_section_header(head, h);
            if (to_file) {
                if (!write(head, sizeof(head)) || !write(tokens.data(), tokens.size() * sizeof(llama_token)) || !write(data, size)) {
                    return cleanup();
                }
            } else {
                const size_t start = at - state_section_header_bytes - tokens.size() * sizeof(llama_token);
                std::memcpy(out_.data() + start, head, sizeof(head));
                if (!tokens.empty()) {
                    std::memcpy(out_.data() + start + sizeof(head), tokens.data(), tokens.size() * sizeof(llama_token));
                }
            }
            bytes_ += sizeof(head) + tokens.size() * sizeof(llama_token) + size;
        }
        bytes_ += to_file ? prefix_.size() : 0;
        if (to_file) {
            if (std::fflush(file_.get()) != 0 || fsync(fileno(file_.get())) != 0) {
                fail_ = { code::state_io_failed, "cannot write " + tmp_path_ + ": " + errno_text() };
                return cleanup();
            }
            if (file_.close() != 0) {
                fail_ = { code::state_io_failed, "cannot write " + tmp_path_ + ": " + errno_text() };
                return cleanup();
            }
            if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
                fail_ = { code::state_io_failed, "cannot rename " + tmp_path_ + " to " + path_ + ": " + errno_text() };
                return cleanup();
            }
            created_ = false;
        } else {
            bytes_ = out_.size();
        }
    }

    void OnOK() override {
        outside_js([&] {
            Napi::Env env = Env();
            if (fail_) {
                deferred_.Reject(make_error(env, fail_).Value());
                return;
            }
            if (!path_.empty()) {
                deferred_.Resolve(Napi::Number::New(env, static_cast<double>(bytes_)));
                return;
            }
            auto * held = new std::vector<uint8_t>(std::move(out_));
            deferred_.Resolve(Napi::Buffer<uint8_t>::NewOrCopy(env, held->data(), held->size(),
                                                               [](Napi::Env, uint8_t *, std::vector<uint8_t> * v) { delete v; }, held));
        });
    }

  private:
    bool write(const void * data, size_t size) {
        const auto * p = static_cast<const uint8_t *>(data);
        while (size > 0) {
            if (stopped()) {
                return false;
            }
            const size_t n = size < io_chunk ? size : io_chunk;
            if (std::fwrite(p, 1, n, file_.get()) != n) {
                fail_ = { code::state_io_failed, "cannot write " + tmp_path_ + ": " + errno_text() };
                return false;
            }
            p += n;
            size -= n;
        }
        return true;
    }

    // A failed or aborted save leaves no file behind.
    void cleanup() {
        file_.close();
        if (created_) {
            std::remove(tmp_path_.c_str());
            created_ = false;
        }
        out_.clear();
        out_.shrink_to_fit();
    }

    std::vector<uint8_t>  prefix_;
    std::vector<uint32_t> n_tokens_;
    std::string           path_;
    std::string           tmp_path_;
    file_handle          file_;
    bool                 created_ = false;
    std::vector<uint8_t> out_;
    size_t               bytes_ = 0;
};

class state_load_worker : public state_worker_base {
  public:
    state_load_worker(Napi::Env env, state_load_request req, std::shared_ptr<std::atomic<bool>> abort) :
        state_worker_base(env, "llama-kv:loadState", req.state, req.seqs, std::move(abort)),
        n_tokens_(std::move(req.n_tokens)),
        path_(std::move(req.path)),
        data_(req.data),
        size_(req.size),
        keep_(std::move(req.keep)),
        offset_(req.offset) {}

  protected:
    void Execute() override {
        contain_exceptions({ state_.get() }, fail_, [&] { load(); });
    }

    void load() {
        log_capture_reset();
        if (!path_.empty()) {
            if (!file_.open(path_, "rb")) {
                fail_ = { errno == ENOENT ? code::invalid_argument : code::state_io_failed, "cannot open " + path_ + ": " + errno_text() };
                return;
            }
            if (std::fseek(file_.get(), 0, SEEK_END) != 0) {
                fail_ = { code::state_io_failed, "cannot read " + path_ + ": " + errno_text() };
                return;
            }
            const long end = std::ftell(file_.get());
            if (end < 0 || std::fseek(file_.get(), 0, SEEK_SET) != 0) {
                fail_ = { code::state_io_failed, "cannot read " + path_ + ": " + errno_text() };
                return;
            }
            size_ = static_cast<size_t>(end);
        }
        const context_state_layout facts     = context_state_layout_of(state_->ctx.get());
        const payload_layout       layout    = { facts.caches, facts.cell_ext, facts.has_v, facts.n_stream };
        const uint32_t             n_ctx_seq = llama_n_ctx_seq(state_->ctx.get());
        const int32_t              n_vocab   = llama_vocab_n_tokens(llama_model_get_vocab(state_->model.get()));
        uint64_t                   pos       = offset_;
        std::vector<uint8_t>       payload;
        std::vector<uint8_t>       rewritten;
        tokens_.resize(seqs_.size());
        for (size_t i = 0; i < seqs_.size(); ++i) {
            const std::string what = "section " + std::to_string(i);
            uint8_t           head[state_section_header_bytes];
            if (pos > size_ || size_ - pos < sizeof(head)) {
                return invalid("it ends before " + what + " (" + std::to_string(size_) + " bytes): it is truncated");
            }
            if (!read(pos, head, sizeof(head))) {
                return;
            }
            pos += sizeof(head);
            state_section_header h;
            if (!read_section_header(head, h)) {
                return invalid(what + " does not start with a section header");
            }
            if (h.n_tokens != n_tokens_[i]) {
                return invalid(what + " holds " + std::to_string(h.n_tokens) + " tokens where the header says " + std::to_string(n_tokens_[i]));
            }
            if (h.n_tokens > n_ctx_seq) {
                fail_ = { code::state_mismatch, "the state holds " + std::to_string(h.n_tokens) + " tokens and sequence " +
                                                    std::to_string(seqs_[i]) + " of this context has " + std::to_string(n_ctx_seq) +
                                                    " cells: load it into a context with contextSizePerSequence >= " + std::to_string(h.n_tokens) };
                return;
            }
            const uint64_t token_bytes = uint64_t{ h.n_tokens } * sizeof(llama_token);
            const uint64_t left        = size_ - pos;
            if (token_bytes > left || h.payload_size > left - token_bytes) {
                return invalid(what + " needs " + std::to_string(token_bytes + h.payload_size) + " bytes and " + std::to_string(left) +
                               " are left: it is truncated");
            }
            std::vector<llama_token> & tokens = tokens_[i];
            tokens.resize(h.n_tokens);
            payload.resize(static_cast<size_t>(h.payload_size));
            if (!read(pos, tokens.data(), static_cast<size_t>(token_bytes)) || !read(pos + token_bytes, payload.data(), payload.size())) {
                return;
            }
            pos += token_bytes + h.payload_size;
            if (section_checksum(tokens.data(), tokens.size(), payload.data(), payload.size()) != h.checksum) {
                return invalid(what + "'s checksum does not match its bytes: it is damaged");
            }
            for (size_t t = 0; t < tokens.size(); ++t) {
                if (tokens[t] < 0 || tokens[t] >= n_vocab) {
                    return invalid(what + "'s token " + std::to_string(t) + " (" + std::to_string(tokens[t]) + ") is outside the vocabulary");
                }
            }
            const std::string malformed = check_sequence_payload(payload.data(), payload.size(), h.n_tokens, layout, rewritten);
            if (!malformed.empty()) {
                return invalid(what + "'s llama.cpp payload is malformed: " + malformed);
            }
            if (!rewritten.empty()) {
                payload.swap(rewritten);  // saved with another stream count
            }
            std::unique_lock<std::mutex> lock = state_->lock_between_steps();
            if (stopped()) {
                return;
            }
            const llama_seq_id seq = seqs_[i];
            log_capture_take();
            const size_t read = llama_state_seq_set_data(state_->ctx.get(), payload.data(), payload.size(), seq);
            if (read != payload.size()) {
                // llama.cpp refused it and left the sequence empty.
                const std::string log = log_capture_take();
                state_->clear_sequence(seq);
                const bool full = log.find("available cells") != std::string::npos;
                fail_ = { full ? code::context_full : code::state_mismatch,
                          with_log(full ? "the context has no room for the state's " + std::to_string(h.n_tokens) + " cells"
                                        : "llama.cpp refused " + what + " of the state",
                                   log) };
                return;
            }
            state_->cached[static_cast<size_t>(seq)] = tokens;
            state_->publish_cells();
        }
        if (pos != size_) {
            return invalid(std::to_string(size_ - pos) + " bytes follow the last section");
        }
    }

    void OnOK() override {
        outside_js([&] {
            Napi::Env env = Env();
            keep_.Reset();
            if (fail_) {
                deferred_.Reject(make_error(env, fail_).Value());
                return;
            }
            Napi::Array out = Napi::Array::New(env, tokens_.size());
            for (size_t i = 0; i < tokens_.size(); ++i) {
                auto arr = Napi::Int32Array::New(env, tokens_[i].size());
                if (!tokens_[i].empty()) {
                    std::memcpy(arr.Data(), tokens_[i].data(), tokens_[i].size() * sizeof(llama_token));
                }
                out.Set(static_cast<uint32_t>(i), arr);
            }
            deferred_.Resolve(out);
        });
    }

  private:
    void invalid(const std::string & why) { fail_ = { code::invalid_state_file, why }; }

    // `n` bytes at `at` of the file or buffer (the caller checked the range).
    bool read(uint64_t at, void * dst, size_t n) {
        auto * out = static_cast<uint8_t *>(dst);
        if (path_.empty()) {
            // The Buffer is JS memory: copied once, here, so that what is checked is what loads.
            for (size_t done = 0; done < n;) {
                if (stopped()) {
                    return false;
                }
                const size_t k = std::min(io_chunk, n - done);
                std::memcpy(out + done, data_ + at + done, k);
                done += k;
            }
            return true;
        }
        if (fseeko(file_.get(), static_cast<off_t>(at), SEEK_SET) != 0) {
            fail_ = { code::state_io_failed, "cannot read " + path_ + ": " + errno_text() };
            return false;
        }
        for (size_t done = 0; done < n;) {
            if (stopped()) {
                return false;
            }
            const size_t k = std::min(io_chunk, n - done);
            if (std::fread(out + done, 1, k, file_.get()) != k) {
                invalid("it ends early: it is truncated or was changed while it was read");
                return false;
            }
            done += k;
        }
        return true;
    }

    std::vector<uint32_t>                 n_tokens_;
    std::string                           path_;
    const uint8_t *                       data_;
    size_t                                size_;
    Napi::Reference<Napi::Value>          keep_;
    uint64_t                              offset_;
    file_handle                           file_;
    std::vector<std::vector<llama_token>> tokens_;
};

}  // namespace

Napi::Promise queue_state_save(Napi::Env env, state_save_request request, std::shared_ptr<std::atomic<bool>> abort) {
    auto *        worker  = new state_save_worker(env, std::move(request), std::move(abort));  // freed by node-addon-api
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
}

Napi::Promise queue_state_load(Napi::Env env, state_load_request request, std::shared_ptr<std::atomic<bool>> abort) {
    auto *        worker  = new state_load_worker(env, std::move(request), std::move(abort));
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
}

}  // namespace llama_kv
