#include "embd_normalize.h"

#include "common.h"

namespace llama_kv {

void embd_normalize(const float * in, float * out, int n, int embd_norm) {
    common_embd_normalize(in, out, n, embd_norm);
}

}  // namespace llama_kv
