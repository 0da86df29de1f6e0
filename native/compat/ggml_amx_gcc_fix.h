// Force-included into ggml's CPU backend when building with GCC (see CMakeLists.txt).
//
// GCC 12's amxtileintrin.h declares the operand of `ldtilecfg` as a single
// pointer-sized memory word (`"m" (*(const void **) cfg)`). The optimizer therefore
// believes only the first 8 bytes of the 64-byte tile configuration are read, drops
// the stores that fill in the rows/colsb fields as dead, and `ldtilecfg` loads stack
// garbage: a #GP (SIGSEGV at ldtilecfg in ggml_backend_amx_mul_mat) on the first
// q8_0/q4_0 matmul. Its `tileloadd` macros have no memory operand at all, so stores to
// a tile's source buffer may also be moved past the load. Both are redefined here
// with operands that tell the compiler what the instructions really touch.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__AMX_TILE__)
#include <immintrin.h>

#define _tile_loadconfig(cfg) __asm__ volatile("ldtilecfg\t%X0" ::"m"(*(const unsigned char(*)[64])(cfg)))
#define _tile_storeconfig(cfg) __asm__ volatile("sttilecfg\t%X0" : "=m"(*(unsigned char(*)[64])(cfg)))

#undef _tile_loadd_internal
#define _tile_loadd_internal(dst, base, stride)                                           \
    __asm__ volatile("{tileloadd\t(%0,%1,1), %%tmm" #dst "|tileloadd\t%%tmm" #dst ", [%0+%1*1]}" \
                     ::"r"((const void *) (base)), "r"((long) (stride))                   \
                     : "memory")

#undef _tile_stream_loadd_internal
#define _tile_stream_loadd_internal(dst, base, stride)                                        \
    __asm__ volatile("{tileloaddt1\t(%0,%1,1), %%tmm" #dst "|tileloaddt1\t%%tmm" #dst ", [%0+%1*1]}" \
                     ::"r"((const void *) (base)), "r"((long) (stride))                       \
                     : "memory")
#endif
