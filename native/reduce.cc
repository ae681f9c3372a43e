// Reductions over the middle axis of an (outer, r, inner) contiguous block: sum, max, min, prod (codes follow
// REDUCE_OPS in src/backend/backend.ts), with the index of the first extreme element for max/min.
//
// Semantics match the `ref` backend: sums and products accumulate in double (so results agree to float rounding);
// max/min keep the first occurrence of the extreme value, and a NaN wins (the first NaN, once seen, stays).
//   inner == 1 (row reductions): AVX2 loops, 16 floats per step, converted to double for sums.
//   inner > 1 (column reductions): rows are walked in memory order over tiles of ≤ 512 columns, with the running
//     results in a small stack buffer, so every load is contiguous.
// Work is split over (outer × column tiles); a single long row (sum of a whole tensor) is split into chunks whose
// partial results are combined in order.
#include <cmath>
#include <cstdint>
#include <limits>

#include "args.h"
#include "common.h"
#include "pool.h"
#include "vecmath.h"

namespace shrink {
namespace {

enum { R_SUM, R_MAX, R_MIN, R_PROD, R_COUNT };
#define ALWAYS_INLINE inline __attribute__((always_inline))

constexpr int64_t kTile = 512;     // columns per tile for inner > 1
constexpr int64_t kGrain = 65536;  // elements of input per task

// Running extreme over a sequence: the `ref` rule (first NaN wins and sticks; otherwise strictly better replaces).
struct Best {
  float v;
  int64_t i;
};
ALWAYS_INLINE bool better(bool mx, float v, float best) { return best == best && (v != v || (mx ? v > best : v < best)); }

// ---- inner == 1

ALWAYS_INLINE double sum_row_scalar(const float* x, int64_t r) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t j = 0;
  for (; j + 4 <= r; j += 4) s0 += x[j], s1 += x[j + 1], s2 += x[j + 2], s3 += x[j + 3];
  for (; j < r; j++) s0 += x[j];
  return (s0 + s1) + (s2 + s3);
}
#if SHRINK_X86
SHRINK_AVX2_FN double sum_row_avx2(const float* x, int64_t r) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t j = 0;
  for (; j + 16 <= r; j += 16) {
    vm::add_pd(a0, a1, _mm256_loadu_ps(x + j));
    vm::add_pd(a2, a3, _mm256_loadu_ps(x + j + 8));
  }
  for (; j + 8 <= r; j += 8) vm::add_pd(a0, a1, _mm256_loadu_ps(x + j));
  if (j < r) vm::add_pd(a2, a3, vm::load_tail(x + j, r - j));
  return vm::hsum(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
}
#endif  // SHRINK_X86

ALWAYS_INLINE double prod_row(const float* x, int64_t r) {
  double p0 = 1, p1 = 1, p2 = 1, p3 = 1;
  int64_t j = 0;
  for (; j + 4 <= r; j += 4) p0 *= x[j], p1 *= x[j + 1], p2 *= x[j + 2], p3 *= x[j + 3];
  for (; j < r; j++) p0 *= x[j];
  return (p0 * p1) * (p2 * p3);
}

// First extreme of x[0, r), r ≥ 1; indices are relative to x.
Best extreme_row_scalar(bool mx, const float* x, int64_t r) {
  Best b{x[0], 0};
  for (int64_t j = 1; j < r; j++)
    if (better(mx, x[j], b.v)) b = {x[j], j};
  return b;
}
// Eight lanes each keep their own first extreme (same NaN rule), then the lanes are merged: a NaN lane with the
// smallest index wins, else the extreme value with the smallest index.
#if SHRINK_X86
SHRINK_AVX2_FN Best extreme_row_avx2(bool mx, const float* x, int64_t r) {
  if (r < 16) return extreme_row_scalar(mx, x, r);
  __m256 best = _mm256_loadu_ps(x);
  __m256i bi = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), cur = bi;
  const __m256i step = _mm256_set1_epi32(8);
  int64_t j = 8;
  for (; j + 8 <= r; j += 8) {
    const __m256 v = _mm256_loadu_ps(x + j);
    cur = _mm256_add_epi32(cur, step);
    const __m256 strict = mx ? _mm256_cmp_ps(v, best, _CMP_GT_OQ) : _mm256_cmp_ps(v, best, _CMP_LT_OQ);
    const __m256 nan_new = _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(best, best, _CMP_ORD_Q));
    const __m256 m = _mm256_and_ps(_mm256_or_ps(strict, nan_new), _mm256_cmp_ps(best, best, _CMP_ORD_Q));
    best = _mm256_blendv_ps(best, v, m);
    bi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bi), _mm256_castsi256_ps(cur), m));
  }
  alignas(32) float bv[8];
  alignas(32) int32_t bx[8];
  _mm256_store_ps(bv, best);
  _mm256_store_si256(reinterpret_cast<__m256i*>(bx), bi);
  Best b{bv[0], bx[0]};
  bool nan = bv[0] != bv[0];
  for (int k = 1; k < 8; k++) {
    const bool kn = bv[k] != bv[k];
    if (nan) {
      if (kn && bx[k] < b.i) b = {bv[k], bx[k]};
    } else if (kn) {
      nan = true;
      b = {bv[k], bx[k]};
    } else if ((mx ? bv[k] > b.v : bv[k] < b.v) || (bv[k] == b.v && bx[k] < b.i)) {
      b = {bv[k], bx[k]};
    }
  }
  b.v = x[b.i];  // the sign of a zero as stored at that index
  for (; j < r; j++)
    if (better(mx, x[j], b.v)) b = {x[j], j};
  return b;
}
#endif  // SHRINK_X86

// ---- inner > 1: columns [i0, i1) (≤ kTile) of one outer block

ALWAYS_INLINE void columns_body(int op, const float* x, int64_t r, int64_t inner, int64_t i0, int64_t i1, float* out, int32_t* idx) {
  const int64_t w = i1 - i0;
  if (op == R_SUM || op == R_PROD) {
    double acc[kTile];
    const double init = op == R_SUM ? 0.0 : 1.0;
    for (int64_t i = 0; i < w; i++) acc[i] = init;
    for (int64_t j = 0; j < r; j++) {
      const float* row = x + j * inner + i0;
      if (op == R_SUM)
        for (int64_t i = 0; i < w; i++) acc[i] += row[i];
      else
        for (int64_t i = 0; i < w; i++) acc[i] *= row[i];
    }
    for (int64_t i = 0; i < w; i++) out[i0 + i] = static_cast<float>(acc[i]);
    return;
  }
  const bool mx = op == R_MAX;
  float best[kTile];
  int32_t bi[kTile];
  for (int64_t i = 0; i < w; i++) best[i] = x[i0 + i], bi[i] = 0;
  for (int64_t j = 1; j < r; j++) {
    const float* row = x + j * inner + i0;
    const int32_t jj = static_cast<int32_t>(j);
    for (int64_t i = 0; i < w; i++) {
      const float v = row[i], b = best[i];
      const bool take = (b == b) & ((v != v) | (mx ? v > b : v < b));
      best[i] = take ? v : b;
      bi[i] = take ? jj : bi[i];
    }
  }
  for (int64_t i = 0; i < w; i++) out[i0 + i] = best[i];
  if (idx)
    for (int64_t i = 0; i < w; i++) idx[i0 + i] = bi[i];
}
void columns_portable(int op, const float* x, int64_t r, int64_t inner, int64_t i0, int64_t i1, float* out, int32_t* idx) {
  columns_body(op, x, r, inner, i0, i1, out, idx);
}
#if SHRINK_X86
SHRINK_AVX2_FN void columns_avx2(int op, const float* x, int64_t r, int64_t inner, int64_t i0, int64_t i1, float* out, int32_t* idx) {
  columns_body(op, x, r, inner, i0, i1, out, idx);
}
#endif  // SHRINK_X86

// One outer row with inner == 1 over the sub-range [j0, j1) of its r elements: a partial result.
struct Partial {
  double s;  // sum / product
  Best b;    // max / min
};
Partial row_partial(int op, [[maybe_unused]] bool avx, const float* x, int64_t j0, int64_t j1) {
  Partial p{0, {0, 0}};
  if (op == R_SUM) {
#if SHRINK_X86
    if (avx) p.s = sum_row_avx2(x + j0, j1 - j0);
    else
#endif
      p.s = sum_row_scalar(x + j0, j1 - j0);
  } else if (op == R_PROD) {
    p.s = prod_row(x + j0, j1 - j0);
  } else {
#if SHRINK_X86
    if (avx) p.b = extreme_row_avx2(op == R_MAX, x + j0, j1 - j0);
    else
#endif
      p.b = extreme_row_scalar(op == R_MAX, x + j0, j1 - j0);
    p.b.i += j0;
  }
  return p;
}

// Over an empty axis (as `ref`): sum 0, prod 1, max −inf, min +inf (index 0). The op layer rejects empty max/min.
float empty_value(int op) {
  return op == R_SUM ? 0.f : op == R_PROD ? 1.f : op == R_MAX ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
}

// reduce(op, x, outer, r, inner, out, idx | null)
napi_value Reduce(napi_env env, napi_callback_info info) {
  Args args(env, info, "reduce");
  size_t xl, ol, il;
  const int op = static_cast<int>(args.int64(0));
  const float* x = args.f32(1, xl);
  const int64_t outer = args.int64(2), r = args.int64(3), inner = args.int64(4);
  float* out = args.f32(5, ol);
  int32_t* idx = args.i32_opt(6, il);
  if (args.failed()) return args.fail();
  args.check(op >= 0 && op < R_COUNT, "unknown reduce op");
  args.check(outer >= 0 && r >= 0 && inner >= 0 && r < (int64_t{1} << 31), "negative size");
  if (args.failed()) return args.fail();
  args.check(holds3(xl, outer, r, inner) && holds(ol, outer, inner), "x or out is too short");
  args.check(!idx || holds(il, outer, inner), "idx is too short");
  if (args.failed()) return args.fail();
  const int64_t n_out = outer * inner;  // ≤ ol: no overflow
  if (n_out == 0) return nullptr;
  [[maybe_unused]] const bool avx = simd_enabled();

  if (inner == 1) {
    const int nt = num_threads();
    if (outer < nt && r >= 2 * kGrain && nt > 1) {
      // few long rows: split each row into chunks, combine the partials in order
      for (int64_t o = 0; o < outer; o++) {
        const float* xo = x + o * r;
        const int chunks = static_cast<int>(std::min<int64_t>(nt, r / kGrain));
        Partial parts[64];
        const int nc = std::min(chunks, 64);
        par_for(nc, 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; c++) parts[c] = row_partial(op, avx, xo, r * c / nc, r * (c + 1) / nc);
        });
        Partial acc = parts[0];
        for (int c = 1; c < nc; c++) {
          if (op == R_SUM) acc.s += parts[c].s;
          else if (op == R_PROD) acc.s *= parts[c].s;
          else if (better(op == R_MAX, parts[c].b.v, acc.b.v)) acc.b = parts[c].b;
        }
        if (op == R_SUM || op == R_PROD) out[o] = static_cast<float>(acc.s);
        else {
          out[o] = acc.b.v;
          if (idx) idx[o] = static_cast<int32_t>(acc.b.i);
        }
      }
      return nullptr;
    }
    par_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(r, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) {
        if (r == 0) {
          out[o] = empty_value(op);
          if (idx) idx[o] = 0;
          continue;
        }
        const Partial p = row_partial(op, avx, x + o * r, 0, r);
        if (op == R_SUM || op == R_PROD) out[o] = static_cast<float>(p.s);
        else {
          out[o] = p.b.v;
          if (idx) idx[o] = static_cast<int32_t>(p.b.i);
        }
      }
    });
    return nullptr;
  }

  const int64_t tiles = (inner + kTile - 1) / kTile;
  const int64_t per_item = r * std::min(inner, kTile);
  par_for(outer * tiles, std::max<int64_t>(1, kGrain / std::max<int64_t>(per_item, 1)), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t o = t / tiles, i0 = (t % tiles) * kTile, i1 = std::min(inner, i0 + kTile);
      const float* xo = x + o * r * inner;
      float* oo = out + o * inner;
      int32_t* io = idx ? idx + o * inner : nullptr;
      if (r == 0) {
        for (int64_t i = i0; i < i1; i++) oo[i] = empty_value(op);
        if (io)
          for (int64_t i = i0; i < i1; i++) io[i] = 0;
        continue;
      }
#if SHRINK_X86
      if (avx) columns_avx2(op, xo, r, inner, i0, i1, oo, io);
      else
#endif
      columns_portable(op, xo, r, inner, i0, i1, oo, io);
    }
  });
  return nullptr;
}

}  // namespace

void init_reduce(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "reduce", denormal_guarded<Reduce>);
  register_kernel("reduce", [] { return simd_enabled() ? "avx2" : "portable"; });
}

}  // namespace shrink
