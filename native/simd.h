// Which SIMD code this build contains. SHRINK_X86 is 1 on x86 (GCC/Clang: x86-64 or i386; MSVC: x64), where the
// AVX2/FMA/F16C kernels are compiled (with __attribute__((target(...))), chosen at run time by has_avx2_fma() /
// simd_enabled()); elsewhere (arm64, …) it is 0 and only the portable kernels exist. Every use of <immintrin.h>,
// of the __m256 types and of target("avx2…") attributes must sit under `#if SHRINK_X86`.
//
// -DSHRINK_NO_X86 builds the portable-only variant on an x86 host too: that is how the non-x86 build is checked
// without a cross compiler (g++ -fsyntax-only -DSHRINK_NO_X86 native/*.cc, see scripts/build-native.cjs --check-portable).
#pragma once

#if (defined(__x86_64__) || defined(_M_X64) || defined(__i386__)) && !defined(SHRINK_NO_X86)
#define SHRINK_X86 1
#include <immintrin.h>
#else
#define SHRINK_X86 0
#endif
