// float32 ↔ float16 / bfloat16 bulk conversion, round to nearest even, bit-exact with src/tensor/dtype.ts.
//   f16: F16C (vcvtps2ph with imm 0 = round to nearest even; vcvtph2ps) where the CPU has it, else a portable
//        bit-level path (subnormals rounded exactly, overflow → ±inf, NaN kept NaN with its payload's top bits and
//        the quiet bit set, as vcvtps2ph does).
//   bf16: RNE on the bit pattern ((u + 0x7fff + lsb) >> 16), NaN → quiet NaN; AVX2 8 at a time.
// The portable paths also run when setSimd(false) is in effect (see elementwise.cc), so tests compare both.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "args.h"
#include "common.h"
#include "pool.h"
#include "simd.h"

namespace shrink {
namespace {

constexpr int64_t kGrain = 1 << 17;

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float x) {
  const uint32_t b = bits(x);
  const uint32_t sign = (b >> 16) & 0x8000;
  const int exp = (b >> 23) & 0xff;
  uint32_t mant = b & 0x7fffff;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));
  const int e = exp - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    const int shift = 14 - e;
    const uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1);
    uint32_t m = mant >> shift;
    if (rest > half || (rest == half && (m & 1))) m++;
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;  // a carry into the exponent is right (rounds up to inf)
  return static_cast<uint16_t>(h);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) {
    if (m == 0) return from_bits(sign);
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // 2^-24, exact
    return sign ? -v : v;
  }
  if (e == 0x1f) return from_bits(sign | 0x7f800000 | (m << 13) | (m ? 0x400000u : 0u));  // NaN comes out quiet
  return from_bits(sign | ((e + 112) << 23) | (m << 13));
}

inline uint16_t f32_to_bf16(float x) {
  const uint32_t u = bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#if SHRINK_X86
__attribute__((target("avx2,f16c"))) void f32_to_f16_f16c(const float* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++) d[i] = f32_to_f16(s[i]);
}
__attribute__((target("avx2,f16c"))) void f16_to_f32_f16c(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  for (; i < n; i++) d[i] = f16_to_f32(s[i]);
}
__attribute__((target("avx2"))) void f32_to_bf16_avx2(const float* s, uint16_t* d, int64_t n) {
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000), round = _mm256_set1_epi32(0x7fff),
                one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(0x40);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i r[2];
    for (int k = 0; k < 2; k++) {
      const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 8 * k));
      const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);  // signed compare is fine: both < 2^31
      const __m256i rne = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(round, _mm256_and_si256(_mm256_srli_epi32(u, 16), one))), 16);
      const __m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
      r[k] = _mm256_blendv_epi8(rne, qn, nan);
    }
    // packus works within 128-bit lanes: [a0 b0 a1 b1] → reorder the 64-bit quarters to [a0 a1 b0 b1]
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), packed);
  }
  for (; i < n; i++) d[i] = f32_to_bf16(s[i]);
}
__attribute__((target("avx2"))) void bf16_to_f32_avx2(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm256_slli_epi32(w, 16));
  }
  for (; i < n; i++) d[i] = from_bits(static_cast<uint32_t>(s[i]) << 16);
}
#endif  // SHRINK_X86

bool has_f16c() {
  static const bool v = [] {
#if SHRINK_X86 && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2");
#else
    return false;
#endif
  }();
  return v;
}
bool use_f16c() { return simd_enabled() && has_f16c(); }

// Shared glue: (src, dst) with dst at least as long as src.
template <class S, class D>
bool unwrap(Args& args, S*& s, D*& d, int64_t& n) {
  size_t sl, dl;
  if constexpr (std::is_same_v<S, const float>) s = args.f32(0, sl);
  else s = args.u16(0, sl);
  if constexpr (std::is_same_v<D, float>) d = args.f32(1, dl);
  else d = args.u16(1, dl);
  n = static_cast<int64_t>(sl);
  return !args.failed() && args.check(dl >= sl, "dst is shorter than src");
}

// f32ToF16(src: Float32Array, dst: Uint16Array)
napi_value F32ToF16(napi_env env, napi_callback_info info) {
  Args args(env, info, "f32ToF16");
  const float* s;
  uint16_t* d;
  int64_t n;
  if (!unwrap(args, s, d, n)) return args.fail();
  [[maybe_unused]] const bool hw = use_f16c();
  par_for(n, kGrain, [&](int64_t b, int64_t e) {
#if SHRINK_X86
    if (hw) f32_to_f16_f16c(s + b, d + b, e - b);
    else
#endif
      for (int64_t i = b; i < e; i++) d[i] = f32_to_f16(s[i]);
  });
  return nullptr;
}
// f16ToF32(src: Uint16Array, dst: Float32Array)
napi_value F16ToF32(napi_env env, napi_callback_info info) {
  Args args(env, info, "f16ToF32");
  const uint16_t* s;
  float* d;
  int64_t n;
  if (!unwrap(args, s, d, n)) return args.fail();
  [[maybe_unused]] const bool hw = use_f16c();
  par_for(n, kGrain, [&](int64_t b, int64_t e) {
#if SHRINK_X86
    if (hw) f16_to_f32_f16c(s + b, d + b, e - b);
    else
#endif
      for (int64_t i = b; i < e; i++) d[i] = f16_to_f32(s[i]);
  });
  return nullptr;
}
// f32ToBf16(src: Float32Array, dst: Uint16Array)
napi_value F32ToBf16(napi_env env, napi_callback_info info) {
  Args args(env, info, "f32ToBf16");
  const float* s;
  uint16_t* d;
  int64_t n;
  if (!unwrap(args, s, d, n)) return args.fail();
  [[maybe_unused]] const bool hw = simd_enabled();
  par_for(n, kGrain, [&](int64_t b, int64_t e) {
#if SHRINK_X86
    if (hw) f32_to_bf16_avx2(s + b, d + b, e - b);
    else
#endif
      for (int64_t i = b; i < e; i++) d[i] = f32_to_bf16(s[i]);
  });
  return nullptr;
}
// bf16ToF32(src: Uint16Array, dst: Float32Array)
napi_value Bf16ToF32(napi_env env, napi_callback_info info) {
  Args args(env, info, "bf16ToF32");
  const uint16_t* s;
  float* d;
  int64_t n;
  if (!unwrap(args, s, d, n)) return args.fail();
  [[maybe_unused]] const bool hw = simd_enabled();
  par_for(n, kGrain, [&](int64_t b, int64_t e) {
#if SHRINK_X86
    if (hw) bf16_to_f32_avx2(s + b, d + b, e - b);
    else
#endif
      for (int64_t i = b; i < e; i++) d[i] = from_bits(static_cast<uint32_t>(s[i]) << 16);
  });
  return nullptr;
}

}  // namespace

void init_convert(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "f32ToF16", F32ToF16);
  export_fn(env, exports, "f16ToF32", F16ToF32);
  export_fn(env, exports, "f32ToBf16", F32ToBf16);
  export_fn(env, exports, "bf16ToF32", Bf16ToF32);
}

}  // namespace shrink
