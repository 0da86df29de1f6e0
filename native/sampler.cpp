#include "sampler.h"

#include "errors.h"

#include <cmath>
#include <stdexcept>

namespace llama_kv {

sequence_sampler::sequence_sampler(const sampler_params & r, const grammar_params & g, const llama_vocab * vocab) :
    n_vocab_(llama_vocab_n_tokens(vocab)) {
    if (!g.grammar.empty()) {
        // Checked on the JS thread before the request was queued (checkGrammar); this is
        // the second line.
        std::vector<const char *> patterns;
        for (const auto & p : g.trigger_patterns) {
            patterns.push_back(p.c_str());
        }
        log_capture_reset();
        try {
            grammar_.reset(g.lazy ? llama_sampler_init_grammar_lazy_patterns(vocab, g.grammar.c_str(), "root", patterns.data(),
                                                                            patterns.size(), g.trigger_tokens.data(),
                                                                            g.trigger_tokens.size())
                                  : llama_sampler_init_grammar(vocab, g.grammar.c_str(), "root"));
            if (!grammar_) {
                error_ = with_log("the grammar is invalid", log_capture_take());
            }
            for (llama_token t : g.prefill) {
                // An end-of-generation token the grammar does not expect would abort
                // (llama_grammar_accept_impl): the prefill may not hold one.
                if (grammar_ && llama_vocab_is_eog(vocab, t)) {
                    grammar_.reset();
                    error_ = "the grammar's prefill (the template's generation prompt) holds an end-of-generation token";
                    break;
                }
                if (grammar_) {
                    llama_sampler_accept(grammar_.get(), t);
                }
            }
        } catch (const std::exception & e) {
            grammar_.reset();
            error_ = std::string("the grammar is invalid: ") + e.what();
        }
    }
    const bool penalties = r.repeat_penalty != 1.0f && r.repeat_last_n != 0;
    if (r.temperature <= 0.0f && !penalties && r.logit_bias.empty()) {
        return;  // greedy: argmax of the logits row, exactly what llama_sampler_init_greedy picks
    }
    chain_.reset(llama_sampler_chain_init(llama_sampler_chain_default_params()));
    if (!r.logit_bias.empty()) {
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_logit_bias(n_vocab_, static_cast<int32_t>(r.logit_bias.size()), r.logit_bias.data()));
    }
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

llama_token sequence_sampler::pick(llama_token_data_array & cur) {
    if (chain_) {
        llama_sampler_apply(chain_.get(), &cur);
        return cur.selected >= 0 && cur.data[cur.selected].logit != -INFINITY ? cur.data[cur.selected].id : LLAMA_TOKEN_NULL;
    }
    // Greedy: the first maximum.
    size_t best = 0;
    for (size_t k = 1; k < cur.size; ++k) {
        if (cur.data[k].logit > cur.data[best].logit) {
            best = k;
        }
    }
    return cur.size > 0 && cur.data[best].logit != -INFINITY ? cur.data[best].id : LLAMA_TOKEN_NULL;
}

// llama.cpp's grammar fast path (common_sampler_sample): sample as without a grammar,
// check only that token against the grammar, and apply the grammar to the whole
// vocabulary only when it rejects the token.
llama_token sequence_sampler::sample_constrained(llama_context * ctx, int32_t idx) {
    const float * logits = llama_get_logits_ith(ctx, idx);
    if (logits == nullptr) {
        return LLAMA_TOKEN_NULL;
    }
    auto fill = [&] {
        cur_.resize(static_cast<size_t>(n_vocab_));
        for (int32_t k = 0; k < n_vocab_; ++k) {
            cur_[static_cast<size_t>(k)] = llama_token_data{ k, logits[k], 0.0f };
        }
        return llama_token_data_array{ cur_.data(), cur_.size(), -1, false };
    };
    try {
        llama_token_data_array cur = fill();
        llama_token            id  = pick(cur);
        if (id != LLAMA_TOKEN_NULL) {
            llama_token_data       single{ id, 1.0f, 0.0f };
            llama_token_data_array one{ &single, 1, -1, false };
            llama_sampler_apply(grammar_.get(), &one);
            if (single.logit == -INFINITY) {
                id = LLAMA_TOKEN_NULL;
            }
        }
        if (id == LLAMA_TOKEN_NULL) {
            cur = fill();
            llama_sampler_apply(grammar_.get(), &cur);
            id = pick(cur);
            if (id == LLAMA_TOKEN_NULL) {
                error_ = "the grammar allows no token of the vocabulary here";
                return LLAMA_TOKEN_NULL;
            }
        }
        // Accepting an end-of-generation token the grammar does not allow would abort
        // (llama_grammar_accept_impl): the checks above rule that out.
        llama_sampler_accept(grammar_.get(), id);
        if (chain_) {
            llama_sampler_accept(chain_.get(), id);
        }
        return id;
    } catch (const std::exception & e) {
        error_ = std::string("the grammar failed: ") + e.what();
        return LLAMA_TOKEN_NULL;
    }
}

llama_token sequence_sampler::sample(llama_context * ctx, int32_t idx) {
    if (!error_.empty()) {
        return LLAMA_TOKEN_NULL;  // the grammar could not be set up: never sample without it
    }
    if (grammar_) {
        return sample_constrained(ctx, idx);
    }
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

std::string token_piece(const llama_vocab * vocab, llama_token token, bool special) {
    char    buf[256];
    int32_t n = llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, special);
    if (n >= 0) {
        return std::string(buf, static_cast<size_t>(n));
    }
    std::string big(static_cast<size_t>(-n), '\0');
    n = llama_token_to_piece(vocab, token, big.data(), static_cast<int32_t>(big.size()), 0, special);
    return n >= 0 ? big.substr(0, static_cast<size_t>(n)) : std::string();
}

}  // namespace llama_kv
