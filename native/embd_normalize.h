// llama.cpp's common_embd_normalize behind a header that does not include common.h (whose
// llama-cpp.h clashes with handles.h): the embeddings of embed() are normalized exactly as
// llama.cpp's embedding example and server normalize them.
#pragma once

namespace llama_kv {

// embd_norm: -1 none, 0 max absolute (int16 range), 1 taxicab, 2 euclidean, p > 2 p-norm.
void embd_normalize(const float * in, float * out, int n, int embd_norm);

}  // namespace llama_kv
