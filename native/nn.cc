// Fused row-wise kernels: softmax / log-softmax (forward and backward), LayerNorm, RMSNorm (forward and
// backward), embedding gather and scatter-add, cross-entropy (forward and backward), and the AdamW update.
// Semantics are those documented on the Backend interface (src/backend/backend.ts); the `ref` backend is the
// spec these are tested against. Row statistics accumulate in double. Rows are split over the thread pool;
// parameter gradients (LayerNorm weight/bias, embedding rows) are reduced per thread, then summed.
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"
#include "pool.h"

namespace shrink {
namespace {

#define CLONES __attribute__((target_clones("avx2,fma", "default")))

inline float* f32(const Napi::Value& v) { return v.IsTypedArray() ? v.As<Napi::Float32Array>().Data() : nullptr; }
inline int64_t i64(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }
inline double num(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }

int64_t row_grain(int64_t n) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)); }

// Like parallel_for, but fn also receives the chunk's slot (0..nslots-1) so it can own a partial-sum buffer.
// Returns the number of slots used.
template <typename F>
int parallel_slots(int64_t n, int64_t grain, F fn) {
  if (n <= 0) return 0;
  int64_t chunks = (n + grain - 1) / grain;
  int nt = static_cast<int>(std::min<int64_t>(chunks, num_threads()));
  if (nt <= 1) {
    fn(0, 0, n);
    return 1;
  }
  parallel_run(nt, [&](int tid, int total) {
    int64_t b = n * tid / total, e = n * (tid + 1) / total;
    if (b < e) fn(tid, b, e);
  });
  return nt;
}

// ---- softmax

CLONES void softmax_row(const float* x, float* y, int64_t n, bool log) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (mx == -INFINITY) mx = 0;  // an all -inf row gives 0/0 = NaN, as torch
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += std::exp(x[i] - mx);
  if (log) {
    float ls = static_cast<float>(std::log(s)) + mx;
    for (int64_t i = 0; i < n; i++) y[i] = x[i] - ls;
  } else {
    float inv = static_cast<float>(1.0 / s);
    for (int64_t i = 0; i < n; i++) y[i] = std::exp(x[i] - mx) * inv;
  }
}

// softmax(x, rows, n, out, log)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const float* x = f32(info[0]);
  int64_t rows = i64(info[1]), n = i64(info[2]);
  float* y = f32(info[3]);
  bool log = info[4].ToBoolean().Value();
  parallel_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) softmax_row(x + r * n, y + r * n, n, log);
  });
  return info.Env().Undefined();
}

// softmaxBackward(y, g, rows, n, out, log)
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  const float *y = f32(info[0]), *g = f32(info[1]);
  int64_t rows = i64(info[2]), n = i64(info[3]);
  float* out = f32(info[4]);
  bool log = info[5].ToBoolean().Value();
  parallel_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float *yr = y + r * n, *gr = g + r * n;
      float* o = out + r * n;
      double s = 0;
      if (log) {
        for (int64_t i = 0; i < n; i++) s += gr[i];
        float sf = static_cast<float>(s);
        for (int64_t i = 0; i < n; i++) o[i] = gr[i] - std::exp(yr[i]) * sf;
      } else {
        for (int64_t i = 0; i < n; i++) s += static_cast<double>(gr[i]) * yr[i];
        float sf = static_cast<float>(s);
        for (int64_t i = 0; i < n; i++) o[i] = yr[i] * (gr[i] - sf);
      }
    }
  });
  return info.Env().Undefined();
}

// ---- LayerNorm / RMSNorm

// layerNorm(x, weight|null, bias|null, rows, n, eps, out, mean, rstd)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  const float *x = f32(info[0]), *w = f32(info[1]), *b = f32(info[2]);
  int64_t rows = i64(info[3]), n = i64(info[4]);
  double eps = num(info[5]);
  float *out = f32(info[6]), *mean = f32(info[7]), *rstd = f32(info[8]);
  parallel_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * n;
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += xr[i];
      double mu = s / n, v = 0;
      for (int64_t i = 0; i < n; i++) {
        double d = xr[i] - mu;
        v += d * d;
      }
      float m = static_cast<float>(mu), rs = static_cast<float>(1.0 / std::sqrt(v / n + eps));
      mean[r] = m;
      rstd[r] = rs;
      float* o = out + r * n;
      for (int64_t i = 0; i < n; i++) {
        float yv = (xr[i] - m) * rs;
        if (w) yv *= w[i];
        if (b) yv += b[i];
        o[i] = yv;
      }
    }
  });
  return info.Env().Undefined();
}

// Per-thread partial sums for parameter gradients, added into `dst` at the end.
struct Partials {
  std::vector<std::vector<double>> parts;
  Partials(int threads, int64_t n, int k) : parts(threads, std::vector<double>(static_cast<size_t>(n) * k, 0.0)) {}
};

// layerNormBackward(x, weight|null, mean, rstd, g, rows, n, dx, dWeight|null, dBias|null)
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  const float *x = f32(info[0]), *w = f32(info[1]), *mean = f32(info[2]), *rstd = f32(info[3]), *g = f32(info[4]);
  int64_t rows = i64(info[5]), n = i64(info[6]);
  float *dx = f32(info[7]), *dw = f32(info[8]), *db = f32(info[9]);
  const int T = num_threads();
  std::vector<std::vector<double>> pw(T), pb(T);
  int used = parallel_slots(rows, row_grain(n), [&](int slot, int64_t r0, int64_t r1) {
    if (dw) pw[slot].assign(n, 0.0);
    if (db) pb[slot].assign(n, 0.0);
    for (int64_t r = r0; r < r1; r++) {
      const float *xr = x + r * n, *gr = g + r * n;
      float mu = mean[r], rs = rstd[r];
      double sd = 0, sdx = 0;
      for (int64_t i = 0; i < n; i++) {
        float xh = (xr[i] - mu) * rs;
        float d = gr[i] * (w ? w[i] : 1.f);
        sd += d;
        sdx += static_cast<double>(d) * xh;
        if (dw) pw[slot][i] += static_cast<double>(gr[i]) * xh;
        if (db) pb[slot][i] += gr[i];
      }
      float md = static_cast<float>(sd / n), mdx = static_cast<float>(sdx / n);
      float* o = dx + r * n;
      for (int64_t i = 0; i < n; i++) {
        float xh = (xr[i] - mu) * rs;
        float d = gr[i] * (w ? w[i] : 1.f);
        o[i] = rs * (d - md - xh * mdx);
      }
    }
  });
  for (int t = 0; t < used; t++) {
    if (dw && !pw[t].empty()) for (int64_t i = 0; i < n; i++) dw[i] += static_cast<float>(pw[t][i]);
    if (db && !pb[t].empty()) for (int64_t i = 0; i < n; i++) db[i] += static_cast<float>(pb[t][i]);
  }
  return info.Env().Undefined();
}

// rmsNorm(x, weight|null, rows, n, eps, out, rstd)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  const float *x = f32(info[0]), *w = f32(info[1]);
  int64_t rows = i64(info[2]), n = i64(info[3]);
  double eps = num(info[4]);
  float *out = f32(info[5]), *rstd = f32(info[6]);
  parallel_for(rows, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * n;
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += static_cast<double>(xr[i]) * xr[i];
      float rs = static_cast<float>(1.0 / std::sqrt(s / n + eps));
      rstd[r] = rs;
      float* o = out + r * n;
      for (int64_t i = 0; i < n; i++) o[i] = xr[i] * rs * (w ? w[i] : 1.f);
    }
  });
  return info.Env().Undefined();
}

// rmsNormBackward(x, weight|null, rstd, g, rows, n, dx, dWeight|null)
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  const float *x = f32(info[0]), *w = f32(info[1]), *rstd = f32(info[2]), *g = f32(info[3]);
  int64_t rows = i64(info[4]), n = i64(info[5]);
  float *dx = f32(info[6]), *dw = f32(info[7]);
  const int T = num_threads();
  std::vector<std::vector<double>> pw(T);
  int used = parallel_slots(rows, row_grain(n), [&](int slot, int64_t r0, int64_t r1) {
    if (dw) pw[slot].assign(n, 0.0);
    for (int64_t r = r0; r < r1; r++) {
      const float *xr = x + r * n, *gr = g + r * n;
      float rs = rstd[r];
      double dot = 0;
      for (int64_t i = 0; i < n; i++) {
        dot += static_cast<double>(gr[i]) * (w ? w[i] : 1.f) * xr[i];
        if (dw) pw[slot][i] += static_cast<double>(gr[i]) * xr[i] * rs;
      }
      float c = static_cast<float>(static_cast<double>(rs) * rs * dot / n);
      float* o = dx + r * n;
      for (int64_t i = 0; i < n; i++) o[i] = rs * (gr[i] * (w ? w[i] : 1.f) - xr[i] * c);
    }
  });
  if (dw)
    for (int t = 0; t < used; t++)
      if (!pw[t].empty()) for (int64_t i = 0; i < n; i++) dw[i] += static_cast<float>(pw[t][i]);
  return info.Env().Undefined();
}

// ---- embedding

// embedding(weight, idx, dim, out)
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  const float* w = f32(info[0]);
  auto idxArr = info[1].As<Napi::Int32Array>();
  const int32_t* idx = idxArr.Data();
  int64_t n = static_cast<int64_t>(idxArr.ElementLength()), dim = i64(info[2]);
  float* out = f32(info[3]);
  parallel_for(n, row_grain(dim), [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; i++) std::copy(w + static_cast<int64_t>(idx[i]) * dim, w + (static_cast<int64_t>(idx[i]) + 1) * dim, out + i * dim);
  });
  return info.Env().Undefined();
}

// embeddingBackward(g, idx, dim, dWeight): split the columns so threads never write the same element.
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const float* g = f32(info[0]);
  auto idxArr = info[1].As<Napi::Int32Array>();
  const int32_t* idx = idxArr.Data();
  int64_t n = static_cast<int64_t>(idxArr.ElementLength()), dim = i64(info[2]);
  float* dw = f32(info[3]);
  parallel_for(dim, std::max<int64_t>(16, 65536 / std::max<int64_t>(n, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < n; i++) {
      float* dst = dw + static_cast<int64_t>(idx[i]) * dim;
      const float* src = g + i * dim;
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  });
  return info.Env().Undefined();
}

// ---- cross-entropy

// crossEntropy(logits, target, rows, V, ignoreIndex, eps, loss, lse)
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  const float* x = f32(info[0]);
  const int32_t* t = info[1].As<Napi::Int32Array>().Data();
  int64_t rows = i64(info[2]), V = i64(info[3]);
  int32_t ignore = static_cast<int32_t>(i64(info[4]));
  double eps = num(info[5]);
  float *loss = f32(info[6]), *lse = f32(info[7]);
  parallel_for(rows, row_grain(V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * V;
      float mx = -INFINITY;
      for (int64_t i = 0; i < V; i++) mx = xr[i] > mx ? xr[i] : mx;
      double s = 0, sx = 0;
      for (int64_t i = 0; i < V; i++) {
        s += std::exp(xr[i] - mx);
        sx += xr[i];
      }
      double l = std::log(s) + mx;
      lse[r] = static_cast<float>(l);
      if (t[r] == ignore) loss[r] = 0.f;
      else loss[r] = static_cast<float>((1 - eps) * (l - xr[t[r]]) + (eps > 0 ? eps * (l - sx / V) : 0.0));
    }
  });
  return info.Env().Undefined();
}

// crossEntropyBackward(logits, target, lse, gRow, rows, V, ignoreIndex, eps, out)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  const float* x = f32(info[0]);
  const int32_t* t = info[1].As<Napi::Int32Array>().Data();
  const float *lse = f32(info[2]), *gRow = f32(info[3]);
  int64_t rows = i64(info[4]), V = i64(info[5]);
  int32_t ignore = static_cast<int32_t>(i64(info[6]));
  float eps = static_cast<float>(num(info[7]));
  float* out = f32(info[8]);
  parallel_for(rows, row_grain(V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * V;
      float* o = out + r * V;
      if (t[r] == ignore) {
        for (int64_t i = 0; i < V; i++) o[i] = 0.f;
        continue;
      }
      float gr = gRow[r], l = lse[r], u = eps / static_cast<float>(V);
      for (int64_t i = 0; i < V; i++) o[i] = gr * (std::exp(xr[i] - l) - u);
      o[t[r]] -= gr * (1.f - eps);
    }
  });
  return info.Env().Undefined();
}

// ---- AdamW

CLONES void adamw_run(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps, float decay, float step,
                      float sbc2) {
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (std::sqrt(vi) / sbc2 + eps);
  }
  (void)lr;
}

// adamw(p, g, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2)
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  auto pArr = info[0].As<Napi::Float32Array>();
  float* p = pArr.Data();
  const float* g = f32(info[1]);
  float *m = f32(info[2]), *v = f32(info[3]);
  int64_t n = static_cast<int64_t>(pArr.ElementLength());
  double lr = num(info[4]), b1 = num(info[5]), b2 = num(info[6]), eps = num(info[7]), wd = num(info[8]), bc1 = num(info[9]), bc2 = num(info[10]);
  float decay = static_cast<float>(1 - lr * wd), step = static_cast<float>(lr / bc1), sbc2 = static_cast<float>(std::sqrt(bc2));
  parallel_for(n, 1 << 15, [&](int64_t a, int64_t b) {
    adamw_run(p + a, g + a, m + a, v + a, b - a, static_cast<float>(lr), static_cast<float>(b1), static_cast<float>(b2), static_cast<float>(eps), decay,
              step, sbc2);
  });
  return info.Env().Undefined();
}

}  // namespace

void init_nn(Napi::Env env, Napi::Object exports) {
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("softmaxBackward", Napi::Function::New(env, SoftmaxBackward));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("layerNormBackward", Napi::Function::New(env, LayerNormBackward));
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("rmsNormBackward", Napi::Function::New(env, RmsNormBackward));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("crossEntropyBackward", Napi::Function::New(env, CrossEntropyBackward));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
}

}  // namespace shrink
