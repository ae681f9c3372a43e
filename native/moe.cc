// Sparse mixture-of-experts feedforward at inference: the dispatch of MoELayer (src/compress/moe/layer.ts) for
// float32 inputs and plain float32 Linear experts, with compute proportional to the routed tokens. The TypeScript
// dispatch (gather per expert → up → activation → down → × gate → scatter) is the spec; test/compress/moe-native.test.ts
// compares the two.
//
// moeFfn(x, N, D, choice, kept, gates|null, k, experts, widths, act, bias|null, out):
//   x [N, D] float32; choice [N·k] int32 (expert of each slot, −1: none); kept [N·k] uint8 (1: the slot's choice
//   is within capacity); gates [N·k] float32 or null (all 1); experts: a JS array of 4·E entries, per expert
//   [up.weight [F_e, D], up.bias [F_e] | null, down.weight [D, F_e], down.bias [D] | null] (Float32Arrays, read in
//   place); widths [E] int32 (F_e); act: 0 relu, 1 gelu (erf form), 2 gelu (tanh form), 3 silu, 4 tanh; bias [D] or
//   null (the layer's output bias); out [N, D] (overwritten).
//   Slot i = t·k + j counts when kept[i] and 0 ≤ choice[i] < E. Per expert its slots' tokens are gathered (slot order,
//   as the TypeScript dispatch), then H = act(X·upᵀ + b_up) and Y = H·downᵀ + b_down (the up/down biases are the
//   products' starting values, as the `linear` op does), and out[t] = Σ_j gate[t·k + j]·Y[row of slot t·k + j] over
//   the token's kept slots in rank order, + bias: the same float32 roundings as the TypeScript path apart from the
//   products' summation order.
// _moeSkinnyRows(n?): tests and benchmarks; see Products.
//
// Products X·Wᵀ with W [out, in] as stored: an expert with more than 8 rows (_moeSkinnyRows) runs on the packed
// SGEMM (gemm.cc sgemm_abt, GEMV loops for one row); with up to 8 rows, as dot products of each weight row with
// the expert's rows (AVX2: up to 8 rows of X per pass, k split so that ≥ 8 FMA chains run; portable: sdot, the
// GEMV's dot product), W read in place once. Packing W costs as much as a few rows' product, and a token batch
// spread over many experts leaves few rows each: at D = 768, E = 8, 2–8 rows per expert ran 1.2–2.6× faster as
// dot products than on the packed SGEMM (1 thread, bench:moe's shapes), at 12 rows about even.
// Threads: experts are handed out one at a time to the pool's threads (largest first, each expert on one thread)
// when there are enough of them and none dominates; otherwise experts run in turn, each product on the whole pool.
// The activation uses elementwise.cc's functions (vecmath.h on AVX2, double libm on the portable path), so it
// rounds as the backend's unary ops do; setSimd(false) selects the portable path here (activation and dots) too.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "args.h"
#include "common.h"
#include "pool.h"
#include "vecmath.h"

namespace shrink {
namespace {

enum Act { A_RELU = 0, A_GELU = 1, A_GELU_TANH = 2, A_SILU = 3, A_TANH = 4, A_COUNT };

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kGeluTanhC = 0.79788456080286535588;  // sqrt(2/pi)
constexpr int64_t kSmallFlops = 2LL * 64 * 64 * 64;   // gemm.cc: below this one thread

inline double sigm(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

// elementwise.cc unary_scalar for these ops (portable path: transcendentals in double, rounded once).
inline float act_scalar(int act, float xf) {
  const double x = xf;
  switch (act) {
    case A_RELU: return xf > 0 ? xf : (xf == xf ? 0.f : xf);
    case A_GELU: return static_cast<float>(0.5 * x * std::erfc(-x * kSqrt1_2));
    case A_GELU_TANH: return static_cast<float>(0.5 * x * (1 + std::tanh(kGeluTanhC * (x + 0.044715 * x * x * x))));
    case A_SILU: return static_cast<float>(x * sigm(x));
    case A_TANH: return static_cast<float>(std::tanh(x));
  }
  return xf;
}

void act_portable(int act, float* y, int64_t n) {
  if (act == A_RELU) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : (y[i] == y[i] ? 0.f : y[i]);
    return;
  }
  for (int64_t i = 0; i < n; i++) y[i] = act_scalar(act, y[i]);
}

#if SHRINK_X86
#define SHRINK_MOE_VLOOP(EXPR)                         \
  do {                                                 \
    int64_t i = 0;                                     \
    for (; i + 8 <= n; i += 8) {                       \
      const __m256 v = _mm256_loadu_ps(y + i);         \
      _mm256_storeu_ps(y + i, (EXPR));                 \
    }                                                  \
    if (i < n) {                                       \
      const __m256 v = vm::load_tail(y + i, n - i);    \
      vm::store_tail(y + i, n - i, (EXPR));            \
    }                                                  \
  } while (0)

SHRINK_AVX2_FN void act_avx2(int act, float* y, int64_t n) {
  switch (act) {
    case A_RELU: for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : (y[i] == y[i] ? 0.f : y[i]); return;
    case A_GELU: SHRINK_MOE_VLOOP(vm::gelu(v)); return;
    case A_GELU_TANH: SHRINK_MOE_VLOOP(vm::gelu_tanh(v)); return;
    case A_SILU: SHRINK_MOE_VLOOP(vm::silu(v)); return;
    case A_TANH: SHRINK_MOE_VLOOP(vm::tanh(v)); return;
  }
}
#endif

void activate(int act, float* y, int64_t n) {
#if SHRINK_X86
  if (simd_enabled()) return act_avx2(act, y, n);
#endif
  act_portable(act, y, n);
}

struct Expert {
  const float* up = nullptr;
  const float* up_b = nullptr;
  const float* down = nullptr;
  const float* down_b = nullptr;
  int64_t F = 0;
  int64_t rows = 0;  // routed rows
  int64_t row0 = 0;  // first row in the gathered buffer
  int64_t h0 = 0;    // offset of its hidden block [rows, F]
};

inline void fill_rows(float* c, int64_t rows, int64_t n, const float* b) {
  for (int64_t r = 0; r < rows; r++) {
    if (b)
      std::memcpy(c + r * n, b, static_cast<size_t>(n) * sizeof(float));
    else
      std::memset(c + r * n, 0, static_cast<size_t>(n) * sizeof(float));
  }
}

// Rows at or below which a product runs as dot products instead of the packed SGEMM (_moeSkinnyRows sets it).
std::atomic<int> g_skinny{8};

void dots_portable(const float* A, int64_t M, const float* W, int64_t n0, int64_t n1, int64_t K, float* C, int64_t N) {
  for (int64_t n = n0; n < n1; n++) {
    const float* w = W + n * K;
    for (int64_t m = 0; m < M; m++) C[m * N + n] += sdot(A + m * K, w, K);
  }
}

#if SHRINK_X86
// C[m, n] += A[m]·W[n] for MB rows of A and weight rows n in [n0, n1), one weight row at a time (read once for the
// MB rows, in order, so the weights stream), k split into KU interleaved partial sums: MB·KU ≤ 8 independent FMA
// chains cover the FMA latency.
template <int MB, int KU>
SHRINK_AVX2_FN void dots_rows_avx2(const float* A, const float* W, int64_t n0, int64_t n1, int64_t K, float* C, int64_t N) {
  for (int64_t n = n0; n < n1; n++) {
    const float* w = W + n * K;
    __m256 c[MB][KU];
    for (int r = 0; r < MB; r++)
      for (int u = 0; u < KU; u++) c[r][u] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 * KU <= K; k += 8 * KU)
      for (int u = 0; u < KU; u++) {
        const __m256 v = _mm256_loadu_ps(w + k + 8 * u);
        for (int r = 0; r < MB; r++) c[r][u] = _mm256_fmadd_ps(_mm256_loadu_ps(A + r * K + k + 8 * u), v, c[r][u]);
      }
    for (; k + 8 <= K; k += 8) {
      const __m256 v = _mm256_loadu_ps(w + k);
      for (int r = 0; r < MB; r++) c[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(A + r * K + k), v, c[r][0]);
    }
    if (k < K) {
      const __m256 v = vm::load_tail(w + k, K - k);
      for (int r = 0; r < MB; r++) c[r][0] = _mm256_fmadd_ps(vm::load_tail(A + r * K + k, K - k), v, c[r][0]);
    }
    for (int r = 0; r < MB; r++) {
      __m256 t = c[r][0];
      for (int u = 1; u < KU; u++) t = _mm256_add_ps(t, c[r][u]);
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_movehdup_ps(s));
      C[r * N + n] += _mm_cvtss_f32(s);
    }
  }
}

// Rows of A in blocks of up to 8 (one pass over the weights per block).
SHRINK_AVX2_FN void dots_avx2(const float* A, int64_t M, const float* W, int64_t n0, int64_t n1, int64_t K, float* C, int64_t N) {
  for (int64_t m = 0; m < M; m += 8) {
    const float* a = A + m * K;
    float* c = C + m * N;
    switch (std::min<int64_t>(8, M - m)) {
      case 1: dots_rows_avx2<1, 4>(a, W, n0, n1, K, c, N); break;
      case 2: dots_rows_avx2<2, 4>(a, W, n0, n1, K, c, N); break;
      case 3: dots_rows_avx2<3, 2>(a, W, n0, n1, K, c, N); break;
      case 4: dots_rows_avx2<4, 2>(a, W, n0, n1, K, c, N); break;
      case 5: dots_rows_avx2<5, 1>(a, W, n0, n1, K, c, N); break;
      case 6: dots_rows_avx2<6, 1>(a, W, n0, n1, K, c, N); break;
      case 7: dots_rows_avx2<7, 1>(a, W, n0, n1, K, c, N); break;
      default: dots_rows_avx2<8, 1>(a, W, n0, n1, K, c, N); break;
    }
  }
}
#endif

// C[M, N] += A[M, K]·W[N, K]ᵀ. Few rows (M ≤ g_skinny): dot products of each weight row with the rows of A (AVX2:
// up to 8 rows of A per pass over the weights; portable: sdot, the GEMV's dot product, as codebook.cc does for
// M ≤ 4), W read in place and never packed: for a few rows, packing it costs more than the product. More rows: the
// packed SGEMM. nt as sgemm_abt (1: this thread only).
void abt(const float* A, const float* W, float* C, int64_t M, int64_t N, int64_t K, int nt) {
  if (M <= g_skinny.load(std::memory_order_relaxed)) {
    auto run = [&](int64_t n0, int64_t n1) {
#if SHRINK_X86
      if (simd_enabled()) return dots_avx2(A, M, W, n0, n1, K, C, N);
#endif
      dots_portable(A, M, W, n0, n1, K, C, N);
    };
    if (nt == 1)
      run(0, N);
    else
      par_for(N, std::max<int64_t>(16, 32768 / std::max<int64_t>(1, M * K)), run);
    return;
  }
  sgemm_abt(A, K, W, K, C, M, N, K, true, nt);
}

// One expert on rows [row0, row0 + rows) of xy (the gathered inputs, replaced by the expert's outputs).
void run_expert(const Expert& e, int64_t D, int act, float* xy, float* h, int nt) {
  float* x = xy + e.row0 * D;
  float* hh = h + e.h0;
  fill_rows(hh, e.rows, e.F, e.up_b);
  abt(x, e.up, hh, e.rows, e.F, D, nt);
  activate(act, hh, e.rows * e.F);
  fill_rows(x, e.rows, D, e.down_b);
  abt(hh, e.down, x, e.rows, D, e.F, nt);
}

// A Float32Array element of `arr` (null/undefined allowed when `optional`); false (and a RangeError recorded in `a`)
// when it is something else or shorter than rows·cols.
bool f32_element(Args& a, napi_value arr, uint32_t i, bool optional, int64_t rows, int64_t cols, const float*& out, const char* what) {
  out = nullptr;
  napi_value v;
  if (napi_get_element(a.env(), arr, i, &v) != napi_ok) return a.check(false, "experts must be an array of 4·E entries");
  napi_valuetype t;
  if (napi_typeof(a.env(), v, &t) != napi_ok) return a.check(false, what);
  if (t == napi_null || t == napi_undefined) return a.check(optional, what);
  napi_typedarray_type type;
  size_t len = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(a.env(), v, &type, &len, &data, nullptr, nullptr) != napi_ok || type != napi_float32_array) return a.check(false, what);
  if (!a.check(holds(len, rows, cols), what)) return false;
  out = static_cast<const float*>(data);
  return true;
}

thread_local std::vector<int32_t> t_row;   // [N·k] gathered row of each slot (−1: none)
thread_local std::vector<float> t_xy, t_h;

// moeFfn(x, N, D, choice, kept, gates|null, k, experts, widths, act, bias|null, out)
napi_value MoeFfn(napi_env env, napi_callback_info info) {
  Args a(env, info, "moeFfn");
  size_t xl, cl, kl, gl, wl, bl, ol;
  const float* x = a.f32(0, xl);
  const int64_t N = a.int64(1);
  const int64_t D = a.int64(2);
  const int32_t* choice = a.i32(3, cl);
  const uint8_t* kept = a.u8(4, kl);
  const float* gates = a.f32_opt(5, gl);
  const int64_t k = a.int64(6);
  const int32_t* widths = a.i32(8, wl);
  const int64_t act = a.int64(9);
  const float* bias = a.f32_opt(10, bl);
  float* out = a.f32(11, ol);
  if (a.failed()) return a.fail();
  if (!a.check(N >= 0 && D >= 1 && k >= 1 && k <= 65536, "need N >= 0, D >= 1 and 1 <= k <= 65536")) return a.fail();
  if (!a.check(act >= 0 && act < A_COUNT, "act must be 0 (relu), 1 (gelu), 2 (gelu tanh), 3 (silu) or 4 (tanh)")) return a.fail();
  if (!a.check(holds(xl, N, D) && holds(ol, N, D), "x or out shorter than N·D")) return a.fail();
  if (!a.check(holds(cl, N, k) && holds(kl, N, k) && (!gates || holds(gl, N, k)), "choice, kept or gates shorter than N·k")) return a.fail();
  if (!a.check(!bias || holds(bl, D), "bias shorter than D")) return a.fail();
  if (!a.check(N * k <= INT32_MAX, "N·k must fit in int32")) return a.fail();
  const int64_t E = static_cast<int64_t>(wl);
  if (!a.check(E >= 1, "widths must name at least one expert")) return a.fail();
  const napi_value arr = a.value(7);
  {
    bool is_array = false;
    uint32_t len = 0;
    if (napi_is_array(env, arr, &is_array) != napi_ok || !is_array || napi_get_array_length(env, arr, &len) != napi_ok) is_array = false;
    if (!a.check(is_array && static_cast<int64_t>(len) == 4 * E, "experts must be an array of 4·E entries (up weight, up bias, down weight, down bias)")) return a.fail();
  }
  for (int64_t e = 0; e < E; e++)
    if (!a.check(widths[e] >= 1, "every expert width must be >= 1")) return a.fail();

  // Rows per expert in slot order (the TypeScript dispatch's order), then each slot's gathered row.
  const int64_t S = N * k;
  std::vector<Expert> ex(static_cast<size_t>(E));
  for (int64_t i = 0; i < S; i++) {
    const int32_t c = choice[i];
    if (kept[i] && c >= 0 && c < E) ex[c].rows++;
  }
  int64_t T = 0, Hn = 0;
  for (int64_t e = 0; e < E; e++) {
    Expert& xe = ex[e];
    xe.F = widths[e];
    xe.row0 = T;
    xe.h0 = Hn;
    T += xe.rows;
    Hn += xe.rows * xe.F;
    if (xe.rows == 0) continue;
    const uint32_t b = static_cast<uint32_t>(4 * e);
    if (!f32_element(a, arr, b, false, xe.F, D, xe.up, "an up weight is not a Float32Array of F_e·D values") ||
        !f32_element(a, arr, b + 1, true, xe.F, 1, xe.up_b, "an up bias is neither null nor a Float32Array of F_e values") ||
        !f32_element(a, arr, b + 2, false, D, xe.F, xe.down, "a down weight is not a Float32Array of D·F_e values") ||
        !f32_element(a, arr, b + 3, true, D, 1, xe.down_b, "a down bias is neither null nor a Float32Array of D values"))
      return a.fail();
  }
  if (N == 0) return a.undefined();
  if (t_row.size() < static_cast<size_t>(S)) t_row.resize(static_cast<size_t>(S));
  if (t_xy.size() < static_cast<size_t>(T * D)) t_xy.resize(static_cast<size_t>(T * D));
  if (t_h.size() < static_cast<size_t>(Hn)) t_h.resize(static_cast<size_t>(Hn));
  int32_t* row = t_row.data();
  float* xy = t_xy.data();
  float* h = t_h.data();
  {
    std::vector<int64_t> next(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; e++) next[e] = ex[e].row0;
    for (int64_t i = 0; i < S; i++) {
      const int32_t c = choice[i];
      if (kept[i] && c >= 0 && c < E) {
        const int64_t r = next[c]++;
        row[i] = static_cast<int32_t>(r);
        std::memcpy(xy + r * D, x + (i / k) * D, static_cast<size_t>(D) * sizeof(float));
      } else {
        row[i] = -1;
      }
    }
  }

  // Experts: largest first, handed out dynamically (one thread per expert), unless one of them dominates.
  std::vector<int32_t> order;
  int64_t total = 0, biggest = 0;
  for (int64_t e = 0; e < E; e++)
    if (ex[e].rows > 0) {
      order.push_back(static_cast<int32_t>(e));
      const int64_t w = 4 * ex[e].rows * ex[e].F * D;
      total += w;
      biggest = std::max(biggest, w);
    }
  std::sort(order.begin(), order.end(), [&](int32_t p, int32_t q) {
    const int64_t wp = ex[p].rows * ex[p].F, wq = ex[q].rows * ex[q].F;
    return wp != wq ? wp > wq : p < q;
  });
  const int threads = num_threads();
  const int64_t n_active = static_cast<int64_t>(order.size());
  const int ia = static_cast<int>(act);
  if (threads <= 1 || total < kSmallFlops) {
    for (int32_t e : order) run_expert(ex[e], D, ia, xy, h, 1);
  } else if (n_active >= threads && biggest * threads <= total) {
    std::atomic<int64_t> next{0};
    parallel_run(static_cast<int>(std::min<int64_t>(threads, n_active)), [&](int, int) {
      for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n_active;) run_expert(ex[order[i]], D, ia, xy, h, 1);
    });
  } else {
    for (int32_t e : order) run_expert(ex[e], D, ia, xy, h, 0);
  }

  // Combine: out[t] = Σ_j gate·Y[row] in rank order, + bias.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, D * k));
  par_for(N, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      float* o = out + t * D;
      std::memset(o, 0, static_cast<size_t>(D) * sizeof(float));
      for (int64_t j = 0; j < k; j++) {
        const int64_t i = t * k + j;
        const int32_t r = row[i];
        if (r < 0) continue;
        const float* y = xy + static_cast<int64_t>(r) * D;
        if (gates) {
          const float g = gates[i];
          for (int64_t d = 0; d < D; d++) {
            const float p = g * y[d];  // rounded before the sum, as the TypeScript mul then add
            o[d] += p;
          }
        } else {
          for (int64_t d = 0; d < D; d++) o[d] += y[d];
        }
      }
      if (bias)
        for (int64_t d = 0; d < D; d++) o[d] += bias[d];
    }
  });
  return a.undefined();
}

// _moeSkinnyRows(n?): tests and benchmarks. Sets the row count at or below which an expert's products run as dot
// products (0: always the packed SGEMM); returns the value in effect.
napi_value MoeSkinnyRows(napi_env env, napi_callback_info info) {
  Args a(env, info, "_moeSkinnyRows");
  if (a.given(0)) {
    const int64_t n = a.int64(0);
    if (a.failed()) return a.fail();
    if (!a.check(n >= 0 && n <= 1 << 20, "rows must be in [0, 2^20]")) return a.fail();
    g_skinny.store(static_cast<int>(n), std::memory_order_relaxed);
  }
  napi_value r;
  napi_create_int32(env, g_skinny.load(std::memory_order_relaxed), &r);
  return r;
}

const char* kernel_name() { return simd_enabled() ? "avx2 dots (few rows) / sgemm, avx2 activation" : "portable dots (few rows) / sgemm, portable activation"; }

}  // namespace

void init_moe(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "moeFfn", denormal_guarded<MoeFfn>);
  export_fn(env, exports, "_moeSkinnyRows", MoeSkinnyRows);
  register_kernel("moe", [] { return kernel_name(); });
}

}  // namespace shrink
