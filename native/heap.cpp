#include "heap.h"

#if defined(__GLIBC__)
#    include <malloc.h>
#endif

namespace llama_kv {

// Returns the allocator's free memory to the operating system (glibc's malloc_trim, over
// every arena): what a leak measurement reads RSS after. False where there is no such call.
Napi::Value trim_heap(const Napi::CallbackInfo & info) {
#if defined(__GLIBC__)
    malloc_trim(0);
    return Napi::Boolean::New(info.Env(), true);
#else
    return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace llama_kv
