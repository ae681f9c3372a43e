// Elementwise kernels: unary (contiguous or strided input), unary backward, binary with broadcasting, where.
//
// Op codes are the indices of UNARY_OPS / BINARY_OPS in src/backend/backend.ts (append-only lists). Strided operands
// arrive as one Int32Array `meta` (offsets, ndim, shape, one stride list per operand: ENGINE-NOTES §1.3, each
// typed-array argument costs ~85 ns). Size-1 dims are dropped and adjacent dims merged when every operand is
// contiguous across them, so most broadcasts become a run over a contiguous or stride-0 innermost dim:
//   both contiguous → one flat run; scalar → one run with stride 0; row broadcast (b = [.., n] repeated) → rows of
//   two contiguous runs; column broadcast → rows with one stride-0 side.
// A strided unary whose innermost dim is not contiguous in the input (a transposed view being made contiguous) is
// copied in 32×32 tiles, so both the reads and the writes stay in cache lines.
//
// Two builds of every loop: an AVX2/FMA one (explicit vector transcendentals from vecmath.h; the simple loops are
// the same source compiled for AVX2) and a portable one (scalar, transcendentals in double libm). simd_enabled()
// picks at run time; setSimd(false) forces the portable path so tests cover it on AVX2 machines.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "args.h"
#include "common.h"
#include "pool.h"
#include "vecmath.h"

namespace shrink {

namespace {
std::atomic<bool> g_simd{true};
}
bool simd_enabled() { return g_simd.load(std::memory_order_relaxed) && has_avx2_fma(); }

namespace {

#define ALWAYS_INLINE inline __attribute__((always_inline))

enum Unary {
  U_COPY, U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_TANH, U_SIGMOID, U_RELU, U_SILU, U_GELU, U_GELU_TANH, U_ERF,
  U_AFFINE, U_POW, U_CLAMP, U_RECIP, U_SQUARE, U_SIN, U_COS, U_SIGN, U_LEAKY,
  U_COUNT
};
enum Binary { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_COUNT };

// Elements per thread chunk before a second thread is worth waking (~1.5 µs dispatch): compute-heavy ops split
// early; memory-bound ones (copies, + − × ÷) only when large, since a second core adds little bandwidth and fresh
// output pages fault in serially.
constexpr int64_t kGrain = 32768;
constexpr int64_t kGrainMemBound = 1 << 18;
inline bool cheap_unary(int op) {
  return op == U_COPY || op == U_NEG || op == U_AFFINE || op == U_SQUARE || op == U_ABS || op == U_RELU || op == U_CLAMP ||
         op == U_SIGN || op == U_LEAKY || op == U_RECIP || op == U_SQRT || op == U_RSQRT;
}

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kGeluTanhC = 0.79788456080286535588;  // sqrt(2/pi)
constexpr double k2OverSqrtPi = 1.12837916709551257390;

// Math.pow / ** as JavaScript defines it, which `ref` uses: unlike C's pow, a NaN exponent always gives NaN, and
// (±1) ** ±Infinity is NaN.
inline double js_pow(double x, double y) {
  if (y != y || ((x == 1.0 || x == -1.0) && std::isinf(y))) return NAN;
  return std::pow(x, y);
}

inline double sigm(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

// ---- unary: scalar definitions (portable path; transcendentals in double, so they round like `ref`)

ALWAYS_INLINE float unary_scalar(int op, float xf, double a, double b) {
  const double x = xf;
  switch (op) {
    case U_COPY: return xf;
    case U_NEG: return -xf;
    case U_EXP: return static_cast<float>(std::exp(x));
    case U_LOG: return static_cast<float>(std::log(x));
    case U_SQRT: return std::sqrt(xf);
    case U_RSQRT: return static_cast<float>(1.0 / std::sqrt(x));  // in double: 1.f/sqrtf would round twice
    case U_ABS: return std::fabs(xf);
    case U_TANH: return static_cast<float>(std::tanh(x));
    case U_SIGMOID: return static_cast<float>(sigm(x));
    case U_RELU: return xf > 0 ? xf : (xf == xf ? 0.f : xf);
    case U_SILU: return static_cast<float>(x * sigm(x));
    case U_GELU: return static_cast<float>(0.5 * x * std::erfc(-x * kSqrt1_2));
    case U_GELU_TANH: return static_cast<float>(0.5 * x * (1 + std::tanh(kGeluTanhC * (x + 0.044715 * x * x * x))));
    case U_ERF: return static_cast<float>(std::erf(x));
    case U_AFFINE: return static_cast<float>(x * a + b);
    case U_POW: return static_cast<float>(js_pow(x, a));
    case U_CLAMP: return static_cast<float>(x < a ? a : (x > b ? b : x));
    case U_RECIP: return 1.f / xf;
    case U_SQUARE: return xf * xf;
    case U_SIN: return static_cast<float>(std::sin(x));
    case U_COS: return static_cast<float>(std::cos(x));
    case U_SIGN: return xf > 0 ? 1.f : (xf < 0 ? -1.f : (xf == xf ? 0.f : xf));
    case U_LEAKY: return xf >= 0 ? xf : static_cast<float>(a * x);
  }
  return xf;
}

// The loops that vectorise as plain C++ (same source for both builds). Returns false for the ops it leaves out.
// Where `ref`'s float64 arithmetic could round differently from float (α, β and rsqrt), the loop runs in double.
ALWAYS_INLINE bool unary_simple(int op, const float* x, float* y, int64_t n, double a, double b) {
  switch (op) {
    case U_COPY: if (x != y) std::memmove(y, x, static_cast<size_t>(n) * 4); return true;
    case U_NEG: for (int64_t i = 0; i < n; i++) y[i] = -x[i]; return true;
    case U_AFFINE: for (int64_t i = 0; i < n; i++) y[i] = static_cast<float>(x[i] * a + b); return true;
    case U_SQUARE: for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i]; return true;
    case U_ABS: for (int64_t i = 0; i < n; i++) y[i] = std::fabs(x[i]); return true;
    case U_SQRT: for (int64_t i = 0; i < n; i++) y[i] = std::sqrt(x[i]); return true;
    case U_RSQRT: for (int64_t i = 0; i < n; i++) y[i] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(x[i]))); return true;
    case U_RECIP: for (int64_t i = 0; i < n; i++) y[i] = 1.f / x[i]; return true;
    case U_RELU: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (x[i] == x[i] ? 0.f : x[i]); return true;
    case U_CLAMP: {
      const float fa = static_cast<float>(a), fb = static_cast<float>(b);
      for (int64_t i = 0; i < n; i++) {
        const double v = x[i];
        y[i] = v < a ? fa : (v > b ? fb : x[i]);
      }
      return true;
    }
    case U_SIGN: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? 1.f : (x[i] < 0 ? -1.f : (x[i] == x[i] ? 0.f : x[i])); return true;
    case U_LEAKY: for (int64_t i = 0; i < n; i++) y[i] = x[i] >= 0 ? x[i] : static_cast<float>(a * x[i]); return true;
    case U_POW:
      if (a == 2) {  // x*x in float is the correctly rounded x**2
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
        return true;
      }
      if (a == 1) {  // a copy (not a recursive call: always_inline recursion does not build at -O0)
        if (x != y) std::memmove(y, x, static_cast<size_t>(n) * 4);
        return true;
      }
      return false;
  }
  return false;
}

void unary_portable(int op, const float* x, float* y, int64_t n, double a, double b) {
  if (unary_simple(op, x, y, n, a, b)) return;
  for (int64_t i = 0; i < n; i++) y[i] = unary_scalar(op, x[i], a, b);
}

#if SHRINK_X86
// y[0..n) = EXPR(v) over 8-lane vectors v of x; the tail runs through masked loads/stores.
#define SHRINK_VLOOP(EXPR)                                              \
  do {                                                                  \
    int64_t i = 0;                                                      \
    for (; i + 8 <= n; i += 8) {                                        \
      const __m256 v = _mm256_loadu_ps(x + i);                          \
      _mm256_storeu_ps(y + i, (EXPR));                                  \
    }                                                                   \
    if (i < n) {                                                        \
      const __m256 v = vm::load_tail(x + i, n - i);                     \
      vm::store_tail(y + i, n - i, (EXPR));                             \
    }                                                                   \
  } while (0)

SHRINK_AVX2_FN void unary_avx2(int op, const float* x, float* y, int64_t n, double a, double b) {
  if (unary_simple(op, x, y, n, a, b)) return;
  switch (op) {
    case U_EXP: SHRINK_VLOOP(vm::exp(v)); return;
    case U_LOG: SHRINK_VLOOP(vm::log(v)); return;
    case U_TANH: SHRINK_VLOOP(vm::tanh(v)); return;
    case U_SIGMOID: SHRINK_VLOOP(vm::sigmoid(v)); return;
    case U_SILU: SHRINK_VLOOP(vm::silu(v)); return;
    case U_GELU: SHRINK_VLOOP(vm::gelu(v)); return;
    case U_GELU_TANH: SHRINK_VLOOP(vm::gelu_tanh(v)); return;
    case U_ERF: SHRINK_VLOOP(vm::erf(v)); return;
    default: for (int64_t i = 0; i < n; i++) y[i] = unary_scalar(op, x[i], a, b); return;  // pow, sin, cos
  }
}
#endif  // SHRINK_X86

inline void unary_contig(int op, const float* x, float* y, int64_t n, double a, double b) {
#if SHRINK_X86
  if (simd_enabled()) return unary_avx2(op, x, y, n, a, b);
#endif
  unary_portable(op, x, y, n, a, b);
}

// ---- unary backward: out = g · f'(x), with y = f(x). Formulas follow src/backend/ref/math.ts unaryDeriv.

ALWAYS_INLINE float deriv_scalar(int op, float xf, float yf, double a, double b) {
  const double x = xf, y = yf;
  switch (op) {
    case U_COPY: return 1.f;
    case U_NEG: return -1.f;
    case U_EXP: return yf;
    case U_LOG: return static_cast<float>(1.0 / x);
    case U_SQRT: return static_cast<float>(0.5 / y);
    case U_RSQRT: return static_cast<float>(-0.5 * y * y * y);
    case U_ABS: return xf > 0 ? 1.f : (xf < 0 ? -1.f : 0.f);
    case U_TANH: return static_cast<float>(1 - y * y);
    case U_SIGMOID: return static_cast<float>(y * (1 - y));
    case U_RELU: return xf > 0 ? 1.f : 0.f;
    case U_SILU: { double s = sigm(x); return static_cast<float>(s * (1 + x * (1 - s))); }
    case U_GELU: return static_cast<float>(0.5 * std::erfc(-x * kSqrt1_2) + x * kInvSqrt2Pi * std::exp(-0.5 * x * x));
    case U_GELU_TANH: {
      double t = std::tanh(kGeluTanhC * (x + 0.044715 * x * x * x));
      return static_cast<float>(0.5 * (1 + t) + 0.5 * x * (1 - t * t) * kGeluTanhC * (1 + 3 * 0.044715 * x * x));
    }
    case U_ERF: return static_cast<float>(k2OverSqrtPi * std::exp(-x * x));
    case U_AFFINE: return static_cast<float>(a);
    case U_POW: return a == 0 ? 0.f : static_cast<float>(a * js_pow(x, a - 1));
    case U_CLAMP: return (x >= a && x <= b) ? 1.f : 0.f;
    case U_RECIP: return static_cast<float>(-y * y);
    case U_SQUARE: return 2.f * xf;
    case U_SIN: return static_cast<float>(std::cos(x));
    case U_COS: return static_cast<float>(-std::sin(x));
    case U_SIGN: return 0.f;
    case U_LEAKY: return xf > 0 ? 1.f : static_cast<float>(a);
  }
  return 0.f;
}

// out = g·f'(x). `ref` forms g·f'(x) in double and rounds once; the loops below do the same wherever float would
// differ (a product of two floats is exact in double, so single products stay in float). That also keeps
// 0·f'(x) = 0 where f'(x) overflows float but not double (rsqrt near 0, recip, square of a huge x).
ALWAYS_INLINE bool backward_simple(int op, const float* x, const float* y, const float* g, float* out, int64_t n, double a) {
  switch (op) {
    case U_COPY: if (g != out) std::memmove(out, g, static_cast<size_t>(n) * 4); return true;
    case U_NEG: for (int64_t i = 0; i < n; i++) out[i] = -g[i]; return true;
    case U_AFFINE: for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(g[i] * a); return true;
    case U_SQUARE: for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(g[i] * (2.0 * x[i])); return true;
    case U_RELU: for (int64_t i = 0; i < n; i++) out[i] = g[i] * (x[i] > 0 ? 1.f : 0.f); return true;
    case U_LEAKY: for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(g[i] * (x[i] > 0 ? 1.0 : a)); return true;
    case U_ABS: for (int64_t i = 0; i < n; i++) out[i] = g[i] * (x[i] > 0 ? 1.f : (x[i] < 0 ? -1.f : 0.f)); return true;
    case U_SIGN: for (int64_t i = 0; i < n; i++) out[i] = g[i] * 0.f; return true;
    case U_EXP: for (int64_t i = 0; i < n; i++) out[i] = g[i] * y[i]; return true;
    case U_LOG: for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(g[i] * (1.0 / x[i])); return true;
    case U_SQRT: for (int64_t i = 0; i < n; i++) out[i] = static_cast<float>(g[i] * (0.5 / y[i])); return true;
    case U_RSQRT: for (int64_t i = 0; i < n; i++) { const double v = y[i]; out[i] = static_cast<float>(g[i] * (-0.5 * v * v * v)); } return true;
    case U_TANH: for (int64_t i = 0; i < n; i++) { const double v = y[i]; out[i] = static_cast<float>(g[i] * (1 - v * v)); } return true;
    case U_SIGMOID: for (int64_t i = 0; i < n; i++) { const double v = y[i]; out[i] = static_cast<float>(g[i] * (v * (1 - v))); } return true;
    case U_RECIP: for (int64_t i = 0; i < n; i++) { const double v = y[i]; out[i] = static_cast<float>(g[i] * -(v * v)); } return true;
  }
  return false;
}

void backward_portable(int op, const float* x, const float* y, const float* g, float* out, int64_t n, double a, double b) {
  if (backward_simple(op, x, y, g, out, n, a)) return;
  for (int64_t i = 0; i < n; i++) out[i] = g[i] * deriv_scalar(op, x[i], y[i], a, b);
}

#if SHRINK_X86
SHRINK_AVX2_FN void backward_avx2(int op, const float* x, const float* y, const float* g, float* out, int64_t n, double a, double b) {
  if (backward_simple(op, x, y, g, out, n, a)) return;
#define SHRINK_GLOOP(EXPR)                                                                       \
  do {                                                                                           \
    int64_t i = 0;                                                                               \
    for (; i + 8 <= n; i += 8) {                                                                 \
      const __m256 v = _mm256_loadu_ps(x + i);                                                   \
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), (EXPR)));                  \
    }                                                                                            \
    if (i < n) {                                                                                 \
      const __m256 v = vm::load_tail(x + i, n - i);                                              \
      vm::store_tail(out + i, n - i, _mm256_mul_ps(vm::load_tail(g + i, n - i), (EXPR)));        \
    }                                                                                            \
  } while (0)
  switch (op) {
    case U_SILU: SHRINK_GLOOP(vm::silu_grad(v)); return;
    case U_GELU: SHRINK_GLOOP(vm::gelu_grad(v)); return;
    case U_GELU_TANH: SHRINK_GLOOP(vm::gelu_tanh_grad(v)); return;
    case U_ERF: SHRINK_GLOOP(vm::erf_grad(v)); return;
    default: for (int64_t i = 0; i < n; i++) out[i] = g[i] * deriv_scalar(op, x[i], y[i], a, b); return;  // pow, sin, cos, clamp
  }
#undef SHRINK_GLOOP
}
#endif  // SHRINK_X86

// Which of x and y the derivative reads (the TypeScript side passes null for the other).
inline bool deriv_needs_y(int op) { return op == U_EXP || op == U_SQRT || op == U_RSQRT || op == U_TANH || op == U_SIGMOID || op == U_RECIP; }
inline bool deriv_needs_x(int op) { return !deriv_needs_y(op) && op != U_COPY && op != U_NEG && op != U_AFFINE && op != U_SIGN; }

// ---- binary

ALWAYS_INLINE float binary_scalar(int op, float x, float y) {
  switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_POW: return static_cast<float>(js_pow(x, y));
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

// One run: out[i] = a[i·sa] op b[i·sb]. The (1,1), (1,0) and (0,1) stride pairs get loops the compiler vectorises.
ALWAYS_INLINE void binary_run_body(int op, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
#define SHRINK_BIN_LOOP(EXPR)                                                                            \
  if (sa == 1 && sb == 1)                                                                                \
    for (int64_t i = 0; i < n; i++) { const float x = a[i], y = b[i]; out[i] = (EXPR); }                 \
  else if (sa == 1 && sb == 0) {                                                                         \
    const float y = b[0];                                                                                \
    for (int64_t i = 0; i < n; i++) { const float x = a[i]; out[i] = (EXPR); }                           \
  } else if (sa == 0 && sb == 1) {                                                                       \
    const float x = a[0];                                                                                \
    for (int64_t i = 0; i < n; i++) { const float y = b[i]; out[i] = (EXPR); }                           \
  } else                                                                                                 \
    for (int64_t i = 0; i < n; i++) { const float x = a[i * sa], y = b[i * sb]; out[i] = (EXPR); }
  switch (op) {
    case B_ADD: SHRINK_BIN_LOOP(x + y) return;
    case B_SUB: SHRINK_BIN_LOOP(x - y) return;
    case B_MUL: SHRINK_BIN_LOOP(x * y) return;
    case B_DIV: SHRINK_BIN_LOOP(x / y) return;
    case B_MAX: SHRINK_BIN_LOOP((x != x || y != y) ? NAN : (x > y ? x : y)) return;
    case B_MIN: SHRINK_BIN_LOOP((x != x || y != y) ? NAN : (x < y ? x : y)) return;
    case B_EQ: SHRINK_BIN_LOOP(x == y ? 1.f : 0.f) return;
    case B_NE: SHRINK_BIN_LOOP(x != y ? 1.f : 0.f) return;
    case B_LT: SHRINK_BIN_LOOP(x < y ? 1.f : 0.f) return;
    case B_LE: SHRINK_BIN_LOOP(x <= y ? 1.f : 0.f) return;
    case B_GT: SHRINK_BIN_LOOP(x > y ? 1.f : 0.f) return;
    case B_GE: SHRINK_BIN_LOOP(x >= y ? 1.f : 0.f) return;
    default: SHRINK_BIN_LOOP(binary_scalar(op, x, y)) return;  // pow
  }
#undef SHRINK_BIN_LOOP
}
void binary_run_portable(int op, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  binary_run_body(op, a, sa, b, sb, out, n);
}
using BinaryRun = void (*)(int, const float*, int64_t, const float*, int64_t, float*, int64_t);
#if SHRINK_X86
SHRINK_AVX2_FN void binary_run_avx2(int op, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  binary_run_body(op, a, sa, b, sb, out, n);
}
#endif
BinaryRun binary_run() {
#if SHRINK_X86
  if (simd_enabled()) return binary_run_avx2;
#endif
  return binary_run_portable;
}

ALWAYS_INLINE void where_run_body(const float* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  if (sc == 1 && sa == 1 && sb == 1)
    for (int64_t i = 0; i < n; i++) out[i] = c[i] != 0.f ? a[i] : b[i];
  else
    for (int64_t i = 0; i < n; i++) out[i] = c[i * sc] != 0.f ? a[i * sa] : b[i * sb];
}
void where_run_portable(const float* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  where_run_body(c, sc, a, sa, b, sb, out, n);
}
using WhereRun = void (*)(const float*, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t);
#if SHRINK_X86
SHRINK_AVX2_FN void where_run_avx2(const float* c, int64_t sc, const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  where_run_body(c, sc, a, sa, b, sb, out, n);
}
#endif
WhereRun where_run() {
#if SHRINK_X86
  if (simd_enabled()) return where_run_avx2;
#endif
  return where_run_portable;
}

// ---- strided iteration

constexpr int kMaxDims = 16;

// A collapsed iteration space over up to 3 operands, the output contiguous.
struct Iter {
  int nd = 0;
  int64_t shape[kMaxDims];
  int64_t st[3][kMaxDims];
  int64_t numel = 1;
};

// Reads [nd, shape[nd], strides of operand 0 [nd], …] from meta (length already checked), validates the extents of
// each operand against its array (offset and length given), and collapses. Returns false on a RangeError.
bool build_iter(Args& args, const int32_t* meta, size_t metaLen, int nops, const int64_t* offs, const size_t* lens, Iter& it) {
  if (!args.check(metaLen >= 1, "meta is empty")) return false;
  const int nd = meta[0];
  if (!args.check(nd >= 0 && nd <= kMaxDims, "ndim out of range (0..16)")) return false;
  if (!args.check(metaLen >= static_cast<size_t>(1 + nd * (1 + nops)), "meta too short for ndim")) return false;
  const int32_t* shape = meta + 1;
  // numel without overflow: a product past 2^53 elements cannot fit any array (16 dims of 2^31 would wrap an int64)
  constexpr int64_t kMaxNumel = int64_t{1} << 53;
  bool empty = false;
  for (int d = 0; d < nd; d++) {
    if (!args.check(shape[d] >= 0, "negative dimension")) return false;
    if (shape[d] == 0) empty = true;
  }
  int64_t numel = empty ? 0 : 1;
  if (!empty)
    for (int d = 0; d < nd; d++) {
      if (!args.check(numel <= kMaxNumel / shape[d], "too many elements")) return false;
      numel *= shape[d];
    }
  it.numel = numel;
  if (numel > 0)
    for (int o = 0; o < nops; o++) {
      const int32_t* st = meta + 1 + nd * (1 + o);
      int64_t lo = offs[o], hi = offs[o];
      for (int d = 0; d < nd; d++) {
        const int64_t span = static_cast<int64_t>(st[d]) * (shape[d] - 1);  // |span| < 2^62
        // a single span past 2^53 cannot fit any array; bounding each keeps lo/hi (16 spans) from overflowing
        if (!args.check(span <= kMaxNumel && span >= -kMaxNumel, "a strided view reaches outside its array")) return false;
        if (span < 0) lo += span;
        else hi += span;
      }
      if (!args.check(lo >= 0 && hi < static_cast<int64_t>(lens[o]), "a strided view reaches outside its array")) return false;
    }
  int k = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 1) continue;
    it.shape[k] = shape[d];
    for (int o = 0; o < nops; o++) it.st[o][k] = meta[1 + nd * (1 + o) + d];
    k++;
  }
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

// Calls fn(row, off[]) for rows [r0, r1) of the outer dims (all but the innermost), with each operand's element
// offset of that row. The multi-index is decoded once and then advanced like an odometer.
template <typename F>
ALWAYS_INLINE void for_rows(const Iter& it, int nops, int64_t r0, int64_t r1, F&& fn) {
  const int od = it.nd - 1;
  int64_t idx[kMaxDims] = {0};
  int64_t off[3] = {0, 0, 0};
  int64_t rem = r0;
  for (int d = od - 1; d >= 0; d--) {
    idx[d] = rem % it.shape[d];
    rem /= it.shape[d];
    for (int o = 0; o < nops; o++) off[o] += idx[d] * it.st[o][d];
  }
  for (int64_t r = r0; r < r1; r++) {
    fn(r, off);
    for (int d = od - 1; d >= 0; d--) {
      for (int o = 0; o < nops; o++) off[o] += it.st[o][d];
      if (++idx[d] < it.shape[d]) break;
      for (int o = 0; o < nops; o++) off[o] -= it.st[o][d] * it.shape[d];
      idx[d] = 0;
    }
  }
}

inline int64_t rows_of(const Iter& it) {
  int64_t rows = 1;
  for (int d = 0; d < it.nd - 1; d++) rows *= it.shape[d];
  return rows;
}

// Strided unary whose innermost dim is not contiguous in x but dim p is (a transposed read): for each index of
// the other dims, the (p, last) plane is copied in tiles, then the op runs in place on the output.
void unary_transposed(int op, const float* x, float* y, const Iter& it, int p, double a, double b) {
  const int nd = it.nd;
  int64_t ost[kMaxDims];  // contiguous output strides of the collapsed shape
  ost[nd - 1] = 1;
  for (int d = nd - 2; d >= 0; d--) ost[d] = ost[d + 1] * it.shape[d + 1];
  const int64_t P = it.shape[p], L = it.shape[nd - 1], sxl = it.st[0][nd - 1];
  int64_t planes = it.numel / (P * L);
  constexpr int64_t T = 32;
  par_for(planes * ((P + T - 1) / T), std::max<int64_t>(1, kGrainMemBound / (T * L)), [&](int64_t t0, int64_t t1) {
    const int64_t tilesP = (P + T - 1) / T;
    for (int64_t t = t0; t < t1; t++) {
      int64_t plane = t / tilesP, pb = (t % tilesP) * T, pe = std::min(P, pb + T);
      // offsets of this plane (decode over the dims other than p and the last)
      int64_t xo = 0, yo = 0, rem = plane;
      for (int d = nd - 2; d >= 0; d--) {
        if (d == p) continue;
        const int64_t c = rem % it.shape[d];
        rem /= it.shape[d];
        xo += c * it.st[0][d];
        yo += c * ost[d];
      }
      for (int64_t lb = 0; lb < L; lb += T) {
        const int64_t le = std::min(L, lb + T);
        for (int64_t i = pb; i < pe; i++) {
          const float* src = x + xo + i + lb * sxl;  // it.st[0][p] == 1
          float* dst = y + yo + i * ost[p] + lb;
          for (int64_t j = 0; j < le - lb; j++) dst[j] = src[j * sxl];
        }
      }
      if (op != U_COPY)
        for (int64_t i = pb; i < pe; i++) unary_contig(op, y + yo + i * ost[p], y + yo + i * ost[p], L, a, b);
    }
  });
}

// ---- N-API glue

// unary(op, x, xOffset, out, n, alpha, beta): contiguous x[xOffset, xOffset + n) → out[0, n)
napi_value Unary(napi_env env, napi_callback_info info) {
  Args args(env, info, "unary");
  size_t xl, ol;
  const int op = static_cast<int>(args.int64(0));
  const float* x = args.f32(1, xl);
  const int64_t off = args.int64(2);
  float* y = args.f32(3, ol);
  const int64_t n = args.int64(4);
  const double a = args.num(5), b = args.num(6);
  if (args.failed()) return args.fail();
  args.check(op >= 0 && op < U_COUNT, "unknown unary op");
  args.check(span_in(xl, off, n) && n <= static_cast<int64_t>(ol), "out of bounds");
  if (args.failed()) return args.fail();
  par_for(n, cheap_unary(op) ? kGrainMemBound : kGrain, [&](int64_t s, int64_t e) { unary_contig(op, x + off + s, y + s, e - s, a, b); });
  return nullptr;
}

// unaryStrided(x, out, meta = [op, xOffset, nd, shape[nd], strides[nd]], alpha, beta)
napi_value UnaryStrided(napi_env env, napi_callback_info info) {
  Args args(env, info, "unaryStrided");
  size_t xl, ol, ml;
  const float* x = args.f32(0, xl);
  float* y = args.f32(1, ol);
  const int32_t* meta = args.i32(2, ml);
  const double a = args.num(3), b = args.num(4);
  if (args.failed() || !args.check(ml >= 3, "meta too short")) return args.fail();
  const int op = meta[0];
  const int64_t off = meta[1];
  Iter it;
  if (!args.check(op >= 0 && op < U_COUNT, "unknown unary op") || !build_iter(args, meta + 2, ml - 2, 1, &off, &xl, it) ||
      !args.check(it.numel <= static_cast<int64_t>(ol), "out is too short"))
    return args.fail();
  if (it.numel == 0) return nullptr;
  x += off;
  if (it.nd == 0) {  // one element
    unary_contig(op, x, y, 1, a, b);
    return nullptr;
  }
  const int64_t inner = it.shape[it.nd - 1], sx = it.st[0][it.nd - 1], rows = rows_of(it);
  if (sx != 1) {
    for (int p = it.nd - 2; p >= 0; p--)
      if (it.st[0][p] == 1) {
        unary_transposed(op, x, y, it, p, a, b);
        return nullptr;
      }
  }
  const int64_t grain = cheap_unary(op) ? kGrainMemBound : kGrain;
  if (rows == 1 && sx == 1) {
    par_for(inner, grain, [&](int64_t s, int64_t e) { unary_contig(op, x + s, y + s, e - s, a, b); });
    return nullptr;
  }
  par_for(rows, std::max<int64_t>(1, grain / inner), [&](int64_t r0, int64_t r1) {
    float tmp[1024];
    for_rows(it, 1, r0, r1, [&](int64_t r, const int64_t* o) {
      const float* src = x + o[0];
      float* dst = y + r * inner;
      if (sx == 1) {
        unary_contig(op, src, dst, inner, a, b);
        return;
      }
      for (int64_t c0 = 0; c0 < inner; c0 += 1024) {  // gather a chunk, then run the op on it
        const int64_t c1 = std::min(inner, c0 + 1024);
        for (int64_t i = c0; i < c1; i++) tmp[i - c0] = src[i * sx];
        unary_contig(op, tmp, dst + c0, c1 - c0, a, b);
      }
    });
  });
  return nullptr;
}

// unaryBackward(op, x | null, y | null, g, out, alpha, beta): contiguous, n = out.length
napi_value UnaryBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "unaryBackward");
  size_t xl, yl, gl, ol;
  const int op = static_cast<int>(args.int64(0));
  const float* x = args.f32_opt(1, xl);
  const float* y = args.f32_opt(2, yl);
  const float* g = args.f32(3, gl);
  float* out = args.f32(4, ol);
  const double a = args.num(5), b = args.num(6);
  if (args.failed() || !args.check(op >= 0 && op < U_COUNT, "unknown unary op")) return args.fail();
  const size_t n = ol;
  if (!args.check(gl >= n, "g is shorter than out") || !args.check(!deriv_needs_x(op) || (x && xl >= n), "x missing or too short") ||
      !args.check(!deriv_needs_y(op) || (y && yl >= n), "y missing or too short"))
    return args.fail();
  if (!x) x = g;  // not read by this op
  if (!y) y = g;
  [[maybe_unused]] const bool avx = simd_enabled();
  par_for(static_cast<int64_t>(n), cheap_unary(op) ? kGrainMemBound : kGrain, [&](int64_t s, int64_t e) {
#if SHRINK_X86
    if (avx) return backward_avx2(op, x + s, y + s, g + s, out + s, e - s, a, b);
#endif
    backward_portable(op, x + s, y + s, g + s, out + s, e - s, a, b);
  });
  return nullptr;
}

// binary(a, b, out, meta = [op, aOffset, bOffset, nd, shape[nd], aStrides[nd], bStrides[nd]])
napi_value BinaryOp(napi_env env, napi_callback_info info) {
  Args args(env, info, "binary");
  size_t al, bl, ol, ml;
  const float* a = args.f32(0, al);
  const float* b = args.f32(1, bl);
  float* out = args.f32(2, ol);
  const int32_t* meta = args.i32(3, ml);
  if (args.failed() || !args.check(ml >= 4, "meta too short")) return args.fail();
  const int op = meta[0];
  const int64_t offs[2] = {meta[1], meta[2]};
  const size_t lens[2] = {al, bl};
  Iter it;
  if (!args.check(op >= 0 && op < B_COUNT, "unknown binary op") || !build_iter(args, meta + 3, ml - 3, 2, offs, lens, it) ||
      !args.check(it.numel <= static_cast<int64_t>(ol), "out is too short"))
    return args.fail();
  if (it.numel == 0) return nullptr;
  a += offs[0];
  b += offs[1];
  const BinaryRun run = binary_run();
  if (it.nd == 0) {
    out[0] = binary_scalar(op, a[0], b[0]);
    return nullptr;
  }
  const int64_t inner = it.shape[it.nd - 1], sa = it.st[0][it.nd - 1], sb = it.st[1][it.nd - 1], rows = rows_of(it);
  const int64_t grain = op <= B_DIV || op >= B_EQ ? kGrainMemBound : kGrain;
  if (rows == 1) {  // one run: split it
    par_for(inner, grain, [&](int64_t s, int64_t e) { run(op, a + s * sa, sa, b + s * sb, sb, out + s, e - s); });
    return nullptr;
  }
  par_for(rows, std::max<int64_t>(1, grain / inner), [&](int64_t r0, int64_t r1) {
    for_rows(it, 2, r0, r1, [&](int64_t r, const int64_t* o) { run(op, a + o[0], sa, b + o[1], sb, out + r * inner, inner); });
  });
  return nullptr;
}

// binaryContig(op, a, aOffset, b, bOffset, out): both operands contiguous over out.length elements. The common
// same-shape case without the meta array (one typed-array argument less: ~85 ns of a ~300 ns call).
napi_value BinaryContig(napi_env env, napi_callback_info info) {
  Args args(env, info, "binaryContig");
  size_t al, bl, ol;
  const int op = static_cast<int>(args.int64(0));
  const float* a = args.f32(1, al);
  const int64_t ao = args.int64(2);
  const float* b = args.f32(3, bl);
  const int64_t bo = args.int64(4);
  float* out = args.f32(5, ol);
  if (args.failed()) return args.fail();
  const int64_t n = static_cast<int64_t>(ol);
  args.check(op >= 0 && op < B_COUNT, "unknown binary op");
  args.check(span_in(al, ao, n) && span_in(bl, bo, n), "a or b is too short");
  if (args.failed()) return args.fail();
  a += ao;
  b += bo;
  const BinaryRun run = binary_run();
  par_for(n, op <= B_DIV || op >= B_EQ ? kGrainMemBound : kGrain, [&](int64_t s, int64_t e) { run(op, a + s, 1, b + s, 1, out + s, e - s); });
  return nullptr;
}

// where(cond, a, b, out, meta = [cOffset, aOffset, bOffset, nd, shape[nd], cStrides[nd], aStrides[nd], bStrides[nd]])
napi_value Where(napi_env env, napi_callback_info info) {
  Args args(env, info, "where");
  size_t cl, al, bl, ol, ml;
  const float* c = args.f32(0, cl);
  const float* a = args.f32(1, al);
  const float* b = args.f32(2, bl);
  float* out = args.f32(3, ol);
  const int32_t* meta = args.i32(4, ml);
  if (args.failed() || !args.check(ml >= 4, "meta too short")) return args.fail();
  const int64_t offs[3] = {meta[0], meta[1], meta[2]};
  const size_t lens[3] = {cl, al, bl};
  Iter it;
  if (!build_iter(args, meta + 3, ml - 3, 3, offs, lens, it) || !args.check(it.numel <= static_cast<int64_t>(ol), "out is too short"))
    return args.fail();
  if (it.numel == 0) return nullptr;
  c += offs[0];
  a += offs[1];
  b += offs[2];
  if (it.nd == 0) {
    out[0] = c[0] != 0.f ? a[0] : b[0];
    return nullptr;
  }
  const WhereRun run = where_run();
  const int64_t inner = it.shape[it.nd - 1], sc = it.st[0][it.nd - 1], sa = it.st[1][it.nd - 1], sb = it.st[2][it.nd - 1];
  const int64_t rows = rows_of(it);
  if (rows == 1) {
    par_for(inner, kGrainMemBound, [&](int64_t s, int64_t e) { run(c + s * sc, sc, a + s * sa, sa, b + s * sb, sb, out + s, e - s); });
    return nullptr;
  }
  par_for(rows, std::max<int64_t>(1, kGrainMemBound / inner), [&](int64_t r0, int64_t r1) {
    for_rows(it, 3, r0, r1, [&](int64_t r, const int64_t* o) { run(c + o[0], sc, a + o[1], sa, b + o[2], sb, out + r * inner, inner); });
  });
  return nullptr;
}

// setSimd(enabled?: boolean): whether the AVX2 paths of the elementwise/reduce/nn/convert kernels run. Without an
// argument, only reports. Tests use setSimd(false) to cover the portable paths.
napi_value SetSimd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool v;
  if (argc >= 1 && napi_get_value_bool(env, argv[0], &v) == napi_ok) g_simd.store(v, std::memory_order_relaxed);
  napi_value r;
  napi_get_boolean(env, simd_enabled(), &r);
  return r;
}

}  // namespace

void init_elementwise(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "unary", denormal_guarded<Unary>);
  export_fn(env, exports, "unaryStrided", denormal_guarded<UnaryStrided>);
  export_fn(env, exports, "unaryBackward", denormal_guarded<UnaryBackward>);
  export_fn(env, exports, "binary", denormal_guarded<BinaryOp>);
  export_fn(env, exports, "binaryContig", denormal_guarded<BinaryContig>);
  export_fn(env, exports, "where", denormal_guarded<Where>);
  export_fn(env, exports, "setSimd", SetSimd);
  register_kernel("elementwise", [] { return simd_enabled() ? "avx2" : "portable"; });
}

}  // namespace shrink
