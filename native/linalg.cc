// Dense float64 factorizations behind GPTQ (src/compress/quant/gptq-adapter.ts holds the TypeScript reference,
// choleskyInPlace and invertLowerInPlace, which these match up to summation order):
//
//   choleskyF64(A: Float64Array, K) → boolean
//     In place: A's lower triangle becomes the lower Cholesky factor L (A = L Lᵀ), the strict upper triangle is
//     zeroed. False when A is not positive definite (a pivot ≤ 0 or NaN); A is then partly overwritten.
//   invertLowerF64(L: Float64Array, K)
//     In place: the lower-triangular L becomes L⁻¹ (lower-triangular too).
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

}  // namespace

void init_linalg(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "choleskyF64", CholeskyF64);
  export_fn(env, exports, "invertLowerF64", InvertLowerF64);
}

}  // namespace shrink
