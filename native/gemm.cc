// fp32 GEMM: C = A·B (or C += A·B) for batches of row-major matrices with transposes and leading dimensions.
//
// BLIS-style blocking (ENGINE-NOTES §1.2): jc (NC) → pc (KC) → pack a KC×NC panel of B into NR-wide micro-panels
// → ic (MC) → pack an MC×KC block of A into MR-tall micro-panels → 6×16 AVX2/FMA micro-kernel (12 ymm
// accumulators). Packing absorbs transposes and leading dimensions, so transposed views never need a copy.
// Threads: a large single GEMM is split along its larger dimension (each thread packs its own panels, so no
// barrier is needed); a batch of matrices is split across matrices. A portable micro-kernel with the same
// packing runs on CPUs without AVX2/FMA. sgemm_ref is the plain triple loop the tests compare against.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common.h"
#include "pool.h"

namespace shrink {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;
// Cache blocking, tuned on the Zen 3 VM by interleaved A/B runs (KC 256/MC 168, the BLIS Haswell defaults, were
// 5–15 % slower on 1024³ and the K = 3072 shape); adjustable at run time through setGemmBlocking for tuning.
int KC = 320;  // B micro-panel (KC×16 floats, 20 KB) + A micro-panel (KC×6, 7.5 KB) fit L1 (32 KB)
int MC = 120;  // multiple of MR; the MC×KC A block (150 KB) stays in L2 (512 KB)
constexpr int NC = 4080;  // multiple of NR

struct Mat {
  const float* p;  // base of this matrix (batch offset applied)
  int64_t ld;
  bool trans;  // element (r, c) at p[c*ld + r] instead of p[r*ld + c]
  inline float at(int64_t r, int64_t c) const { return trans ? p[c * ld + r] : p[r * ld + c]; }
};

struct AlignedBuf {
  float* p = nullptr;
  size_t n = 0;
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      size_t bytes = ((want * sizeof(float) + 63) / 64) * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      n = want;
    }
    return p;
  }
  ~AlignedBuf() { std::free(p); }
};
thread_local AlignedBuf t_apack, t_bpack;

// Pack rows [i0, i0+mc) × k [k0, k0+kc) of A into MR-row micro-panels (k-major inside a panel), zero-padded.
void pack_a(const Mat& A, int64_t i0, int mc, int64_t k0, int kc, float* dst) {
  for (int ir = 0; ir < mc; ir += MR) {
    int mr = std::min(MR, mc - ir);
    if (!A.trans) {  // read each row sequentially, write with stride MR
      for (int r = 0; r < mr; r++) {
        const float* src = A.p + (i0 + ir + r) * A.ld + k0;
        for (int k = 0; k < kc; k++) dst[k * MR + r] = src[k];
      }
      for (int r = mr; r < MR; r++)
        for (int k = 0; k < kc; k++) dst[k * MR + r] = 0.f;
    } else {  // A stored K×M: a row of storage is contiguous in m
      for (int k = 0; k < kc; k++) {
        const float* src = A.p + (k0 + k) * A.ld + i0 + ir;
        for (int r = 0; r < mr; r++) dst[k * MR + r] = src[r];
        for (int r = mr; r < MR; r++) dst[k * MR + r] = 0.f;
      }
    }
    dst += MR * kc;
  }
}

// Pack k [k0, k0+kc) × columns [j0, j0+nc) of B into NR-column micro-panels, zero-padded.
void pack_b(const Mat& B, int64_t k0, int kc, int64_t j0, int nc, float* dst) {
  for (int jr = 0; jr < nc; jr += NR) {
    int nr = std::min(NR, nc - jr);
    if (!B.trans) {
      for (int k = 0; k < kc; k++) {
        const float* src = B.p + (k0 + k) * B.ld + j0 + jr;
        float* d = dst + k * NR;
        if (nr == NR) std::memcpy(d, src, NR * sizeof(float));
        else {
          for (int c = 0; c < nr; c++) d[c] = src[c];
          for (int c = nr; c < NR; c++) d[c] = 0.f;
        }
      }
    } else {  // B stored N×K
      for (int c = 0; c < nr; c++) {
        const float* src = B.p + (j0 + jr + c) * B.ld + k0;
        for (int k = 0; k < kc; k++) dst[k * NR + c] = src[k];
      }
      for (int c = nr; c < NR; c++)
        for (int k = 0; k < kc; k++) dst[k * NR + c] = 0.f;
    }
    dst += NR * kc;
  }
}

// Portable micro-kernel: acc[MR][NR] over kc, then C (mr×nr valid) = or += acc.
void micro_portable(int kc, const float* a, const float* b, float* c, int64_t ldc, int mr, int nr, bool add) {
  float acc[MR][NR] = {};
  for (int k = 0; k < kc; k++) {
    for (int r = 0; r < MR; r++) {
      float av = a[k * MR + r];
      for (int j = 0; j < NR; j++) acc[r][j] += av * b[k * NR + j];
    }
  }
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) c[r * ldc + j] = add ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

__attribute__((target("avx2,fma"))) void micro_avx2(int kc, const float* a, const float* b, float* c, int64_t ldc, int mr, int nr,
                                                     bool add) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  // prefetch the C tile we will update (measured: +10-15% on large shapes)
  for (int r = 0; r < mr; r++) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int k = 0; k < kc; k++) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
    av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += MR;
    b += NR;
  }
  if (mr == MR && nr == NR) {
#define SHRINK_STORE_ROW(r, x0, x1)                                                        \
  {                                                                                        \
    float* cr = c + (r)*ldc;                                                               \
    if (add) {                                                                             \
      _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), x0));                        \
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), x1));                \
    } else {                                                                               \
      _mm256_storeu_ps(cr, x0);                                                            \
      _mm256_storeu_ps(cr + 8, x1);                                                        \
    }                                                                                      \
  }
    SHRINK_STORE_ROW(0, c00, c01)
    SHRINK_STORE_ROW(1, c10, c11)
    SHRINK_STORE_ROW(2, c20, c21)
    SHRINK_STORE_ROW(3, c30, c31)
    SHRINK_STORE_ROW(4, c40, c41)
    SHRINK_STORE_ROW(5, c50, c51)
#undef SHRINK_STORE_ROW
    return;
  }
  // edge tile: spill to a temporary and copy the valid part
  alignas(32) float tmp[MR * NR];
  _mm256_store_ps(tmp + 0 * NR, c00);
  _mm256_store_ps(tmp + 0 * NR + 8, c01);
  _mm256_store_ps(tmp + 1 * NR, c10);
  _mm256_store_ps(tmp + 1 * NR + 8, c11);
  _mm256_store_ps(tmp + 2 * NR, c20);
  _mm256_store_ps(tmp + 2 * NR + 8, c21);
  _mm256_store_ps(tmp + 3 * NR, c30);
  _mm256_store_ps(tmp + 3 * NR + 8, c31);
  _mm256_store_ps(tmp + 4 * NR, c40);
  _mm256_store_ps(tmp + 4 * NR + 8, c41);
  _mm256_store_ps(tmp + 5 * NR, c50);
  _mm256_store_ps(tmp + 5 * NR + 8, c51);
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) c[r * ldc + j] = add ? c[r * ldc + j] + tmp[r * NR + j] : tmp[r * NR + j];
}

using MicroFn = void (*)(int, const float*, const float*, float*, int64_t, int, int, bool);

// Serial blocked GEMM of the sub-problem rows [m0, m1) × columns [n0, n1) of C (ldc = row stride of C).
void gemm_serial(const Mat& A, const Mat& B, float* C, int64_t ldc, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K,
                 bool accumulate) {
  const int64_t M = m1 - m0, N = n1 - n0;
  if (M <= 0 || N <= 0) return;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = m0; i < m1; i++) std::memset(C + i * ldc + n0, 0, N * sizeof(float));
    return;
  }
  MicroFn micro = has_avx2_fma() ? micro_avx2 : micro_portable;
  float* bp = t_bpack.get(static_cast<size_t>(KC) * ((std::min<int64_t>(NC, N) + NR - 1) / NR * NR));
  float* ap = t_apack.get(static_cast<size_t>(KC) * MC);
  for (int64_t jc = n0; jc < n1; jc += NC) {
    int nc = static_cast<int>(std::min<int64_t>(NC, n1 - jc));
    for (int64_t pc = 0; pc < K; pc += KC) {
      int kc = static_cast<int>(std::min<int64_t>(KC, K - pc));
      bool add = accumulate || pc > 0;
      pack_b(B, pc, kc, jc, nc, bp);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        int mc = static_cast<int>(std::min<int64_t>(MC, m1 - ic));
        pack_a(A, ic, mc, pc, kc, ap);
        for (int jr = 0; jr < nc; jr += NR) {
          int nr = std::min(NR, nc - jr);
          const float* bpanel = bp + static_cast<int64_t>(jr / NR) * NR * kc;
          for (int ir = 0; ir < mc; ir += MR) {
            int mr = std::min(MR, mc - ir);
            micro(kc, ap + static_cast<int64_t>(ir / MR) * MR * kc, bpanel, C + (ic + ir) * ldc + jc + jr, ldc, mr, nr, add);
          }
        }
      }
    }
  }
}

// Split one GEMM over `nt` threads along its larger dimension, in whole micro-tiles.
void gemm_one(const Mat& A, const Mat& B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, int nt) {
  if (nt <= 1) {
    gemm_serial(A, B, C, N, 0, M, 0, N, K, accumulate);
    return;
  }
  bool splitM = M >= N;
  int64_t units = splitM ? (M + MR - 1) / MR : (N + NR - 1) / NR;
  if (units < nt) nt = static_cast<int>(std::max<int64_t>(1, units));
  parallel_run(nt, [&](int tid, int total) {
    int64_t u0 = units * tid / total, u1 = units * (tid + 1) / total;
    if (splitM)
      gemm_serial(A, B, C, N, std::min(M, u0 * MR), std::min(M, u1 * MR), 0, N, K, accumulate);
    else
      gemm_serial(A, B, C, N, 0, M, std::min(N, u0 * NR), std::min(N, u1 * NR), K, accumulate);
  });
}

struct GemmArgs {
  const float* a;
  const float* b;
  float* out;
  int64_t batch, M, N, K;
  const int32_t* aoff;
  const int32_t* boff;
  int64_t lda, ldb;
  bool ta, tb, acc;
};

void sgemm_run(const GemmArgs& g) {
  if (g.batch == 0 || g.M == 0 || g.N == 0) return;
  const double flops = 2.0 * g.M * g.N * std::max<int64_t>(g.K, 1);
  const int threads = num_threads();
  auto mat_a = [&](int64_t i) { return Mat{g.a + g.aoff[i], g.lda, g.ta}; };
  auto mat_b = [&](int64_t i) { return Mat{g.b + g.boff[i], g.ldb, g.tb}; };
  // Small total work: one thread (dispatch costs ~1-2 µs).
  if (threads <= 1 || flops * g.batch < 2.0 * 64 * 64 * 64) {
    for (int64_t i = 0; i < g.batch; i++) gemm_serial(mat_a(i), mat_b(i), g.out + i * g.M * g.N, g.N, 0, g.M, 0, g.N, g.K, g.acc);
    return;
  }
  if (g.batch >= threads) {
    parallel_for(g.batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; i++) gemm_serial(mat_a(i), mat_b(i), g.out + i * g.M * g.N, g.N, 0, g.M, 0, g.N, g.K, g.acc);
    });
    return;
  }
  for (int64_t i = 0; i < g.batch; i++) gemm_one(mat_a(i), mat_b(i), g.out + i * g.M * g.N, g.M, g.N, g.K, g.acc, threads);
}

void sgemm_ref(const GemmArgs& g) {
  for (int64_t i = 0; i < g.batch; i++) {
    Mat A{g.a + g.aoff[i], g.lda, g.ta}, B{g.b + g.boff[i], g.ldb, g.tb};
    float* C = g.out + i * g.M * g.N;
    for (int64_t m = 0; m < g.M; m++)
      for (int64_t n = 0; n < g.N; n++) {
        double s = 0;
        for (int64_t k = 0; k < g.K; k++) s += static_cast<double>(A.at(m, k)) * B.at(k, n);
        C[m * g.N + n] = g.acc ? C[m * g.N + n] + static_cast<float>(s) : static_cast<float>(s);
      }
  }
}

// JS: sgemm(a, b, out, batch, M, N, K, aOffsets, bOffsets, lda, ldb, transA, transB, accumulate)
// Arguments are validated in TypeScript (src/backend/native); this only unwraps them.
bool unwrap(const Napi::CallbackInfo& info, GemmArgs& g) {
  if (info.Length() < 14 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray() || !info[7].IsTypedArray() ||
      !info[8].IsTypedArray()) {
    Napi::TypeError::New(info.Env(), "sgemm: bad arguments").ThrowAsJavaScriptException();
    return false;
  }
  g.a = info[0].As<Napi::Float32Array>().Data();
  g.b = info[1].As<Napi::Float32Array>().Data();
  g.out = info[2].As<Napi::Float32Array>().Data();
  g.batch = info[3].As<Napi::Number>().Int64Value();
  g.M = info[4].As<Napi::Number>().Int64Value();
  g.N = info[5].As<Napi::Number>().Int64Value();
  g.K = info[6].As<Napi::Number>().Int64Value();
  g.aoff = info[7].As<Napi::Int32Array>().Data();
  g.boff = info[8].As<Napi::Int32Array>().Data();
  g.lda = info[9].As<Napi::Number>().Int64Value();
  g.ldb = info[10].As<Napi::Number>().Int64Value();
  g.ta = info[11].ToBoolean().Value();
  g.tb = info[12].ToBoolean().Value();
  g.acc = info[13].ToBoolean().Value();
  return true;
}

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  GemmArgs g;
  if (unwrap(info, g)) sgemm_run(g);
  return info.Env().Undefined();
}

Napi::Value SgemmRef(const Napi::CallbackInfo& info) {
  GemmArgs g;
  if (unwrap(info, g)) sgemm_ref(g);
  return info.Env().Undefined();
}

// setGemmBlocking(kc, mc): tuning hook for benchmarks (mc is rounded to a multiple of MR).
Napi::Value SetGemmBlocking(const Napi::CallbackInfo& info) {
  int kc = info[0].As<Napi::Number>().Int32Value(), mc = info[1].As<Napi::Number>().Int32Value();
  if (kc >= 16 && kc <= 4096) KC = kc;
  if (mc >= MR && mc <= 4096) MC = mc / MR * MR;
  return info.Env().Undefined();
}

}  // namespace

void init_gemm(Napi::Env env, Napi::Object exports) {
  exports.Set("setGemmBlocking", Napi::Function::New(env, SetGemmBlocking));
  exports.Set("sgemm", Napi::Function::New(env, Sgemm));
  exports.Set("sgemmRef", Napi::Function::New(env, SgemmRef));
}

}  // namespace shrink
