// Conditional matrix multiplication (CMM) for fast feedforward (FFF) layers at inference: UltraFastBERT's tree of
// 2^(D+1) − 1 neurons, of which each token uses the D + 1 on its root-to-leaf path. The TypeScript reference
// (src/compress/fff/cmm.ts, cmmReference) is the spec; tests compare every path here against it.
//
// fffCmm(x, M, K, w1, b1|null, w2t, O, depth, P, strict, out, path, nodes|null):
//   x [M, K]; w1 [P·N, K] (linear_in.weight, tree p at rows p·N … p·N + N − 1, N = 2^(depth+1) − 1); b1 [P·N] or
//   null (linear_in.bias); w2t [P·N, O] (linear_out.weight transposed, so a node's output column is a row here);
//   out [M, O] (overwritten); nodes [M, P, depth + 1] (int32, optional: the visited nodes, heap order within a tree).
//   Per token and tree: D + 1 dot products down the tree (node n → child 2n + 1, or 2n + 2 when its logit
//   x·w1[n] + b1[n] is > 0 (`strict`, the training form's decision) or ≥ 0 (not strict, fff_bmm's)), then
//   out += GELU(logit)·w2t[n] for those nodes: per token 2·(D+1)·(K + O)·P flops instead of 2·N·(K + O)·P.
//   A NaN logit goes left under both decisions (NaN compares false), as torch does.
//   path: −1 auto (the best this CPU and SHRINK_ISA allow), 0 portable, 1 AVX2/FMA, 2 AVX-512; asking for a path
//   the CPU (or SHRINK_ISA) lacks is a RangeError. Tokens are split over the thread pool. Batches of at least
//   _fffBatchedMinTokens() tokens (default kDefaultBatchedMin) descend level by level, grouped by node
//   (run_batched); smaller ones token by token (run_tokens). Both give bit-identical results.
// fffCmmPaths(): the names of the paths this CPU can run ('portable', 'avx2', 'avx512'), in that order.
// _fffBatchedMinTokens(n?): tests and benchmarks; sets (0: always batched) and returns the batched threshold.
//
// GELU is the erf form, computed in double for every path (std::erf; D + 1 values per token and tree, a few % of
// the kernel's time at K = 768), then rounded to float: the reference does the same in float64.
#include <algorithm>
#include <atomic>
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

constexpr int kMaxDepth = 24;  // N = 2^25 − 1 nodes: far beyond any layer we build; bounds the per-token stack arrays
// run_batched: batches of at least kDefaultBatchedMin tokens (measured on Zen 4, hidden 768, depth 11: equal
// below ~48 tokens, 10–15 % faster at 128, 1.5× from 512 on), blocks of kBlock tokens (x rows in L2), superblocks
// of at most kSuper tokens per thread (the span sorted by node for the deep levels and the output sums).
constexpr int64_t kDefaultBatchedMin = 64;
constexpr int64_t kBlock = 256;
constexpr int64_t kSuper = 16384;

struct Tree {
  const float* w1;
  const float* b1;
  const float* w2t;
  int64_t K, O, N;
  int depth, P;
  bool strict;
};

inline float gelu_d(float v) {
  const double x = v;
  return static_cast<float>(0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440)));
}

inline bool go_right(float s, bool strict) { return strict ? s > 0.f : s >= 0.f; }

// ---- portable

float dot_portable(const float* a, const float* b, int64_t n) {
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; i++) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

void axpy_rows_portable(const Tree& t, const int32_t* rows, const float* coef, int n, float* out) {
  for (int64_t o = 0; o < t.O; o++) out[o] = 0.f;
  for (int r = 0; r < n; r++) {
    const float a = coef[r];
    const float* w = t.w2t + static_cast<int64_t>(rows[r]) * t.O;
    for (int64_t o = 0; o < t.O; o++) out[o] += a * w[o];
  }
}

#if SHRINK_X86
// ---- AVX2 / FMA

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) inline __m256i tail_mask8(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps(), c3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    c0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), c0);
    c1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), c1);
    c2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), c2);
    c3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), c3);
  }
  for (; i + 8 <= n; i += 8) c0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), c0);
  if (i < n) {
    const __m256i m = tail_mask8(n - i);
    c1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), c1);
  }
  return hsum256(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)));
}

// out[0..O) = Σ_r coef[r]·w2t[rows[r]]: 32 outputs at a time held in 4 registers over all rows.
__attribute__((target("avx2,fma"))) void axpy_rows_avx2(const Tree& t, const int32_t* rows, const float* coef, int n, float* out) {
  int64_t o = 0;
  for (; o + 32 <= t.O; o += 32) {
    __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps(), c3 = _mm256_setzero_ps();
    for (int r = 0; r < n; r++) {
      const __m256 a = _mm256_set1_ps(coef[r]);
      const float* w = t.w2t + static_cast<int64_t>(rows[r]) * t.O + o;
      c0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w), c0);
      c1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w + 8), c1);
      c2 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w + 16), c2);
      c3 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w + 24), c3);
    }
    _mm256_storeu_ps(out + o, c0);
    _mm256_storeu_ps(out + o + 8, c1);
    _mm256_storeu_ps(out + o + 16, c2);
    _mm256_storeu_ps(out + o + 24, c3);
  }
  for (; o < t.O; o += 8) {
    const __m256i m = tail_mask8(t.O - o);
    __m256 c = _mm256_setzero_ps();
    for (int r = 0; r < n; r++) c = _mm256_fmadd_ps(_mm256_set1_ps(coef[r]), _mm256_maskload_ps(t.w2t + static_cast<int64_t>(rows[r]) * t.O + o, m), c);
    _mm256_maskstore_ps(out + o, m, c);
  }
}

// ---- AVX-512

__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) float dot_avx512(const float* a, const float* b, int64_t n) {
  __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps(), c3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    c0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), c0);
    c1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), c1);
    c2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), c2);
    c3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), c3);
  }
  for (; i + 16 <= n; i += 16) c0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), c0);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    c1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), c1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)));
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) void axpy_rows_avx512(const Tree& t, const int32_t* rows, const float* coef, int n, float* out) {
  int64_t o = 0;
  for (; o + 64 <= t.O; o += 64) {
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps(), c3 = _mm512_setzero_ps();
    for (int r = 0; r < n; r++) {
      const __m512 a = _mm512_set1_ps(coef[r]);
      const float* w = t.w2t + static_cast<int64_t>(rows[r]) * t.O + o;
      c0 = _mm512_fmadd_ps(a, _mm512_loadu_ps(w), c0);
      c1 = _mm512_fmadd_ps(a, _mm512_loadu_ps(w + 16), c1);
      c2 = _mm512_fmadd_ps(a, _mm512_loadu_ps(w + 32), c2);
      c3 = _mm512_fmadd_ps(a, _mm512_loadu_ps(w + 48), c3);
    }
    _mm512_storeu_ps(out + o, c0);
    _mm512_storeu_ps(out + o + 16, c1);
    _mm512_storeu_ps(out + o + 32, c2);
    _mm512_storeu_ps(out + o + 48, c3);
  }
  for (; o < t.O; o += 16) {
    const int64_t left = t.O - o;
    const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
    __m512 c = _mm512_setzero_ps();
    for (int r = 0; r < n; r++) c = _mm512_fmadd_ps(_mm512_set1_ps(coef[r]), _mm512_maskz_loadu_ps(m, t.w2t + static_cast<int64_t>(rows[r]) * t.O + o), c);
    _mm512_mask_storeu_ps(out + o, m, c);
  }
}
#endif

enum Path { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

int best_path() {
#if SHRINK_X86
  if (simd_enabled() && has_avx2_fma()) return has_avx512f() ? kAvx512 : kAvx2;
#endif
  return kPortable;
}
bool path_available(int p) { return p >= kPortable && p <= best_path(); }
const char* path_label(int p) { return p == kAvx512 ? "avx512" : p == kAvx2 ? "avx2" : "portable"; }
const char* kernel_name() {
  switch (best_path()) {
    case kAvx512: return "avx512 descend + 64-wide row sums";
    case kAvx2: return "avx2 descend + 32-wide row sums";
    default: return "portable";
  }
}

// One token: descend every tree, then sum the visited rows of w2t.
template <float (*Dot)(const float*, const float*, int64_t), void (*Axpy)(const Tree&, const int32_t*, const float*, int, float*)>
void token(const Tree& t, const float* x, float* out, int32_t* nodes, int32_t* rows, float* coef) {
  const int L = t.depth + 1;
  for (int p = 0; p < t.P; p++) {
    int64_t node = 0;
    for (int d = 0; d < L; d++) {
      const int64_t row = p * t.N + node;
      float s = Dot(x, t.w1 + row * t.K, t.K);
      if (t.b1) s += t.b1[row];
      rows[p * L + d] = static_cast<int32_t>(row);
      coef[p * L + d] = s;
      if (nodes) nodes[p * L + d] = static_cast<int32_t>(node);
      node = 2 * node + 1 + (go_right(s, t.strict) ? 1 : 0);
    }
  }
  const int n = t.P * L;
  for (int i = 0; i < n; i++) coef[i] = gelu_d(coef[i]);
  Axpy(t, rows, coef, n, out);
}

template <float (*Dot)(const float*, const float*, int64_t), void (*Axpy)(const Tree&, const int32_t*, const float*, int, float*)>
void run_tokens(const Tree& t, const float* x, int64_t M, float* out, int32_t* nodes) {
  const int64_t per = static_cast<int64_t>(t.P) * (t.depth + 1);
  // one task ≈ 64k multiply-adds, so batch 1 stays on the calling thread
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, per * (t.K + t.O)));
  par_for(M, grain, [&](int64_t m0, int64_t m1) {
    std::vector<int32_t> rows(per);
    std::vector<float> coef(per);
    for (int64_t m = m0; m < m1; m++)
      token<Dot, Axpy>(t, x + m * t.K, out + m * t.O, nodes ? nodes + m * per : nullptr, rows.data(), coef.data());
  });
}

// Batches of at least this many tokens run level by level (run_batched); smaller ones token by token
// (_fffBatchedMinTokens sets it).
std::atomic<int64_t> g_batched_min{kDefaultBatchedMin};

// Level-synchronous descent for larger batches (issue 18 item 2). Each thread takes a span of tokens in superblocks
// of up to kSuper and, per tree, descends them a block of up to kBlock tokens at a time (their x rows stay in L2),
// level by level: the block's tokens are kept sorted by their current node (a run of equal nodes is a group sharing
// that path prefix), so each w1 row is read once per group while it is hot in L1, rows are visited in ascending
// order (the prefetcher streams them), and consecutive dot products are independent (no token waits on its previous
// level's row). After each level a stable left/right split of every group keeps the order sorted by node. Blocks
// first take the superblock in token order down to level `split` (where a node still has about kBlock / 2 of its
// tokens); then the superblock is counting-sorted by node and the deep levels run block by block in that order, so
// a block's tokens share a path prefix and its deep rows are read once per group, not once per token. Last, each
// token's visited w2t rows are summed by the same Axpy, in the same order (tree, then level), as token(), with the
// tokens taken in the order of their tree-0 leaf (a counting sort) so that tokens sharing rows run back to back.
// Every dot product is the same Dot call as token()'s: logits, nodes and outputs are bit-identical to the
// per-token path (measured: hidden 768, depth 11, 1 thread, 1.5× faster per token from 512 tokens on).
template <float (*Dot)(const float*, const float*, int64_t), void (*Axpy)(const Tree&, const int32_t*, const float*, int, float*)>
void run_batched(const Tree& t, const float* x, int64_t M, float* out, int32_t* nodes) {
  const int L = t.depth + 1;
  const int per = t.P * L;
  const int64_t grain = kBlock / 4;
  par_for(M, grain, [&](int64_t m0, int64_t m1) {
    const int S = static_cast<int>(std::min<int64_t>({kSuper, m1 - m0, std::max<int64_t>(1, (int64_t{1} << 20) / per)}));
    const int B = static_cast<int>(std::min<int64_t>(kBlock, S));
    std::vector<int32_t> rows(static_cast<size_t>(S) * per), order(B), tmp(B), outorder(S), sorder(S), scur(S);
    std::vector<float> coef(static_cast<size_t>(S) * per);
    std::vector<int32_t> count;
    for (int64_t s0 = m0; s0 < m1; s0 += S) {
      const int ns = static_cast<int>(std::min<int64_t>(S, m1 - s0));
      // Levels [0, split) block by block in token order; then the superblock's tokens sorted by node (counting
      // sort), and levels [split, L) block by block in that order, so a block's tokens share a path prefix.
      int split = 0;
      while (split + 1 < L && (int64_t{ns} >> (split + 1)) >= std::max(1, B / 2)) split++;  // 2^split ≤ ns
      for (int p = 0; p < t.P; p++) {
        for (int j = 0; j < ns; j++) sorder[j] = j, scur[j] = 0;
        for (int stage = 0; stage < 2; stage++) {
          const int d0 = stage == 0 ? 0 : split, d1 = stage == 0 ? split : L;
          if (d0 == d1) continue;
          if (stage == 1 && d0 > 0) {
            const int64_t first = (int64_t{1} << d0) - 1, width = int64_t{1} << d0;
            count.assign(static_cast<size_t>(width) + 1, 0);
            for (int j = 0; j < ns; j++) count[scur[j] - first + 1]++;
            for (int64_t i = 0; i < width; i++) count[i + 1] += count[i];
            for (int j = 0; j < ns; j++) outorder[count[scur[j] - first]++] = j;
            std::swap(sorder, outorder);
          }
          for (int jb = 0; jb < ns; jb += B) {
            const int n = std::min(B, ns - jb);
            for (int i = 0; i < n; i++) order[i] = sorder[jb + i];  // sorted by node: the sort above, or all at the root
            for (int d = d0; d < d1; d++) {
              for (int i = 0; i < n; i++) {
                const int j = order[i];
                const int64_t node = scur[j];
                const int64_t row = p * t.N + node;
                float s = Dot(x + (s0 + j) * t.K, t.w1 + row * t.K, t.K);
                if (t.b1) s += t.b1[row];
                rows[static_cast<size_t>(j) * per + p * L + d] = static_cast<int32_t>(row);
                coef[static_cast<size_t>(j) * per + p * L + d] = s;
                if (nodes) nodes[(s0 + j) * per + p * L + d] = static_cast<int32_t>(node);
                scur[j] = static_cast<int32_t>(2 * node + 1 + (go_right(s, t.strict) ? 1 : 0));
              }
              if (d + 1 == d1) break;
              // Stable split of each group (equal parent) into left (odd node) then right (even node) children.
              for (int i = 0; i < n;) {
                const int32_t parent = (scur[order[i]] - 1) >> 1;
                int e = i, lefts = 0;
                for (; e < n && ((scur[order[e]] - 1) >> 1) == parent; e++) lefts += scur[order[e]] & 1;
                int l = i, r = i + lefts;
                for (int k = i; k < e; k++) {
                  const int j = order[k];
                  if (scur[j] & 1) tmp[l++] = j;
                  else tmp[r++] = j;
                }
                i = e;
              }
              std::swap(order, tmp);
            }
          }
        }
      }
      for (size_t i = 0; i < static_cast<size_t>(ns) * per; i++) coef[i] = gelu_d(coef[i]);
      // Output sums in the order of tree 0's leaf (a counting sort), so tokens that share nodes run back to back.
      const int64_t leaves = int64_t{1} << t.depth;
      if (leaves <= 4 * static_cast<int64_t>(ns) + 64) {
        count.assign(static_cast<size_t>(leaves) + 1, 0);
        const int32_t first = static_cast<int32_t>(leaves - 1);
        for (int j = 0; j < ns; j++) count[rows[static_cast<size_t>(j) * per + L - 1] - first + 1]++;
        for (int64_t i = 0; i < leaves; i++) count[i + 1] += count[i];
        for (int j = 0; j < ns; j++) outorder[count[rows[static_cast<size_t>(j) * per + L - 1] - first]++] = j;
      } else {
        for (int j = 0; j < ns; j++) outorder[j] = j;
      }
      for (int i = 0; i < ns; i++) {
        const int j = outorder[i];
        Axpy(t, rows.data() + static_cast<size_t>(j) * per, coef.data() + static_cast<size_t>(j) * per, per, out + (s0 + j) * t.O);
      }
    }
  });
}

template <float (*Dot)(const float*, const float*, int64_t), void (*Axpy)(const Tree&, const int32_t*, const float*, int, float*)>
void run(const Tree& t, const float* x, int64_t M, float* out, int32_t* nodes) {
  if (M >= g_batched_min.load(std::memory_order_relaxed)) run_batched<Dot, Axpy>(t, x, M, out, nodes);
  else run_tokens<Dot, Axpy>(t, x, M, out, nodes);
}

// fffCmm(x, M, K, w1, b1|null, w2t, O, depth, P, strict, out, path, nodes|null)
napi_value FffCmm(napi_env env, napi_callback_info info) {
  Args a(env, info, "fffCmm");
  size_t xl, w1l, bl, w2l, ol, nl;
  const float* x = a.f32(0, xl);
  const int64_t M = a.int64(1);
  Tree t{};
  t.K = a.int64(2);
  t.w1 = a.f32(3, w1l);
  t.b1 = a.f32_opt(4, bl);
  t.w2t = a.f32(5, w2l);
  t.O = a.int64(6);
  const int64_t depth = a.int64(7);
  const int64_t P = a.int64(8);
  t.strict = a.flag(9);
  float* out = a.f32(10, ol);
  const int64_t path = a.int64(11);
  int32_t* nodes = a.i32_opt(12, nl);
  if (a.failed()) return a.fail();
  if (!a.check(M >= 0 && t.K >= 1 && t.O >= 1 && P >= 1 && P <= 65536, "need M >= 0, K >= 1, O >= 1 and 1 <= P <= 65536")) return a.fail();
  if (!a.check(depth >= 0 && depth <= kMaxDepth, "depth must be in [0, 24]")) return a.fail();
  t.depth = static_cast<int>(depth);
  t.P = static_cast<int>(P);
  t.N = (int64_t{2} << depth) - 1;
  if (!a.check(t.N * P <= INT32_MAX, "P·(2^(depth+1) − 1) must fit in int32")) return a.fail();
  if (!a.check(holds(xl, M, t.K) && holds(ol, M, t.O), "x or out too short")) return a.fail();
  if (!a.check(holds3(w1l, P, t.N, t.K) && holds3(w2l, P, t.N, t.O) && (!t.b1 || holds(bl, P, t.N)), "w1, b1 or w2t shorter than P·(2^(depth+1) − 1) rows")) return a.fail();
  if (!a.check(!nodes || holds3(nl, M, P, depth + 1), "nodes must hold M·P·(depth + 1) entries")) return a.fail();
  int p = static_cast<int>(path);
  if (path == -1) p = best_path();
  else if (!a.check(path >= 0 && path <= 2, "path must be -1 (auto), 0 (portable), 1 (avx2) or 2 (avx512)")) return a.fail();
  else if (!a.check(path_available(p), "that path is not available on this CPU (or SHRINK_ISA); see fffCmmPaths()")) return a.fail();
  if (M == 0) return a.undefined();
#if SHRINK_X86
  if (p == kAvx512) {
    run<dot_avx512, axpy_rows_avx512>(t, x, M, out, nodes);
    return a.undefined();
  }
  if (p == kAvx2) {
    run<dot_avx2, axpy_rows_avx2>(t, x, M, out, nodes);
    return a.undefined();
  }
#endif
  run<dot_portable, axpy_rows_portable>(t, x, M, out, nodes);
  return a.undefined();
}

// _fffBatchedMinTokens(n?): tests and benchmarks. Sets the batch size from which fffCmm descends level by level
// (0 or 1: always; 2^40: never); returns the value in effect.
napi_value FffBatchedMinTokens(napi_env env, napi_callback_info info) {
  Args a(env, info, "_fffBatchedMinTokens");
  if (a.given(0)) {
    const int64_t n = a.int64(0);
    if (a.failed()) return a.fail();
    if (!a.check(n >= 0 && n <= (int64_t{1} << 40), "tokens must be in [0, 2^40]")) return a.fail();
    g_batched_min.store(n, std::memory_order_relaxed);
  }
  napi_value r;
  napi_create_double(env, static_cast<double>(g_batched_min.load(std::memory_order_relaxed)), &r);
  return r;
}

napi_value FffCmmPaths(napi_env env, napi_callback_info) {
  napi_value arr;
  napi_create_array(env, &arr);
  const int best = best_path();
  for (int p = 0; p <= best; p++) {
    napi_value s;
    napi_create_string_utf8(env, path_label(p), NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, arr, static_cast<uint32_t>(p), s);
  }
  return arr;
}

}  // namespace

void init_fff(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "fffCmm", denormal_guarded<FffCmm>);
  export_fn(env, exports, "fffCmmPaths", FffCmmPaths);
  export_fn(env, exports, "_fffBatchedMinTokens", FffBatchedMinTokens);
  register_kernel("fff", [] { return kernel_name(); });
}

}  // namespace shrink
