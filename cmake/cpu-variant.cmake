# The ggml CPU variant a native x86 build compiles: the one the prebuilt package's loader
# would pick on this machine.
#
# ggml's x86 variants (ggml/src/CMakeLists.txt, the ggml_add_cpu_backend_variant calls;
# re-check on every pin bump) and their instruction sets, as GGML_<ISA> option names.
set(LLAMA_KV_X86_VARIANTS x64 sse42 sandybridge ivybridge piledriver haswell skylakex cannonlake
    cascadelake icelake cooperlake zen4 alderlake sapphirerapids)
set(LLAMA_KV_X86_x64)
set(LLAMA_KV_X86_sse42          SSE42)
set(LLAMA_KV_X86_sandybridge    SSE42 AVX)
set(LLAMA_KV_X86_ivybridge      SSE42 AVX F16C)
set(LLAMA_KV_X86_piledriver     SSE42 AVX F16C FMA)
set(LLAMA_KV_X86_haswell        SSE42 AVX F16C FMA AVX2 BMI2)
set(LLAMA_KV_X86_skylakex       SSE42 AVX F16C FMA AVX2 BMI2 AVX512)
set(LLAMA_KV_X86_cannonlake     SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI)
set(LLAMA_KV_X86_cascadelake    SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VNNI)
set(LLAMA_KV_X86_icelake        SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI)
set(LLAMA_KV_X86_cooperlake     SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VNNI AVX512_BF16)
set(LLAMA_KV_X86_zen4           SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16)
set(LLAMA_KV_X86_alderlake      SSE42 AVX F16C FMA AVX2 BMI2 AVX_VNNI)
set(LLAMA_KV_X86_sapphirerapids SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16 AMX_TILE AMX_INT8)

# The score ggml's loader gives each instruction set (ggml-cpu/arch/x86/cpu-feats.cpp,
# ggml_backend_cpu_x86_score: 1 plus these bits; AMX_TILE scores nothing).
set(LLAMA_KV_X86_SCORE_FMA         1)
set(LLAMA_KV_X86_SCORE_F16C        2)
set(LLAMA_KV_X86_SCORE_SSE42       4)
set(LLAMA_KV_X86_SCORE_BMI2        8)
set(LLAMA_KV_X86_SCORE_AVX         16)
set(LLAMA_KV_X86_SCORE_AVX2        32)
set(LLAMA_KV_X86_SCORE_AVX_VNNI    64)
set(LLAMA_KV_X86_SCORE_AVX512      128)
set(LLAMA_KV_X86_SCORE_AVX512_VBMI 256)
set(LLAMA_KV_X86_SCORE_AVX512_BF16 512)
set(LLAMA_KV_X86_SCORE_AVX512_VNNI 1024)
set(LLAMA_KV_X86_SCORE_AMX_INT8    2048)
set(LLAMA_KV_X86_SCORE_AMX_TILE    0)

# The compiler's predefined macros under -march=native that say the build machine has an
# instruction set (the compiler also checks that the OS saves the AVX/AVX-512/AMX state).
# AVX512 is ggml's AVX-512 base: F, CD, VL, DQ and BW, as its load-time check requires.
set(LLAMA_KV_X86_MACROS_SSE42       __SSE4_2__)
set(LLAMA_KV_X86_MACROS_AVX         __AVX__)
set(LLAMA_KV_X86_MACROS_F16C        __F16C__)
set(LLAMA_KV_X86_MACROS_FMA         __FMA__)
set(LLAMA_KV_X86_MACROS_AVX2        __AVX2__)
set(LLAMA_KV_X86_MACROS_BMI2        __BMI2__)
set(LLAMA_KV_X86_MACROS_AVX_VNNI    __AVXVNNI__)
set(LLAMA_KV_X86_MACROS_AVX512      __AVX512F__ __AVX512CD__ __AVX512VL__ __AVX512DQ__ __AVX512BW__)
set(LLAMA_KV_X86_MACROS_AVX512_VBMI __AVX512VBMI__)
set(LLAMA_KV_X86_MACROS_AVX512_VNNI __AVX512VNNI__)
set(LLAMA_KV_X86_MACROS_AVX512_BF16 __AVX512BF16__)
set(LLAMA_KV_X86_MACROS_AMX_TILE    __AMX_TILE__)
set(LLAMA_KV_X86_MACROS_AMX_INT8    __AMX_INT8__)

# Sets out_var to the instruction sets (GGML_<ISA> names) the C compiler's -march=native
# enables on this machine, or to "FAILED" when the compiler cannot tell.
function(llama_kv_host_x86_features out_var)
    set(probe "${CMAKE_BINARY_DIR}/llama_kv_march_native_probe.c")
    file(WRITE "${probe}" "")
    execute_process(
        COMMAND ${CMAKE_C_COMPILER} -march=native -dM -E -x c "${probe}"
        OUTPUT_VARIABLE macros
        ERROR_VARIABLE  errors
        RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0 OR NOT macros MATCHES "#define __x86_64__ |#define __i386__ ")
        message(WARNING "llama-kv: `${CMAKE_C_COMPILER} -march=native -dM -E` failed (${rc}): ${errors}")
        set(${out_var} FAILED PARENT_SCOPE)
        return()
    endif()
    set(features)
    foreach(isa SSE42 AVX F16C FMA AVX2 BMI2 AVX_VNNI AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16 AMX_TILE AMX_INT8)
        set(has ON)
        foreach(m IN LISTS LLAMA_KV_X86_MACROS_${isa})
            if(NOT macros MATCHES "#define ${m} ")
                set(has OFF)
            endif()
        endforeach()
        if(has)
            list(APPEND features ${isa})
        endif()
    endforeach()
    set(${out_var} ${features} PARENT_SCOPE)
endfunction()

# Sets out_var to the variant with the highest loader score whose instruction sets are all
# in the list `features`: the one ggml_backend_load_best() would load from the prebuild.
function(llama_kv_best_x86_variant out_var features)
    set(best x64)
    set(best_score 0)
    foreach(v IN LISTS LLAMA_KV_X86_VARIANTS)
        set(score 1)
        foreach(isa IN LISTS LLAMA_KV_X86_${v})
            if(NOT isa IN_LIST features)
                set(score -1)
                break()
            endif()
            math(EXPR score "${score} + ${LLAMA_KV_X86_SCORE_${isa}}")
        endforeach()
        if(score GREATER best_score)
            set(best ${v})
            set(best_score ${score})
        endif()
    endforeach()
    set(${out_var} ${best} PARENT_SCOPE)
endfunction()
