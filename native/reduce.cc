// Reductions over the middle axis of an (outer, r, inner) block: sum, max, min, prod, with first-index argmax.
// Codes follow REDUCE_OPS in src/backend/backend.ts. Sums accumulate in double (the ref backend does too), so
// results agree to float rounding. Work is split over outer rows, or over inner columns when outer is small.
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"
#include "pool.h"

namespace shrink {
namespace {

enum { R_SUM, R_MAX, R_MIN, R_PROD };

#define CLONES __attribute__((target_clones("avx2,fma", "default")))

// One outer row: out[i] = op_j x[j*inner + i] for i in [i0, i1).
CLONES void reduce_block(int op, const float* x, int64_t r, int64_t inner, int64_t i0, int64_t i1, float* out, int32_t* idx) {
  if (op == R_SUM || op == R_PROD) {
    if (inner == 1) {  // row reduction: 4 double accumulators
      double s0 = op == R_SUM ? 0 : 1, s1 = s0, s2 = s0, s3 = s0;
      int64_t j = 0;
      if (op == R_SUM) {
        for (; j + 4 <= r; j += 4) s0 += x[j], s1 += x[j + 1], s2 += x[j + 2], s3 += x[j + 3];
        for (; j < r; j++) s0 += x[j];
        out[0] = static_cast<float>((s0 + s1) + (s2 + s3));
      } else {
        for (; j < r; j++) s0 *= x[j];
        out[0] = static_cast<float>(s0);
      }
      return;
    }
    std::vector<double> acc(i1 - i0, op == R_SUM ? 0.0 : 1.0);
    for (int64_t j = 0; j < r; j++) {
      const float* row = x + j * inner + i0;
      if (op == R_SUM)
        for (int64_t i = 0; i < i1 - i0; i++) acc[i] += row[i];
      else
        for (int64_t i = 0; i < i1 - i0; i++) acc[i] *= row[i];
    }
    for (int64_t i = i0; i < i1; i++) out[i] = static_cast<float>(acc[i - i0]);
    return;
  }
  const bool mx = op == R_MAX;
  for (int64_t i = i0; i < i1; i++) {
    float best = r > 0 ? x[i] : (mx ? -INFINITY : INFINITY);
    int32_t k = 0;
    for (int64_t j = 1; j < r; j++) {
      float v = x[j * inner + i];
      if (best != best) break;  // NaN propagates; the first NaN wins
      if (v != v || (mx ? v > best : v < best)) best = v, k = static_cast<int32_t>(j);
    }
    out[i] = best;
    if (idx) idx[i] = k;
  }
}

// reduce(code, x, outer, r, inner, out, idx|null)
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  int op = info[0].As<Napi::Number>().Int32Value();
  const float* x = info[1].As<Napi::Float32Array>().Data();
  int64_t outer = info[2].As<Napi::Number>().Int64Value(), r = info[3].As<Napi::Number>().Int64Value(),
          inner = info[4].As<Napi::Number>().Int64Value();
  float* out = info[5].As<Napi::Float32Array>().Data();
  int32_t* idx = info[6].IsTypedArray() ? info[6].As<Napi::Int32Array>().Data() : nullptr;
  const int64_t work = outer * r * inner;
  if (outer >= 2 || inner < 1024) {
    parallel_for(outer, std::max<int64_t>(1, 65536 / std::max<int64_t>(r * inner, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) reduce_block(op, x + o * r * inner, r, inner, 0, inner, out + o * inner, idx ? idx + o * inner : nullptr);
    });
  } else {  // one wide block: split the columns
    parallel_for(inner, std::max<int64_t>(64, 65536 / std::max<int64_t>(r, 1)), [&](int64_t i0, int64_t i1) { reduce_block(op, x, r, inner, i0, i1, out, idx); });
  }
  (void)work;
  return info.Env().Undefined();
}

}  // namespace

void init_reduce(Napi::Env env, Napi::Object exports) { exports.Set("reduce", Napi::Function::New(env, Reduce)); }

}  // namespace shrink
