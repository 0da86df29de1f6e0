#include "sampler.h"

namespace llama_kv {

sequence_sampler::sequence_sampler(const sampler_params & r, const llama_vocab * vocab) :
    n_vocab_(llama_vocab_n_tokens(vocab)) {
    const bool penalties = r.repeat_penalty != 1.0f && r.repeat_last_n != 0;
    if (r.temperature <= 0.0f && !penalties) {
        return;  // greedy: argmax of the logits row, exactly what llama_sampler_init_greedy picks
    }
    chain_.reset(llama_sampler_chain_init(llama_sampler_chain_default_params()));
    if (penalties) {
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_penalties(n_vocab_, r.repeat_last_n, r.repeat_penalty, 0.0f, 0.0f));
    }
    if (r.temperature <= 0.0f) {
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_greedy());
        return;
    }
    if (r.top_k > 0) {
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_top_k(r.top_k));
    }
    if (r.top_p < 1.0f) {
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_top_p(r.top_p, 1));
    }
    if (r.min_p > 0.0f) {
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_min_p(r.min_p, 1));
    }
    llama_sampler_chain_add(chain_.get(), llama_sampler_init_temp(r.temperature));
    llama_sampler_chain_add(chain_.get(), llama_sampler_init_dist(r.seed));
}

void sequence_sampler::accept_prompt(const llama_token * tokens, size_t n) {
    if (!chain_) {
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        llama_sampler_accept(chain_.get(), tokens[i]);
    }
}

llama_token sequence_sampler::sample(llama_context * ctx, int32_t idx) {
    if (chain_) {
        return llama_sampler_sample(chain_.get(), ctx, idx);
    }
    const float * logits = llama_get_logits_ith(ctx, idx);
    if (logits == nullptr) {
        return LLAMA_TOKEN_NULL;
    }
    // The first maximum, as the greedy sampler takes it.
    int32_t best = 0;
    for (int32_t k = 1; k < n_vocab_; ++k) {
        if (logits[k] > logits[best]) {
            best = k;
        }
    }
    return best;
}

std::string token_piece(const llama_vocab * vocab, llama_token token) {
    char    buf[256];
    int32_t n = llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, false);
    if (n >= 0) {
        return std::string(buf, static_cast<size_t>(n));
    }
    std::string big(static_cast<size_t>(-n), '\0');
    n = llama_token_to_piece(vocab, token, big.data(), static_cast<int32_t>(big.size()), 0, false);
    return n >= 0 ? big.substr(0, static_cast<size_t>(n)) : std::string();
}

}  // namespace llama_kv
