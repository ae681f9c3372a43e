// float32 ↔ float16 / bfloat16 bulk conversion, round to nearest even. F16C instructions where the CPU has them
// (vcvtps2ph with imm 0 = round to nearest even), else a bit-exact portable path that matches src/tensor/dtype.ts.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "common.h"
#include "pool.h"

namespace shrink {
namespace {

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
  uint32_t b = bits(x);
  uint32_t sign = (b >> 16) & 0x8000;
  int exp = (b >> 23) & 0xff;
  uint32_t mant = b & 0x7fffff;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));
  int e = exp - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    int shift = 14 - e;
    uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1), m = mant >> shift;
    if (rest > half || (rest == half && (m & 1))) m++;
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return static_cast<uint16_t>(h);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) {
    if (m == 0) return from_bits(sign);
    float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // 2^-24
    return sign ? -v : v;
  }
  if (e == 0x1f) return from_bits(sign | 0x7f800000 | (m << 13));
  return from_bits(sign | ((e + 112) << 23) | (m << 13));
}

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

bool has_f16c() {
  static const bool v = [] {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2");
#else
    return false;
#endif
  }();
  return v;
}

Napi::Value F32ToF16(const Napi::CallbackInfo& info) {
  auto s = info[0].As<Napi::Float32Array>();
  uint16_t* d = info[1].As<Napi::Uint16Array>().Data();
  const float* sp = s.Data();
  int64_t n = static_cast<int64_t>(s.ElementLength());
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    if (has_f16c()) f32_to_f16_f16c(sp + b, d + b, e - b);
    else for (int64_t i = b; i < e; i++) d[i] = f32_to_f16(sp[i]);
  });
  return info.Env().Undefined();
}
Napi::Value F16ToF32(const Napi::CallbackInfo& info) {
  auto s = info[0].As<Napi::Uint16Array>();
  float* d = info[1].As<Napi::Float32Array>().Data();
  const uint16_t* sp = s.Data();
  int64_t n = static_cast<int64_t>(s.ElementLength());
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    if (has_f16c()) f16_to_f32_f16c(sp + b, d + b, e - b);
    else for (int64_t i = b; i < e; i++) d[i] = f16_to_f32(sp[i]);
  });
  return info.Env().Undefined();
}
Napi::Value F32ToBf16(const Napi::CallbackInfo& info) {
  auto s = info[0].As<Napi::Float32Array>();
  uint16_t* d = info[1].As<Napi::Uint16Array>().Data();
  const float* sp = s.Data();
  int64_t n = static_cast<int64_t>(s.ElementLength());
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      uint32_t u = bits(sp[i]);
      if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) d[i] = static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
      else d[i] = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
  });
  return info.Env().Undefined();
}
Napi::Value Bf16ToF32(const Napi::CallbackInfo& info) {
  auto s = info[0].As<Napi::Uint16Array>();
  float* d = info[1].As<Napi::Float32Array>().Data();
  const uint16_t* sp = s.Data();
  int64_t n = static_cast<int64_t>(s.ElementLength());
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) d[i] = from_bits(static_cast<uint32_t>(sp[i]) << 16);
  });
  return info.Env().Undefined();
}

}  // namespace

void init_convert(Napi::Env env, Napi::Object exports) {
  exports.Set("f32ToF16", Napi::Function::New(env, F32ToF16));
  exports.Set("f16ToF32", Napi::Function::New(env, F16ToF32));
  exports.Set("f32ToBf16", Napi::Function::New(env, F32ToBf16));
  exports.Set("bf16ToF32", Napi::Function::New(env, Bf16ToF32));
}

}  // namespace shrink
