// fp32 GEMM: C = A·B (or C += A·B) for batches of row-major matrices with transposes and leading dimensions.
//
// BLIS-style blocking (ENGINE-NOTES §1.2): jc (NC columns) → pc (KC) → pack a KC×NC panel of B into NR-wide
// micro-panels → ic (MC rows) → pack an MC×KC block of A into MR-tall micro-panels → jr → ir → micro-kernel: 8×48
// AVX-512 (24 zmm accumulators) or 6×16 AVX2/FMA (12 ymm accumulators), C tile prefetched at entry. Packing absorbs transposes and leading
// dimensions. Block sizes are balanced (K = 768 runs as 3 × 256, not 2 × 320 + 128).
//
// Threads (one GEMM): all threads pack the B panel together, meet at a barrier, then each computes its own share
// of the (row tiles × column micro-panels) grid, packing its own A blocks. B is double-buffered, so one barrier per
// (jc, pc) step is enough. Rows are split evenly in whole 6-row tiles (the "round the block count up to a multiple
// of the threads" rule); when there are too few row tiles, columns are split instead. A batch of many matrices is
// split across matrices; small total work (< 2·64³ flop) runs on one thread. M = 1 and N = 1 go to GEMV-style
// loops with no packing. Every barrier wait is a bounded spin, then yield.
//
// Kernel families, chosen at run time (kernels()): 'avx512 8x48' where the CPU and OS have AVX-512 F/BW/VL/DQ and
// SHRINK_ISA allows it (simd.h has_avx512f(): cpuid + xgetbv), else 'avx2 6x16' (has_avx2_fma()), else 'portable
// 6x16'. The SIMD kernels carry __attribute__((target(...))), so the rest of the addon runs on any x86-64 CPU.
// B is always packed in 16-column micro-panels (the layout BPanelSource writes); a kernel whose tile is NV·16 wide
// reads NV adjacent micro-panels (panel stride 16·kc), so packing and dequantize-in-pack need no per-ISA layout.
// A is packed in MR-row micro-panels for the kernel's MR. sgemmRef is the plain triple loop (double accumulator)
// the tests compare against.
#include <algorithm>
#include <array>
#include <utility>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "simd.h"
#if SHRINK_X86
#define SHRINK_PAUSE() _mm_pause()
#else
#define SHRINK_PAUSE() std::this_thread::yield()
#endif

#include "common.h"
#include "pool.h"
#include "args.h"

namespace shrink {
namespace {

// The AVX2 and portable tile (MR×NR); NR is also the width of every packed B micro-panel.
constexpr int MR = 6;
constexpr int NR = 16;
// The AVX-512 tile: MR512 rows × NV512 micro-panels. 8×48: 24 zmm accumulators + 3 B vectors + 1 broadcast, 11 loads
// per 24 FMAs. On Zen 4 (AVX-512 on 256-bit FMA units) 14×32, 12×32, 8×48 and 6×64 all measured within noise of each
// other and of the AVX2 6×16 kernel (96–104 GFLOPS per CPU-second); 8×48 was ahead by 1–3 % most often. Compile with
// -DSHRINK_GEMM512_MR=… -DSHRINK_GEMM512_NV=… -DSHRINK_GEMM512_NAME='"avx512 RxC"' to try another.
#ifndef SHRINK_GEMM512_MR
#define SHRINK_GEMM512_MR 8
#endif
#ifndef SHRINK_GEMM512_NV
#define SHRINK_GEMM512_NV 3
#endif
#ifndef SHRINK_GEMM512_NAME
#define SHRINK_GEMM512_NAME "avx512 8x48"
#endif
constexpr int MR512 = SHRINK_GEMM512_MR;
constexpr int NV512 = SHRINK_GEMM512_NV;
// Cache blocking (per kernel, Kernels below): AVX2: a KC×16 B micro-panel (16 KB at KC 256) + a KC×6 A micro-panel
// stay in L1 (32 KB); the MC×KC A block (168 KB) stays in L2; the KC×NC B panel lives in L3. AVX-512: KC 384, MC 112
// (the 72 KB B micro-tile and the 168 KB A block in L2; KC 384 measured 1–3 % over 256 on Zen 4). setGemmBlocking
// overrides them for every kernel (0 = the kernel's default).
int g_kc = 0;
int g_mc = 0;  // rounded down to a multiple of the kernel's MR
int g_nc = 0;  // rounded down to a multiple of the kernel's tile width
constexpr int64_t kSmallFlops = 2LL * 64 * 64 * 64;  // below this, one thread

struct Mat {
  const float* p;  // base of this matrix (batch offset applied)
  int64_t ld;
  bool trans;  // element (r, c) at p[c*ld + r] instead of p[r*ld + c]
  float at(int64_t r, int64_t c) const { return trans ? p[c * ld + r] : p[r * ld + c]; }
};

// A 64-byte aligned scratch buffer that only grows; one per thread, kept for the life of the thread, so large
// GEMMs do not pay for fresh pages on every call.
struct AlignedBuf {
  float* p = nullptr;
  size_t n = 0;
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      size_t bytes = ((want * sizeof(float) + 63) / 64) * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      n = want;
    }
    return p;
  }
  ~AlignedBuf() { std::free(p); }
};
thread_local AlignedBuf t_work, t_vec;

// ---------------------------------------------------------------------------------------------------------------
// Packing. A block: rows [i0, i0+mc) × k [k0, k0+kc) into MR-row micro-panels, k-major inside a panel
// (dst[k*MR + r]), rows past mc zero. B panel: k [k0, k0+kc) × micro-panels [p0, p1) of the columns starting at j0
// (nc columns in all) into NR-column micro-panels (dst[k*NR + c]), columns past nc zero.

void pack_a_scalar(const Mat& A, int64_t i0, int mc, int64_t k0, int kc, float* dst) {
  for (int ir = 0; ir < mc; ir += MR, dst += MR * kc) {
    int mr = std::min(MR, mc - ir);
    for (int k = 0; k < kc; k++)
      for (int r = 0; r < MR; r++) dst[k * MR + r] = r < mr ? A.at(i0 + ir + r, k0 + k) : 0.f;
  }
}

void pack_b_scalar(const Mat& B, int64_t k0, int kc, int64_t j0, int nc, int p0, int p1, float* dst) {
  for (int p = p0; p < p1; p++) {
    float* d = dst + static_cast<int64_t>(p) * NR * kc;
    int jr = p * NR, nr = std::min(NR, nc - jr);
    for (int k = 0; k < kc; k++)
      for (int c = 0; c < NR; c++) d[k * NR + c] = c < nr ? B.at(k0 + k, j0 + jr + c) : 0.f;
  }
}

#if SHRINK_X86
// 8×8 transpose: in r[i] = row i, out r[j] = column j.
__attribute__((target("avx2,fma"))) inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// A block into MRT-row micro-panels (MRT = 6 for the AVX2 kernel, MR512 for AVX-512).
template <int MRT>
__attribute__((target("avx2,fma"))) void pack_a_avx2_t(const Mat& A, int64_t i0, int mc, int64_t k0, int kc, float* dst) {
  constexpr int NCH = (MRT + 7) / 8;  // 8-row chunks
  for (int ir = 0; ir < mc; ir += MRT, dst += MRT * kc) {
    int mr = std::min(MRT, mc - ir);
    if (mr < MRT) {  // edge panel
      for (int k = 0; k < kc; k++)
        for (int r = 0; r < MRT; r++) dst[k * MRT + r] = r < mr ? A.at(i0 + ir + r, k0 + k) : 0.f;
      continue;
    }
    if (A.trans) {  // storage K×M: the MRT values for one k are contiguous
      const float* src = A.p + k0 * A.ld + i0 + ir;
      for (int k = 0; k < kc; k++, src += A.ld) std::memcpy(dst + k * MRT, src, MRT * sizeof(float));
      continue;
    }
    // storage M×K: transpose 8 rows × 8 k at a time per chunk; the 8-float store of a short last chunk overlaps the
    // next k's first floats (stored in k order, so the overlap is overwritten; the buffer has slack for the last one).
    const float* src[MRT];
    for (int r = 0; r < MRT; r++) src[r] = A.p + (i0 + ir + r) * A.ld + k0;
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 v[NCH][8];
#pragma GCC unroll 2
      for (int ch = 0; ch < NCH; ch++) {
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) v[ch][r] = ch * 8 + r < MRT ? _mm256_loadu_ps(src[ch * 8 + r] + k) : _mm256_setzero_ps();
        transpose8(v[ch]);
      }
#pragma GCC unroll 8
      for (int j = 0; j < 8; j++)
#pragma GCC unroll 2
        for (int ch = 0; ch < NCH; ch++) _mm256_storeu_ps(dst + (k + j) * MRT + ch * 8, v[ch][j]);
    }
    for (; k < kc; k++)
      for (int r = 0; r < MRT; r++) dst[k * MRT + r] = src[r][k];
  }
}

__attribute__((target("avx2,fma"))) void pack_b_avx2(const Mat& B, int64_t k0, int kc, int64_t j0, int nc, int p0, int p1, float* dst) {
  for (int p = p0; p < p1; p++) {
    float* d = dst + static_cast<int64_t>(p) * NR * kc;
    int jr = p * NR, nr = std::min(NR, nc - jr);
    if (nr < NR) {  // edge panel
      for (int k = 0; k < kc; k++)
        for (int c = 0; c < NR; c++) d[k * NR + c] = c < nr ? B.at(k0 + k, j0 + jr + c) : 0.f;
      continue;
    }
    if (!B.trans) {  // storage K×N: 16 contiguous values per k
      const float* src = B.p + k0 * B.ld + j0 + jr;
      for (int k = 0; k < kc; k++, src += B.ld) {
        _mm256_store_ps(d + k * NR, _mm256_loadu_ps(src));
        _mm256_store_ps(d + k * NR + 8, _mm256_loadu_ps(src + 8));
      }
      continue;
    }
    // storage N×K: transpose 8 columns × 8 k at a time
    for (int h = 0; h < 2; h++) {
      const float* src = B.p + (j0 + jr + h * 8) * B.ld + k0;
      int k = 0;
      for (; k + 8 <= kc; k += 8) {
        __m256 v[8];
        for (int c = 0; c < 8; c++) v[c] = _mm256_loadu_ps(src + c * B.ld + k);
        transpose8(v);
        for (int j = 0; j < 8; j++) _mm256_store_ps(d + (k + j) * NR + h * 8, v[j]);
      }
      for (; k < kc; k++)
        for (int c = 0; c < 8; c++) d[k * NR + h * 8 + c] = src[c * B.ld + k];
    }
  }
}
#endif

// ---------------------------------------------------------------------------------------------------------------
// Micro-kernels: C[mr×nr] (=|+=) A-micro-panel · B-micro-panel(s) over kc (a tile NV·16 wide reads NV micro-panels,
// bps floats apart). Edge tiles (mr < MR or nr < NR) only touch valid elements of C (a temporary, or masked stores).

void micro_portable(int kc, const float* a, const float* b, int64_t /*bps*/, float* c, int64_t ldc, int mr, int nr, bool add) {
  float acc[MR][NR] = {};
  for (int k = 0; k < kc; k++, a += MR, b += NR)
    for (int r = 0; r < MR; r++) {
      float av = a[r];
      for (int j = 0; j < NR; j++) acc[r][j] += av * b[j];
    }
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) c[r * ldc + j] = add ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

#if SHRINK_X86
// Short tiles (R < 6 valid rows, e.g. the last tile of M = 128): only R rows of FMAs, and enough independent
// accumulators (k split into P interleaved partial sums) to cover the FMA latency, so the tile costs about R/6 of a
// full one instead of a full one.
template <int R>
__attribute__((target("avx2,fma"), noinline)) void micro_avx2_short(int kc, const float* a, const float* b, float* c, int64_t ldc, int nr, bool add) {
  constexpr int P = R >= 4 ? 1 : (R >= 2 ? 2 : 4);
  __m256 acc[P][R][2];
#pragma GCC unroll 4
  for (int p = 0; p < P; p++)
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) acc[p][r][0] = acc[p][r][1] = _mm256_setzero_ps();
  int k = 0;
  for (; k + P <= kc; k += P)
#pragma GCC unroll 4
    for (int p = 0; p < P; p++) {
      const float* bk = b + (k + p) * NR;
      const __m256 b0 = _mm256_load_ps(bk), b1 = _mm256_load_ps(bk + 8);
#pragma GCC unroll 6
      for (int r = 0; r < R; r++) {
        const __m256 av = _mm256_broadcast_ss(a + (k + p) * MR + r);
        acc[p][r][0] = _mm256_fmadd_ps(av, b0, acc[p][r][0]);
        acc[p][r][1] = _mm256_fmadd_ps(av, b1, acc[p][r][1]);
      }
    }
  for (; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(b + k * NR), b1 = _mm256_load_ps(b + k * NR + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      const __m256 av = _mm256_broadcast_ss(a + k * MR + r);
      acc[0][r][0] = _mm256_fmadd_ps(av, b0, acc[0][r][0]);
      acc[0][r][1] = _mm256_fmadd_ps(av, b1, acc[0][r][1]);
    }
  }
#pragma GCC unroll 4
  for (int p = 1; p < P; p++)
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      acc[0][r][0] = _mm256_add_ps(acc[0][r][0], acc[p][r][0]);
      acc[0][r][1] = _mm256_add_ps(acc[0][r][1], acc[p][r][1]);
    }
  if (nr == NR) {
    for (int r = 0; r < R; r++) {
      float* cr = c + r * ldc;
      __m256 x0 = acc[0][r][0], x1 = acc[0][r][1];
      if (add) {
        x0 = _mm256_add_ps(_mm256_loadu_ps(cr), x0);
        x1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), x1);
      }
      _mm256_storeu_ps(cr, x0);
      _mm256_storeu_ps(cr + 8, x1);
    }
    return;
  }
  alignas(32) float tmp[R * NR];
  for (int r = 0; r < R; r++) {
    _mm256_store_ps(tmp + r * NR, acc[0][r][0]);
    _mm256_store_ps(tmp + r * NR + 8, acc[0][r][1]);
  }
  for (int r = 0; r < R; r++)
    for (int j = 0; j < nr; j++) c[r * ldc + j] = add ? c[r * ldc + j] + tmp[r * NR + j] : tmp[r * NR + j];
}

__attribute__((target("avx2,fma"))) void micro_avx2(int kc, const float* a, const float* b, int64_t /*bps*/, float* c, int64_t ldc, int mr, int nr, bool add) {
  switch (mr) {
    case 1: return micro_avx2_short<1>(kc, a, b, c, ldc, nr, add);
    case 2: return micro_avx2_short<2>(kc, a, b, c, ldc, nr, add);
    case 3: return micro_avx2_short<3>(kc, a, b, c, ldc, nr, add);
    case 4: return micro_avx2_short<4>(kc, a, b, c, ldc, nr, add);
    case 5: return micro_avx2_short<5>(kc, a, b, c, ldc, nr, add);
    default: break;
  }
  // prefetch the C tile (both cache lines of each 64-byte row): ENGINE-NOTES measured +10-15 % on large shapes
  for (int r = 0; r < MR; r++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + NR - 1), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int k = 0; k < kc; k++) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a + 64), _MM_HINT_T0);  // A streams from L2: +2-8 % measured
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
  alignas(32) float tmp[MR * NR];
  const bool full = nr == NR;
  float* d = full ? c : tmp;
  const int64_t ld = full ? ldc : NR;
  const bool addd = full && add;  // edge tiles add while copying out of tmp
#define SHRINK_ROW(r, x0, x1)                                                       \
  {                                                                                 \
    float* dr = d + (r) * ld;                                                       \
    if (addd) {                                                                     \
      x0 = _mm256_add_ps(_mm256_loadu_ps(dr), x0);                                  \
      x1 = _mm256_add_ps(_mm256_loadu_ps(dr + 8), x1);                              \
    }                                                                               \
    _mm256_storeu_ps(dr, x0);                                                       \
    _mm256_storeu_ps(dr + 8, x1);                                                   \
  }
  SHRINK_ROW(0, c00, c01)
  SHRINK_ROW(1, c10, c11)
  SHRINK_ROW(2, c20, c21)
  SHRINK_ROW(3, c30, c31)
  SHRINK_ROW(4, c40, c41)
  SHRINK_ROW(5, c50, c51)
#undef SHRINK_ROW
  if (full) return;
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < nr; j++) c[r * ldc + j] = add ? c[r * ldc + j] + tmp[r * NR + j] : tmp[r * NR + j];
}
// ---- AVX-512 (F/BW/VL/DQ): MR512×(NV512·16) tile, zmm accumulators, embedded-broadcast FMAs, masked edge columns.
#define SHRINK_AVX512_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))

// R rows (R ≤ MRT; the A micro-panel is MRT rows tall) × NV micro-panels. Short tiles (R·NV < 8) split k into P
// interleaved partial sums so that enough independent FMA chains cover the latency.
template <int R, int NV, int MRT>
SHRINK_AVX512_TARGET __attribute__((noinline)) void micro_avx512_t(int kc, const float* a, const float* b, int64_t bps, float* c, int64_t ldc, int nr,
                                                                   bool add) {
  constexpr int P = R * NV >= 8 ? 1 : (R * NV >= 4 ? 2 : 4);
  __m512 acc[P][R][NV];
#pragma GCC unroll 4
  for (int p = 0; p < P; p++)
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[p][r][v] = _mm512_setzero_ps();
  if (R * NV >= 8) {  // big tiles: prefetch the C tile (one 64-byte line per row and micro-panel)
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16 * v), _MM_HINT_T0);
  }
  const float* bv[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) bv[v] = b + v * bps;
  int k = 0;
  if (P == 1) {
#pragma GCC unroll 2
    for (; k < kc; k++) {
      __m512 bb[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        _mm_prefetch(reinterpret_cast<const char*>(bv[v] + 8 * 16), _MM_HINT_T0);
        bb[v] = _mm512_load_ps(bv[v]);
        bv[v] += 16;
      }
      _mm_prefetch(reinterpret_cast<const char*>(a + 8 * MRT), _MM_HINT_T0);
#pragma GCC unroll 16
      for (int r = 0; r < R; r++) {
        const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[0][r][v] = _mm512_fmadd_ps(av, bb[v], acc[0][r][v]);
      }
      a += MRT;
    }
  } else {
    for (; k + P <= kc; k += P) {
#pragma GCC unroll 4
      for (int p = 0; p < P; p++) {
        __m512 bb[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bb[v] = _mm512_load_ps(bv[v] + p * 16);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
          const __m512 av = _mm512_set1_ps(a[p * MRT + r]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++) acc[p][r][v] = _mm512_fmadd_ps(av, bb[v], acc[p][r][v]);
        }
      }
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) bv[v] += P * 16;
      a += P * MRT;
    }
    for (; k < kc; k++) {
      __m512 bb[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        bb[v] = _mm512_load_ps(bv[v]);
        bv[v] += 16;
      }
#pragma GCC unroll 16
      for (int r = 0; r < R; r++) {
        const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[0][r][v] = _mm512_fmadd_ps(av, bb[v], acc[0][r][v]);
      }
      a += MRT;
    }
#pragma GCC unroll 4
    for (int p = 1; p < P; p++)
#pragma GCC unroll 16
      for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[0][r][v] = _mm512_add_ps(acc[0][r][v], acc[p][r][v]);
  }
  // Columns of micro-panel v that exist: nr − 16v (≥ 1: the caller picks NV = ceil(nr / 16)).
  __mmask16 m[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    const int cols = nr - 16 * v;
    m[v] = cols >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << cols) - 1);
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      __m512 x = acc[0][r][v];
      if (add) x = _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], cr + 16 * v), x);
      _mm512_mask_storeu_ps(cr + 16 * v, m[v], x);
    }
  }
}

using Micro512Fn = void (*)(int, const float*, const float*, int64_t, float*, int64_t, int, bool);

template <int NV, int... Rm1>
constexpr std::array<Micro512Fn, sizeof...(Rm1)> micro512_row(std::integer_sequence<int, Rm1...>) {
  return {{&micro_avx512_t<Rm1 + 1, NV, MR512>...}};
}
template <int... NVm1>
constexpr std::array<std::array<Micro512Fn, MR512>, NV512> micro512_table(std::integer_sequence<int, NVm1...>) {
  return {{micro512_row<NVm1 + 1>(std::make_integer_sequence<int, MR512>{})...}};
}
// kMicro512[nv − 1][mr − 1]
constexpr std::array<std::array<Micro512Fn, MR512>, NV512> kMicro512 = micro512_table(std::make_integer_sequence<int, NV512>{});

void micro_avx512(int kc, const float* a, const float* b, int64_t bps, float* c, int64_t ldc, int mr, int nr, bool add) {
  kMicro512[(nr + 15) / 16 - 1][mr - 1](kc, a, b, bps, c, ldc, nr, add);
}

#endif

using PackAFn = void (*)(const Mat&, int64_t, int, int64_t, int, float*);
using PackBFn = void (*)(const Mat&, int64_t, int, int64_t, int, int, int, float*);
using MicroFn = void (*)(int, const float*, const float*, int64_t, float*, int64_t, int, int, bool);

struct Kernels {
  const char* family;  // 'avx512' | 'avx2' | 'portable' (setGemmKernel)
  const char* name;    // family and tile, e.g. 'avx512 8x48' (kernels(), bench:gemm)
  int mr, nv;          // tile: mr rows × nv 16-column micro-panels
  int kc, mc, nc;      // default cache blocking
  PackAFn pack_a;
  PackBFn pack_b;
  MicroFn micro;
};

const Kernels kPortable{"portable", "portable 6x16", MR, 1, 256, 168, 4080, pack_a_scalar, pack_b_scalar, micro_portable};
#if SHRINK_X86
const Kernels kAvx2{"avx2", "avx2 6x16", MR, 1, 256, 168, 4080, pack_a_avx2_t<MR>, pack_b_avx2, micro_avx2};
const Kernels kAvx512{"avx512", SHRINK_GEMM512_NAME, MR512, NV512, 384, 112, 4080,
                      pack_a_avx2_t<MR512>, pack_b_avx2, micro_avx512};
#endif
// Test/benchmark hook (setGemmKernel): the highest family allowed, within what the CPU and SHRINK_ISA allow.
enum class Force : int { none = 0, avx2 = 1, portable = 2 };
std::atomic<int> g_force{0};

bool avx2_active() { return has_avx2_fma() && g_force.load(std::memory_order_relaxed) < static_cast<int>(Force::portable); }
bool avx512_active() { return has_avx512f() && has_avx2_fma() && g_force.load(std::memory_order_relaxed) == static_cast<int>(Force::none); }

const Kernels& kernels() {
#if SHRINK_X86
  if (avx512_active()) return kAvx512;
  if (avx2_active()) return kAvx2;
#endif
  return kPortable;
}

// ---------------------------------------------------------------------------------------------------------------
// Barrier for the threads of one GEMM: bounded spin, then yield (never an unbounded spin).
struct Barrier {
  std::atomic<int> count{0};
  std::atomic<int> phase{0};
  void wait(int n) {
    if (n <= 1) return;
    int ph = phase.load(std::memory_order_acquire);
    if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      count.store(0, std::memory_order_relaxed);
      phase.store(ph + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; phase.load(std::memory_order_acquire) == ph;) {
      if (spins < 2000) {
        SHRINK_PAUSE();
        spins++;
      } else {
        std::this_thread::yield();
      }
    }
  }
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Balanced block size: split `total` into ceil(total / nominal) near-equal blocks, rounded up to `align`.
int64_t balanced(int64_t total, int64_t nominal, int64_t align) {
  int64_t nb = ceil_div(total, nominal);
  return ceil_div(ceil_div(total, nb), align) * align;
}


// One packed GEMM on `nt` threads (nt = 1: no pool call). C has row stride N. M, N, K ≥ 1. With `src`, B's panels
// come from it (e.g. dequantized from integer codes panel by panel) and B is not read.
void gemm_packed(const Mat& A, const Mat& B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, int nt,
                 const BPanelSource* src = nullptr) {
  const Kernels& kn = kernels();
  const int mr_t = kn.mr, nr_t = kn.nv * NR;  // tile: mr_t rows × nr_t columns (kn.nv micro-panels of NR)
  const int64_t kcb = balanced(K, g_kc > 0 ? g_kc : kn.kc, 1);
  const int64_t ncb = balanced(N, std::max(nr_t, (g_nc > 0 ? g_nc : kn.nc) / nr_t * nr_t), nr_t);
  const int64_t mcb = std::max<int64_t>(mr_t, (g_mc > 0 ? g_mc : kn.mc) / mr_t * mr_t);
  const int64_t npan_max = ceil_div(std::min(ncb, N), NR);
  const int64_t ntile_max = ceil_div(std::min(ncb, N), nr_t);
  const int64_t mtiles = ceil_div(M, mr_t);
  // One scratch block owned by the calling thread: the B panel (two of them when threaded) and one A block per
  // thread. Allocated here, before the team starts, so that nothing inside it can fail between barriers.
  const size_t bstride = static_cast<size_t>(kcb * npan_max * NR) + 64;
  const size_t astride = static_cast<size_t>(ceil_div(std::min(mcb, mtiles * mr_t) * kcb, 16) * 16) + 64;
  const int nbuf = nt > 1 ? 2 : 1;
  float* bbuf = t_work.get(bstride * nbuf + astride * nt);
  Barrier bar;

  auto body = [&](int tid, int total) {
    // Thread grid: tm row groups × tn column groups (tm·tn = total) minimising the busiest thread's tile count;
    // ties go to more row groups (every column group packs its own copy of its rows of A).
    int tm = total, tn = 1;
    int64_t best = -1;
    for (int d = total; d >= 1; d--) {
      if (total % d) continue;
      int64_t cost = ceil_div(mtiles, d) * ceil_div(ntile_max, total / d);
      if (best < 0 || cost < best) best = cost, tm = d, tn = total / d;
    }
    const int im = tid % tm, in = tid / tm;
    const int64_t r0 = std::min(M, mtiles * im / tm * mr_t), r1 = std::min(M, mtiles * (im + 1) / tm * mr_t);
    const int64_t mc_blk = r1 > r0 ? balanced(r1 - r0, mcb, mr_t) : mr_t;
    float* ap = bbuf + bstride * nbuf + astride * tid;
    int step = 0;
    for (int64_t jc = 0; jc < N; jc += ncb) {
      const int nc = static_cast<int>(std::min(ncb, N - jc));
      const int64_t npan = ceil_div(nc, NR), ntile = ceil_div(nc, nr_t);
      const int q0 = static_cast<int>(ntile * in / tn), q1 = static_cast<int>(ntile * (in + 1) / tn);
      for (int64_t pc = 0; pc < K; pc += kcb, step++) {
        const int kc = static_cast<int>(std::min(kcb, K - pc));
        float* bp = bbuf + (total > 1 ? (step & 1) * bstride : 0);
        // Pack this thread's share of the B panel, then wait for the others' shares. With two buffers, passing
        // this barrier also means every thread has finished with the buffer the next step overwrites.
        const int pb0 = static_cast<int>(npan * tid / total), pb1 = static_cast<int>(npan * (tid + 1) / total);
        if (src)
          src->pack(pc, kc, jc, nc, pb0, pb1, bp);
        else
          kn.pack_b(B, pc, kc, jc, nc, pb0, pb1, bp);
        bar.wait(total);
        const bool add = accumulate || pc > 0;
        const int64_t bps = static_cast<int64_t>(NR) * kc;  // micro-panel stride
        for (int64_t ic = r0; ic < r1; ic += mc_blk) {
          const int mc = static_cast<int>(std::min(mc_blk, r1 - ic));
          kn.pack_a(A, ic, mc, pc, kc, ap);
          for (int q = q0; q < q1; q++) {
            const int jr = q * nr_t, nr = std::min(nr_t, nc - jr);
            const float* bpanel = bp + static_cast<int64_t>(q) * kn.nv * bps;
            float* cblk = C + ic * N + jc + jr;
            for (int ir = 0; ir < mc; ir += mr_t)
              kn.micro(kc, ap + static_cast<int64_t>(ir) * kc, bpanel, bps, cblk + ir * N, N, std::min(mr_t, mc - ir), nr, add);
          }
        }
      }
    }
  };
  if (nt > 1)
    parallel_run(nt, body);
  else
    body(0, 1);
}

// ---------------------------------------------------------------------------------------------------------------
// GEMV-style paths for M = 1 or N = 1 (packing would triple the memory traffic of a memory-bound product).
//   dot:    x·y over n
//   gemv_t: c[j] (=|+=) Σ_k x[k]·P[k·ld + j] for j < n

float dot_portable(const float* x, const float* y, int64_t n) {
  float s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) s[j] += x[i + j] * y[i + j];
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; i++) t += x[i] * y[i];
  return t;
}

void gemv_t_portable(const float* x, const float* P, int64_t ld, int64_t K, float* c, int64_t n, bool acc) {
  for (int64_t j0 = 0; j0 < n; j0 += 64) {
    const int64_t w = std::min<int64_t>(64, n - j0);
    float s[64];
    for (int64_t j = 0; j < w; j++) s[j] = acc ? c[j0 + j] : 0.f;
    for (int64_t k = 0; k < K; k++) {
      const float xk = x[k];
      const float* row = P + k * ld + j0;
      for (int64_t j = 0; j < w; j++) s[j] += xk * row[j];
    }
    for (int64_t j = 0; j < w; j++) c[j0 + j] = s[j];
  }
}

#if SHRINK_X86
__attribute__((target("avx2,fma"))) float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* x, const float* y, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
  float t = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; i++) t += x[i] * y[i];
  return t;
}

__attribute__((target("avx2,fma"))) void gemv_t_avx2(const float* x, const float* P, int64_t ld, int64_t K, float* c, int64_t n, bool acc) {
  int64_t j0 = 0;
  for (; j0 + 64 <= n; j0 += 64) {
    __m256 s[8];
    for (int i = 0; i < 8; i++) s[i] = acc ? _mm256_loadu_ps(c + j0 + 8 * i) : _mm256_setzero_ps();
    const float* row = P + j0;
    for (int64_t k = 0; k < K; k++, row += ld) {
      const __m256 xk = _mm256_broadcast_ss(x + k);
      for (int i = 0; i < 8; i++) s[i] = _mm256_fmadd_ps(xk, _mm256_loadu_ps(row + 8 * i), s[i]);
    }
    for (int i = 0; i < 8; i++) _mm256_storeu_ps(c + j0 + 8 * i, s[i]);
  }
  for (; j0 + 8 <= n; j0 += 8) {
    __m256 s = acc ? _mm256_loadu_ps(c + j0) : _mm256_setzero_ps();
    const float* row = P + j0;
    for (int64_t k = 0; k < K; k++, row += ld) s = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k), _mm256_loadu_ps(row), s);
    _mm256_storeu_ps(c + j0, s);
  }
  if (j0 < n) gemv_t_portable(x, P + j0, ld, K, c + j0, n - j0, acc);
}
#endif

using DotFn = float (*)(const float*, const float*, int64_t);
using GemvTFn = void (*)(const float*, const float*, int64_t, int64_t, float*, int64_t, bool);

// C (1×N or M×1, contiguous) for M = 1 or N = 1, outputs split over nt threads.
void gemv(const Mat& A, const Mat& B, float* C, int64_t M, int64_t N, int64_t K, bool acc, int nt) {
#if SHRINK_X86
  const bool avx = avx2_active();
  const DotFn dot = avx ? dot_avx2 : dot_portable;
  const GemvTFn gemv_t = avx ? gemv_t_avx2 : gemv_t_portable;
#else
  const DotFn dot = dot_portable;
  const GemvTFn gemv_t = gemv_t_portable;
#endif
  // The length-K vector (row of A when M = 1, column of B otherwise), gathered when it is strided.
  const bool row_case = M == 1;
  const Mat& V = row_case ? A : B;
  const bool v_contig = row_case ? (!A.trans || A.ld == 1) : (B.trans || B.ld == 1);
  const float* v = V.p;
  if (!v_contig) {
    float* buf = t_vec.get(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; k++) buf[k] = row_case ? A.at(0, k) : B.at(k, 0);
    v = buf;
  }
  // The other operand: either K-contiguous rows (dot per output) or K rows of outputs (gemv_t).
  const Mat& W = row_case ? B : A;
  const bool dots = row_case ? B.trans : !A.trans;
  const int64_t nout = row_case ? N : M;
  auto run = [&](int64_t o0, int64_t o1) {
    if (dots) {
      for (int64_t o = o0; o < o1; o++) {
        float s = dot(v, W.p + o * W.ld, K);
        C[o] = acc ? C[o] + s : s;
      }
    } else {
      gemv_t(v, W.p + o0, W.ld, K, C + o0, o1 - o0, acc);
    }
  };
  if (nt <= 1 || nout < 2 * 64) {
    run(0, nout);
    return;
  }
  const int64_t units = ceil_div(nout, 64);
  parallel_run(nt, [&](int tid, int total) {
    const int64_t o0 = std::min(nout, units * tid / total * 64), o1 = std::min(nout, units * (tid + 1) / total * 64);
    if (o0 < o1) run(o0, o1);
  });
}

// ---------------------------------------------------------------------------------------------------------------

void gemm_one(const Mat& A, const Mat& B, float* C, int64_t M, int64_t N, int64_t K, bool acc, int nt) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!acc) std::memset(C, 0, static_cast<size_t>(M * N) * sizeof(float));
    return;
  }
  if (M == 1 || N == 1)
    gemv(A, B, C, M, N, K, acc, nt);
  else
    gemm_packed(A, B, C, M, N, K, acc, nt);
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
  if (g.batch <= 0 || g.M <= 0 || g.N <= 0) return;
  const int64_t mn = g.M * g.N;
  const int64_t flops_one = 2 * mn * std::max<int64_t>(g.K, 1);
  const int threads = num_threads();
  auto one = [&](int64_t i, int nt) {
    gemm_one(Mat{g.a + g.aoff[i], g.lda, g.ta}, Mat{g.b + g.boff[i], g.ldb, g.tb}, g.out + i * mn, g.M, g.N, g.K, g.acc, nt);
  };
  if (threads <= 1 || flops_one * g.batch < kSmallFlops) {  // small total work: dispatch would cost more
    for (int64_t i = 0; i < g.batch; i++) one(i, 1);
    return;
  }
  // Many matrices (an even share each, or enough that the remainder hardly matters, or each one too small to
  // split): one whole matrix per thread at a time.
  if (g.batch >= threads && (g.batch % threads == 0 || g.batch >= 4 * threads || flops_one < kSmallFlops)) {
    parallel_for(g.batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; i++) one(i, 1);
    });
    return;
  }
  for (int64_t i = 0; i < g.batch; i++) one(i, threads);
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

}  // namespace

float sdot(const float* x, const float* y, int64_t n) {
#if SHRINK_X86
  if (avx2_active()) return dot_avx2(x, y, n);
#endif
  return dot_portable(x, y, n);
}

void pack_b_rows(const float* rows, int64_t ld, int kc, int nr, float* dst) {
  kernels().pack_b(Mat{rows, ld, true}, 0, kc, 0, nr, 0, 1, dst);
}

void sgemm_source_b(const float* A, int64_t lda, const BPanelSource& B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const int nt = 2 * M * N * K < kSmallFlops ? 1 : num_threads();
  gemm_packed(Mat{A, lda, false}, Mat{nullptr, 0, false}, C, M, N, K, accumulate, nt, &B);
}

void sgemm_abt(const float* A, int64_t lda, const float* W, int64_t ldw, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, int nt) {
  if (nt <= 0) nt = num_threads() <= 1 || 2 * M * N * std::max<int64_t>(K, 1) < kSmallFlops ? 1 : num_threads();
  gemm_one(Mat{A, lda, false}, Mat{W, ldw, true}, C, M, N, K, accumulate, nt);
}

void sgemm_source_b_bias(const float* A, const BPanelSource& B, const float* bias, float* C, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; m++) {
    if (bias)
      std::memcpy(C + m * N, bias, static_cast<size_t>(N) * sizeof(float));
    else
      std::memset(C + m * N, 0, static_cast<size_t>(N) * sizeof(float));
  }
  sgemm_source_b(A, K, B, C, M, N, K, true);
}

namespace {

// JS: sgemm(a, b, out, batch, M, N, K, aOffsets, bOffsets, lda, ldb, transA, transB, accumulate)
// TypeScript validates the arguments (src/backend/native); this only checks types and the cheap extents so that a
// bad call throws instead of reading or writing out of bounds.
bool unwrap(const Napi::CallbackInfo& info, GemmArgs& g) {
  Napi::Env env = info.Env();
  auto f32 = [&](size_t i) { return info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array; };
  auto i32 = [&](size_t i) { return info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array; };
  if (info.Length() < 14 || !f32(0) || !f32(1) || !f32(2) || !i32(7) || !i32(8) || !info[3].IsNumber() || !info[4].IsNumber() ||
      !info[5].IsNumber() || !info[6].IsNumber() || !info[9].IsNumber() || !info[10].IsNumber()) {
    Napi::TypeError::New(env, "sgemm(a: Float32Array, b: Float32Array, out: Float32Array, batch, M, N, K, aOffsets: Int32Array, "
                              "bOffsets: Int32Array, lda, ldb, transA, transB, accumulate)")
        .ThrowAsJavaScriptException();
    return false;
  }
  auto a = info[0].As<Napi::Float32Array>(), b = info[1].As<Napi::Float32Array>(), out = info[2].As<Napi::Float32Array>();
  auto aoff = info[7].As<Napi::Int32Array>(), boff = info[8].As<Napi::Int32Array>();
  g.a = a.Data();
  g.b = b.Data();
  g.out = out.Data();
  g.batch = info[3].As<Napi::Number>().Int64Value();
  g.M = info[4].As<Napi::Number>().Int64Value();
  g.N = info[5].As<Napi::Number>().Int64Value();
  g.K = info[6].As<Napi::Number>().Int64Value();
  g.aoff = aoff.Data();
  g.boff = boff.Data();
  g.lda = info[9].As<Napi::Number>().Int64Value();
  g.ldb = info[10].As<Napi::Number>().Int64Value();
  g.ta = info[11].ToBoolean().Value();
  g.tb = info[12].ToBoolean().Value();
  g.acc = info[13].ToBoolean().Value();
  const char* err = nullptr;
  constexpr int64_t kMaxDim = 0x7fffffff;  // sizes past int32 cannot index a typed array; bounding them keeps the
                                           // extent arithmetic below (at most ~2^62) free of overflow
  if (g.batch < 0 || g.M < 0 || g.N < 0 || g.K < 0 || g.lda < 0 || g.ldb < 0)
    err = "sgemm: negative size";
  else if (g.batch > kMaxDim || g.M > kMaxDim || g.N > kMaxDim || g.K > kMaxDim || g.lda > kMaxDim || g.ldb > kMaxDim)
    err = "sgemm: size out of range (batch, M, N, K, lda and ldb must be below 2^31)";
  else if (g.batch > 0 && g.M > 0 && g.N > 0) {
    if (!holds3(out.ElementLength(), g.batch, g.M, g.N)) err = "sgemm: out is too short";
    else if (static_cast<int64_t>(aoff.ElementLength()) < g.batch || static_cast<int64_t>(boff.ElementLength()) < g.batch)
      err = "sgemm: fewer offsets than batch";
    else if (g.K > 0) {
      // extent of one operand: (rows-1)·ld + cols, rows/cols as stored
      const int64_t a_ext = g.ta ? (g.K - 1) * g.lda + g.M : (g.M - 1) * g.lda + g.K;
      const int64_t b_ext = g.tb ? (g.N - 1) * g.ldb + g.K : (g.K - 1) * g.ldb + g.N;
      const int64_t alen = static_cast<int64_t>(a.ElementLength()), blen = static_cast<int64_t>(b.ElementLength());
      for (int64_t i = 0; i < g.batch && !err; i++)
        if (g.aoff[i] < 0 || g.aoff[i] + a_ext > alen || g.boff[i] < 0 || g.boff[i] + b_ext > blen) err = "sgemm: operand out of range";
    }
  }
  if (err) {
    Napi::RangeError::New(env, err).ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  GemmArgs g;
  if (unwrap(info, g)) {
    try {
      sgemm_run(g);
    } catch (const std::bad_alloc&) {
      Napi::Error::New(info.Env(), "sgemm: out of memory").ThrowAsJavaScriptException();
    }
  }
  return info.Env().Undefined();
}

Napi::Value SgemmRef(const Napi::CallbackInfo& info) {
  GemmArgs g;
  if (unwrap(info, g)) sgemm_ref(g);
  return info.Env().Undefined();
}

// setGemmBlocking(kc?, mc?, nc?): tuning hook for benchmarks and tests. A value in range overrides that block size for
// every kernel (mc is rounded down to a multiple of the kernel's MR, nc of its tile width, when used); -1 restores
// the kernel's default; anything else leaves it. Returns [kc, mc, nc] in effect for the current kernel.
Napi::Value SetGemmBlocking(const Napi::CallbackInfo& info) {
  auto arg = [&](size_t i) { return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : 0; };
  const int kc = arg(0), mc = arg(1), nc = arg(2);
  if (kc == -1) g_kc = 0;
  if (mc == -1) g_mc = 0;
  if (nc == -1) g_nc = 0;
  if (kc >= 8 && kc <= 4096) g_kc = kc;
  if (mc >= MR && mc <= 4096) g_mc = mc;
  if (nc >= NR && nc <= 65536) g_nc = nc;
  const Kernels& kn = kernels();
  const int nr_t = kn.nv * NR;
  Napi::Array r = Napi::Array::New(info.Env(), 3);
  r.Set(0u, g_kc > 0 ? g_kc : kn.kc);
  r.Set(1u, std::max(kn.mr, (g_mc > 0 ? g_mc : kn.mc) / kn.mr * kn.mr));
  r.Set(2u, std::max(nr_t, (g_nc > 0 ? g_nc : kn.nc) / nr_t * nr_t));
  return r;
}

// setGemmKernel(name?): test and benchmark hook. 'portable' forces the portable kernels, 'avx2' caps the GEMM at the
// AVX2 kernel, 'auto' (or 'avx512') restores run-time selection (which SHRINK_ISA and the CPU still cap). Returns the
// family now in use: 'avx512', 'avx2' or 'portable'; the kernel's full name is kernels().sgemm (addon.cc).
Napi::Value SetGemmKernel(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsString()) {
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    if (name == "portable") g_force = static_cast<int>(Force::portable);
    else if (name == "avx2") g_force = static_cast<int>(Force::avx2);
    else if (name == "auto" || name == "avx512") g_force = static_cast<int>(Force::none);
    else {
      Napi::TypeError::New(info.Env(), "setGemmKernel: name must be 'auto', 'avx512', 'avx2' or 'portable'").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
  }
  return Napi::String::New(info.Env(), kernels().family);
}

}  // namespace

void init_gemm(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemm", Napi::Function::New(env, denormal_guarded_napi<Sgemm>));
  exports.Set("sgemmRef", Napi::Function::New(env, SgemmRef));
  exports.Set("setGemmBlocking", Napi::Function::New(env, SetGemmBlocking));
  exports.Set("setGemmKernel", Napi::Function::New(env, SetGemmKernel));
  register_kernel("sgemm", [] { return kernels().name; });
}

}  // namespace shrink
