// The codebook GEMM of weight-shared (share.kmeans) Linear layers (src/compress/share/clustered.ts,
// ClusteredLinear; its gather + linear is the TypeScript reference):
//
//   codebookGemm(x, M, K, N, codes, bits, codebook, bias|null, out):
//     out[M, N] = x[M, K] · Wᵀ + bias,  W[n, k] = codebook[code[n·K + k]]
//
// codes: a Uint8Array, one byte per weight (bits 8) or two per byte (bits 4, low nibble = even index, over the
// flattened n·K + k, so an odd K starts every other row on a high nibble); codebook: k ≤ 2^bits float32 values.
// A code ≥ k is the caller's error (ClusteredLinear checks its codes once, when it is built or loaded): the kernel
// reads a zero-padded 256-entry copy of the codebook (and masks 4-bit indices), so it never reads out of bounds.
//
// Paths, like woGemm (quant.cc), so the float weight never exists whole:
// - M > 4: the packed SGEMM (gemm.cc, sgemm_source_b) with its B panels looked up while they are packed: each
//   16-row micro-panel's rows are looked up (kc codes at a time) into an L1-resident buffer, then transposed into
//   the panel by pack_b_rows (the SGEMM's own packer).
// - M ≤ 4 (decoding): one weight row at a time against every x row. AVX-512: looked up 16 weights at a time and
//   multiplied in registers (the row is never stored: a store and reload per weight cost as much as the lookup);
//   AVX2 and portable: the row looked up into a buffer and dotted with sdot (the GEMV's dot product).
//
// The lookup (`codebookKernel()` names the path; `kernels().codebook` too):
// - avx512: a codebook of ≤ 16 entries (every 4-bit layer, and 8-bit layers with ≤ 16 clusters) sits in one zmm;
//   16 codes widen to 16 dword indices and one vpermps looks them all up. Larger codebooks: 32-entry blocks in
//   register pairs (vpermt2ps each) and a tree of blends on index bits 5–7 (Lut512).
// - avx2: ≤ 16 entries in two ymm (entries 0–7, 8–15): two vpermps and a blend on index bit 3; larger: vgatherdps.
// - portable: a scalar table lookup.
// simd_enabled() (setSimd(false) for the tests) picks the portable lookup; SHRINK_ISA=avx2 the AVX2 one. The float
// GEMM and the dot product follow gemm.cc's own switch (setGemmKernel), as woGemm's do.
//
// Checks: types and lengths as the other kernels (args.h); a bad call throws a TypeError/RangeError.
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

constexpr int64_t kMaxDim = int64_t{1} << 40;  // any one dimension: no overflow in the index arithmetic below
constexpr int64_t kMinTaskElems = 65536;       // smallest share of the decode loop worth a pool task (weights)

enum class Path { portable, avx2, avx512 };
Path path() {
#if SHRINK_X86
  if (simd_enabled()) return has_avx512f() ? Path::avx512 : Path::avx2;
#endif
  return Path::portable;
}
const char* path_name() {
  switch (path()) {
    case Path::avx512: return "avx512: vpermps (<= 16 entries) / vpermt2ps tree";
    case Path::avx2: return "avx2: 2x vpermps + blend (<= 16 entries) / vgatherdps";
    default: return "portable";
  }
}

// The weight: codes, the codebook padded with zeros to 256 entries, and the path chosen when the call started.
struct CodebookWeight {
  const uint8_t* codes;
  int bits;
  int entries;  // the codebook's own length (1..2^bits)
  int64_t K;
  Path path;
  alignas(64) float tab[256];

  int code(int64_t i) const { return bits == 8 ? codes[i] : (codes[i >> 1] >> ((i & 1) * 4)) & 15; }

  // o[0, len) = W[n, k0 .. k0 + len)
  void row(int64_t n, int64_t k0, int64_t len, float* o) const {
    const int64_t i0 = n * K + k0;
#if SHRINK_X86
    if (path == Path::avx512) return row_avx512(i0, len, o);
    if (path == Path::avx2) return row_avx2(i0, len, o);
#endif
    row_portable(i0, len, o);
  }

  void row_portable(int64_t i0, int64_t len, float* o) const {
    if (bits == 8) {
      const uint8_t* c = codes + i0;
      for (int64_t t = 0; t < len; t++) o[t] = tab[c[t]];
      return;
    }
    int64_t t = 0;
    if (i0 & 1 && len > 0) o[t++] = tab[code(i0)];
    const uint8_t* c = codes + ((i0 + t) >> 1);
    for (; t + 2 <= len; t += 2, c++) {
      o[t] = tab[*c & 15];
      o[t + 1] = tab[*c >> 4];
    }
    if (t < len) o[t] = tab[code(i0 + t)];
  }

#if SHRINK_X86
  // AVX-512: row segments through Lut512<NB> (below), 16 weights at a time; NB = 0 for ≤ 16 entries, else the
  // number of 32-entry blocks (1, 2, 4 or 8). `t` is the first element a vector handles; 4-bit vectors start at an
  // even element (a whole byte).
  template <int NB>
  __attribute__((target("avx512f,avx512bw,avx512vl"))) void row_avx512_t(int64_t i0, int64_t len, float* o) const;
  template <int NB>
  __attribute__((target("avx512f,avx512bw,avx512vl"))) void dots_avx512_t(int64_t i0, int64_t K, const float* x, int64_t M, float* d) const;
  int lut_blocks() const { return entries <= 16 ? 0 : entries <= 32 ? 1 : entries <= 64 ? 2 : entries <= 128 ? 4 : 8; }
  void row_avx512(int64_t i0, int64_t len, float* o) const {
    switch (lut_blocks()) {
      case 0: return row_avx512_t<0>(i0, len, o);
      case 1: return row_avx512_t<1>(i0, len, o);
      case 2: return row_avx512_t<2>(i0, len, o);
      case 4: return row_avx512_t<4>(i0, len, o);
      default: return row_avx512_t<8>(i0, len, o);
    }
  }
  // d[m] = Σ_k x[m·K + k]·W[n, k] for m < M ≤ 4 (i0 = n·K): the decode path, looked up and multiplied in registers.
  void dots_avx512(int64_t i0, int64_t K, const float* x, int64_t M, float* d) const {
    switch (lut_blocks()) {
      case 0: return dots_avx512_t<0>(i0, K, x, M, d);
      case 1: return dots_avx512_t<1>(i0, K, x, M, d);
      case 2: return dots_avx512_t<2>(i0, K, x, M, d);
      case 4: return dots_avx512_t<4>(i0, K, x, M, d);
      default: return dots_avx512_t<8>(i0, K, x, M, d);
    }
  }

  // Entries 0–7 from T0, 8–15 from T1: index bit 3, shifted to the sign bit, picks (vblendvps).
  __attribute__((target("avx2,fma"))) static __m256 lookup16_avx2(__m256i idx, __m256 T0, __m256 T1) {
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(T0, idx), _mm256_permutevar8x32_ps(T1, idx), _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
  }

  __attribute__((target("avx2,fma"))) void row_avx2(int64_t i0, int64_t len, float* o) const {
    int64_t t = 0;
    const __m256 T0 = _mm256_load_ps(tab), T1 = _mm256_load_ps(tab + 8);
    if (bits == 8) {
      const uint8_t* c = codes + i0;
      if (entries <= 16) {
        for (; t + 8 <= len; t += 8)
          _mm256_storeu_ps(o + t, lookup16_avx2(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + t))), T0, T1));
      } else {
        for (; t + 8 <= len; t += 8)
          _mm256_storeu_ps(o + t, _mm256_i32gather_ps(tab, _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + t))), 4));
      }
      for (; t < len; t++) o[t] = tab[c[t]];
      return;
    }
    if (i0 & 1 && len > 0) o[t++] = tab[code(i0)];
    const __m128i low4 = _mm_set1_epi8(15);
    const uint8_t* c = codes + ((i0 + t) >> 1);
    for (; t + 16 <= len; t += 16, c += 8) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c));
      const __m128i v = _mm_unpacklo_epi8(_mm_and_si128(b, low4), _mm_and_si128(_mm_srli_epi16(b, 4), low4));
      _mm256_storeu_ps(o + t, lookup16_avx2(_mm256_cvtepu8_epi32(v), T0, T1));
      _mm256_storeu_ps(o + t + 8, lookup16_avx2(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)), T0, T1));
    }
    for (; t < len; t++) o[t] = tab[code(i0 + t)];
  }
#endif  // SHRINK_X86
};

#if SHRINK_X86
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// (GCC 12 warns about the _mm512_undefined_* inside its own cvt/permute intrinsics' headers: a false positive,
// silenced as in quant.cc.)

// The codebook in zmm registers. NB = 0: ≤ 16 entries in one register, one vpermps per 16 lookups. NB ≥ 1: NB
// blocks of 32 entries (two registers each, vpermt2ps), then a tree of blends on index bits 5, 6, 7: for 256
// entries 8 permutes + 7 blends per 16 weights, against one vgatherdps that Zen 4 microcodes (~3× slower here).
template <int NB>
struct Lut512 {
  __m512 T[NB == 0 ? 1 : 2 * NB];
  __attribute__((target("avx512f,avx512bw,avx512vl"))) explicit Lut512(const float* tab) {
    for (int i = 0; i < (NB == 0 ? 1 : 2 * NB); i++) T[i] = _mm512_load_ps(tab + 16 * i);
  }
  __attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512 operator()(__m512i idx) const {
    if constexpr (NB == 0) {
      return _mm512_permutexvar_ps(idx, T[0]);
    } else {
      __m512 r[NB];
      for (int b = 0; b < NB; b++) r[b] = _mm512_permutex2var_ps(T[2 * b], idx, T[2 * b + 1]);
      int bit = 32;
      for (int w = NB; w > 1; w /= 2, bit *= 2) {
        const __mmask16 m = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(bit));
        for (int j = 0; j < w / 2; j++) r[j] = _mm512_mask_blend_ps(m, r[2 * j], r[2 * j + 1]);
      }
      return r[0];
    }
  }
};

// 16 codes as dword indices: 8-bit from 16 bytes, 4-bit from 8 bytes (low nibble first).
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512i idx16_u8(const uint8_t* c) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
}
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512i idx16_u4(const uint8_t* c) {
  const __m128i low4 = _mm_set1_epi8(15), b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c));
  return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(_mm_and_si128(b, low4), _mm_and_si128(_mm_srli_epi16(b, 4), low4)));
}

template <int NB>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void CodebookWeight::row_avx512_t(int64_t i0, int64_t len, float* o) const {
  const Lut512<NB> lut(tab);
  int64_t t = 0;
  if (bits == 8) {
    const uint8_t* c = codes + i0;
    for (; t + 16 <= len; t += 16) _mm512_storeu_ps(o + t, lut(idx16_u8(c + t)));
    for (; t < len; t++) o[t] = tab[c[t]];
    return;
  }
  if (i0 & 1) o[t++] = tab[code(i0)];
  const uint8_t* c = codes + ((i0 + t) >> 1);
  for (; t + 16 <= len; t += 16, c += 8) _mm512_storeu_ps(o + t, lut(idx16_u4(c)));
  for (; t < len; t++) o[t] = tab[code(i0 + t)];
}

// MM (1–4) rows of x against one weight row; two accumulators per x row (32 weights per step) so the FMA latency
// chain is not the limit at M = 1.
template <int NB, int MM>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void dots_rows_avx512(const CodebookWeight& w, const Lut512<NB>& lut, int64_t i0, int64_t K, const float* x, float* d) {
  __m512 a0[MM], a1[MM];
  float head[MM];
  for (int m = 0; m < MM; m++) a0[m] = a1[m] = _mm512_setzero_ps(), head[m] = 0.f;
  const bool b8 = w.bits == 8;
  int64_t t = 0;
  if (!b8 && (i0 & 1)) {
    const float v = w.tab[w.code(i0)];
    for (int m = 0; m < MM; m++) head[m] = x[m * K] * v;
    t = 1;
  }
  const uint8_t* c = b8 ? w.codes + i0 : w.codes + ((i0 + t) >> 1);  // 8-bit: indexed by t; 4-bit: advanced
  for (; t + 32 <= K; t += 32) {
    const __m512 v0 = lut(b8 ? idx16_u8(c + t) : idx16_u4(c));
    const __m512 v1 = lut(b8 ? idx16_u8(c + t + 16) : idx16_u4(c + 8));
    if (!b8) c += 16;
    for (int m = 0; m < MM; m++) {
      a0[m] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * K + t), v0, a0[m]);
      a1[m] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * K + t + 16), v1, a1[m]);
    }
  }
  if (t + 16 <= K) {
    const __m512 v0 = lut(b8 ? idx16_u8(c + t) : idx16_u4(c));
    for (int m = 0; m < MM; m++) a0[m] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * K + t), v0, a0[m]);
    t += 16;
  }
  for (int m = 0; m < MM; m++) {
    float s = head[m] + _mm512_reduce_add_ps(_mm512_add_ps(a0[m], a1[m]));
    for (int64_t u = t; u < K; u++) s += x[m * K + u] * w.tab[w.code(i0 + u)];
    d[m] = s;
  }
}

template <int NB>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void CodebookWeight::dots_avx512_t(int64_t i0, int64_t K, const float* x, int64_t M, float* d) const {
  const Lut512<NB> lut(tab);
  switch (M) {
    case 1: return dots_rows_avx512<NB, 1>(*this, lut, i0, K, x, d);
    case 2: return dots_rows_avx512<NB, 2>(*this, lut, i0, K, x, d);
    case 3: return dots_rows_avx512<NB, 3>(*this, lut, i0, K, x, d);
    default: return dots_rows_avx512<NB, 4>(*this, lut, i0, K, x, d);
  }
}
#pragma GCC diagnostic pop
#endif  // SHRINK_X86

// codebookGemm(x, M, K, N, codes, bits, codebook, bias|null, out)
napi_value CodebookGemm(napi_env env, napi_callback_info info) {
  Args a(env, info, "codebookGemm");
  size_t xl, cl, bl, ol, bbl;
  const float* x = a.f32(0, xl);
  const int64_t M = a.int64(1), K = a.int64(2), N = a.int64(3);
  const uint8_t* codes = a.u8(4, cl);
  const int64_t bits = a.int64(5);
  const float* cb = a.f32(6, bl);
  const float* bias = a.f32_opt(7, bbl);
  float* out = a.f32(8, ol);
  if (a.failed()) return a.fail();
  if (!a.check(M >= 0 && M <= kMaxDim && K >= 1 && K <= kMaxDim && N >= 1 && N <= kMaxDim, "need M >= 0, K >= 1 and N >= 1") ||
      !a.check(bits == 4 || bits == 8, "bits must be 4 or 8") ||
      !a.check(bl >= 1 && bl <= (size_t{1} << bits), "the codebook must hold 1 to 2^bits values") ||
      !a.check(bits == 8 ? holds(cl, N, K) : holds(cl * 2, N, K), "codes too short") ||
      !a.check(holds(xl, M, K) && holds(ol, M, N) && (!bias || holds(bbl, N)), "x, bias or out too short"))
    return a.fail();
  if (M == 0) return a.undefined();
  CodebookWeight w;
  w.codes = codes;
  w.bits = static_cast<int>(bits);
  w.entries = static_cast<int>(bl);
  w.K = K;
  w.path = path();
  std::memset(w.tab, 0, sizeof w.tab);
  std::memcpy(w.tab, cb, bl * sizeof(float));
  if (M <= 4) {
    par_for(N, std::max<int64_t>(1, kMinTaskElems / K), [&](int64_t n0, int64_t n1) {
      thread_local std::vector<float> row;
      if (row.size() < static_cast<size_t>(K)) row.resize(static_cast<size_t>(K));
      for (int64_t n = n0; n < n1; n++) {
#if SHRINK_X86
        if (w.path == Path::avx512) {
          float d[4];
          w.dots_avx512(n * K, K, x, M, d);
          for (int64_t m = 0; m < M; m++) out[m * N + n] = d[m] + (bias ? bias[n] : 0.f);
          continue;
        }
#endif
        w.row(n, 0, K, row.data());
        for (int64_t m = 0; m < M; m++) out[m * N + n] = sdot(x + m * K, row.data(), K) + (bias ? bias[n] : 0.f);
      }
    });
    return a.undefined();
  }
  sgemm_source_b_bias(x, RowPanels<CodebookWeight>(w), bias, out, M, N, K);
  return a.undefined();
}

napi_value CodebookKernel(napi_env env, napi_callback_info) {
  napi_value s;
  napi_create_string_utf8(env, path_name(), NAPI_AUTO_LENGTH, &s);
  return s;
}

}  // namespace

void init_codebook(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "codebookGemm", denormal_guarded<CodebookGemm>);
  export_fn(env, exports, "codebookKernel", CodebookKernel);
  register_kernel("codebook", [] { return path_name(); });
}

}  // namespace shrink
