// Sparse × dense kernels for pruned Linear layers (src/compress/prune/sparse.ts is the TypeScript reference).
//
// The weight W [N, K] (out, in) is in CSR form: rowPtr [N + 1] (int32), colIdx [nnz] (uint16, so K ≤ 65536) and
// vals [nnz] (float32), each row's columns ascending. Both functions compute out[M, N] = x[M, K] · Wᵀ + bias.
//
// - sparseGemm(x, M, K, rowPtr, colIdx, vals, N, bias|null, out): the CSR kernel.
//   · M ≤ 4 (decoding, batch-1 classification): one dot product per output row and x row, x read at the row's
//     columns, eight independent accumulators (scalar FMA where the CPU has it). vgatherdps (AVX-512 16 lanes, AVX2
//     8) was slower on Zen 4 (1.6–1.75× dense vs 2.1–2.3× for this loop at 90 % sparsity, M = 1).
//   · M > 4: x is transposed block by block (64 rows of x at a time, xT [K, 64], L2-resident) and each nonzero adds
//     val · xT[col, 0..64) to 64 accumulators (4 zmm / 8 ymm): the work is 2·nnz·M flops, with no index per flop.
//   Rows of W are split over the thread pool.
// - sparseDenseGemm(same arguments): the packed SGEMM (gemm.cc) with its B panels densified from CSR as they are
//   packed (KC×16 at a time; the dense weight never exists whole). For densities where the CSR kernel loses.
//
// Checks: types and lengths as the other kernels (args.h), plus the CSR's contents (rowPtr starts at 0, never
// decreases and ends within colIdx and vals; every column < K), so a corrupt checkpoint throws a RangeError
// instead of reading out of bounds. The column check is one vectorized max over colIdx (a fraction of the
// kernel's own pass over it).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "args.h"
#include "common.h"
#include "pool.h"
#include "simd.h"

namespace shrink {
namespace {

constexpr int kMB = 64;  // rows of x per transposed block (M > 4)

struct Csr {
  const int32_t* rowPtr;
  const uint16_t* col;
  const float* val;
  int64_t N, K, nnz;
};

// ---- column bound check (max over colIdx)

#if SHRINK_X86
__attribute__((target("avx2"))) uint16_t max_u16_avx2(const uint16_t* c, int64_t n) {
  __m256i m = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm256_max_epu16(m, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i)));
  alignas(32) uint16_t t[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), m);
  uint16_t r = 0;
  for (int j = 0; j < 16; j++) r = std::max(r, t[j]);
  for (; i < n; i++) r = std::max(r, c[i]);
  return r;
}
#endif

uint16_t max_u16(const uint16_t* c, int64_t n) {
#if SHRINK_X86
  if (simd_enabled()) return max_u16_avx2(c, n);
#endif
  uint16_t r = 0;
  for (int64_t i = 0; i < n; i++) r = std::max(r, c[i]);
  return r;
}

// ---- M ≤ 4: gathered dot products per output row

// Eight independent accumulators: the loop runs at the load ports' pace (index, value, x[col]) instead of one
// float add's latency per nonzero.
// (Measured on Zen 4: faster than vgatherdps, AVX-512 or AVX2, whose gathers are microcoded there.)
__attribute__((always_inline)) inline float row_dot8(const Csr& w, int64_t n, const float* x) {
  float a[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t j = w.rowPtr[n];
  const int64_t e = w.rowPtr[n + 1];
  const uint16_t* c = w.col;
  const float* v = w.val;
  for (; j + 8 <= e; j += 8)
    for (int q = 0; q < 8; q++) a[q] += v[j + q] * x[c[j + q]];
  for (; j < e; j++) a[0] += v[j] * x[c[j]];
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}
float row_dot_portable(const Csr& w, int64_t n, const float* x) { return row_dot8(w, n, x); }

#if SHRINK_X86
// The same loop compiled for AVX2 + FMA (scalar vfmadd: one op per nonzero instead of a multiply and an add).
__attribute__((target("avx2,fma"))) float row_dot_fma(const Csr& w, int64_t n, const float* x) { return row_dot8(w, n, x); }
#endif

// ---- M > 4: transposed blocks of x, 64 accumulators per output row

// xT[k·64 + i] = x[(m0 + i)·K + k] for i < mb, 0 for the padding rows.
void transpose_block(const float* x, int64_t K, int64_t m0, int mb, float* xT) {
  for (int64_t k = 0; k < K; k++) {
    float* d = xT + k * kMB;
    for (int i = 0; i < mb; i++) d[i] = x[(m0 + i) * K + k];
    for (int i = mb; i < kMB; i++) d[i] = 0.f;
  }
}

void rows_block_portable(const Csr& w, int64_t n0, int64_t n1, const float* xT, float* acc /* [64] */, const float* bias, float* out, int64_t m0, int mb) {
  for (int64_t n = n0; n < n1; n++) {
    for (int i = 0; i < kMB; i++) acc[i] = 0.f;
    for (int32_t j = w.rowPtr[n]; j < w.rowPtr[n + 1]; j++) {
      const float v = w.val[j];
      const float* r = xT + static_cast<int64_t>(w.col[j]) * kMB;
      for (int i = 0; i < kMB; i++) acc[i] += v * r[i];
    }
    const float b = bias ? bias[n] : 0.f;
    for (int i = 0; i < mb; i++) out[(m0 + i) * w.N + n] = acc[i] + b;
  }
}

#if SHRINK_X86
__attribute__((target("avx2,fma"))) void rows_block_avx2(const Csr& w, int64_t n0, int64_t n1, const float* xT, float* acc, const float* bias, float* out, int64_t m0, int mb) {
  for (int64_t n = n0; n < n1; n++) {
    __m256 c[8];
    for (int q = 0; q < 8; q++) c[q] = _mm256_setzero_ps();
    for (int32_t j = w.rowPtr[n]; j < w.rowPtr[n + 1]; j++) {
      const __m256 v = _mm256_broadcast_ss(w.val + j);
      const float* r = xT + static_cast<int64_t>(w.col[j]) * kMB;
      for (int q = 0; q < 8; q++) c[q] = _mm256_fmadd_ps(v, _mm256_loadu_ps(r + 8 * q), c[q]);
    }
    for (int q = 0; q < 8; q++) _mm256_storeu_ps(acc + 8 * q, c[q]);
    const float b = bias ? bias[n] : 0.f;
    for (int i = 0; i < mb; i++) out[(m0 + i) * w.N + n] = acc[i] + b;
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void rows_block_avx512(const Csr& w, int64_t n0, int64_t n1, const float* xT, float* acc, const float* bias, float* out, int64_t m0, int mb) {
  for (int64_t n = n0; n < n1; n++) {
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps(), c3 = _mm512_setzero_ps();
    for (int32_t j = w.rowPtr[n]; j < w.rowPtr[n + 1]; j++) {
      const __m512 v = _mm512_set1_ps(w.val[j]);
      const float* r = xT + static_cast<int64_t>(w.col[j]) * kMB;
      c0 = _mm512_fmadd_ps(v, _mm512_loadu_ps(r), c0);
      c1 = _mm512_fmadd_ps(v, _mm512_loadu_ps(r + 16), c1);
      c2 = _mm512_fmadd_ps(v, _mm512_loadu_ps(r + 32), c2);
      c3 = _mm512_fmadd_ps(v, _mm512_loadu_ps(r + 48), c3);
    }
    _mm512_storeu_ps(acc, c0);
    _mm512_storeu_ps(acc + 16, c1);
    _mm512_storeu_ps(acc + 32, c2);
    _mm512_storeu_ps(acc + 48, c3);
    const float b = bias ? bias[n] : 0.f;
    for (int i = 0; i < mb; i++) out[(m0 + i) * w.N + n] = acc[i] + b;
  }
}
#endif

enum class Path { portable, avx2, avx512 };
Path path() {
#if SHRINK_X86
  if (simd_enabled()) return has_avx512f() ? Path::avx512 : Path::avx2;
#endif
  return Path::portable;
}
const char* path_name() {
  switch (path()) {
    case Path::avx512: return "avx512: fma rows (M <= 4), 64-row blocks";
    case Path::avx2: return "avx2: fma rows (M <= 4), 64-row blocks";
    default: return "portable";
  }
}

// Unwraps and checks sparseGemm's arguments; false after recording the error.
bool csr_args(Args& a, const char*, const float*& x, int64_t& M, Csr& w, const float*& bias, float*& out) {
  size_t xl, rl, cl, vl, bl, ol;
  x = a.f32(0, xl);
  M = a.int64(1);
  w.K = a.int64(2);
  w.rowPtr = a.i32(3, rl);
  w.col = a.u16(4, cl);
  w.val = a.f32(5, vl);
  w.N = a.int64(6);
  bias = a.f32_opt(7, bl);
  out = a.f32(8, ol);
  if (a.failed()) return false;
  if (!a.check(M >= 0 && w.K >= 1 && w.K <= 65536 && w.N >= 1, "need M >= 0, 1 <= K <= 65536 (16-bit columns) and N >= 1")) return false;
  if (!a.check(holds(xl, M, w.K) && holds(ol, M, w.N) && (!bias || holds(bl, w.N)), "x, bias or out too short")) return false;
  if (!a.check(holds(rl, w.N + 1), "rowPtr must hold N + 1 entries")) return false;
  if (!a.check(w.rowPtr[0] == 0, "rowPtr[0] must be 0")) return false;
  for (int64_t n = 0; n < w.N; n++)
    if (!a.check(w.rowPtr[n + 1] >= w.rowPtr[n], "rowPtr must not decrease")) return false;
  w.nnz = w.rowPtr[w.N];
  if (!a.check(static_cast<uint64_t>(w.nnz) <= cl && static_cast<uint64_t>(w.nnz) <= vl, "colIdx or vals shorter than rowPtr[N]")) return false;
  if (!a.check(w.nnz == 0 || max_u16(w.col, w.nnz) < w.K, "a column index is >= K")) return false;
  return true;
}

// sparseGemm(x, M, K, rowPtr, colIdx, vals, N, bias|null, out)
napi_value SparseGemm(napi_env env, napi_callback_info info) {
  Args a(env, info, "sparseGemm");
  const float* x;
  const float* bias;
  float* out;
  int64_t M;
  Csr w{};
  if (!csr_args(a, "sparseGemm", x, M, w, bias, out)) return a.fail();
  if (M == 0) return a.undefined();
  const Path p = path();
  (void)p;  // unused in portable-only builds
  const int64_t avg = std::max<int64_t>(1, w.nnz / w.N);
  if (M <= 4) {
    par_for(w.N, std::max<int64_t>(1, 16384 / (avg * M + 1)), [&](int64_t n0, int64_t n1) {
      for (int64_t m = 0; m < M; m++) {
        const float* xm = x + m * w.K;
        float* om = out + m * w.N;
        for (int64_t n = n0; n < n1; n++) {
          float d;
#if SHRINK_X86
          if (p != Path::portable) d = row_dot_fma(w, n, xm);
          else
#endif
            d = row_dot_portable(w, n, xm);
          om[n] = d + (bias ? bias[n] : 0.f);
        }
      }
    });
    return a.undefined();
  }
  std::vector<float> xT(static_cast<size_t>(w.K) * kMB);
  for (int64_t m0 = 0; m0 < M; m0 += kMB) {
    const int mb = static_cast<int>(std::min<int64_t>(kMB, M - m0));
    transpose_block(x, w.K, m0, mb, xT.data());
    par_for(w.N, std::max<int64_t>(1, 4096 / avg), [&](int64_t n0, int64_t n1) {
      alignas(64) float acc[kMB];
#if SHRINK_X86
      if (p == Path::avx512) return rows_block_avx512(w, n0, n1, xT.data(), acc, bias, out, m0, mb);
      if (p == Path::avx2) return rows_block_avx2(w, n0, n1, xT.data(), acc, bias, out, m0, mb);
#endif
      rows_block_portable(w, n0, n1, xT.data(), acc, bias, out, m0, mb);
    });
  }
  return a.undefined();
}

// Row n of a CSR weight, densified over [k0, k0 + kc) (RowPanels' row source for the packed SGEMM).
struct CsrRows {
  const Csr& w;
  void row(int64_t n, int64_t k0, int kc, float* dst) const {
    std::fill(dst, dst + kc, 0.f);
    const uint16_t* b = w.col + w.rowPtr[n];
    const uint16_t* e = w.col + w.rowPtr[n + 1];
    const uint16_t* it = std::lower_bound(b, e, static_cast<uint16_t>(k0 > 65535 ? 65535 : k0));
    for (; it != e && *it < k0 + kc; ++it)
      if (*it >= k0) dst[*it - k0] = w.val[it - w.col];
  }
};

// sparseDenseGemm(x, M, K, rowPtr, colIdx, vals, N, bias|null, out): the packed SGEMM on densified panels.
napi_value SparseDenseGemm(napi_env env, napi_callback_info info) {
  Args a(env, info, "sparseDenseGemm");
  const float* x;
  const float* bias;
  float* out;
  int64_t M;
  Csr w{};
  if (!csr_args(a, "sparseDenseGemm", x, M, w, bias, out)) return a.fail();
  if (M == 0) return a.undefined();
  const CsrRows rows{w};
  sgemm_source_b_bias(x, RowPanels<CsrRows>(rows), bias, out, M, w.N, w.K);
  return a.undefined();
}

napi_value SparseKernel(napi_env env, napi_callback_info) {
  napi_value s;
  napi_create_string_utf8(env, path_name(), NAPI_AUTO_LENGTH, &s);
  return s;
}

}  // namespace

void init_sparse(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "sparseGemm", denormal_guarded<SparseGemm>);
  export_fn(env, exports, "sparseDenseGemm", denormal_guarded<SparseDenseGemm>);
  export_fn(env, exports, "sparseKernel", SparseKernel);
  register_kernel("sparse", [] { return path_name(); });
}

}  // namespace shrink
