// Elementwise kernels: unary (strided input), unary backward, binary with broadcasting, where.
//
// Op codes are the indices of UNARY_OPS / BINARY_OPS in src/backend/backend.ts (append-only lists). Strided
// inputs arrive as a small Int32Array `meta` = [ndim, shape[ndim], strides of each operand[ndim]...]; adjacent
// dims are collapsed and the innermost loop runs over a contiguous or broadcast (stride 0) run, which the compiler
// vectorises (functions are cloned for AVX2 and dispatched at load time by GCC's target_clones). Transcendentals
// use the float libm (erf in double so GELU matches the reference to ~1 ulp). Large arrays are split over the pool.
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"
#include "pool.h"

namespace shrink {
namespace {

#define CLONES __attribute__((target_clones("avx2,fma", "default")))

enum Unary {
  U_COPY, U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_TANH, U_SIGMOID, U_RELU, U_SILU, U_GELU, U_GELU_TANH, U_ERF,
  U_AFFINE, U_POW, U_CLAMP, U_RECIP, U_SQUARE, U_SIN, U_COS, U_SIGN, U_LEAKY,
  U_COUNT
};
enum Binary { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_COUNT };

constexpr int64_t kGrain = 32768;  // elements per task before splitting over threads (compute-bound ops)
// Memory-bound ops (copies, +, −, ×, ÷) gain little from a second thread on fresh output pages (first-touch page
// faults serialise in the kernel), so they split only when very large.
constexpr int64_t kGrainMemBound = 1 << 20;
inline bool cheap_unary(int op) {
  return op == U_COPY || op == U_NEG || op == U_AFFINE || op == U_SQUARE || op == U_ABS || op == U_RELU || op == U_CLAMP;
}
constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr float kGeluTanhC = 0.79788456080286535588f;  // sqrt(2/pi)

inline float sigm(float x) { return x >= 0 ? 1.f / (1.f + std::exp(-x)) : std::exp(x) / (1.f + std::exp(x)); }

inline float unary_scalar(int op, float x, float a, float b) {
  switch (op) {
    case U_COPY: return x;
    case U_NEG: return -x;
    case U_EXP: return std::exp(x);
    case U_LOG: return std::log(x);
    case U_SQRT: return std::sqrt(x);
    case U_RSQRT: return 1.f / std::sqrt(x);
    case U_ABS: return std::fabs(x);
    case U_TANH: return std::tanh(x);
    case U_SIGMOID: return sigm(x);
    case U_RELU: return x > 0 ? x : (x == x ? 0.f : x);
    case U_SILU: return x * sigm(x);
    case U_GELU: return 0.5f * x * (1.f + std::erf(x * static_cast<float>(kSqrt1_2)));  // float erf: ~1 ulp, 2× faster than double
    case U_GELU_TANH: return 0.5f * x * (1.f + std::tanh(kGeluTanhC * (x + 0.044715f * x * x * x)));
    case U_ERF: return static_cast<float>(std::erf(static_cast<double>(x)));
    case U_AFFINE: return x * a + b;
    case U_POW: return std::pow(x, a);
    case U_CLAMP: return x < a ? a : (x > b ? b : x);
    case U_RECIP: return 1.f / x;
    case U_SQUARE: return x * x;
    case U_SIN: return std::sin(x);
    case U_COS: return std::cos(x);
    case U_SIGN: return x > 0 ? 1.f : (x < 0 ? -1.f : (x == x ? 0.f : x));
    case U_LEAKY: return x >= 0 ? x : a * x;
  }
  return x;
}

// Contiguous unary: the cheap ops get their own loops so they vectorise; the rest go through the scalar switch.
CLONES void unary_contig(int op, const float* x, float* y, int64_t n, float a, float b) {
  switch (op) {
    case U_COPY: for (int64_t i = 0; i < n; i++) y[i] = x[i]; return;
    case U_NEG: for (int64_t i = 0; i < n; i++) y[i] = -x[i]; return;
    case U_AFFINE: for (int64_t i = 0; i < n; i++) y[i] = x[i] * a + b; return;
    case U_SQUARE: for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i]; return;
    case U_ABS: for (int64_t i = 0; i < n; i++) y[i] = std::fabs(x[i]); return;
    case U_SQRT: for (int64_t i = 0; i < n; i++) y[i] = std::sqrt(x[i]); return;
    case U_RSQRT: for (int64_t i = 0; i < n; i++) y[i] = 1.f / std::sqrt(x[i]); return;
    case U_RECIP: for (int64_t i = 0; i < n; i++) y[i] = 1.f / x[i]; return;
    case U_RELU: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (x[i] == x[i] ? 0.f : x[i]); return;
    case U_CLAMP: for (int64_t i = 0; i < n; i++) y[i] = x[i] < a ? a : (x[i] > b ? b : x[i]); return;
    default: for (int64_t i = 0; i < n; i++) y[i] = unary_scalar(op, x[i], a, b); return;
  }
}

// f'(x) · g, matching src/backend/ref/math.ts unaryDeriv.
inline float unary_deriv(int op, float x, float y, float a, float b) {
  switch (op) {
    case U_COPY: return 1.f;
    case U_NEG: return -1.f;
    case U_EXP: return y;
    case U_LOG: return 1.f / x;
    case U_SQRT: return 0.5f / y;
    case U_RSQRT: return -0.5f * y * y * y;
    case U_ABS: return x > 0 ? 1.f : (x < 0 ? -1.f : 0.f);
    case U_TANH: return 1.f - y * y;
    case U_SIGMOID: return y * (1.f - y);
    case U_RELU: return x > 0 ? 1.f : 0.f;
    case U_SILU: { float s = sigm(x); return s * (1.f + x * (1.f - s)); }
    case U_GELU: return 0.5f * (1.f + std::erf(x * static_cast<float>(kSqrt1_2))) + x * static_cast<float>(kInvSqrt2Pi) * std::exp(-0.5f * x * x);
    case U_GELU_TANH: {
      float t = std::tanh(kGeluTanhC * (x + 0.044715f * x * x * x));
      return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * kGeluTanhC * (1.f + 3.f * 0.044715f * x * x);
    }
    case U_ERF: return static_cast<float>(1.1283791670955126 * std::exp(-static_cast<double>(x) * x));
    case U_AFFINE: return a;
    case U_POW: return a == 0.f ? 0.f : a * std::pow(x, a - 1.f);
    case U_CLAMP: return (x >= a && x <= b) ? 1.f : 0.f;
    case U_RECIP: return -y * y;
    case U_SQUARE: return 2.f * x;
    case U_SIN: return std::cos(x);
    case U_COS: return -std::sin(x);
    case U_SIGN: return 0.f;
    case U_LEAKY: return x > 0 ? 1.f : a;
  }
  return 0.f;
}

CLONES void unary_backward(int op, const float* x, const float* y, const float* g, float* out, int64_t n, float a, float b) {
  switch (op) {
    case U_AFFINE: for (int64_t i = 0; i < n; i++) out[i] = g[i] * a; return;
    case U_SQUARE: for (int64_t i = 0; i < n; i++) out[i] = g[i] * 2.f * x[i]; return;
    case U_RELU: for (int64_t i = 0; i < n; i++) out[i] = x[i] > 0 ? g[i] : 0.f; return;
    case U_EXP: for (int64_t i = 0; i < n; i++) out[i] = g[i] * y[i]; return;
    case U_TANH: for (int64_t i = 0; i < n; i++) out[i] = g[i] * (1.f - y[i] * y[i]); return;
    case U_SIGMOID: for (int64_t i = 0; i < n; i++) out[i] = g[i] * y[i] * (1.f - y[i]); return;
    default: for (int64_t i = 0; i < n; i++) out[i] = g[i] * unary_deriv(op, x[i], y[i], a, b); return;
  }
}

inline float binary_scalar(int op, float x, float y) {
  switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_POW: return std::pow(x, y);
    case B_MAX: return (x != x || y != y) ? NAN : (x > y ? x : y);
    case B_MIN: return (x != x || y != y) ? NAN : (x < y ? x : y);
    case B_EQ: return x == y ? 1.f : 0.f;
    case B_NE: return x != y ? 1.f : 0.f;
    case B_LT: return x < y ? 1.f : 0.f;
    case B_LE: return x <= y ? 1.f : 0.f;
    case B_GT: return x > y ? 1.f : 0.f;
    case B_GE: return x >= y ? 1.f : 0.f;
  }
  return 0.f;
}

// Innermost run of a binary op: a and b advance by sa/sb (each 0 or 1 in the fast paths).
CLONES void binary_run(int op, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
#define SHRINK_BIN_LOOP(EXPR)                                                                            \
  if (sa == 1 && sb == 1)                                                                                \
    for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; out[i] = (EXPR); }                       \
  else if (sa == 1 && sb == 0) {                                                                         \
    float y = b[0];                                                                                      \
    for (int64_t i = 0; i < n; i++) { float x = a[i]; out[i] = (EXPR); }                                 \
  } else if (sa == 0 && sb == 1) {                                                                       \
    float x = a[0];                                                                                      \
    for (int64_t i = 0; i < n; i++) { float y = b[i]; out[i] = (EXPR); }                                 \
  } else                                                                                                 \
    for (int64_t i = 0; i < n; i++) { float x = a[i * sa], y = b[i * sb]; out[i] = (EXPR); }
  switch (op) {
    case B_ADD: SHRINK_BIN_LOOP(x + y) return;
    case B_SUB: SHRINK_BIN_LOOP(x - y) return;
    case B_MUL: SHRINK_BIN_LOOP(x * y) return;
    case B_DIV: SHRINK_BIN_LOOP(x / y) return;
    default: SHRINK_BIN_LOOP(binary_scalar(op, x, y)) return;
  }
#undef SHRINK_BIN_LOOP
}

// Collapsed strided iteration over up to 3 operands. Dims of size 1 are dropped; adjacent dims merge when every
// operand's strides are contiguous across them.
struct Iter {
  int nd = 0;
  int64_t shape[16];
  int64_t st[3][16];
};

bool build_iter(const int32_t* meta, int nops, Iter& it) {
  int nd = meta[0];
  if (nd > 16) return false;
  const int32_t* shape = meta + 1;
  int k = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 1) continue;
    it.shape[k] = shape[d];
    for (int o = 0; o < nops; o++) it.st[o][k] = meta[1 + nd * (1 + o) + d];
    k++;
  }
  // merge from the inside out
  int m = 0;
  for (int d = 0; d < k; d++) {
    if (m > 0) {
      bool ok = true;
      for (int o = 0; o < nops; o++)
        if (it.st[o][m - 1] != it.st[o][d] * it.shape[d]) ok = false;
      if (ok) {
        it.shape[m - 1] *= it.shape[d];
        for (int o = 0; o < nops; o++) it.st[o][m - 1] = it.st[o][d];
        continue;
      }
    }
    it.shape[m] = it.shape[d];
    for (int o = 0; o < nops; o++) it.st[o][m] = it.st[o][d];
    m++;
  }
  it.nd = m;
  return true;
}

// Calls fn(outerIndex, offsets[nops]) for each run of the innermost dim over rows [r0, r1) of the outer space.
template <typename F>
void for_rows(const Iter& it, int nops, int64_t r0, int64_t r1, F fn) {
  int outer_nd = it.nd - 1;
  for (int64_t r = r0; r < r1; r++) {
    int64_t off[3] = {0, 0, 0};
    int64_t rem = r;
    for (int d = outer_nd - 1; d >= 0; d--) {
      int64_t c = rem % it.shape[d];
      rem /= it.shape[d];
      for (int o = 0; o < nops; o++) off[o] += c * it.st[o][d];
    }
    fn(r, off);
  }
}

// ---- N-API glue. All validation happens in TypeScript.

inline float* f32(const Napi::Value& v) { return v.As<Napi::Float32Array>().Data(); }

// unary(code, x, xOffset, out, n, alpha, beta): contiguous input
Napi::Value UnaryContig(const Napi::CallbackInfo& info) {
  int op = info[0].As<Napi::Number>().Int32Value();
  const float* x = f32(info[1]) + info[2].As<Napi::Number>().Int64Value();
  float* y = f32(info[3]);
  int64_t n = info[4].As<Napi::Number>().Int64Value();
  float a = info[5].As<Napi::Number>().FloatValue(), b = info[6].As<Napi::Number>().FloatValue();
  parallel_for(n, cheap_unary(op) ? kGrainMemBound : kGrain, [&](int64_t s, int64_t e) { unary_contig(op, x + s, y + s, e - s, a, b); });
  return info.Env().Undefined();
}

// unaryStrided(code, x, xOffset, meta=[nd, shape, strides], out, alpha, beta)
Napi::Value UnaryStrided(const Napi::CallbackInfo& info) {
  int op = info[0].As<Napi::Number>().Int32Value();
  const float* x = f32(info[1]) + info[2].As<Napi::Number>().Int64Value();
  const int32_t* meta = info[3].As<Napi::Int32Array>().Data();
  float* y = f32(info[4]);
  float a = info[5].As<Napi::Number>().FloatValue(), b = info[6].As<Napi::Number>().FloatValue();
  Iter it;
  build_iter(meta, 1, it);
  if (it.nd == 0) {
    y[0] = unary_scalar(op, x[0], a, b);
    return info.Env().Undefined();
  }
  int64_t inner = it.shape[it.nd - 1], sx = it.st[0][it.nd - 1], rows = 1;
  for (int d = 0; d < it.nd - 1; d++) rows *= it.shape[d];
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<float> tmp(sx == 1 ? 0 : inner);
    for_rows(it, 1, r0, r1, [&](int64_t r, const int64_t* off) {
      const float* src = x + off[0];
      float* dst = y + r * inner;
      if (sx == 1) unary_contig(op, src, dst, inner, a, b);
      else {
        for (int64_t i = 0; i < inner; i++) tmp[i] = src[i * sx];
        unary_contig(op, tmp.data(), dst, inner, a, b);
      }
    });
  });
  return info.Env().Undefined();
}

// unaryBackward(code, x, y, g, out, alpha, beta): contiguous, n = out.length
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  int op = info[0].As<Napi::Number>().Int32Value();
  const float *x = f32(info[1]), *y = f32(info[2]), *g = f32(info[3]);
  auto outArr = info[4].As<Napi::Float32Array>();
  float* out = outArr.Data();
  int64_t n = static_cast<int64_t>(outArr.ElementLength());
  float a = info[5].As<Napi::Number>().FloatValue(), b = info[6].As<Napi::Number>().FloatValue();
  parallel_for(n, kGrain, [&](int64_t s, int64_t e) { unary_backward(op, x + s, y + s, g + s, out + s, e - s, a, b); });
  return info.Env().Undefined();
}

// binary(code, a, aOff, b, bOff, meta=[nd, shape, aStrides, bStrides], out)
Napi::Value BinaryOp(const Napi::CallbackInfo& info) {
  int op = info[0].As<Napi::Number>().Int32Value();
  const float* a = f32(info[1]) + info[2].As<Napi::Number>().Int64Value();
  const float* b = f32(info[3]) + info[4].As<Napi::Number>().Int64Value();
  const int32_t* meta = info[5].As<Napi::Int32Array>().Data();
  float* out = f32(info[6]);
  Iter it;
  build_iter(meta, 2, it);
  if (it.nd == 0) {
    out[0] = binary_scalar(op, a[0], b[0]);
    return info.Env().Undefined();
  }
  int64_t inner = it.shape[it.nd - 1], sa = it.st[0][it.nd - 1], sb = it.st[1][it.nd - 1], rows = 1;
  for (int d = 0; d < it.nd - 1; d++) rows *= it.shape[d];
  const int64_t grain = op <= B_DIV ? kGrainMemBound : kGrain;
  if (rows == 1) {  // one run: split it
    parallel_for(inner, grain, [&](int64_t s, int64_t e) { binary_run(op, a + s * sa, sa, b + s * sb, sb, out + s, e - s); });
    return info.Env().Undefined();
  }
  parallel_for(rows, std::max<int64_t>(1, grain / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    for_rows(it, 2, r0, r1, [&](int64_t r, const int64_t* off) { binary_run(op, a + off[0], sa, b + off[1], sb, out + r * inner, inner); });
  });
  return info.Env().Undefined();
}

// where(c, cOff, a, aOff, b, bOff, meta=[nd, shape, cStrides, aStrides, bStrides], out)
Napi::Value Where(const Napi::CallbackInfo& info) {
  const float* c = f32(info[0]) + info[1].As<Napi::Number>().Int64Value();
  const float* a = f32(info[2]) + info[3].As<Napi::Number>().Int64Value();
  const float* b = f32(info[4]) + info[5].As<Napi::Number>().Int64Value();
  const int32_t* meta = info[6].As<Napi::Int32Array>().Data();
  float* out = f32(info[7]);
  Iter it;
  build_iter(meta, 3, it);
  if (it.nd == 0) {
    out[0] = c[0] != 0.f ? a[0] : b[0];
    return info.Env().Undefined();
  }
  int64_t inner = it.shape[it.nd - 1], sc = it.st[0][it.nd - 1], sa = it.st[1][it.nd - 1], sb = it.st[2][it.nd - 1], rows = 1;
  for (int d = 0; d < it.nd - 1; d++) rows *= it.shape[d];
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    for_rows(it, 3, r0, r1, [&](int64_t r, const int64_t* off) {
      const float *cc = c + off[0], *aa = a + off[1], *bb = b + off[2];
      float* o = out + r * inner;
      for (int64_t i = 0; i < inner; i++) o[i] = cc[i * sc] != 0.f ? aa[i * sa] : bb[i * sb];
    });
  });
  return info.Env().Undefined();
}

}  // namespace

void init_elementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("unary", Napi::Function::New(env, UnaryContig));
  exports.Set("unaryStrided", Napi::Function::New(env, UnaryStrided));
  exports.Set("unaryBackward", Napi::Function::New(env, UnaryBackward));
  exports.Set("binary", Napi::Function::New(env, BinaryOp));
  exports.Set("where", Napi::Function::New(env, Where));
}

}  // namespace shrink
