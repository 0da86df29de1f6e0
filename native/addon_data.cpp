#include "addon_data.h"

#include "context_state.h"

#include <algorithm>

namespace llama_kv {

void addon_data::track(const std::shared_ptr<context_state> & state) {
    std::lock_guard<std::mutex> lock(live_mutex);
    live_contexts.erase(std::remove_if(live_contexts.begin(), live_contexts.end(),
                                       [](const std::weak_ptr<context_state> & w) { return w.expired(); }),
                        live_contexts.end());
    live_contexts.push_back(state);
}

addon_data::~addon_data() {
    // The environment is going away (process exit, worker termination): stop work
    // in flight so that workers finish promptly and release their contexts.
    {
        std::lock_guard<std::mutex> lock(live_mutex);
        for (const auto & weak : live_contexts) {
            if (auto state = weak.lock()) {
                state->abort.store(true);
                state->engine->wake();
            }
        }
    }
    if (sink) {
        logger_remove(sink);
    }
}

}  // namespace llama_kv
