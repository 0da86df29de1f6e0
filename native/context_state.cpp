#include "context_state.h"

#include "model.h"

#include <algorithm>
#include <string>

namespace llama_kv {

int32_t context_state::decode(llama_batch batch) {
    if (!reserve_pending) {
        return llama_decode(ctx.get(), batch);
    }
    std::shared_lock<std::shared_mutex> adapters(adapter_set_mutex());
    reserve_pending = false;
    return llama_decode(ctx.get(), batch);
}

void context_state::clear_memory() {
    llama_memory_clear(llama_get_memory(ctx.get()), true);
    cached.clear();
}

int64_t context_state::decode_prompt(const std::vector<llama_token> & tokens, failure & fail,
                                     const std::function<void()> & after_batch) {
    llama_context *     lctx  = ctx.get();
    const llama_vocab * vocab = llama_model_get_vocab(model.get());

    if (tokens.empty()) {
        fail = { code::invalid_argument, "the prompt is empty: at least one token is needed" };
        return -1;
    }
    const int64_t bad = find_invalid_token(vocab, tokens.data(), tokens.size());
    if (bad >= 0) {
        fail = { code::invalid_argument, "token id " + std::to_string(tokens[static_cast<size_t>(bad)]) +
                                             " at index " + std::to_string(bad) + " is outside the vocabulary [0, " +
                                             std::to_string(llama_vocab_n_tokens(vocab)) + ")" };
        return -1;
    }
    const uint32_t n_ctx = llama_n_ctx_seq(lctx);
    if (tokens.size() > n_ctx) {
        fail = { code::context_full, "the prompt has " + std::to_string(tokens.size()) +
                                         " tokens but the context holds " + std::to_string(n_ctx) +
                                         ": use a larger contextSize or a shorter prompt" };
        return -1;
    }

    // Longest common prefix with what is cached; always decode at least one token so
    // that logits for the last position exist.
    size_t n_keep = 0;
    while (n_keep < cached.size() && n_keep < tokens.size() && cached[n_keep] == tokens[n_keep]) {
        ++n_keep;
    }
    if (n_keep == tokens.size()) {
        --n_keep;
    }
    llama_memory_t mem = llama_get_memory(lctx);
    // A sliding-window cache forgets cells outside the window: rolling back to n_keep
    // is only sound if the cells the window needs at n_keep are still there.
    const int32_t n_swa = llama_model_n_swa(model.get());
    if (n_keep > 0 && n_swa > 0 &&
        llama_memory_seq_pos_min(mem, 0) > std::max<int64_t>(0, static_cast<int64_t>(n_keep) - n_swa)) {
        n_keep = 0;
    }
    if (n_keep == 0 || !llama_memory_seq_rm(mem, 0, static_cast<llama_pos>(n_keep), -1)) {
        llama_memory_clear(mem, true);
        n_keep = 0;
    }
    cached.resize(n_keep);

    const size_t n_batch = llama_n_batch(lctx);
    for (size_t i = n_keep; i < tokens.size(); i += n_batch) {
        if (abort.load()) {
            clear_memory();
            fail = { code::aborted, "aborted" };
            return -1;
        }
        const size_t n     = std::min(n_batch, tokens.size() - i);
        llama_batch  batch = llama_batch_get_one(const_cast<llama_token *>(tokens.data() + i), static_cast<int32_t>(n));
        const int32_t rc   = decode(batch);
        if (rc != 0) {
            // Partially processed ubatches may remain after an abort or a fatal error:
            // start from a clean cache next time rather than trust a half state.
            clear_memory();
            fail = decode_failure(rc, log_capture_take());
            return -1;
        }
        cached.insert(cached.end(), tokens.begin() + static_cast<std::ptrdiff_t>(i),
                      tokens.begin() + static_cast<std::ptrdiff_t>(i + n));
        if (after_batch) {
            after_batch();
        }
    }
    return static_cast<int64_t>(n_keep);
}

bool context_state::decode_one(llama_token token, failure & fail) {
    llama_batch   batch = llama_batch_get_one(&token, 1);
    const int32_t rc    = decode(batch);
    if (rc != 0) {
        clear_memory();
        fail = decode_failure(rc, log_capture_take());
        return false;
    }
    cached.push_back(token);
    return true;
}

}  // namespace llama_kv
