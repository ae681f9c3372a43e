// Which SIMD code this build contains. SHRINK_X86 is 1 on x86 (GCC/Clang: x86-64 or i386; MSVC: x64), where the
// AVX2/FMA/F16C kernels are compiled (with __attribute__((target(...))), chosen at run time by has_avx2_fma() /
// simd_enabled()); elsewhere (arm64, …) it is 0 and only the portable kernels exist. Every use of <immintrin.h>,
// of the __m256 types and of target("avx2…") attributes must sit under `#if SHRINK_X86`.
//
// -DSHRINK_NO_X86 builds the portable-only variant on an x86 host too: that is how the non-x86 build is checked
// without a cross compiler (g++ -fsyntax-only -DSHRINK_NO_X86 native/*.cc, see scripts/build-native.cjs --check-portable).
//
// Also here, header-only so every kernel file can use them without link-time coupling:
//  - run-time CPU feature checks (cpuid + xgetbv: the CPU has the instructions AND the OS saves their registers),
//    capped by SHRINK_ISA (below): has_avx512f(), has_avx512_vnni(), has_avx512_bf16(), has_avx_vnni(), has_amx();
//    has_avx2_fma() (common.h) obeys the same cap. Kernels pick their path with these, never with raw cpuid.
//  - the denormal mode (flush-to-zero + denormals-are-zero, on by default) and DenormalScope, which sets it around a
//    kernel on the calling thread. The pool's workers set it themselves (pool.cc).
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstring>

#if (defined(__x86_64__) || defined(_M_X64) || defined(__i386__)) && !defined(SHRINK_NO_X86)
#define SHRINK_X86 1
#include <immintrin.h>
#if defined(__GNUC__) || defined(__clang__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#else
#define SHRINK_X86 0
#endif

namespace shrink {

// ---- Instruction-set levels -------------------------------------------------------------------------------------
// SHRINK_ISA=avx512|avx2|portable caps the kernels at that level (read once, when the addon loads; unset, '' or
// 'native' = everything the CPU has). It can only lower the level: asking for avx512 on an AVX2 CPU runs AVX2.
//   portable: no SIMD intrinsics at all (the code every non-x86 build runs);
//   avx2:     AVX2 + FMA + F16C only (no AVX-512, no AVX-VNNI, no AMX), e.g. the vpmaddubsw int8 kernel;
//   avx512:   adds AVX-512 F/BW/VL and its extensions (VNNI, BF16) and AVX-VNNI; not AMX;
//   native:   adds AMX where the CPU and OS have it.
// An unknown value makes the addon's load fail with a clear error (addon.cc); the helpers treat it as 'native'.
enum class Isa : int { portable = 0, avx2 = 1, avx512 = 2, native = 3 };

inline const char* isa_name(Isa i) {
  switch (i) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    default: return "native";
  }
}

struct IsaRequest {
  Isa cap = Isa::native;
  bool valid = true;
  const char* raw = nullptr;  // the SHRINK_ISA value, or nullptr when unset
};
inline const IsaRequest& isa_request() {
  static const IsaRequest r = [] {
    IsaRequest q;
    const char* e = std::getenv("SHRINK_ISA");
    q.raw = e;
    if (e == nullptr || *e == 0 || std::strcmp(e, "native") == 0) q.cap = Isa::native;
    else if (std::strcmp(e, "avx512") == 0) q.cap = Isa::avx512;
    else if (std::strcmp(e, "avx2") == 0) q.cap = Isa::avx2;
    else if (std::strcmp(e, "portable") == 0) q.cap = Isa::portable;
    else q.valid = false;
    return q;
  }();
  return r;
}

// What the CPU and the OS support (no cap applied). All false off x86.
struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA (+ OS saves YMM)
  bool f16c = false;
  bool avx512 = false;    // AVX-512 F + BW + VL + DQ (+ OS saves opmask/ZMM): Skylake-X and later, Zen 4 and later
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx_vnni = false;  // VEX-encoded 256-bit vpdpbusd (Alder Lake and later, Zen 5)
  bool amx = false;       // AMX-TILE + AMX-INT8 (+ OS saves tile state, and on Linux the process was granted it)
};

#if SHRINK_X86 && (defined(__GNUC__) || defined(__clang__))
inline unsigned long long shrink_xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

inline const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if SHRINK_X86 && (defined(__GNUC__) || defined(__clang__))
    unsigned a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
    const bool fma = cx & (1u << 12), osxsave = cx & (1u << 27), avx = cx & (1u << 28), f16c = cx & (1u << 29);
    if (!osxsave || !avx) return c;
    const unsigned long long xcr0 = shrink_xgetbv0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;                 // SSE + AVX state
    const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;     // + opmask, ZMM_Hi256, Hi16_ZMM
    const bool os_amx = (xcr0 & 0x60000) == 0x60000;         // XTILECFG + XTILEDATA
    unsigned max_leaf = __get_cpuid_max(0, nullptr);
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
    if (max_leaf >= 7) {
      __cpuid_count(7, 0, a, b7, c7, d7);
      unsigned t1, t2, t3;
      __cpuid_count(7, 1, a71, t1, t2, t3);
    }
    c.avx2_fma = os_ymm && fma && (b7 & (1u << 5));
    c.f16c = os_ymm && f16c;
    c.avx512 = os_zmm && (b7 & (1u << 16)) && (b7 & (1u << 17)) && (b7 & (1u << 30)) && (b7 & (1u << 31));  // F DQ BW VL
    c.avx512_vnni = c.avx512 && (c7 & (1u << 11));
    c.avx512_bf16 = c.avx512 && (a71 & (1u << 5));
    c.avx_vnni = c.avx2_fma && (a71 & (1u << 4));
    c.amx = os_amx && (d7 & (1u << 24)) && (d7 & (1u << 25));  // AMX-TILE, AMX-INT8
#if defined(__linux__)
    // Linux hands out the 8 KiB tile state only on request (ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18).
    if (c.amx) c.amx = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#endif
#endif
    return c;
  }();
  return f;
}

// The highest level the CPU has.
inline Isa cpu_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512) return f.amx ? Isa::native : Isa::avx512;
  return f.avx2_fma ? Isa::avx2 : Isa::portable;
}
// The level the kernels use: the CPU's, lowered by SHRINK_ISA. Compare with >=: isa() >= Isa::avx512.
inline Isa isa() {
  static const Isa v = [] {
    Isa c = cpu_isa(), cap = isa_request().cap;
    return static_cast<int>(cap) < static_cast<int>(c) ? cap : c;
  }();
  return v;
}
// The level shrink reports: 'native' on an AMX machine without a cap reads as avx512 (AMX is reported by has_amx()).
inline Isa isa_reported() { return isa() == Isa::native ? Isa::avx512 : isa(); }
inline bool isa_at_least(Isa l) { return static_cast<int>(isa()) >= static_cast<int>(l); }

// The dispatch helpers (CPU + OS support, within SHRINK_ISA). Keep these names: the kernels call them.
// AVX-512 F + BW + VL (+ DQ): every AVX-512 kernel here may use all of them.
inline bool has_avx512f() { return isa_at_least(Isa::avx512) && cpu_features().avx512; }
// AVX512-VNNI (EVEX vpdpbusd), with AVX-512 F/BW/VL.
inline bool has_avx512_vnni() { return isa_at_least(Isa::avx512) && cpu_features().avx512_vnni; }
inline bool has_avx512_bf16() { return isa_at_least(Isa::avx512) && cpu_features().avx512_bf16; }
// AVX-VNNI (VEX 256-bit vpdpbusd) with AVX2; off under SHRINK_ISA=avx2, which means the plain AVX2 kernels.
inline bool has_avx_vnni() { return isa_request().cap > Isa::avx2 && isa_at_least(Isa::avx2) && cpu_features().avx_vnni; }
// AMX-TILE + AMX-INT8, usable by this process; off under any SHRINK_ISA cap but 'native'.
inline bool has_amx() { return isa_at_least(Isa::native) && cpu_features().amx; }
// Back-compat name (the first int8 VNNI patch): true when SHRINK_ISA keeps the kernels at AVX2 or below.
inline bool isa_capped_at_avx2() { return isa_request().cap <= Isa::avx2; }

// ---- Denormals ---------------------------------------------------------------------------------------------------
// Arithmetic on subnormal floats (|x| < 1.18e-38) takes a microcode assist on many x86 CPUs: a GEMM whose inputs were
// scaled by 1e-39 took 9,973 ms against 67 ms at 1e-5 (e.g. a cross-entropy gradient over 30k classes holds many).
// Like other inference engines, the kernels therefore run with MXCSR.FTZ (subnormal results become ±0) and
// MXCSR.DAZ (subnormal inputs read as ±0). SHRINK_DENORMALS=keep (read once at load) keeps IEEE gradual underflow.
// The mode is set on the pool's workers (pool.cc) and, by DenormalScope, around each kernel on the calling thread,
// which is restored afterwards: JavaScript's own arithmetic on that thread keeps IEEE semantics.
struct DenormalRequest {
  bool flush = true;
  bool valid = true;
  const char* raw = nullptr;
};
inline const DenormalRequest& denormal_request() {
  static const DenormalRequest r = [] {
    DenormalRequest q;
    const char* e = std::getenv("SHRINK_DENORMALS");
    q.raw = e;
    if (e == nullptr || *e == 0 || std::strcmp(e, "flush") == 0) q.flush = true;
    else if (std::strcmp(e, "keep") == 0) q.flush = false;
    else q.valid = false;
    return q;
  }();
  return r;
}
// Current mode (tests may switch it at run time with _setDenormals).
inline std::atomic<bool>& denormal_flush_flag() {
  static std::atomic<bool> f{denormal_request().flush};
  return f;
}
inline bool flush_denormals() { return denormal_flush_flag().load(std::memory_order_relaxed); }

#if SHRINK_X86
constexpr unsigned kMxcsrFtzDaz = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
#endif
// True when this thread's FPU flushes subnormals now.
inline bool thread_flushes_denormals() {
#if SHRINK_X86
  return (_mm_getcsr() & kMxcsrFtzDaz) == kMxcsrFtzDaz;
#else
  return false;
#endif
}
// Puts this thread in the current mode (pool workers, before each job). A few ns when nothing changes.
inline void apply_denormal_mode() {
#if SHRINK_X86
  const unsigned cur = _mm_getcsr();
  const unsigned want = flush_denormals() ? (cur | kMxcsrFtzDaz) : (cur & ~kMxcsrFtzDaz);
  if (want != cur) _mm_setcsr(want);
#endif
}
// Sets the current mode on the calling thread for its lifetime, then restores what was there. Nests.
class DenormalScope {
 public:
#if SHRINK_X86
  DenormalScope() : saved_(_mm_getcsr()) {
    const unsigned want = flush_denormals() ? (saved_ | kMxcsrFtzDaz) : (saved_ & ~kMxcsrFtzDaz);
    changed_ = want != saved_;
    if (changed_) _mm_setcsr(want);
  }
  ~DenormalScope() {
    if (changed_) _mm_setcsr(saved_);
  }

 private:
  unsigned saved_;
  bool changed_;
#else
  DenormalScope() {}
#endif
  DenormalScope(const DenormalScope&) = delete;
  DenormalScope& operator=(const DenormalScope&) = delete;
};

}  // namespace shrink
