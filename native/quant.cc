// Integer kernels for quantized Linear layers (src/compress/quant/kernels.ts is the TypeScript reference):
//
// - quantizeRows / quantizeRowsU7: dynamic per-row activation quantization to codes 0..qmax with a zero point;
//   qmax is 127 (7 bits) or 255 (8 bits), chosen by the int8 kernel that will consume the codes (int8Kernel()):
//   AVX2 has no VNNI, and vpmaddubsw multiplies u8 × s8 and adds pairs into *saturating* int16, so two products of
//   a full 8-bit activation and an 8-bit weight can reach 2·255·128 = 65280 > 32767; with 7-bit activations a pair
//   is at most 2·127·128 = 32512, so every sum is exact (measured: docs/PERFORMANCE.md, int8 GEMM). VNNI's
//   vpdpbusd adds the four u8 × s8 products of a lane straight into int32 (no 16-bit intermediate), so with VNNI the
//   activations keep all 8 bits. quantizeRowsU7 is quantizeRows with qmax = 127.
// - packInt8Weight: an int8 weight [N, K] into 16-column panels, K in groups of 4 bytes (one int32 lane per
//   column), zero-padded to N' = 16·⌈N/16⌉ and K' = 4·⌈K/4⌉; plus each row's code sum for the zero-point term.
// - int8Gemm: acc[m, n] = Σ_k qa[m, k]·qw[n, k] in int32 (exact), then the fused epilogue
//   out = sa[m]·sw[n]·(acc − za[m]·rowsum[n]) + bias[n]. Kernels (int8Kernel() names the one in use; int8Kernels()
//   lists what this CPU has; setInt8Kernel(name) pins one, for tests and benchmarks):
//   · 'avx512-vnni': 8 rows × 32 columns (two 16-column panels), 16 zmm accumulators; per 4 k, one zmm load per
//     panel (a panel's 16 columns × 4 k are exactly 64 bytes), one vpbroadcastd per row and vpdpbusd per row and
//     panel. Epilogue in zmm doubles.
//   · 'avx-vnni' (VEX vpdpbusd, ymm; Alder Lake+/Zen 5) and 'avx512-vnni-ymm' (the same tile with EVEX ymm
//     vpdpbusd; never chosen automatically, it lets an AVX-512 machine test the AVX-VNNI tile's code): 6×16.
//   · 'avx2': 4×16 tile, per 4 k vpmaddubsw → vpmaddwd(·, 1) → vpaddd; exact only for activation codes ≤ 127.
//   · 'portable': scalar int32, exact for any codes.
//   int8Gemm's optional last argument is the largest activation code (default 127): above 127 the AVX2 kernel
//   is not exact, so such a call runs the portable kernel instead when AVX2 is the kernel in use.
// - dequantRows: rows of an int8 or packed 2–4-bit weight to float32, (q − zero)·scale; dequantGather: the rows
//   named by an id list (QuantEmbedding's lookup).
// - woGemm: the weight-only GEMM, x · dequant(W)ᵀ + bias, on the packed SGEMM with B panels dequantized as they
//   are packed (a KC×16 panel at a time; the float32 weight never exists whole); for 1–4 rows (decoding), a fused
//   GEMV that multiplies the codes as they are and applies scales and zero points once per group.
//
// Exactness: integer accumulation is exact; the quantizer and the epilogue use the TypeScript reference's
// formulas and precisions (float32 x·(1/s) rounded half to even; the epilogue in double), so results match it bit
// for bit.
//
// Every kernel has an AVX2 path (x86 only, see simd.h) and a portable one; simd_enabled() picks at run time, so
// setSimd(false) makes the tests run the portable ones on an AVX2 machine too. (woGemm's float GEMM and dot
// product follow gemm.cc's own switch, setGemmKernel.) Every argument is checked (types, and lengths without
// overflow): a bad call throws a TypeError/RangeError instead of reading or writing out of bounds.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "args.h"
#include "common.h"
#include "pool.h"
#include "simd.h"

namespace shrink {
namespace {

constexpr int kNR = 16;  // columns per weight panel
constexpr double kF32Eps = 1.1920928955078125e-7;
constexpr int64_t kMaxDim = int64_t{1} << 40;  // any one dimension (typed arrays are far smaller): no overflow below
// Smallest share of an int8 GEMM (multiply-adds) worth a pool task: ~10 µs of VNNI work.
constexpr int64_t kMinTaskMacs = int64_t{1} << 20;
// Smallest share of a row-wise pass (activation quantization, dequantization, GEMV) worth a pool task, in elements.
constexpr int64_t kMinTaskElems = 65536;

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
inline double rint_even(double v) { return std::nearbyint(v); }  // default rounding mode: half to even

// ---- activation quantization

// The row's scale s = (hi − lo)/qmax (float32) and zero point, then codes clamp(rint(x·(1/s)) + zero, 0, qmax)
// with the product rounded to float32 and rint half to even (cvtps2dq under the default MXCSR), as the TypeScript
// reference (quantizeActivationsPerToken).
void row_params(float lo, float hi, int32_t qmax, float& scale, float& inv, int32_t& zero) {
  const double s = std::max(static_cast<double>(static_cast<float>((static_cast<double>(hi) - lo) / qmax)), kF32Eps);
  scale = static_cast<float>(s);
  inv = static_cast<float>(1.0 / s);
  zero = static_cast<int32_t>(std::min(static_cast<double>(qmax), std::max(0.0, rint_even(-static_cast<double>(lo) / s))));
}

inline uint8_t encode_scalar(float x, float inv, int32_t zero, int32_t qmax) {
  const float v = x * inv;
  return static_cast<uint8_t>(std::min(static_cast<float>(qmax), std::max(0.0f, std::nearbyint(v) + zero)));
}

void quantize_row_portable(const float* x, int64_t K, uint8_t* q, int32_t qmax, float& scale, int32_t& zero) {
  float lo = 0.f, hi = 0.f, inv;
  for (int64_t k = 0; k < K; k++) {
    lo = x[k] < lo ? x[k] : lo;
    hi = x[k] > hi ? x[k] : hi;
  }
  row_params(lo, hi, qmax, scale, inv, zero);
  for (int64_t k = 0; k < K; k++) q[k] = encode_scalar(x[k], inv, zero, qmax);
}

#if SHRINK_X86
__attribute__((target("avx2"))) void encode_row_avx2(const float* x, int64_t K, uint8_t* q, float inv, int32_t zero, int32_t qmax);

__attribute__((target("avx2"))) void quantize_row_avx2(const float* x, int64_t K, uint8_t* q, int32_t qmax, float& scale, int32_t& zero) {
  __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 v = _mm256_loadu_ps(x + k);
    vlo = _mm256_min_ps(vlo, v);
    vhi = _mm256_max_ps(vhi, v);
  }
  alignas(32) float l[8], h[8];
  _mm256_store_ps(l, vlo);
  _mm256_store_ps(h, vhi);
  float lo = 0.f, hi = 0.f, inv;
  for (int i = 0; i < 8; i++) {
    lo = l[i] < lo ? l[i] : lo;
    hi = h[i] > hi ? h[i] : hi;
  }
  for (int64_t t = k; t < K; t++) {
    lo = x[t] < lo ? x[t] : lo;
    hi = x[t] > hi ? x[t] : hi;
  }
  row_params(lo, hi, qmax, scale, inv, zero);
  encode_row_avx2(x, K, q, inv, zero, qmax);
}

// codes = clamp(rint(x·inv) + zero, 0, qmax), qmax ≤ 255: 8 codes at a time packed to bytes (unsigned saturation
// never triggers: the values are already in 0..255).
__attribute__((target("avx2"))) void encode_row_avx2(const float* x, int64_t K, uint8_t* q, float inv, int32_t zero, int32_t qmax) {
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256i vz = _mm256_set1_epi32(zero), v0 = _mm256_setzero_si256(), vmax = _mm256_set1_epi32(qmax);
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256i c = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k), vinv)), vz);
    c = _mm256_min_epi32(_mm256_max_epi32(c, v0), vmax);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + k), _mm_packus_epi16(w, w));
  }
  for (; k < K; k++) q[k] = encode_scalar(x[k], inv, zero, qmax);
}
#endif  // SHRINK_X86

void quantize_row(const float* x, int64_t K, uint8_t* q, int64_t Kp, int32_t qmax, float& scale, int32_t& zero, [[maybe_unused]] bool avx) {
#if SHRINK_X86
  if (avx) quantize_row_avx2(x, K, q, qmax, scale, zero);
  else
#endif
    quantize_row_portable(x, K, q, qmax, scale, zero);
  std::memset(q + K, 0, static_cast<size_t>(Kp - K));
}

// quantizeRowsStatic(x, M, K, Kp, scale, zero, q): every row with the same calibrated (scale, zero)
napi_value QuantizeRowsStatic(napi_env env, napi_callback_info info) {
  Args a(env, info, "quantizeRowsStatic");
  size_t xl, ql;
  const float* x = a.f32(0, xl);
  const int64_t M = a.int64(1), K = a.int64(2), Kp = a.int64(3);
  const double scale = a.num(4);
  const int64_t zero = a.int64(5);
  uint8_t* q = a.u8(6, ql);
  if (a.failed()) return a.fail();
  if (!a.check(M >= 0 && K >= 1 && Kp >= K && Kp <= kMaxDim && holds(xl, M, K) && holds(ql, M, Kp) && scale > 0 && zero >= 0 && zero <= 127, "bad sizes or parameters"))
    return a.fail();
  const float inv = static_cast<float>(1.0 / scale);
  [[maybe_unused]] const bool avx = simd_enabled();
  par_for(M, std::max<int64_t>(1, kMinTaskElems / K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      const float* xr = x + m * K;
      uint8_t* qr = q + m * Kp;
#if SHRINK_X86
      if (avx) encode_row_avx2(xr, K, qr, inv, static_cast<int32_t>(zero), 127);
      else
#endif
        for (int64_t k = 0; k < K; k++) qr[k] = encode_scalar(xr[k], inv, static_cast<int32_t>(zero), 127);
      std::memset(qr + K, 0, static_cast<size_t>(Kp - K));
    }
  });
  return a.undefined();
}

// quantizeRows(x, M, K, Kp, qmax, q, scale, zero) (qmax in 1..255) and quantizeRowsU7(x, M, K, Kp, q, scale, zero)
napi_value quantize_rows(napi_env env, napi_callback_info info, bool u7) {
  Args a(env, info, u7 ? "quantizeRowsU7" : "quantizeRows");
  const size_t o = u7 ? 0 : 1;  // quantizeRows has qmax at position 4
  size_t xl, ql, sl, zl;
  const float* x = a.f32(0, xl);
  const int64_t M = a.int64(1), K = a.int64(2), Kp = a.int64(3);
  const double qmaxd = u7 ? 127 : a.num(4);
  uint8_t* q = a.u8(4 + o, ql);
  float* scale = a.f32(5 + o, sl);
  int32_t* zero = a.i32(6 + o, zl);
  if (a.failed()) return a.fail();
  if (!a.check(qmaxd >= 1 && qmaxd <= 255 && qmaxd == std::floor(qmaxd), "qmax must be an integer in 1..255")) return a.fail();
  const int32_t qmax = static_cast<int32_t>(qmaxd);
  if (!a.check(M >= 0 && K >= 1 && Kp >= K && Kp <= kMaxDim && holds(xl, M, K) && holds(ql, M, Kp) && holds(sl, M) && holds(zl, M), "bad sizes"))
    return a.fail();
  const bool avx = simd_enabled();
  par_for(M, std::max<int64_t>(1, kMinTaskElems / K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) quantize_row(x + m * K, K, q + m * Kp, Kp, qmax, scale[m], zero[m], avx);
  });
  return a.undefined();
}
napi_value QuantizeRowsU7(napi_env env, napi_callback_info info) { return quantize_rows(env, info, true); }
napi_value QuantizeRows(napi_env env, napi_callback_info info) { return quantize_rows(env, info, false); }

// ---- weight packing

// packInt8Weight(w, N, K, packed, rowSum): packed has N'·K' bytes
napi_value PackInt8Weight(napi_env env, napi_callback_info info) {
  Args a(env, info, "packInt8Weight");
  size_t wl, pl, rl;
  const int8_t* w = a.i8(0, wl);
  const int64_t N = a.int64(1), K = a.int64(2);
  int8_t* p = a.i8(3, pl);
  int32_t* rowsum = a.i32(4, rl);
  if (a.failed()) return a.fail();
  if (!a.check(N >= 1 && K >= 1 && N <= kMaxDim && K <= kMaxDim, "bad sizes")) return a.fail();
  const int64_t Np = round_up(N, kNR), Kp = round_up(K, 4);
  if (!a.check(holds(wl, N, K) && holds(pl, Np, Kp) && holds(rl, N), "bad sizes")) return a.fail();
  std::memset(p, 0, static_cast<size_t>(Np * Kp));
  for (int64_t n = 0; n < N; n++) {
    const int64_t panel = n / kNR, c = n % kNR;
    int8_t* dst = p + panel * kNR * Kp;
    int32_t s = 0;
    for (int64_t k = 0; k < K; k++) {
      dst[(k / 4) * (kNR * 4) + c * 4 + (k % 4)] = w[n * K + k];
      s += w[n * K + k];
    }
    rowsum[n] = s;
  }
  return a.undefined();
}

// ---- int8 GEMM

struct Epilogue {
  const float* sa;
  const int32_t* za;
  const float* sw;
  bool sw_per_tensor;
  const int32_t* rowsum;
  const float* bias;
  float* out;
  int64_t N;
#if SHRINK_X86
  // 16 columns at once in double (4 lanes × 4), the same operations and order as the scalar path (no FMA, so
  // every rounding matches): (sa·sw)·(acc − za·rowsum) + bias, then one rounding to float32.
  __attribute__((target("avx2"))) void store16_avx2(int64_t m, int64_t n0, const int32_t* acc) const {
    const __m256d s_a = _mm256_set1_pd(sa[m]), z_a = _mm256_set1_pd(static_cast<double>(za[m]));
    for (int j = 0; j < 16; j += 4) {
      const int64_t n = n0 + j;
      const __m256d swv = sw_per_tensor ? _mm256_set1_pd(sw[0]) : _mm256_cvtps_pd(_mm_loadu_ps(sw + n));
      const __m256d rs = _mm256_cvtepi32_pd(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rowsum + n)));
      const __m256d ac = _mm256_cvtepi32_pd(_mm_loadu_si128(reinterpret_cast<const __m128i*>(acc + j)));
      __m256d v = _mm256_mul_pd(_mm256_mul_pd(s_a, swv), _mm256_sub_pd(ac, _mm256_mul_pd(z_a, rs)));
      v = _mm256_add_pd(v, bias ? _mm256_cvtps_pd(_mm_loadu_ps(bias + n)) : _mm256_setzero_pd());
      _mm_storeu_ps(out + m * N + n, _mm256_cvtpd_ps(v));
    }
  }
  // The same with 8 doubles per zmm (AVX512-VNNI kernel). (GCC 12 warns about the _mm512_undefined_* inside
  // its own cvt intrinsics' headers: a false positive.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
  __attribute__((target("avx512f,avx512vl"))) void store16_avx512(int64_t m, int64_t n0, const int32_t* acc) const {
    const __m512d s_a = _mm512_set1_pd(sa[m]), z_a = _mm512_set1_pd(static_cast<double>(za[m]));
    for (int j = 0; j < 16; j += 8) {
      const int64_t n = n0 + j;
      const __m512d swv = sw_per_tensor ? _mm512_set1_pd(sw[0]) : _mm512_cvtps_pd(_mm256_loadu_ps(sw + n));
      const __m512d rs = _mm512_cvtepi32_pd(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rowsum + n)));
      const __m512d ac = _mm512_cvtepi32_pd(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j)));
      __m512d v = _mm512_mul_pd(_mm512_mul_pd(s_a, swv), _mm512_sub_pd(ac, _mm512_mul_pd(z_a, rs)));
      v = _mm512_add_pd(v, bias ? _mm512_cvtps_pd(_mm256_loadu_ps(bias + n)) : _mm512_setzero_pd());
      _mm256_storeu_ps(out + m * N + n, _mm512_cvtpd_ps(v));
    }
  }
#pragma GCC diagnostic pop
#endif  // SHRINK_X86
  void store(int64_t m, int64_t n0, const int32_t* acc, int64_t ncols) const {
    const double s_a = sa[m], z_a = za[m];
    for (int64_t j = 0; j < ncols; j++) {
      const int64_t n = n0 + j;
      const double sw_n = sw[sw_per_tensor ? 0 : n];
      // the TypeScript reference's order and precision: (sa·sw)·(acc − za·rowsum) + bias in double, one rounding
      const double v = s_a * sw_n * (static_cast<double>(acc[j]) - z_a * rowsum[n]) + (bias ? static_cast<double>(bias[n]) : 0.0);
      out[m * N + n] = static_cast<float>(v);
    }
  }
};

// ---- int8 GEMM kernels: every tile computes acc[r·kAccStride + p·16 + c] = Σ_k a[r·Kp + k]·panel_p[k, c] for
// r < R rows and p < P panels (panel p at b + p·pstride), over all of K' (a multiple of 4).

constexpr int kAccStride = 32;  // int32 per accumulator row: up to two 16-column panels
using TileFn = void (*)(const uint8_t* a, int64_t Kp, const int8_t* b, int64_t pstride, int32_t* acc);

inline int32_t load4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

template <int R, int P>
void tile_portable(const uint8_t* a, int64_t Kp, const int8_t* b, int64_t pstride, int32_t* acc) {
  for (int r = 0; r < R; r++)
    for (int p = 0; p < P; p++)
      for (int c = 0; c < kNR; c++) {
        int32_t s = 0;
        const int8_t* bp = b + p * pstride;
        for (int64_t g = 0; g < Kp / 4; g++)
          for (int i = 0; i < 4; i++) s += static_cast<int32_t>(a[r * Kp + g * 4 + i]) * bp[g * 64 + c * 4 + i];
        acc[r * kAccStride + p * 16 + c] = s;
      }
}

#if SHRINK_X86
// AVX2: R rows × 16 columns; per 4 k and row, vpmaddubsw (u8 × s8 pairs → saturating s16) → vpmaddwd(·, 1) → vpaddd.
template <int R, int P>
__attribute__((target("avx2"))) void tile_avx2(const uint8_t* a, int64_t Kp, const int8_t* b, int64_t, int32_t* acc) {
  static_assert(P == 1, "one panel");
  __m256i c0[R], c1[R];
  for (int r = 0; r < R; r++) c0[r] = c1[r] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t g = 0; g < Kp / 4; g++) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 64));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 64 + 32));
    for (int r = 0; r < R; r++) {
      const __m256i ar = _mm256_set1_epi32(load4(a + r * Kp + g * 4));
      c0[r] = _mm256_add_epi32(c0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(ar, b0), ones));
      c1[r] = _mm256_add_epi32(c1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(ar, b1), ones));
    }
  }
  for (int r = 0; r < R; r++) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kAccStride), c0[r]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kAccStride + 8), c1[r]);
  }
}

// VNNI on ymm: R rows × 16 columns, per 4 k and row one vpdpbusd per 8 columns (u8 × s8 quadruples summed into
// int32, no saturation). One body, two encodings: AVX-VNNI (VEX, 16 registers) and AVX512-VNNI + VL (EVEX).
#define SHRINK_VNNI_YMM_TILE(NAME, TARGET, DPBUSD)                                                              \
  template <int R, int P>                                                                                       \
  __attribute__((target(TARGET))) void NAME(const uint8_t* a, int64_t Kp, const int8_t* b, int64_t, int32_t* acc) { \
    static_assert(P == 1, "one panel");                                                                         \
    __m256i c0[R], c1[R];                                                                                       \
    for (int r = 0; r < R; r++) c0[r] = c1[r] = _mm256_setzero_si256();                                         \
    for (int64_t g = 0; g < Kp / 4; g++) {                                                                      \
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 64));                      \
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 64 + 32));                 \
      for (int r = 0; r < R; r++) {                                                                             \
        const __m256i ar = _mm256_set1_epi32(load4(a + r * Kp + g * 4));                                       \
        c0[r] = DPBUSD(c0[r], ar, b0);                                                                          \
        c1[r] = DPBUSD(c1[r], ar, b1);                                                                          \
      }                                                                                                         \
    }                                                                                                           \
    for (int r = 0; r < R; r++) {                                                                               \
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kAccStride), c0[r]);                             \
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kAccStride + 8), c1[r]);                         \
    }                                                                                                           \
  }
SHRINK_VNNI_YMM_TILE(tile_avxvnni, "avx2,avxvnni", _mm256_dpbusd_avx_epi32)
SHRINK_VNNI_YMM_TILE(tile_vnni_ymm, "avx2,avx512f,avx512bw,avx512vl,avx512vnni", _mm256_dpbusd_epi32)
#undef SHRINK_VNNI_YMM_TILE

// AVX512-VNNI: R rows × P panels of 16 columns. A panel's 4-k group (16 columns × 4 bytes) is one zmm, so per 4 k:
// P loads, R broadcasts, R·P vpdpbusd into R·P zmm accumulators.
template <int R, int P>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void tile_vnni512(const uint8_t* a, int64_t Kp, const int8_t* b, int64_t pstride, int32_t* acc) {
  __m512i c[R][P];
  for (int r = 0; r < R; r++)
    for (int p = 0; p < P; p++) c[r][p] = _mm512_setzero_si512();
  for (int64_t g = 0; g < Kp / 4; g++) {
    __m512i bv[P];
    for (int p = 0; p < P; p++) bv[p] = _mm512_loadu_si512(b + p * pstride + g * 64);
    for (int r = 0; r < R; r++) {
      const __m512i ar = _mm512_set1_epi32(load4(a + r * Kp + g * 4));
      for (int p = 0; p < P; p++) c[r][p] = _mm512_dpbusd_epi32(c[r][p], ar, bv[p]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int p = 0; p < P; p++) _mm512_storeu_si512(acc + r * kAccStride + p * 16, c[r][p]);
}
#endif  // SHRINK_X86

// ---- int8 kernel selection

enum I8Kernel { kI8Portable, kI8Avx2, kI8AvxVnni, kI8Vnni512Ymm, kI8Vnni512, kI8Count };
const char* const kI8Names[kI8Count] = {"portable", "avx2", "avx-vnni", "avx512-vnni-ymm", "avx512-vnni"};
std::atomic<int> g_i8_pin{-1};  // setInt8Kernel: -1 = automatic

bool i8_available(int k) {
  switch (k) {
    case kI8Portable: return true;
    case kI8Avx2: return simd_enabled();
    case kI8AvxVnni: return simd_enabled() && has_avx_vnni();
    case kI8Vnni512Ymm:
    case kI8Vnni512: return simd_enabled() && has_avx512_vnni();
    default: return false;
  }
}

// The kernel int8Gemm runs: the pinned one while it is available (setSimd(false) makes only 'portable' available),
// else the best this CPU has (SHRINK_ISA=avx2 hides AVX-512 and VNNI, see simd.h).
int i8_kernel() {
  const int pin = g_i8_pin.load(std::memory_order_relaxed);
  if (pin >= 0 && i8_available(pin)) return pin;
  for (int k : {kI8Vnni512, kI8AvxVnni, kI8Avx2})
    if (i8_available(k)) return k;
  return kI8Portable;
}

// Tile shapes and function tables: fn[r − 1][p − 1] for the edge tiles.
struct I8Tiles {
  int R, P;
  TileFn fn[8][2];
};

I8Tiles make_tiles(int k) {
  I8Tiles t{};
  switch (k) {
#if SHRINK_X86
    case kI8Vnni512: {
      t.R = 8;
      t.P = 2;
      const TileFn p1[8] = {&tile_vnni512<1, 1>, &tile_vnni512<2, 1>, &tile_vnni512<3, 1>, &tile_vnni512<4, 1>,
                            &tile_vnni512<5, 1>, &tile_vnni512<6, 1>, &tile_vnni512<7, 1>, &tile_vnni512<8, 1>};
      const TileFn p2[8] = {&tile_vnni512<1, 2>, &tile_vnni512<2, 2>, &tile_vnni512<3, 2>, &tile_vnni512<4, 2>,
                            &tile_vnni512<5, 2>, &tile_vnni512<6, 2>, &tile_vnni512<7, 2>, &tile_vnni512<8, 2>};
      for (int r = 0; r < 8; r++) t.fn[r][0] = p1[r], t.fn[r][1] = p2[r];
      return t;
    }
    case kI8Vnni512Ymm:
    case kI8AvxVnni: {
      t.R = 6;
      t.P = 1;
      const bool vex = k == kI8AvxVnni;
      const TileFn f[6] = {vex ? &tile_avxvnni<1, 1> : &tile_vnni_ymm<1, 1>, vex ? &tile_avxvnni<2, 1> : &tile_vnni_ymm<2, 1>,
                           vex ? &tile_avxvnni<3, 1> : &tile_vnni_ymm<3, 1>, vex ? &tile_avxvnni<4, 1> : &tile_vnni_ymm<4, 1>,
                           vex ? &tile_avxvnni<5, 1> : &tile_vnni_ymm<5, 1>, vex ? &tile_avxvnni<6, 1> : &tile_vnni_ymm<6, 1>};
      for (int r = 0; r < 6; r++) t.fn[r][0] = f[r];
      return t;
    }
    case kI8Avx2: {
      t.R = 4;
      t.P = 1;
      const TileFn f[4] = {&tile_avx2<1, 1>, &tile_avx2<2, 1>, &tile_avx2<3, 1>, &tile_avx2<4, 1>};
      for (int r = 0; r < 4; r++) t.fn[r][0] = f[r];
      return t;
    }
#endif  // SHRINK_X86
    default: {
      t.R = 4;
      t.P = 1;
      const TileFn f[4] = {&tile_portable<1, 1>, &tile_portable<2, 1>, &tile_portable<3, 1>, &tile_portable<4, 1>};
      for (int r = 0; r < 4; r++) t.fn[r][0] = f[r];
      return t;
    }
  }
}

const I8Tiles& tiles_for(int k) {
  static const I8Tiles all[kI8Count] = {make_tiles(0), make_tiles(1), make_tiles(2), make_tiles(3), make_tiles(4)};
  return all[k];
}

// Argument i as an integer; `def` when it is missing or undefined, −1 when it is anything but an integral number.
int64_t optional_int(napi_env env, napi_callback_info info, size_t i, int64_t def) {
  size_t argc = Args::kMax;
  napi_value argv[Args::kMax];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || i >= Args::kMax) return -1;
  if (i >= argc) return def;
  napi_valuetype t;
  if (napi_typeof(env, argv[i], &t) != napi_ok) return -1;
  if (t == napi_undefined) return def;
  double v;
  if (t != napi_number || napi_get_value_double(env, argv[i], &v) != napi_ok || v != std::floor(v) || !(std::fabs(v) < 1e15)) return -1;
  return static_cast<int64_t>(v);
}

// int8Gemm(qa, M, Kp, packed, N, sa, za, sw, swPerTensor, rowSum, bias|null, out, maxCode = 127)
napi_value Int8Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info, "int8Gemm");
  size_t ql, pl, sal, zal, swl, rl, bl, ol;
  const uint8_t* qa = a.u8(0, ql);
  const int64_t M = a.int64(1), Kp = a.int64(2);
  const int8_t* packed = a.i8(3, pl);
  const int64_t N = a.int64(4);
  const float* sa = a.f32(5, sal);
  const int32_t* za = a.i32(6, zal);
  const float* sw = a.f32(7, swl);
  const bool swPerTensor = a.flag(8);
  const int32_t* rowsum = a.i32(9, rl);
  const float* bias = a.f32_opt(10, bl);
  float* out = a.f32(11, ol);
  if (a.failed()) return a.fail();
  const int64_t maxCode = optional_int(env, info, 12, 127);
  if (!a.check(M >= 0 && N >= 1 && N <= kMaxDim && Kp >= 4 && Kp <= kMaxDim && Kp % 4 == 0, "bad dimensions")) return a.fail();
  if (!a.check(maxCode >= 0 && maxCode <= 255, "maxCode must be in 0..255")) return a.fail();
  const int64_t Np = round_up(N, kNR);
  if (!a.check(holds(ql, M, Kp) && holds(pl, Np, Kp) && holds(sal, M) && holds(zal, M), "activation or weight buffer too short") ||
      !a.check(holds(swl, swPerTensor ? 1 : N) && holds(rl, N) && (!bias || holds(bl, N)) && holds(ol, M, N), "scale, row-sum, bias or out too short"))
    return a.fail();
  const Epilogue ep{sa, za, sw, swPerTensor, rowsum, bias, out, N};
  int kernel = i8_kernel();
  if (kernel == kI8Avx2 && maxCode > 127) kernel = kI8Portable;  // vpmaddubsw would saturate: stay exact
  const I8Tiles& T = tiles_for(kernel);
  enum { kEpScalar, kEpAvx2, kEpAvx512 } const epk = kernel == kI8Portable ? kEpScalar : kernel == kI8Vnni512 ? kEpAvx512 : kEpAvx2;
  const int64_t panels = Np / kNR;
  const int64_t groups = (panels + T.P - 1) / T.P;
  const int64_t pstride = kNR * Kp;
  // Blocks of rows small enough to stay in L2 (≤ 128 KiB of codes) while every weight panel streams past them.
  const int64_t MB = std::max<int64_t>(T.R, std::min<int64_t>(256, (131072 / Kp) / T.R * T.R));
  // At least kMinTaskMacs multiply-adds per task: a small layer runs on the calling thread instead of paying a pool
  // dispatch (and, on a loaded machine, a wait for a descheduled worker) that costs more than its whole GEMM.
  const int64_t macs_per_group = std::max<int64_t>(1, std::min(M, MB) * Kp * kNR * T.P);
  const int64_t grain = std::max<int64_t>(1, (kMinTaskMacs + macs_per_group - 1) / macs_per_group);
  for (int64_t mb = 0; mb < M; mb += MB)
    par_for(groups, grain, [&](int64_t g0, int64_t g1) {
      alignas(64) int32_t acc[8 * kAccStride];
      for (int64_t g = g0; g < g1; g++) {
        const int64_t p0 = g * T.P;
        const int np = static_cast<int>(std::min<int64_t>(T.P, panels - p0));
        const int8_t* b = packed + p0 * pstride;
        for (int64_t m = mb; m < std::min(M, mb + MB); m += T.R) {
          const int R = static_cast<int>(std::min<int64_t>(T.R, M - m));
          T.fn[R - 1][np - 1](qa + m * Kp, Kp, b, pstride, acc);
          for (int p = 0; p < np; p++) {
            const int64_t n0 = (p0 + p) * kNR;
            const int64_t ncols = std::min<int64_t>(kNR, N - n0);
            for (int r = 0; r < R; r++) {
              const int32_t* ar = acc + r * kAccStride + p * 16;
#if SHRINK_X86
              if (ncols == kNR && epk == kEpAvx512)
                ep.store16_avx512(m + r, n0, ar);
              else if (ncols == kNR && epk == kEpAvx2)
                ep.store16_avx2(m + r, n0, ar);
              else
#endif
                ep.store(m + r, n0, ar, ncols);
            }
          }
        }
      }
    });
  return a.undefined();
}

// int8Kernel(): the kernel int8Gemm runs now. int8Kernels(): every kernel this CPU (and SHRINK_ISA) allows, best
// last. setInt8Kernel(name): pin one ('auto' unpins); RangeError for an unknown or unavailable name; returns the
// kernel now in use.
napi_value Int8KernelName(napi_env env, napi_callback_info) {
  napi_value r;
  napi_create_string_utf8(env, kI8Names[i8_kernel()], NAPI_AUTO_LENGTH, &r);
  return r;
}
napi_value Int8Kernels(napi_env env, napi_callback_info) {
  napi_value arr;
  napi_create_array(env, &arr);
  uint32_t i = 0;
  for (int k = 0; k < kI8Count; k++)
    if (i8_available(k)) {
      napi_value s;
      napi_create_string_utf8(env, kI8Names[k], NAPI_AUTO_LENGTH, &s);
      napi_set_element(env, arr, i++, s);
    }
  return arr;
}
napi_value SetInt8Kernel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  char name[32] = {0};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "shrink_native.setInt8Kernel: argument 0 must be a string");
    return nullptr;
  }
  if (std::strcmp(name, "auto") == 0) {
    g_i8_pin = -1;
  } else {
    int k = 0;
    while (k < kI8Count && std::strcmp(name, kI8Names[k]) != 0) k++;
    if (k == kI8Count || !i8_available(k)) {
      char msg[200];
      std::snprintf(msg, sizeof msg, "shrink_native.setInt8Kernel: '%s' is %s", name, k == kI8Count ? "not a kernel name" : "not available on this CPU (see int8Kernels())");
      napi_throw_range_error(env, nullptr, msg);
      return nullptr;
    }
    g_i8_pin = k;
  }
  return Int8KernelName(env, info);
}

// ---- dequantization of weight rows, and the weight-only GEMM

// A quantized weight [N, K]: int8 codes, or 2–4-bit codes two per byte (low nibble = even element), with a scale
// and zero point per tensor, per row or per group of G columns.
struct QWeight {
  const int8_t* c8;
  const uint8_t* c4;
  const float* scale;
  const int8_t* z8;
  const uint8_t* z4;
  int64_t G, K;
  bool perTensor;
  bool avx;  // simd_enabled() when the call started

  // Elements [k0, k0 + len) of row n as float32: (q − zero)·scale, exactly the reference's value.
  void row(int64_t n, int64_t k0, int64_t len, float* o) const {
    const int64_t gpr = perTensor ? 1 : K / G;
    for (int64_t k = k0; k < k0 + len;) {
      const int64_t g = perTensor ? 0 : k / G;
      const int64_t kend = std::min(k0 + len, perTensor ? K : (g + 1) * G);
      const int64_t si = perTensor ? 0 : n * gpr + g;
      const float s = scale[si];
      const int32_t z = z8 ? z8[si] : z4 ? z4[si] : 0;
#if SHRINK_X86
      if (avx)
        seg_avx2(n, k, kend, s, z, o + (k - k0));
      else
#endif
        seg_scalar(n, k, kend, s, z, o + (k - k0));
      k = kend;
    }
  }
  int32_t code(int64_t n, int64_t k) const {
    const int64_t i = n * K + k;
    return c8 ? c8[i] : (c4[i >> 1] >> ((i & 1) * 4)) & 15;
  }
  void seg_scalar(int64_t n, int64_t a, int64_t b, float s, int32_t z, float* o) const {
    for (int64_t k = a; k < b; k++) o[k - a] = static_cast<float>(code(n, k) - z) * s;
  }
#if SHRINK_X86
  __attribute__((target("avx2"))) void seg_avx2(int64_t n, int64_t a, int64_t b, float s, int32_t z, float* o) const {
    const __m256 sv = _mm256_set1_ps(s);
    const __m256i zv = _mm256_set1_epi32(z);
    const __m128i low4 = _mm_set1_epi8(15);
    int64_t k = a;
    if (!c8)  // 4-bit containers: vector loads start at an even element (a whole byte)
      for (; k < b && ((n * K + k) & 1); k++) o[k - a] = static_cast<float>(code(n, k) - z) * s;
    for (; k + 8 <= b; k += 8) {
      __m256i q;
      if (c8) {
        q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c8 + n * K + k)));
      } else {
        int32_t four;
        std::memcpy(&four, c4 + ((n * K + k) >> 1), 4);
        const __m128i bytes = _mm_cvtsi32_si128(four);
        const __m128i lo = _mm_and_si128(bytes, low4), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
        q = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
      }
      _mm256_storeu_ps(o + (k - a), _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, zv)), sv));
    }
    for (; k < b; k++) o[k - a] = static_cast<float>(code(n, k) - z) * s;
  }
#endif  // SHRINK_X86
};

// Reads the weight arguments at positions i..i+8: c8|null, c4|null, bits, scale, z8|null, z4|null, G, perTensor,
// K; checks them against rows [0, rows). Returns false (with the error set) when they do not fit. Exactly one of
// c8 (bits 8) and c4 (bits 2–4) is given, and at most one of z8 and z4: the kernels read whichever is non-null.
bool qweight_args(Args& a, size_t i, int64_t rows, QWeight& w) {
  size_t c8l, c4l, sl, z8l, z4l;
  w.c8 = a.i8_opt(i, c8l);
  w.c4 = a.u8_opt(i + 1, c4l);
  const int64_t bits = a.int64(i + 2);
  w.scale = a.f32(i + 3, sl);
  w.z8 = a.i8_opt(i + 4, z8l);
  w.z4 = a.u8_opt(i + 5, z4l);
  w.G = a.int64(i + 6);
  w.perTensor = a.flag(i + 7);
  w.K = a.int64(i + 8);
  if (a.failed()) return false;
  const int64_t K = w.K, G = w.G;
  w.avx = simd_enabled();
  if (!a.check(K >= 1 && K <= kMaxDim && G >= 1 && (w.perTensor || K % G == 0) && rows >= 0 && rows <= kMaxDim, "bad dimensions")) return false;
  if (!a.check(bits == 8 || (bits >= 2 && bits <= 4), "bits must be 8 or 2..4") ||
      !a.check(bits == 8 ? (w.c8 && !w.c4) : (w.c4 && !w.c8), "codes: pass an Int8Array and null for 8 bits, null and a Uint8Array for 2..4 bits") ||
      !a.check(bits == 8 ? holds(c8l, rows, K) : holds(c4l * 2, rows, K), "codes too short") ||
      !a.check(!(w.z8 && w.z4), "pass at most one zero-point array"))
    return false;
  const int64_t per_row = w.perTensor ? 0 : K / G;
  if (!a.check(w.perTensor ? holds(sl, 1) && (!w.z8 || holds(z8l, 1)) && (!w.z4 || holds(z4l, 1))
                           : holds(sl, rows, per_row) && (!w.z8 || holds(z8l, rows, per_row)) && (!w.z4 || holds(z4l, rows, per_row)),
               "scale or zero too short"))
    return false;
  return true;
}

// dequantRows(codesI8|null, codesU8|null, bits, scale, zeroI8|null, zeroU8|null, groupSize, perTensor, K, r0, r1, out)
napi_value DequantRows(napi_env env, napi_callback_info info) {
  Args a(env, info, "dequantRows");
  QWeight w{};
  const int64_t r1 = a.int64(10), r0 = a.int64(9);
  size_t ol;
  float* out = a.f32(11, ol);
  if (a.failed() || !qweight_args(a, 0, r1, w)) return a.fail();
  const int64_t K = w.K;
  if (!a.check(r0 >= 0 && r1 >= r0 && holds(ol, r1 - r0, K), "bad row range or out too short")) return a.fail();
  par_for(r1 - r0, std::max<int64_t>(1, kMinTaskElems / K), [&](int64_t i0, int64_t i1) {
    for (int64_t r = r0 + i0; r < r0 + i1; r++) w.row(r, 0, K, out + (r - r0) * K);
  });
  return a.undefined();
}

// dequantGather(codesI8|null, codesU8|null, bits, scale, zeroI8|null, zeroU8|null, groupSize, perTensor, K, rows,
// ids: Int32Array, out): out[i, :] = row ids[i] dequantized (QuantEmbedding's lookup, one call for every id instead
// of a TypeScript loop per element). Every id must be in [0, rows).
napi_value DequantGather(napi_env env, napi_callback_info info) {
  Args a(env, info, "dequantGather");
  QWeight w{};
  const int64_t rows = a.int64(9);
  size_t il, ol;
  const int32_t* ids = a.i32(10, il);
  float* out = a.f32(11, ol);
  if (a.failed() || !qweight_args(a, 0, rows, w)) return a.fail();
  const int64_t K = w.K, n = static_cast<int64_t>(il);
  if (!a.check(holds(ol, n, K), "out too short")) return a.fail();
  bool ok = true;
  for (int64_t i = 0; i < n; i++) ok = ok && ids[i] >= 0 && ids[i] < rows;
  if (!a.check(ok, "an id is out of range")) return a.fail();
  par_for(n, std::max<int64_t>(1, kMinTaskElems / K), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) w.row(ids[i], 0, K, out + i * K);
  });
  return a.undefined();
}

// ---- Fused GEMV (woGemm with M ≤ 4, decoding) ---------------------------------------------------------------
// Σ_k (q_k − z_g)·s_g·x_k = Σ_g s_g·(Σ_{k∈g} q_k·x_k − z_g·Σ_{k∈g} x_k): the codes are multiplied as they are (0..15,
// exact in float32), each group's sum scaled once, and the zero-point term taken from per-group sums of x computed
// once per call. A chunk of CH codes is CH/2 bytes: the low nibbles are the even columns, the high nibbles the odd
// ones, so x is reordered once per call into the same order (per chunk: CH/2 even columns, then CH/2 odd ones) and
// both nibble vectors multiply contiguous x. The weight is read once, as packed nibbles (memory-bound decoding
// reads an eighth of float32's bytes). CH = 32 (AVX-512: 16 bytes → two zmm of codes) or 16 (AVX2: 8 bytes → two
// ymm); the group size must be a multiple of CH.
struct GemvArgs {
  const QWeight& w;
  const float* xp;  // [M, K] x reordered by chunk
  const float* xs;  // [M, K/G] per-group sums of x
  const float* bias;
  float* out;
  int64_t M, N;
};

template <int CH>
void gemv4_prepare(const float* x, int64_t M, int64_t K, int64_t G, std::vector<float>& xp, std::vector<float>& xs) {
  xp.resize(static_cast<size_t>(M * K));
  xs.assign(static_cast<size_t>(M * (K / G)), 0.f);
  for (int64_t m = 0; m < M; m++) {
    const float* xm = x + m * K;
    float* pm = xp.data() + m * K;
    for (int64_t c = 0; c < K; c += CH)
      for (int j = 0; j < CH / 2; j++) {
        pm[c + j] = xm[c + 2 * j];
        pm[c + CH / 2 + j] = xm[c + 2 * j + 1];
      }
    for (int64_t g = 0; g < K / G; g++) {
      double t = 0;
      for (int64_t k = g * G; k < (g + 1) * G; k++) t += xm[k];
      xs[m * (K / G) + g] = static_cast<float>(t);
    }
  }
}

#if SHRINK_X86
// Rows [n0, n1) of the fused GEMV; FOUR: 2–4-bit codes (chunks of 32 as two nibble vectors, x reordered), else
// 8-bit codes (chunks of 16, x as it is). Per group: acc = Σ q·x, then tot += s·acc and the zero-point term
// s·z·Σx aside; one horizontal sum per output at the end.
template <int M, bool FOUR>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void gemv_rows_avx512(const GemvArgs& a, int64_t n0, int64_t n1) {
  const QWeight& w = a.w;
  const int64_t K = w.K, G = w.perTensor ? K : w.G, gpr = K / G;
  const __m128i m15 = _mm_set1_epi8(15);
  for (int64_t n = n0; n < n1; n++) {
    __m512 tot[M];
    float zt[M];
    for (int m = 0; m < M; m++) tot[m] = _mm512_setzero_ps(), zt[m] = 0.f;
    for (int64_t g = 0; g < gpr; g++) {
      __m512 acc[M];
      for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
      for (int64_t k = g * G; k < (g + 1) * G; k += FOUR ? 32 : 16) {
        if constexpr (FOUR) {
          const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.c4 + (n * K + k) / 2));
          const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(b, m15)));
          const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(b, 4), m15)));
          for (int m = 0; m < M; m++) {
            acc[m] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(a.xp + m * K + k), acc[m]);
            acc[m] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(a.xp + m * K + k + 16), acc[m]);
          }
        } else {
          const __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.c8 + n * K + k))));
          for (int m = 0; m < M; m++) acc[m] = _mm512_fmadd_ps(q, _mm512_loadu_ps(a.xp + m * K + k), acc[m]);
        }
      }
      const int64_t si = w.perTensor ? 0 : n * gpr + g;
      const float s = w.scale[si], z = static_cast<float>(w.z8 ? w.z8[si] : w.z4 ? w.z4[si] : 0);
      for (int m = 0; m < M; m++) {
        tot[m] = _mm512_fmadd_ps(acc[m], _mm512_set1_ps(s), tot[m]);
        zt[m] += s * z * a.xs[m * gpr + g];
      }
    }
    for (int m = 0; m < M; m++) a.out[m * a.N + n] = _mm512_reduce_add_ps(tot[m]) - zt[m] + (a.bias ? a.bias[n] : 0.f);
  }
}

// The AVX2 twin: chunks of 16 (FOUR: 8 bytes, two nibble vectors) or 8 (8-bit codes).
template <int M, bool FOUR>
__attribute__((target("avx2,fma"))) void gemv_rows_avx2(const GemvArgs& a, int64_t n0, int64_t n1) {
  const QWeight& w = a.w;
  const int64_t K = w.K, G = w.perTensor ? K : w.G, gpr = K / G;
  const __m128i m15 = _mm_set1_epi8(15);
  for (int64_t n = n0; n < n1; n++) {
    __m256 tot[M];
    float zt[M];
    for (int m = 0; m < M; m++) tot[m] = _mm256_setzero_ps(), zt[m] = 0.f;
    for (int64_t g = 0; g < gpr; g++) {
      __m256 acc[M];
      for (int m = 0; m < M; m++) acc[m] = _mm256_setzero_ps();
      for (int64_t k = g * G; k < (g + 1) * G; k += FOUR ? 16 : 8) {
        if constexpr (FOUR) {
          const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.c4 + (n * K + k) / 2));
          const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_and_si128(b, m15)));
          const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(b, 4), m15)));
          for (int m = 0; m < M; m++) {
            acc[m] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(a.xp + m * K + k), acc[m]);
            acc[m] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(a.xp + m * K + k + 8), acc[m]);
          }
        } else {
          const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.c8 + n * K + k))));
          for (int m = 0; m < M; m++) acc[m] = _mm256_fmadd_ps(q, _mm256_loadu_ps(a.xp + m * K + k), acc[m]);
        }
      }
      const int64_t si = w.perTensor ? 0 : n * gpr + g;
      const float s = w.scale[si], z = static_cast<float>(w.z8 ? w.z8[si] : w.z4 ? w.z4[si] : 0);
      for (int m = 0; m < M; m++) {
        tot[m] = _mm256_fmadd_ps(acc[m], _mm256_set1_ps(s), tot[m]);
        zt[m] += s * z * a.xs[m * gpr + g];
      }
    }
    for (int m = 0; m < M; m++) {
      const __m128 h = _mm_add_ps(_mm256_castps256_ps128(tot[m]), _mm256_extractf128_ps(tot[m], 1));
      const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
      a.out[m * a.N + n] = _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1))) - zt[m] + (a.bias ? a.bias[n] : 0.f);
    }
  }
}
#endif  // SHRINK_X86

// The fused GEMV when it applies (x86 with AVX2/AVX-512 enabled; 2–4-bit groups a multiple of the chunk, 8-bit
// groups — or the whole row, per tensor — a multiple of 16 or 8); false otherwise (the caller runs the
// dequantize-a-row GEMV).
bool gemv_fused(const float* x, int64_t M, const QWeight& w, int64_t N, const float* bias, float* out) {
#if SHRINK_X86
  if (!w.avx || M < 1 || M > 4) return false;
  using Fn = void (*)(const GemvArgs&, int64_t, int64_t);
  thread_local std::vector<float> xp, xs;
  Fn f = nullptr;
  const float* xin = x;
  if (w.c4) {
    if (w.perTensor) return false;
    const bool z512 = has_avx512f() && w.G % 32 == 0;
    if (!z512 && !(has_avx2_fma() && w.G % 16 == 0)) return false;
    if (z512) gemv4_prepare<32>(x, M, w.K, w.G, xp, xs);
    else gemv4_prepare<16>(x, M, w.K, w.G, xp, xs);
    static constexpr Fn f512[4] = {gemv_rows_avx512<1, true>, gemv_rows_avx512<2, true>, gemv_rows_avx512<3, true>, gemv_rows_avx512<4, true>};
    static constexpr Fn f256[4] = {gemv_rows_avx2<1, true>, gemv_rows_avx2<2, true>, gemv_rows_avx2<3, true>, gemv_rows_avx2<4, true>};
    f = (z512 ? f512 : f256)[M - 1];
    xin = xp.data();
  } else {
    const int64_t G = w.perTensor ? w.K : w.G;
    const bool z512 = has_avx512f() && G % 16 == 0;
    if (!z512 && !(has_avx2_fma() && G % 8 == 0)) return false;
    // the per-group sums of x (the zero-point term); x itself needs no reordering
    xs.assign(static_cast<size_t>(M * (w.K / G)), 0.f);
    for (int64_t m = 0; m < M; m++)
      for (int64_t g = 0; g < w.K / G; g++) {
        double t = 0;
        for (int64_t k = g * G; k < (g + 1) * G; k++) t += x[m * w.K + k];
        xs[m * (w.K / G) + g] = static_cast<float>(t);
      }
    static constexpr Fn f512[4] = {gemv_rows_avx512<1, false>, gemv_rows_avx512<2, false>, gemv_rows_avx512<3, false>, gemv_rows_avx512<4, false>};
    static constexpr Fn f256[4] = {gemv_rows_avx2<1, false>, gemv_rows_avx2<2, false>, gemv_rows_avx2<3, false>, gemv_rows_avx2<4, false>};
    f = (z512 ? f512 : f256)[M - 1];
  }
  const GemvArgs a{w, xin, xs.data(), bias, out, M, N};
  par_for(N, std::max<int64_t>(1, kMinTaskElems / w.K), [&](int64_t n0, int64_t n1) { f(a, n0, n1); });
  return true;
#else
  (void)x, (void)M, (void)w, (void)N, (void)bias, (void)out;
  return false;
#endif
}

// woGemm(x, M, c8|null, c4|null, bits, scale, z8|null, z4|null, groupSize, perTensor, K, N, bias|null, out):
// out[M, N] = x[M, K] · dequant(W)ᵀ + bias without materialising the float weight: the packed SGEMM's B panels are
// dequantized as they are packed (KC×16 at a time); M ≤ 4 (decoding) takes the fused GEMV (gemv_fused, above)
// where it applies, else a GEMV-style loop that dequantizes one weight row at a time and dots it with every x row.
napi_value WoGemm(napi_env env, napi_callback_info info) {
  Args a(env, info, "woGemm");
  size_t xl, bl, ol;
  const float* x = a.f32(0, xl);
  const int64_t M = a.int64(1);
  const int64_t N = a.int64(11);
  const float* bias = a.f32_opt(12, bl);
  float* out = a.f32(13, ol);
  QWeight w{};
  if (a.failed() || !qweight_args(a, 2, N, w)) return a.fail();
  const int64_t K = w.K;
  if (!a.check(M >= 0 && N >= 1 && holds(xl, M, K) && holds(ol, M, N) && (!bias || holds(bl, N)), "x, bias or out too short"))
    return a.fail();
  if (M == 0) return a.undefined();
  if (M <= 4 && gemv_fused(x, M, w, N, bias, out)) return a.undefined();
  if (M <= 4) {
    par_for(N, std::max<int64_t>(1, kMinTaskElems / K), [&](int64_t n0, int64_t n1) {
      std::vector<float> row(static_cast<size_t>(K));
      for (int64_t n = n0; n < n1; n++) {
        w.row(n, 0, K, row.data());
        for (int64_t m = 0; m < M; m++) out[m * N + n] = sdot(x + m * K, row.data(), K) + (bias ? bias[n] : 0.f);
      }
    });
    return a.undefined();
  }
  sgemm_source_b_bias(x, RowPanels<QWeight>(w), bias, out, M, N, K);
  return a.undefined();
}

}  // namespace

void init_quant(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "quantizeRowsU7", QuantizeRowsU7);
  export_fn(env, exports, "quantizeRowsStatic", QuantizeRowsStatic);
  export_fn(env, exports, "packInt8Weight", PackInt8Weight);
  export_fn(env, exports, "quantizeRows", QuantizeRows);
  export_fn(env, exports, "int8Gemm", Int8Gemm);
  export_fn(env, exports, "int8Kernel", Int8KernelName);
  export_fn(env, exports, "int8Kernels", Int8Kernels);
  export_fn(env, exports, "setInt8Kernel", SetInt8Kernel);
  register_kernel("int8", [] { return kI8Names[i8_kernel()]; });
  export_fn(env, exports, "dequantRows", DequantRows);
  export_fn(env, exports, "dequantGather", DequantGather);
  export_fn(env, exports, "woGemm", WoGemm);
}

}  // namespace shrink
