// Fused row-wise kernels: softmax / log-softmax (forward and backward), LayerNorm and RMSNorm (forward and
// backward), embedding gather and scatter-add, cross-entropy (forward and backward), and the AdamW update.
// Semantics are those documented on the Backend interface (src/backend/backend.ts); the `ref` backend is the spec.
//
// Accuracy: row statistics (sums, means, variances, dot products, log-sum-exp) accumulate in double, and the
// per-element formulas that can cancel (x − mean, g − Σg·y, x − logsumexp, the target logit's gradient) are formed
// in double too, so results stay within a few float ulps of `ref`, which computes everything in double. exp runs
// as an 8-lane AVX2 approximation (vecmath.h, ≤ 1 ulp) on e^(hi)·(1 + lo), where hi + lo = x − max exactly.
//
// Threads: rows are split over the pool. Parameter gradients (LayerNorm/RMSNorm weight and bias) go to per-slot
// double buffers, summed in slot order at the end. The embedding scatter-add splits the columns (wide rows) or the
// destination rows (narrow rows: slot s owns the rows with idx % slots == s), so no element is written by two
// threads and each element's contributions are added in index order, as `ref` does.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "args.h"
#include "common.h"
#include "pool.h"
#include "vecmath.h"

namespace shrink {
namespace {

#define ALWAYS_INLINE inline __attribute__((always_inline))
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Rows per task: ~32K elements of work.
inline int64_t row_grain(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1)); }

// ---- AVX2 building blocks (double accumulation of float data)

#if SHRINK_X86
SHRINK_AVX2_FN float max_avx2(const float* x, int64_t n) {  // NaN ignored, as `ref`'s `if (x > mx)`
  __m256 m0 = _mm256_set1_ps(kNegInf), m1 = m0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);  // max_ps returns the 2nd operand when the 1st is NaN
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
  }
  for (; i + 8 <= n; i += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
  if (i < n) m1 = _mm256_max_ps(vm::load_tail(x + i, n - i, kNegInf), m1);
  return vm::hmax(_mm256_max_ps(m0, m1));
}
SHRINK_AVX2_FN double sum_avx2(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vm::add_pd(a0, a1, _mm256_loadu_ps(x + i));
  if (i < n) vm::add_pd(a0, a1, vm::load_tail(x + i, n - i));
  return vm::hsum(_mm256_add_pd(a0, a1));
}
// Σ e^(x − m); when y is given, also y = e^(x − m).
SHRINK_AVX2_FN double sum_exp_avx2(const float* x, int64_t n, float m, float* y) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 lo;
    const __m256 hi = vm::two_diff(_mm256_loadu_ps(x + i), mv, lo);
    const __m256 e = vm::exp_corr(hi, lo);
    if (y) _mm256_storeu_ps(y + i, e);
    vm::add_pd(a0, a1, e);
  }
  if (i < n) {
    __m256 lo;
    const __m256 hi = vm::two_diff(vm::load_tail(x + i, n - i, kNegInf), mv, lo);  // padding: e^(−inf) = 0
    const __m256 e = vm::exp_corr(hi, lo);
    if (y) vm::store_tail(y + i, n - i, e);
    vm::add_pd(a0, a1, e);
  }
  return vm::hsum(_mm256_add_pd(a0, a1));
}
SHRINK_VM __m256d ld4(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
SHRINK_VM void st4(float* p, __m256d v) { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }
#endif  // SHRINK_X86

// ---- softmax

void softmax_row_portable(const float* x, float* y, int64_t n, bool log) {
  float mx = kNegInf;
  for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (mx == kNegInf) mx = 0;  // an all −inf row gives 0/0 = NaN, as torch
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += std::exp(static_cast<double>(x[i]) - mx);
  if (log) {
    const double ls = std::log(s) + mx;
    for (int64_t i = 0; i < n; i++) y[i] = static_cast<float>(x[i] - ls);
  } else {
    for (int64_t i = 0; i < n; i++) y[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - mx) / s);
  }
}
#if SHRINK_X86
SHRINK_AVX2_FN void softmax_row_avx2(const float* x, float* y, int64_t n, bool log) {
  float mx = max_avx2(x, n);
  if (mx == kNegInf) mx = 0;
  if (!log) {
    const double s = sum_exp_avx2(x, n, mx, y);
    const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / s));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    for (; i < n; i++) y[i] *= _mm256_cvtss_f32(inv);
    return;
  }
  const double ls = std::log(sum_exp_avx2(x, n, mx, nullptr)) + mx;
  const __m256d lv = _mm256_set1_pd(ls);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) st4(y + i, _mm256_sub_pd(ld4(x + i), lv));
  for (; i < n; i++) y[i] = static_cast<float>(x[i] - ls);
}
#endif  // SHRINK_X86

void softmax_bwd_row_portable(const float* y, const float* g, float* o, int64_t n, bool log) {
  double s = 0;
  if (log) {
    for (int64_t i = 0; i < n; i++) s += g[i];
    for (int64_t i = 0; i < n; i++) o[i] = static_cast<float>(g[i] - std::exp(static_cast<double>(y[i])) * s);
  } else {
    for (int64_t i = 0; i < n; i++) s += static_cast<double>(g[i]) * y[i];
    for (int64_t i = 0; i < n; i++) o[i] = static_cast<float>(y[i] * (g[i] - s));
  }
}
#if SHRINK_X86
SHRINK_AVX2_FN void softmax_bwd_row_avx2(const float* y, const float* g, float* o, int64_t n, bool log) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int64_t i = 0;
  if (log) {
    const double s = sum_avx2(g, n);
    const __m256d sv = _mm256_set1_pd(s);
    for (; i + 8 <= n; i += 8) {
      const __m256 e = vm::exp(_mm256_loadu_ps(y + i));
      const __m256d e0 = _mm256_cvtps_pd(_mm256_castps256_ps128(e)), e1 = _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1));
      st4(o + i, _mm256_fnmadd_pd(e0, sv, ld4(g + i)));
      st4(o + i + 4, _mm256_fnmadd_pd(e1, sv, ld4(g + i + 4)));
    }
    for (; i < n; i++) o[i] = static_cast<float>(g[i] - std::exp(static_cast<double>(y[i])) * s);
    return;
  }
  for (; i + 4 <= n; i += 4) a0 = _mm256_fmadd_pd(ld4(g + i), ld4(y + i), a0);
  double s = vm::hsum(_mm256_add_pd(a0, a1));
  for (; i < n; i++) s += static_cast<double>(g[i]) * y[i];
  const __m256d sv = _mm256_set1_pd(s);
  for (i = 0; i + 4 <= n; i += 4) st4(o + i, _mm256_mul_pd(ld4(y + i), _mm256_sub_pd(ld4(g + i), sv)));
  for (; i < n; i++) o[i] = static_cast<float>(y[i] * (g[i] - s));
}
#endif  // SHRINK_X86

// softmax(x, rows, n, out, log)
napi_value Softmax(napi_env env, napi_callback_info info) {
  Args args(env, info, "softmax");
  size_t xl, ol;
  const float* x = args.f32(0, xl);
  const int64_t rows = args.int64(1), n = args.int64(2);
  float* y = args.f32(3, ol);
  const bool log = args.flag(4);
  if (args.failed() || !args.check(holds(std::min(xl, ol), rows, n), "x or out is too short"))
    return args.fail();
  if (rows == 0 || n == 0) return nullptr;  // rows can be anything when n is 0: do not loop over them
  [[maybe_unused]] const bool avx = simd_enabled();
  par_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
#if SHRINK_X86
      if (avx) softmax_row_avx2(x + r * n, y + r * n, n, log);
      else
#endif
      softmax_row_portable(x + r * n, y + r * n, n, log);
    }
  });
  return nullptr;
}

// softmaxBackward(y, g, rows, n, out, log)
napi_value SoftmaxBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "softmaxBackward");
  size_t yl, gl, ol;
  const float* y = args.f32(0, yl);
  const float* g = args.f32(1, gl);
  const int64_t rows = args.int64(2), n = args.int64(3);
  float* out = args.f32(4, ol);
  const bool log = args.flag(5);
  if (args.failed() || !args.check(holds(std::min({yl, gl, ol}), rows, n), "an array is too short"))
    return args.fail();
  if (rows == 0 || n == 0) return nullptr;  // rows can be anything when n is 0: do not loop over them
  [[maybe_unused]] const bool avx = simd_enabled();
  par_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
#if SHRINK_X86
      if (avx) softmax_bwd_row_avx2(y + r * n, g + r * n, out + r * n, n, log);
      else
#endif
      softmax_bwd_row_portable(y + r * n, g + r * n, out + r * n, n, log);
    }
  });
  return nullptr;
}

// ---- LayerNorm

// Mean and 1/sqrt(var + eps) of one row, in double.
void ln_stats_portable(const float* x, int64_t n, double eps, double& mu, double& rs) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += x[i];
  mu = s / n;
  double v = 0;
  for (int64_t i = 0; i < n; i++) v += (x[i] - mu) * (x[i] - mu);
  rs = 1 / std::sqrt(v / n + eps);
}
#if SHRINK_X86
SHRINK_AVX2_FN void ln_stats_avx2(const float* x, int64_t n, double eps, double& mu, double& rs) {
  mu = sum_avx2(x, n) / n;
  const __m256d m = _mm256_set1_pd(mu);
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256d d0 = _mm256_sub_pd(ld4(x + i), m), d1 = _mm256_sub_pd(ld4(x + i + 4), m);
    a0 = _mm256_fmadd_pd(d0, d0, a0);
    a1 = _mm256_fmadd_pd(d1, d1, a1);
  }
  double v = vm::hsum(_mm256_add_pd(a0, a1));
  for (; i < n; i++) v += (x[i] - mu) * (x[i] - mu);
  rs = 1 / std::sqrt(v / n + eps);
}
#endif  // SHRINK_X86

// out = x̂·w + b with x̂ = (x − μ)·rstd formed in double (a float μ would cost accuracy when |x − μ| ≪ |μ|).
void ln_out_portable(const float* x, const float* w, const float* b, int64_t n, double mu, double rs, float* o) {
  for (int64_t i = 0; i < n; i++) {
    double yv = (x[i] - mu) * rs;
    if (w) yv *= w[i];
    if (b) yv += b[i];
    o[i] = static_cast<float>(yv);
  }
}
#if SHRINK_X86
SHRINK_AVX2_FN void ln_out_avx2(const float* x, const float* w, const float* b, int64_t n, double mu, double rs, float* o) {
  const __m256d m = _mm256_set1_pd(mu), r = _mm256_set1_pd(rs);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256d yv = _mm256_mul_pd(_mm256_sub_pd(ld4(x + i), m), r);
    if (w) yv = _mm256_mul_pd(yv, ld4(w + i));
    if (b) yv = _mm256_add_pd(yv, ld4(b + i));
    st4(o + i, yv);
  }
  ln_out_portable(x + i, w ? w + i : nullptr, b ? b + i : nullptr, n - i, mu, rs, o + i);
}
#endif  // SHRINK_X86

// layerNorm(x, weight | null, bias | null, rows, n, eps, out, mean, rstd)
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  Args args(env, info, "layerNorm");
  size_t xl, wl, bl, ol, ml, rl;
  const float* x = args.f32(0, xl);
  const float* w = args.f32_opt(1, wl);
  const float* b = args.f32_opt(2, bl);
  const int64_t rows = args.int64(3), n = args.int64(4);
  const double eps = args.num(5);
  float* out = args.f32(6, ol);
  float* mean = args.f32(7, ml);
  float* rstd = args.f32(8, rl);
  if (args.failed()) return args.fail();
  args.check(holds(std::min(xl, ol), rows, n), "x or out is too short");
  args.check((!w || static_cast<int64_t>(wl) >= n) && (!b || static_cast<int64_t>(bl) >= n), "weight or bias is too short");
  args.check(static_cast<int64_t>(std::min(ml, rl)) >= rows, "mean or rstd is too short");
  if (args.failed()) return args.fail();
  [[maybe_unused]] const bool avx = simd_enabled();
  par_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * n;
      double mu, rs;
#if SHRINK_X86
      if (avx) ln_stats_avx2(xr, n, eps, mu, rs);
      else
#endif
      ln_stats_portable(xr, n, eps, mu, rs);
      mean[r] = static_cast<float>(mu);
      rstd[r] = static_cast<float>(rs);
#if SHRINK_X86
      if (avx) ln_out_avx2(xr, w, b, n, mu, rs, out + r * n);
      else
#endif
      ln_out_portable(xr, w, b, n, mu, rs, out + r * n);
    }
  });
  return nullptr;
}

// Runs fn(slot, r0, r1) over `rows` split into `slots` contiguous parts (slot s gets its own gradient buffer).
// The split depends only on rows and slots, not on how the pool schedules it.
template <class F>
void for_slots(int64_t rows, int slots, F&& fn) {
  par_for(slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; s++) fn(static_cast<int>(s), rows * s / slots, rows * (s + 1) / slots);
  });
}
int slots_for(int64_t rows, int64_t n) {
  const int64_t by_work = std::max<int64_t>(1, rows * n / 32768);
  return static_cast<int>(std::min<int64_t>({static_cast<int64_t>(num_threads()), rows, by_work, 64}));
}

// One row of the LayerNorm backward. pw/pb (double, may be null) receive g·x̂ and g.
void ln_bwd_row_portable(const float* x, const float* w, double mu, double rs, const float* g, int64_t n, float* dx, double* pw, double* pb) {
  double sd = 0, sdx = 0;
  for (int64_t i = 0; i < n; i++) {
    const double xh = (x[i] - mu) * rs, d = g[i] * (w ? static_cast<double>(w[i]) : 1.0);
    sd += d;
    sdx += d * xh;
    if (pw) pw[i] += g[i] * xh;
    if (pb) pb[i] += g[i];
  }
  const double md = sd / n, mdx = sdx / n;
  for (int64_t i = 0; i < n; i++) {
    const double xh = (x[i] - mu) * rs, d = g[i] * (w ? static_cast<double>(w[i]) : 1.0);
    dx[i] = static_cast<float>(rs * (d - md - xh * mdx));
  }
}
#if SHRINK_X86
SHRINK_AVX2_FN void ln_bwd_row_avx2(const float* x, const float* w, double mu, double rs, const float* g, int64_t n, float* dx, double* pw, double* pb) {
  const __m256d m = _mm256_set1_pd(mu), r = _mm256_set1_pd(rs);
  __m256d a_d = _mm256_setzero_pd(), a_dx = a_d;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d xh = _mm256_mul_pd(_mm256_sub_pd(ld4(x + i), m), r), gv = ld4(g + i);
    const __m256d d = w ? _mm256_mul_pd(gv, ld4(w + i)) : gv;
    a_d = _mm256_add_pd(a_d, d);
    a_dx = _mm256_fmadd_pd(d, xh, a_dx);
    if (pw) _mm256_storeu_pd(pw + i, _mm256_fmadd_pd(gv, xh, _mm256_loadu_pd(pw + i)));
    if (pb) _mm256_storeu_pd(pb + i, _mm256_add_pd(gv, _mm256_loadu_pd(pb + i)));
  }
  double sd = vm::hsum(a_d), sdx = vm::hsum(a_dx);
  for (int64_t k = i; k < n; k++) {
    const double xh = (x[k] - mu) * rs, d = g[k] * (w ? static_cast<double>(w[k]) : 1.0);
    sd += d;
    sdx += d * xh;
    if (pw) pw[k] += g[k] * xh;
    if (pb) pb[k] += g[k];
  }
  const double md = sd / n, mdx = sdx / n;
  const __m256d mdv = _mm256_set1_pd(md), mdxv = _mm256_set1_pd(mdx);
  for (i = 0; i + 4 <= n; i += 4) {
    const __m256d xh = _mm256_mul_pd(_mm256_sub_pd(ld4(x + i), m), r), gv = ld4(g + i);
    const __m256d d = w ? _mm256_mul_pd(gv, ld4(w + i)) : gv;
    st4(dx + i, _mm256_mul_pd(r, _mm256_fnmadd_pd(xh, mdxv, _mm256_sub_pd(d, mdv))));
  }
  for (; i < n; i++) {
    const double xh = (x[i] - mu) * rs, d = g[i] * (w ? static_cast<double>(w[i]) : 1.0);
    dx[i] = static_cast<float>(rs * (d - md - xh * mdx));
  }
}
#endif  // SHRINK_X86

// Adds the slot buffers, in slot order, into dst (float).
void add_partials(float* dst, const std::vector<std::vector<double>>& parts, int64_t n) {
  if (!dst) return;
  for (int64_t i = 0; i < n; i++) {
    double s = 0;
    for (const auto& p : parts) s += p[i];
    dst[i] += static_cast<float>(s);
  }
}

// layerNormBackward(x, weight | null, mean, rstd, g, rows, n, dx, dWeight | null, dBias | null)
napi_value LayerNormBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "layerNormBackward");
  size_t xl, wl, ml, rl, gl, dxl, dwl, dbl;
  const float* x = args.f32(0, xl);
  const float* w = args.f32_opt(1, wl);
  const float* mean = args.f32(2, ml);
  const float* rstd = args.f32(3, rl);
  const float* g = args.f32(4, gl);
  const int64_t rows = args.int64(5), n = args.int64(6);
  float* dx = args.f32(7, dxl);
  float* dw = args.f32_opt(8, dwl);
  float* db = args.f32_opt(9, dbl);
  if (args.failed()) return args.fail();
  args.check(holds(std::min({xl, gl, dxl}), rows, n), "x, g or dx is too short");
  args.check(static_cast<int64_t>(std::min(ml, rl)) >= rows, "mean or rstd is too short");
  args.check((!w || static_cast<int64_t>(wl) >= n) && (!dw || static_cast<int64_t>(dwl) >= n) && (!db || static_cast<int64_t>(dbl) >= n),
             "weight, dWeight or dBias is too short");
  if (args.failed()) return args.fail();
  if (rows == 0 || n == 0) return nullptr;
  [[maybe_unused]] const bool avx = simd_enabled();
  const int slots = slots_for(rows, n);
  std::vector<std::vector<double>> pw(dw ? slots : 0, std::vector<double>(n, 0.0)), pb(db ? slots : 0, std::vector<double>(n, 0.0));
  for_slots(rows, slots, [&](int s, int64_t r0, int64_t r1) {
    double* w_acc = dw ? pw[s].data() : nullptr;
    double* b_acc = db ? pb[s].data() : nullptr;
    for (int64_t r = r0; r < r1; r++) {
#if SHRINK_X86
      if (avx) ln_bwd_row_avx2(x + r * n, w, mean[r], rstd[r], g + r * n, n, dx + r * n, w_acc, b_acc);
      else
#endif
      ln_bwd_row_portable(x + r * n, w, mean[r], rstd[r], g + r * n, n, dx + r * n, w_acc, b_acc);
    }
  });
  add_partials(dw, pw, n);
  add_partials(db, pb, n);
  return nullptr;
}

// ---- RMSNorm

void rms_row_portable(const float* x, const float* w, int64_t n, double eps, float* o, float* rstd) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(x[i]) * x[i];
  const double rs = 1 / std::sqrt(s / n + eps);
  *rstd = static_cast<float>(rs);
  for (int64_t i = 0; i < n; i++) o[i] = static_cast<float>(x[i] * rs * (w ? static_cast<double>(w[i]) : 1.0));
}
#if SHRINK_X86
SHRINK_AVX2_FN void rms_row_avx2(const float* x, const float* w, int64_t n, double eps, float* o, float* rstd) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256d v0 = ld4(x + i), v1 = ld4(x + i + 4);
    a0 = _mm256_fmadd_pd(v0, v0, a0);
    a1 = _mm256_fmadd_pd(v1, v1, a1);
  }
  double s = vm::hsum(_mm256_add_pd(a0, a1));
  for (; i < n; i++) s += static_cast<double>(x[i]) * x[i];
  const double rs = 1 / std::sqrt(s / n + eps);
  *rstd = static_cast<float>(rs);
  const __m256d r = _mm256_set1_pd(rs);
  for (i = 0; i + 4 <= n; i += 4) {
    const __m256d yv = _mm256_mul_pd(ld4(x + i), r);
    st4(o + i, w ? _mm256_mul_pd(yv, ld4(w + i)) : yv);
  }
  for (; i < n; i++) o[i] = static_cast<float>(x[i] * rs * (w ? static_cast<double>(w[i]) : 1.0));
}
#endif  // SHRINK_X86

// rmsNorm(x, weight | null, rows, n, eps, out, rstd)
napi_value RmsNorm(napi_env env, napi_callback_info info) {
  Args args(env, info, "rmsNorm");
  size_t xl, wl, ol, rl;
  const float* x = args.f32(0, xl);
  const float* w = args.f32_opt(1, wl);
  const int64_t rows = args.int64(2), n = args.int64(3);
  const double eps = args.num(4);
  float* out = args.f32(5, ol);
  float* rstd = args.f32(6, rl);
  if (args.failed()) return args.fail();
  args.check(holds(std::min(xl, ol), rows, n), "x or out is too short");
  args.check((!w || static_cast<int64_t>(wl) >= n) && static_cast<int64_t>(rl) >= rows, "weight or rstd is too short");
  if (args.failed()) return args.fail();
  [[maybe_unused]] const bool avx = simd_enabled();
  par_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
#if SHRINK_X86
      if (avx) rms_row_avx2(x + r * n, w, n, eps, out + r * n, rstd + r);
      else
#endif
      rms_row_portable(x + r * n, w, n, eps, out + r * n, rstd + r);
    }
  });
  return nullptr;
}

void rms_bwd_row_portable(const float* x, const float* w, double rs, const float* g, int64_t n, float* dx, double* pw) {
  double dot = 0;
  for (int64_t i = 0; i < n; i++) {
    dot += g[i] * (w ? static_cast<double>(w[i]) : 1.0) * x[i];
    if (pw) pw[i] += static_cast<double>(g[i]) * x[i] * rs;
  }
  const double c = rs * rs * dot / n;
  for (int64_t i = 0; i < n; i++) dx[i] = static_cast<float>(rs * (g[i] * (w ? static_cast<double>(w[i]) : 1.0) - x[i] * c));
}
#if SHRINK_X86
SHRINK_AVX2_FN void rms_bwd_row_avx2(const float* x, const float* w, double rs, const float* g, int64_t n, float* dx, double* pw) {
  const __m256d r = _mm256_set1_pd(rs);
  __m256d acc = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d gv = ld4(g + i), xv = ld4(x + i);
    const __m256d d = w ? _mm256_mul_pd(gv, ld4(w + i)) : gv;
    acc = _mm256_fmadd_pd(d, xv, acc);
    if (pw) _mm256_storeu_pd(pw + i, _mm256_fmadd_pd(_mm256_mul_pd(gv, xv), r, _mm256_loadu_pd(pw + i)));
  }
  double dot = vm::hsum(acc);
  for (int64_t k = i; k < n; k++) {
    dot += g[k] * (w ? static_cast<double>(w[k]) : 1.0) * x[k];
    if (pw) pw[k] += static_cast<double>(g[k]) * x[k] * rs;
  }
  const double c = rs * rs * dot / n;
  const __m256d cv = _mm256_set1_pd(c);
  for (i = 0; i + 4 <= n; i += 4) {
    const __m256d gv = ld4(g + i);
    const __m256d d = w ? _mm256_mul_pd(gv, ld4(w + i)) : gv;
    st4(dx + i, _mm256_mul_pd(r, _mm256_fnmadd_pd(ld4(x + i), cv, d)));
  }
  for (; i < n; i++) dx[i] = static_cast<float>(rs * (g[i] * (w ? static_cast<double>(w[i]) : 1.0) - x[i] * c));
}
#endif  // SHRINK_X86

// rmsNormBackward(x, weight | null, rstd, g, rows, n, dx, dWeight | null)
napi_value RmsNormBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "rmsNormBackward");
  size_t xl, wl, rl, gl, dxl, dwl;
  const float* x = args.f32(0, xl);
  const float* w = args.f32_opt(1, wl);
  const float* rstd = args.f32(2, rl);
  const float* g = args.f32(3, gl);
  const int64_t rows = args.int64(4), n = args.int64(5);
  float* dx = args.f32(6, dxl);
  float* dw = args.f32_opt(7, dwl);
  if (args.failed()) return args.fail();
  args.check(holds(std::min({xl, gl, dxl}), rows, n), "x, g or dx is too short");
  args.check(static_cast<int64_t>(rl) >= rows && (!w || static_cast<int64_t>(wl) >= n) && (!dw || static_cast<int64_t>(dwl) >= n),
             "rstd, weight or dWeight is too short");
  if (args.failed()) return args.fail();
  if (rows == 0 || n == 0) return nullptr;
  [[maybe_unused]] const bool avx = simd_enabled();
  const int slots = slots_for(rows, n);
  std::vector<std::vector<double>> pw(dw ? slots : 0, std::vector<double>(n, 0.0));
  for_slots(rows, slots, [&](int s, int64_t r0, int64_t r1) {
    double* acc = dw ? pw[s].data() : nullptr;
    for (int64_t r = r0; r < r1; r++) {
#if SHRINK_X86
      if (avx) rms_bwd_row_avx2(x + r * n, w, rstd[r], g + r * n, n, dx + r * n, acc);
      else
#endif
      rms_bwd_row_portable(x + r * n, w, rstd[r], g + r * n, n, dx + r * n, acc);
    }
  });
  add_partials(dw, pw, n);
  return nullptr;
}

// ---- embedding

// Checks every index against [0, V). Returns false (RangeError recorded) on the first bad one.
bool check_indices(Args& args, const int32_t* idx, size_t n, int64_t V) {
  for (size_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= V) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "index %d at position %zu is outside [0, %lld)", idx[i], i, static_cast<long long>(V));
      return args.check(false, buf);
    }
  return true;
}

// embedding(weight, idx, dim, out): out[i, :] = weight[idx[i], :]
napi_value Embedding(napi_env env, napi_callback_info info) {
  Args args(env, info, "embedding");
  size_t wl, il, ol;
  const float* w = args.f32(0, wl);
  const int32_t* idx = args.i32(1, il);
  const int64_t dim = args.int64(2);
  float* out = args.f32(3, ol);
  if (args.failed() || !args.check(dim >= 0 && holds(ol, static_cast<int64_t>(il), dim), "out is too short")) return args.fail();
  if (dim == 0 || il == 0) return nullptr;
  if (!check_indices(args, idx, il, static_cast<int64_t>(wl) / dim)) return args.fail();
  par_for(static_cast<int64_t>(il), row_grain(dim), [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; i++) std::memcpy(out + i * dim, w + static_cast<int64_t>(idx[i]) * dim, static_cast<size_t>(dim) * 4);
  });
  return nullptr;
}

ALWAYS_INLINE void add_row(float* dst, const float* src, int64_t n) {
  for (int64_t c = 0; c < n; c++) dst[c] += src[c];
}

// embeddingBackward(g, idx, dim, dWeight): dWeight[idx[i], :] += g[i, :]
napi_value EmbeddingBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "embeddingBackward");
  size_t gl, il, wl;
  const float* g = args.f32(0, gl);
  const int32_t* idx = args.i32(1, il);
  const int64_t dim = args.int64(2);
  float* dw = args.f32(3, wl);
  if (args.failed() || !args.check(dim >= 0 && holds(gl, static_cast<int64_t>(il), dim), "g is too short")) return args.fail();
  if (dim == 0 || il == 0) return nullptr;
  if (!check_indices(args, idx, il, static_cast<int64_t>(wl) / dim)) return args.fail();
  const int64_t n = static_cast<int64_t>(il);
  const int nt = num_threads();
  if (nt <= 1 || n * dim < 65536) {
    for (int64_t i = 0; i < n; i++) add_row(dw + static_cast<int64_t>(idx[i]) * dim, g + i * dim, dim);
    return nullptr;
  }
  if (dim >= 256) {  // wide rows: split the columns, in blocks of 32 floats (128 B) so threads never share a line
    const int64_t blocks = (dim + 31) / 32;
    par_for(blocks, 1, [&](int64_t b0, int64_t b1) {
      const int64_t c0 = b0 * 32, c1 = std::min(dim, b1 * 32);
      for (int64_t i = 0; i < n; i++) add_row(dw + static_cast<int64_t>(idx[i]) * dim + c0, g + i * dim + c0, c1 - c0);
    });
    return nullptr;
  }
  // narrow rows: slot s owns the destination rows with idx % nt == s
  par_for(nt, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t i = 0; i < n; i++) {
      const int64_t row = idx[i];
      if (row % nt >= s0 && row % nt < s1) add_row(dw + row * dim, g + i * dim, dim);
    }
  });
  return nullptr;
}

// ---- cross-entropy

// Targets must be in [0, V) or equal ignoreIndex.
bool check_targets(Args& args, const int32_t* t, int64_t rows, int64_t V, int64_t ignore) {
  for (int64_t r = 0; r < rows; r++)
    if (t[r] != ignore && (t[r] < 0 || t[r] >= V)) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "target %d of row %lld is outside [0, %lld)", t[r], static_cast<long long>(r), static_cast<long long>(V));
      return args.check(false, buf);
    }
  return true;
}

// crossEntropy(logits, target, rows, V, ignoreIndex, labelSmoothing, loss, lse)
napi_value CrossEntropy(napi_env env, napi_callback_info info) {
  Args args(env, info, "crossEntropy");
  size_t xl, tl, ll, sl;
  const float* x = args.f32(0, xl);
  const int32_t* t = args.i32(1, tl);
  const int64_t rows = args.int64(2), V = args.int64(3), ignore = args.int64(4);
  const double eps = args.num(5);
  float* loss = args.f32(6, ll);
  float* lse = args.f32(7, sl);
  if (args.failed()) return args.fail();
  args.check(V >= 1 && holds(xl, rows, V), "logits is too short");
  args.check(static_cast<int64_t>(std::min({tl, ll, sl})) >= rows, "target, loss or lse is too short");
  if (args.failed() || !check_targets(args, t, rows, V, ignore)) return args.fail();
  [[maybe_unused]] const bool avx = simd_enabled();
  par_for(rows, row_grain(V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * V;
      double s, sx = 0;
      float mx;
#if SHRINK_X86
      if (avx) {
        mx = max_avx2(xr, V);
        if (mx == kNegInf) mx = 0;
        s = sum_exp_avx2(xr, V, mx, nullptr);
        if (eps > 0) sx = sum_avx2(xr, V);
      } else
#endif
      {
        mx = kNegInf;
        for (int64_t i = 0; i < V; i++) mx = xr[i] > mx ? xr[i] : mx;
        if (mx == kNegInf) mx = 0;
        s = 0;
        for (int64_t i = 0; i < V; i++) s += std::exp(static_cast<double>(xr[i]) - mx);
        if (eps > 0)
          for (int64_t i = 0; i < V; i++) sx += xr[i];
      }
      const double l = std::log(s) + mx;
      lse[r] = static_cast<float>(l);
      if (t[r] == ignore) loss[r] = 0.f;
      else loss[r] = static_cast<float>((1 - eps) * (l - xr[t[r]]) + (eps > 0 ? eps * (l - sx / V) : 0.0));
    }
  });
  return nullptr;
}

// out = gr·(e^(x − l) − u) over a row, e^(x − l) from hi + lo = x − l.
#if SHRINK_X86
SHRINK_AVX2_FN void ce_bwd_row_avx2(const float* x, int64_t V, float l, float gr, float u, float* o) {
  const __m256 lv = _mm256_set1_ps(l), uv = _mm256_set1_ps(u), gv = _mm256_set1_ps(gr);
  int64_t i = 0;
  for (; i + 8 <= V; i += 8) {
    __m256 lo;
    const __m256 hi = vm::two_diff(_mm256_loadu_ps(x + i), lv, lo);
    _mm256_storeu_ps(o + i, _mm256_mul_ps(gv, _mm256_sub_ps(vm::exp_corr(hi, lo), uv)));
  }
  if (i < V) {
    __m256 lo;
    const __m256 hi = vm::two_diff(vm::load_tail(x + i, V - i), lv, lo);
    vm::store_tail(o + i, V - i, _mm256_mul_ps(gv, _mm256_sub_ps(vm::exp_corr(hi, lo), uv)));
  }
}
#endif  // SHRINK_X86

// crossEntropyBackward(logits, target, lse, gRow, rows, V, ignoreIndex, labelSmoothing, out)
napi_value CrossEntropyBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "crossEntropyBackward");
  size_t xl, tl, sl, gl, ol;
  const float* x = args.f32(0, xl);
  const int32_t* t = args.i32(1, tl);
  const float* lse = args.f32(2, sl);
  const float* gRow = args.f32(3, gl);
  const int64_t rows = args.int64(4), V = args.int64(5), ignore = args.int64(6);
  const double eps = args.num(7);
  float* out = args.f32(8, ol);
  if (args.failed()) return args.fail();
  args.check(V >= 1 && holds(std::min(xl, ol), rows, V), "logits or out is too short");
  args.check(static_cast<int64_t>(std::min({tl, sl, gl})) >= rows, "target, lse or gRow is too short");
  if (args.failed() || !check_targets(args, t, rows, V, ignore)) return args.fail();
  [[maybe_unused]] const bool avx = simd_enabled();
  const double u = eps / V;
  par_for(rows, row_grain(V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * V;
      float* o = out + r * V;
      if (t[r] == ignore) {
        std::memset(o, 0, static_cast<size_t>(V) * 4);
        continue;
      }
      const double gr = gRow[r], l = lse[r];
#if SHRINK_X86
      if (avx) ce_bwd_row_avx2(xr, V, static_cast<float>(l), static_cast<float>(gr), static_cast<float>(u), o);
      else
#endif
        for (int64_t i = 0; i < V; i++) o[i] = static_cast<float>(gr * (std::exp(xr[i] - l) - u));
      // the target's entry cancels (softmax ≈ 1 when the prediction is right): redo it in double
      o[t[r]] = static_cast<float>(gr * (std::exp(xr[t[r]] - l) - u - (1 - eps)));
    }
  });
  return nullptr;
}

// ---- AdamW

ALWAYS_INLINE void adamw_body(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float eps, float decay, float step, float sbc2) {
  const float c1 = 1.f - b1, c2 = 1.f - b2, inv_sbc2 = 1.f / sbc2;
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = b1 * m[i] + c1 * gi;
    const float vi = b2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (std::sqrt(vi) * inv_sbc2 + eps);
  }
}
void adamw_portable(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float eps, float decay, float step, float sbc2) {
  adamw_body(p, g, m, v, n, b1, b2, eps, decay, step, sbc2);
}
#if SHRINK_X86
SHRINK_AVX2_FN void adamw_avx2(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float eps, float decay, float step, float sbc2) {
  adamw_body(p, g, m, v, n, b1, b2, eps, decay, step, sbc2);
}
#endif  // SHRINK_X86

// adamw(p, g, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2): in place over p.length elements
napi_value AdamW(napi_env env, napi_callback_info info) {
  Args args(env, info, "adamw");
  size_t pl, gl, ml, vl;
  float* p = args.f32(0, pl);
  const float* g = args.f32(1, gl);
  float* m = args.f32(2, ml);
  float* v = args.f32(3, vl);
  const double lr = args.num(4), b1 = args.num(5), b2 = args.num(6), eps = args.num(7), wd = args.num(8), bc1 = args.num(9), bc2 = args.num(10);
  if (args.failed() || !args.check(std::min({gl, ml, vl}) >= pl, "g, m or v is shorter than p")) return args.fail();
  const int64_t n = static_cast<int64_t>(pl);
  const float decay = static_cast<float>(1 - lr * wd), step = static_cast<float>(lr / bc1), sbc2 = static_cast<float>(std::sqrt(bc2));
  const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2), feps = static_cast<float>(eps);
  [[maybe_unused]] const bool avx = simd_enabled();
  par_for(n, 1 << 15, [&](int64_t a, int64_t b) {
#if SHRINK_X86
    if (avx) adamw_avx2(p + a, g + a, m + a, v + a, b - a, fb1, fb2, feps, decay, step, sbc2);
    else
#endif
    adamw_portable(p + a, g + a, m + a, v + a, b - a, fb1, fb2, feps, decay, step, sbc2);
  });
  return nullptr;
}

// ---- dropout
// dropout(x, out, state, threshold, scale): out[i] = u32 ≥ threshold ? x[i]·scale : 0 over out.length elements, one
// xoshiro128** draw per element from state (Int32Array(4), read and written back), the exact stream of
// Generator.nextU32 in src/tensor/random.ts. threshold is in [0, 2³²]; the draws are sequential (one thread).
napi_value Dropout(napi_env env, napi_callback_info info) {
  Args args(env, info, "dropout");
  size_t xl, ol, sl;
  const float* x = args.f32(0, xl);
  float* out = args.f32(1, ol);
  int32_t* st = args.i32(2, sl);
  const double thr = args.num(3), scale = args.num(4);
  if (args.failed() || !args.check(xl >= ol, "x is shorter than out") || !args.check(sl >= 4, "state needs 4 words") ||
      !args.check(thr >= 0 && thr <= 4294967296.0, "threshold out of range"))
    return args.fail();
  uint32_t s0 = static_cast<uint32_t>(st[0]), s1 = static_cast<uint32_t>(st[1]), s2 = static_cast<uint32_t>(st[2]), s3 = static_cast<uint32_t>(st[3]);
  const uint64_t th = static_cast<uint64_t>(thr);
  const float sc = static_cast<float>(scale);
  const int64_t n = static_cast<int64_t>(ol);
  auto rotl = [](uint32_t v, int k) { return (v << k) | (v >> (32 - k)); };
  for (int64_t i = 0; i < n; i++) {
    const uint32_t r = rotl(s1 * 5u, 7) * 9u;
    const uint32_t t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    out[i] = static_cast<uint64_t>(r) >= th ? x[i] * sc : 0.0f;
  }
  st[0] = static_cast<int32_t>(s0);
  st[1] = static_cast<int32_t>(s1);
  st[2] = static_cast<int32_t>(s2);
  st[3] = static_cast<int32_t>(s3);
  return nullptr;
}

}  // namespace

void init_nn(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "softmax", denormal_guarded<Softmax>);
  export_fn(env, exports, "softmaxBackward", denormal_guarded<SoftmaxBackward>);
  export_fn(env, exports, "layerNorm", denormal_guarded<LayerNorm>);
  export_fn(env, exports, "layerNormBackward", denormal_guarded<LayerNormBackward>);
  export_fn(env, exports, "rmsNorm", denormal_guarded<RmsNorm>);
  export_fn(env, exports, "rmsNormBackward", denormal_guarded<RmsNormBackward>);
  export_fn(env, exports, "embedding", denormal_guarded<Embedding>);
  export_fn(env, exports, "embeddingBackward", denormal_guarded<EmbeddingBackward>);
  export_fn(env, exports, "crossEntropy", denormal_guarded<CrossEntropy>);
  export_fn(env, exports, "crossEntropyBackward", denormal_guarded<CrossEntropyBackward>);
  export_fn(env, exports, "adamw", denormal_guarded<AdamW>);
  export_fn(env, exports, "dropout", denormal_guarded<Dropout>);
  register_kernel("nn", [] { return simd_enabled() ? "avx2" : "portable"; });
}

}  // namespace shrink
