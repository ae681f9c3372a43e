// Dense float64 factorizations behind GPTQ (src/compress/quant/gptq-adapter.ts holds the TypeScript reference,
// choleskyInPlace and invertLowerInPlace, which these match up to summation order):
//
//   choleskyF64(A: Float64Array, K) → boolean
//     In place: A's lower triangle becomes the lower Cholesky factor L (A = L Lᵀ), the strict upper triangle is
//     zeroed. False when A is not positive definite (a pivot ≤ 0 or NaN); A is then partly overwritten.
//   invertLowerF64(L: Float64Array, K)
//     In place: the lower-triangular L becomes L⁻¹ (lower-triangular too).
//   gptqColumnsF64(W, N, K, U, i1, i2, c0, c1, perm, G, scale, zero, bits, codes, err, B) → loss
//     GPTQ's inner loop (gptq-adapter.ts gptqQuantize) for columns [c0, c1) of the lazy block [i1, i2): for every
//     row, quantize column i with its group's scale / zero (group perm[i] / G), write the code at the original
//     column perm[i], and spread the error (w − q)/U_ii over the block's later columns of W. Returns Σ (w − q)²/U_ii²/2.
//
// Both are blocked by rows so that each earlier row is read once per block of kB rows instead of once per row
// (a K = 5632 factor is 254 MB, far beyond any cache): for a block of rows I, every earlier row j (already final)
// updates all of I at once; then the block's own triangle is finished row by row. The rows of a block are split
// across the pool's threads. Inner loops are dot products (Cholesky) and axpys (inverse) of contiguous rows,
// AVX2/FMA on x86 when simd_enabled() (4 independent accumulators for the dots), portable otherwise.
//
// Checks: a Float64Array of at least K·K elements, 1 ≤ K ≤ 2^20; else a TypeError / RangeError.
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "args.h"
#include "common.h"
#include "pool.h"
#include "simd.h"

namespace shrink {
namespace {

constexpr int64_t kB = 32;        // rows per block
constexpr int64_t kMaxK = 1 << 20;

double ddot_portable(const double* x, const double* y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += x[i] * y[i];
  return s;
}
void daxpy_portable(double a, const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] -= a * x[i];
}

#if SHRINK_X86
__attribute__((target("avx2,fma"))) double ddot_avx2(const double* x, const double* y, int64_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd(), s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i), s0);
    s1 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4), s1);
    s2 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 8), _mm256_loadu_pd(y + i + 8), s2);
    s3 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 12), _mm256_loadu_pd(y + i + 12), s3);
  }
  for (; i + 4 <= n; i += 4) s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i), s0);
  const __m256d s = _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3));
  const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  double t = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  for (; i < n; i++) t += x[i] * y[i];
  return t;
}
__attribute__((target("avx2,fma"))) void daxpy_avx2(double a, const double* x, double* y, int64_t n) {
  const __m256d va = _mm256_set1_pd(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_pd(y + i, _mm256_fnmadd_pd(va, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
    _mm256_storeu_pd(y + i + 4, _mm256_fnmadd_pd(va, _mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4)));
  }
  for (; i < n; i++) y[i] -= a * x[i];
}
#endif

struct Ops {
  double (*dot)(const double*, const double*, int64_t);
  void (*axpy)(double, const double*, double*, int64_t);
};
Ops ops() {
#if SHRINK_X86
  if (simd_enabled() && has_avx2_fma()) return {ddot_avx2, daxpy_avx2};
#endif
  return {ddot_portable, daxpy_portable};
}

// Rows of a block handed to the pool: at least one row per task.
void for_rows(int64_t i0, int64_t i1, const std::function<void(int64_t, int64_t)>& fn) {
  parallel_for(i1 - i0, 1, [&](int64_t a, int64_t b) { fn(i0 + a, i0 + b); });
}

bool cholesky(double* A, int64_t K) {
  const Ops o = ops();
  for (int64_t i0 = 0; i0 < K; i0 += kB) {
    const int64_t i1 = std::min(i0 + kB, K);
    // every earlier (final) row j updates the block's entries in column j
    for_rows(i0, i1, [&](int64_t r0, int64_t r1) {
      for (int64_t j = 0; j < i0; j++) {
        const double* Lj = A + j * K;
        const double d = Lj[j];
        for (int64_t i = r0; i < r1; i++) {
          double* Li = A + i * K;
          Li[j] = (Li[j] - o.dot(Li, Lj, j)) / d;
        }
      }
    });
    // the block's own triangle, row by row
    for (int64_t i = i0; i < i1; i++) {
      double* Li = A + i * K;
      for (int64_t j = i0; j < i; j++) {
        const double* Lj = A + j * K;
        Li[j] = (Li[j] - o.dot(Li, Lj, j)) / Lj[j];
      }
      const double s = Li[i] - o.dot(Li, Li, i);
      if (!(s > 0)) return false;
      Li[i] = std::sqrt(s);
      std::fill(Li + i + 1, Li + K, 0.0);
    }
  }
  return true;
}

void invert_lower(double* L, int64_t K) {
  const Ops o = ops();
  std::vector<double> buf(static_cast<size_t>(kB * K));
  for (int64_t i0 = 0; i0 < K; i0 += kB) {
    const int64_t i1 = std::min(i0 + kB, K);
    // row i of L⁻¹ = (e_i − Σ_{k<i} L_ik · row k of L⁻¹) / L_ii; first the terms of the earlier (final) rows
    for_rows(i0, i1, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; i++) std::fill(buf.begin() + (i - i0) * K, buf.begin() + (i - i0) * K + i + 1, 0.0);
      for (int64_t k = 0; k < i0; k++) {
        const double* Xk = L + k * K;
        for (int64_t i = r0; i < r1; i++) {
          const double l = L[i * K + k];
          if (l != 0) o.axpy(l, Xk, buf.data() + (i - i0) * K, k + 1);
        }
      }
    });
    // then the block's own rows, in order (row i needs rows i0..i-1 of L⁻¹ final)
    for (int64_t i = i0; i < i1; i++) {
      double* row = buf.data() + (i - i0) * K;
      double* Li = L + i * K;
      for (int64_t k = i0; k < i; k++)
        if (Li[k] != 0) o.axpy(Li[k], L + k * K, row, k + 1);
      const double d = 1 / Li[i];
      for (int64_t j = 0; j < i; j++) Li[j] = row[j] * d;
      Li[i] = d;
    }
  }
}

bool square_args(Args& a, double*& A, int64_t& K) {
  size_t len = 0;
  A = a.f64(0, len);
  K = a.int64(1);
  if (a.failed()) return false;
  return a.check(K >= 1 && K <= kMaxK && holds(len, K, K), "A must hold K·K elements (1 ≤ K ≤ 2^20)");
}

napi_value CholeskyF64(napi_env env, napi_callback_info info) {
  Args a(env, info, "choleskyF64");
  double* A = nullptr;
  int64_t K = 0;
  if (!square_args(a, A, K)) return a.fail();
  napi_value r;
  napi_get_boolean(env, cholesky(A, K), &r);
  return r;
}

napi_value InvertLowerF64(napi_env env, napi_callback_info info) {
  Args a(env, info, "invertLowerF64");
  double* L = nullptr;
  int64_t K = 0;
  if (!square_args(a, L, K)) return a.fail();
  invert_lower(L, K);
  return a.undefined();
}

// GPTQ's column loop over columns [c0, c1) of the block [i1, i2), every row (see gptqColumnsF64 above). Rows are
// independent, so they are split across the pool; each row's loss is summed in row order afterwards (the result
// does not depend on the thread count). The error spread is a multiply then a subtract, never fused, in the order
// of the TypeScript loop, so W and the codes come out bit for bit as there.
void sub_scaled_portable(double e, const double* u, double* w, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    const double t = e * u[j];
    w[j] -= t;
  }
}

#if SHRINK_X86
// avx2 without fma: the compiler cannot contract the product and the difference into one rounding
__attribute__((target("avx2"))) void sub_scaled_avx2(double e, const double* u, double* w, int64_t n) {
  const __m256d ev = _mm256_set1_pd(e);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) _mm256_storeu_pd(w + j, _mm256_sub_pd(_mm256_loadu_pd(w + j), _mm256_mul_pd(ev, _mm256_loadu_pd(u + j))));
  sub_scaled_portable(e, u + j, w + j, n - j);
}
#endif

struct GptqCols {
  double* W;
  int64_t N, K;
  const double* U;
  int64_t i1, i2, c0, c1;
  const int32_t* perm;
  int64_t G, gpr;
  const float* scale;
  const int32_t* zero;
  int bits;
  uint8_t* codes;
  double* err;
  int64_t B;
};

double gptq_row(const GptqCols& p, int64_t r, void (*sub)(double, const double*, double*, int64_t)) {
  const int qmin = p.bits == 8 ? -128 : 0;
  const int qmax = p.bits == 8 ? 127 : (1 << p.bits) - 1;
  double* row = p.W + r * p.K;
  double loss = 0;
  for (int64_t i = p.c0; i < p.c1; i++) {
    const int64_t orig = p.perm[i];
    const int64_t g = orig / p.G;
    const double d = p.U[i * p.K + i];
    const double s = p.scale[r * p.gpr + g];
    const int32_t z = p.zero[r * p.gpr + g];
    const double wv = row[i];
    // roundHalfEven(fround(w / s)) + z, clamped (rtn.ts quantizeValue)
    double q = std::nearbyint(static_cast<double>(static_cast<float>(wv / s))) + z;
    q = std::min<double>(qmax, std::max<double>(qmin, q));
    const int code = static_cast<int>(q);
    p.codes[r * p.K + orig] = static_cast<uint8_t>(code);
    const double qv = static_cast<double>(code - z) * s;
    loss += ((wv - qv) * (wv - qv)) / (d * d) / 2;
    const double e = (wv - qv) / d;
    p.err[r * p.B + (i - p.i1)] = e;
    if (i + 1 < p.i2) sub(e, p.U + i * p.K + i + 1, row + i + 1, p.i2 - i - 1);
  }
  return loss;
}

napi_value GptqColumnsF64(napi_env env, napi_callback_info info) {
  Args a(env, info, "gptqColumnsF64");
  size_t lw = 0, lu = 0, lp = 0, ls = 0, lz = 0, lc = 0, le = 0;
  GptqCols p{};
  p.W = a.f64(0, lw);
  p.N = a.int64(1);
  p.K = a.int64(2);
  p.U = a.f64(3, lu);
  p.i1 = a.int64(4);
  p.i2 = a.int64(5);
  p.c0 = a.int64(6);
  p.c1 = a.int64(7);
  p.perm = a.i32(8, lp);
  p.G = a.int64(9);
  p.scale = a.f32(10, ls);
  p.zero = a.i32(11, lz);
  p.bits = static_cast<int>(a.int64(12));
  p.codes = a.u8(13, lc);
  p.err = a.f64(14, le);
  p.B = a.int64(15);
  if (a.failed()) return a.fail();
  const bool shapes = p.N >= 1 && p.K >= 1 && p.K <= kMaxK && holds(lw, p.N, p.K) && holds(lu, p.K, p.K) && lp >= static_cast<size_t>(p.K) &&
                      p.G >= 1 && p.K % p.G == 0 && lc >= static_cast<size_t>(p.N * p.K);
  if (!a.check(shapes, "W [N, K], U [K, K], perm [K], codes [N·K] and a group size dividing K")) return a.fail();
  p.gpr = p.K / p.G;
  const bool ranges = 0 <= p.i1 && p.i1 <= p.c0 && p.c0 <= p.c1 && p.c1 <= p.i2 && p.i2 <= p.K && p.B >= p.i2 - p.i1 && holds(le, p.N, p.B) &&
                      holds(ls, p.N, p.gpr) && holds(lz, p.N, p.gpr) && (p.bits == 8 || (p.bits >= 2 && p.bits <= 4));
  if (!a.check(ranges, "0 ≤ i1 ≤ c0 ≤ c1 ≤ i2 ≤ K, err [N, B ≥ i2 − i1], scale / zero [N, K/G], bits 2–4 or 8")) return a.fail();
  for (int64_t i = p.c0; i < p.c1; i++)
    if (!a.check(p.perm[i] >= 0 && p.perm[i] < p.K, "perm entries in [0, K)")) return a.fail();
  auto sub = sub_scaled_portable;
#if SHRINK_X86
  if (simd_enabled() && has_avx2_fma()) sub = sub_scaled_avx2;
#endif
  std::vector<double> losses(static_cast<size_t>(p.N), 0.0);
  parallel_for(p.N, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) losses[r] = gptq_row(p, r, sub);
  });
  double loss = 0;
  for (double l : losses) loss += l;
  napi_value out;
  napi_create_double(env, loss, &out);
  return out;
}

}  // namespace

void init_linalg(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "choleskyF64", CholeskyF64);
  export_fn(env, exports, "invertLowerF64", InvertLowerF64);
  export_fn(env, exports, "gptqColumnsF64", GptqColumnsF64);
}

}  // namespace shrink
