// AVX2/FMA float math on 8 lanes: exp, log, tanh, sigmoid, erf/erfc and the GELU forms, plus horizontal helpers.
//
// Accuracy target: within ~2 ulp of the correctly rounded float result (the `ref` backend computes in float64 and
// rounds once), with IEEE behaviour at the edges (NaN in → NaN out, ±inf, overflow to inf, gradual underflow).
//   exp:  Cody–Waite reduction with a split ln2, Cephes degree-6 polynomial, 2^n applied in two halves so that
//         results in the subnormal range and just below FLT_MAX come out right.
//   log:  Cephes logf (frexp into [√½, √2), degree-8 polynomial), subnormal inputs pre-scaled.
//   tanh: odd polynomial below 0.625, 1 − 2/(e^{2|x|}+1) above.
//   erf/erfc: the SunPro/musl erff scheme (four ranges, rational fits; erfc for |x| ≥ 1.25 as
//         exp(−z²)·exp((z−x)(z+x) − 0.5625 + R/S)/x with z = x truncated to 12 bits, so that −z² is exact). Ranges
//         no lane needs are skipped, so typical activations pay for one or two of them. GELU evaluates erfc(|x|/√2)
//         from x itself, so the rounding of x/√2 (up to ~17 ulp in the tail) never happens.
// All functions are always_inline with target("avx2,fma"): they can only be called from functions carrying the
// same target attribute, which run only when has_avx2_fma() (common.h) is true. Empty off x86 (simd.h): every
// user keeps its AVX2 code under `#if SHRINK_X86`.
#pragma once
#include <cstdint>

#include "simd.h"

#if SHRINK_X86

#define SHRINK_AVX2_FN __attribute__((target("avx2,fma")))
#define SHRINK_VM inline __attribute__((target("avx2,fma"), always_inline))

namespace shrink {
namespace vm {

SHRINK_VM __m256 set(float v) { return _mm256_set1_ps(v); }
SHRINK_VM __m256 abs(__m256 x) { return _mm256_andnot_ps(set(-0.f), x); }
SHRINK_VM __m256 copysign(__m256 mag, __m256 sgn) {
  return _mm256_or_ps(_mm256_andnot_ps(set(-0.f), mag), _mm256_and_ps(set(-0.f), sgn));
}
SHRINK_VM __m256 lt(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
SHRINK_VM __m256 ge(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
SHRINK_VM __m256 fma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
// Polynomial c[0]·x^(n-1) + … + c[n-1] by Horner.
template <int N>
SHRINK_VM __m256 horner(__m256 x, const float (&c)[N]) {
  __m256 p = set(c[0]);
  for (int i = 1; i < N; i++) p = _mm256_fmadd_ps(p, x, set(c[i]));
  return p;
}
// Same, with each coefficient chosen per lane: b[i] where mask is set, else a[i].
template <int N>
SHRINK_VM __m256 horner_sel(__m256 x, const float (&a)[N], const float (&b)[N], __m256 mask) {
  __m256 p = _mm256_blendv_ps(set(a[0]), set(b[0]), mask);
  for (int i = 1; i < N; i++) p = _mm256_fmadd_ps(p, x, _mm256_blendv_ps(set(a[i]), set(b[i]), mask));
  return p;
}

// e^x.
SHRINK_VM __m256 exp(__m256 x) {
  // min/max return their second operand when either is NaN, so NaN passes through the clamps.
  x = _mm256_min_ps(set(88.76f), x);  // above: inf (after scaling)
  x = _mm256_max_ps(set(-104.f), x);  // below: 0
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, set(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, set(0.693359375f), x);  // n·C1 is exact (C1 has 9 significant bits)
  r = _mm256_fnmadd_ps(n, set(-2.12194440e-4f), r);
  static constexpr float c[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
  __m256 p = horner(r, c);
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
  p = _mm256_add_ps(p, set(1.f));
  // 2^n as 2^(n/2)·2^(n-n/2): n spans [-150, 129] after the clamps, beyond a single float exponent.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// e^(a + b) for a head a ≤ ~0 and a small correction b (|b| ≪ 1): e^a·(1 + b). A NaN b (from infinite inputs
// in the callers' error terms) counts as 0, so the result is the IEEE e^a.
SHRINK_VM __m256 exp_corr(__m256 a, __m256 b) {
  const __m256 e = exp(a);
  b = _mm256_and_ps(b, _mm256_cmp_ps(b, b, _CMP_ORD_Q));
  b = _mm256_max_ps(_mm256_min_ps(b, set(1.f)), set(-1.f));  // ±inf (from x = ±inf, where e is 0) → ±1
  return _mm256_fmadd_ps(e, b, e);
}

// x - m as an unevaluated sum hi + lo (TwoSum): softmax and cross-entropy use e^(hi)·(1 + lo) so that the
// float subtraction does not cost accuracy when |x - m| is large.
SHRINK_VM __m256 two_diff(__m256 x, __m256 m, __m256& lo) {
  const __m256 s = _mm256_sub_ps(x, m);
  const __m256 bb = _mm256_sub_ps(s, x);  // = -m + error
  lo = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_sub_ps(s, bb)), _mm256_add_ps(m, bb));  // NaN for infinite x
  return s;
}

// Natural log.
SHRINK_VM __m256 log(__m256 x) {
  const __m256 tiny = _mm256_cmp_ps(x, set(1.17549435e-38f), _CMP_LT_OQ);  // subnormal (or ≤ 0: fixed below)
  const __m256 xs = _mm256_blendv_ps(x, _mm256_mul_ps(x, set(8388608.f)), tiny);
  const __m256i xi = _mm256_castps_si256(xs);
  __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(xi, 23), _mm256_set1_epi32(126)));
  e = _mm256_sub_ps(e, _mm256_and_ps(tiny, set(23.f)));
  // mantissa in [0.5, 1)
  __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(xi, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f000000)));
  const __m256 lo = _mm256_cmp_ps(m, set(0.707106781186547524f), _CMP_LT_OQ);
  e = _mm256_sub_ps(e, _mm256_and_ps(lo, set(1.f)));
  m = _mm256_sub_ps(_mm256_add_ps(m, _mm256_and_ps(lo, m)), set(1.f));  // exact (Sterbenz)
  const __m256 z = _mm256_mul_ps(m, m);
  static constexpr float c[] = {7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f, -1.2420140846e-1f, 1.4249322787e-1f,
                                -1.6668057665e-1f, 2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f};
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(horner(m, c), m), z);
  y = _mm256_fmadd_ps(e, set(-2.12194440e-4f), y);
  y = _mm256_fmadd_ps(z, set(-0.5f), y);
  __m256 r = _mm256_add_ps(m, y);
  r = _mm256_fmadd_ps(e, set(0.693359375f), r);
  // edges: log(0) = -inf, log(+inf) = +inf, log(<0) = NaN, NaN → NaN
  r = _mm256_blendv_ps(r, set(-__builtin_inff()), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_EQ_OQ));
  r = _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, set(__builtin_inff()), _CMP_EQ_OQ));
  r = _mm256_blendv_ps(r, set(__builtin_nanf("")), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NGE_UQ));  // x < 0 or NaN
  return r;
}

// tanh.
SHRINK_VM __m256 tanh(__m256 x) {
  const __m256 a = abs(x);
  const __m256 small = lt(a, set(0.625f));
  const int ms = _mm256_movemask_ps(small);
  __m256 ys = _mm256_setzero_ps(), yl = _mm256_setzero_ps();
  if (ms != 0) {
    const __m256 z = _mm256_mul_ps(x, x);
    static constexpr float c[] = {-5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f, 1.33314422036e-1f, -3.33332819422e-1f};
    ys = _mm256_fmadd_ps(_mm256_mul_ps(horner(z, c), z), x, x);
    if (ms == 0xff) return ys;
  }
  const __m256 e = exp(_mm256_add_ps(a, a));
  yl = copysign(_mm256_sub_ps(set(1.f), _mm256_div_ps(set(2.f), _mm256_add_ps(e, set(1.f)))), x);
  yl = _mm256_blendv_ps(yl, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // NaN stays NaN (copysign kept its payload anyway)
  return _mm256_blendv_ps(yl, ys, small);
}

// σ(x) = 1/(1+e^-x), evaluated as n/(1+e) with e = e^-|x| ≤ 1 and n = 1 (x ≥ 0) or e (x < 0): never overflows, and
// keeps full relative accuracy deep in the negative tail (subnormal results included).
SHRINK_VM __m256 sigmoid_parts(__m256 x, __m256& e, __m256& inv1pe) {
  e = exp(_mm256_sub_ps(_mm256_setzero_ps(), abs(x)));
  inv1pe = _mm256_div_ps(set(1.f), _mm256_add_ps(set(1.f), e));
  return _mm256_mul_ps(_mm256_blendv_ps(set(1.f), e, lt(x, _mm256_setzero_ps())), inv1pe);
}
SHRINK_VM __m256 sigmoid(__m256 x) {
  const __m256 e = exp(_mm256_sub_ps(_mm256_setzero_ps(), abs(x)));
  return _mm256_div_ps(_mm256_blendv_ps(set(1.f), e, lt(x, _mm256_setzero_ps())), _mm256_add_ps(set(1.f), e));
}
// x·σ(x)
SHRINK_VM __m256 silu(__m256 x) { return _mm256_mul_ps(x, sigmoid(x)); }
// d/dx x·σ(x) = s + x·s(1−s), and s(1−s) = e/(1+e)² for either sign of x.
SHRINK_VM __m256 silu_grad(__m256 x) {
  __m256 e, r;
  const __m256 s = sigmoid_parts(x, e, r);
  return _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(x, e), r), r, s);
}

// --- erf / erfc (SunPro/musl erff ranges)

// P(z)/Q(z) of the |x| < 0.84375 range: erf(x) = x + x·P/Q with z = x².
SHRINK_VM __m256 erf_small_ratio(__m256 z) {
  static constexpr float pp[] = {-2.3763017452e-05f, -5.7702702470e-03f, -2.8481749818e-02f, -3.2504209876e-01f, 1.2837916613e-01f};
  static constexpr float qq[] = {-3.9602282413e-06f, 1.3249473704e-04f, 5.0813062117e-03f, 6.5022252500e-02f, 3.9791721106e-01f, 1.f};
  return _mm256_div_ps(horner(z, pp), horner(z, qq));
}

// erfc(k·ax) for ax ≥ 0 with k·ax ≥ 0.84375 (other lanes: don't care), where k = 1, or k = 1/√2 when kHalf (GELU,
// so that x/√2 is never rounded: the exponent −k²x² is formed exactly from x). Exactly 0 from k·ax ≥ 10 (erfc is
// below the float range there), NaN stays NaN.
template <bool kHalf>
SHRINK_VM __m256 erfc_big(__m256 ax) {
  constexpr float K = kHalf ? 0.70710678118654752f : 1.f;      // k rounded to float
  constexpr float KLO = kHalf ? 1.21016175e-8f : 0.f;           // k − K
  constexpr float K2 = kHalf ? 0.5f : 1.f, INVK2 = kHalf ? 2.f : 1.f;
  constexpr float INVK = kHalf ? 1.41421356237309505f : 1.f;
  const __m256 a = _mm256_mul_ps(ax, set(K));
  const __m256 mB = lt(a, set(1.25f));
  const int mb = _mm256_movemask_ps(mB);
  __m256 rB = _mm256_setzero_ps(), rC = _mm256_setzero_ps();
  if (mb != 0) {  // [0.84375, 1.25): 1 − erx − P(s)/Q(s), s = k·ax − 1 (one rounding)
    static constexpr float pa[] = {-2.1663755178e-03f, 3.5478305072e-02f, -1.1089469492e-01f, 3.1834661961e-01f, -3.7220788002e-01f, 4.1485610604e-01f, -2.3621185683e-03f};
    static constexpr float qa[] = {1.1984500103e-02f, 1.3637083583e-02f, 1.2617121637e-01f, 7.1828655899e-02f, 5.4039794207e-01f, 1.0642088205e-01f, 1.f};
    const __m256 s = _mm256_fmadd_ps(ax, set(KLO), _mm256_fmsub_ps(ax, set(K), set(1.f)));
    rB = _mm256_sub_ps(set(1.f - 8.4506291151e-01f), _mm256_div_ps(horner(s, pa), horner(s, qa)));
    if (mb == 0xff) return rB;
  }
  {
    // [1.25, 1/0.35): ra/sa;  [1/0.35, ∞): rb/sb (padded with a leading zero to the same degree)
    static constexpr float ra[] = {-9.8143291473e+00f, -8.1287437439e+01f, -1.8460508728e+02f, -1.6239666748e+02f, -6.2375331879e+01f, -1.0558626175e+01f, -6.9385856390e-01f, -9.8649440333e-03f};
    static constexpr float rb[] = {0.f, -4.8351919556e+02f, -1.0250950928e+03f, -6.3756646729e+02f, -1.6063638306e+02f, -1.7757955551e+01f, -7.9928326607e-01f, -9.8649431020e-03f};
    static constexpr float sa[] = {-6.0424413532e-02f, 6.5702495575e+00f, 1.0863500214e+02f, 4.2900814819e+02f, 6.4538726807e+02f, 4.3456588745e+02f, 1.3765776062e+02f, 1.9651271820e+01f, 1.f};
    static constexpr float sb[] = {0.f, -2.2440952301e+01f, 4.7452853394e+02f, 2.5530502930e+03f, 3.1998581543e+03f, 1.5367296143e+03f, 3.2579251099e+02f, 3.0338060379e+01f, 1.f};
    const __m256 ac = _mm256_min_ps(set(10.f / K), ax);  // keeps the exponents finite; NaN passes through
    const __m256 mD = ge(a, set(2.85714268684387207031f));  // 1/0.35 rounded: 0x4036db6d
    const __m256 s = _mm256_div_ps(set(INVK2), _mm256_mul_ps(ac, ac));  // 1/(k·ax)²
    const __m256 RS = _mm256_div_ps(horner_sel(s, ra, rb, mD), horner_sel(s, sa, sb, mD));
    // e^(−k²ax² − 0.5625 + R/S) = e^(−k²z²) · e^(−k²(ax−z)(ax+z) − 0.5625 + R/S), z = ax cut to 12 bits so that k²z² is
    // exact and the second exponent is small.
    const __m256 z = _mm256_and_ps(ac, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0xffffe000u))));
    const __m256 t1 = _mm256_mul_ps(_mm256_mul_ps(z, z), set(-K2));
    const __m256 t2 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(ac, z), set(-K2)), _mm256_add_ps(ac, z), _mm256_sub_ps(RS, set(0.5625f)));
    rC = _mm256_div_ps(_mm256_mul_ps(_mm256_mul_ps(exp(t1), exp(t2)), set(INVK)), ac);
    rC = _mm256_andnot_ps(ge(a, set(10.f)), rC);
  }
  return mb == 0 ? rC : _mm256_blendv_ps(rC, rB, mB);
}

// erf(x).
SHRINK_VM __m256 erf(__m256 x) {
  const __m256 a = abs(x);
  const __m256 small = lt(a, set(0.84375f));
  const int ms = _mm256_movemask_ps(small);
  const __m256 rs = ms ? _mm256_fmadd_ps(x, erf_small_ratio(_mm256_mul_ps(x, x)), x) : _mm256_setzero_ps();
  if (ms == 0xff) return rs;
  const __m256 rb = copysign(_mm256_sub_ps(set(1.f), erfc_big<false>(a)), x);
  return _mm256_blendv_ps(rb, rs, small);
}

// 1 + erf(x/√2) = 2Φ(x), accurate in both tails (for x < 0 it is erfc(|x|/√2), computed directly).
SHRINK_VM __m256 two_cdf(__m256 x) {
  const __m256 ax = abs(x);
  const __m256 small = lt(_mm256_mul_ps(ax, set(0.70710678118654752f)), set(0.84375f));
  const int ms = _mm256_movemask_ps(small);
  __m256 rs = _mm256_setzero_ps();
  if (ms != 0) {
    // u + ulo = x/√2 exactly enough; 1 + erf(u + ulo) ≈ ½ + ((u + ½) + u·P/Q) + ulo·erf'(u), where u + ½ is exact
    // for the negative u that would otherwise cancel, and erf'(u) = 2/√π·e^(−u²) needs only a few digits.
    const __m256 u = _mm256_mul_ps(x, set(0.70710678118654752f));
    const __m256 ulo = _mm256_fmadd_ps(x, set(1.21016175e-8f), _mm256_fmsub_ps(x, set(0.70710678118654752f), u));
    const __m256 z = _mm256_mul_ps(u, u);
    static constexpr float d[] = {1.1283791671f / 24, -1.1283791671f / 6, 1.1283791671f / 2, -1.1283791671f, 1.1283791671f};
    rs = _mm256_fmadd_ps(u, erf_small_ratio(z), _mm256_add_ps(u, set(0.5f)));
    rs = _mm256_add_ps(set(0.5f), _mm256_fmadd_ps(ulo, horner(z, d), rs));
    if (ms == 0xff) return rs;
  }
  const __m256 c = erfc_big<true>(ax);
  const __m256 rb = _mm256_blendv_ps(c, _mm256_sub_ps(set(2.f), c), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
  return _mm256_blendv_ps(rb, rs, small);
}

// GELU, erf form: x·Φ(x) = ½x(1 + erf(x/√2)).
SHRINK_VM __m256 gelu(__m256 x) { return _mm256_mul_ps(_mm256_mul_ps(set(0.5f), x), two_cdf(x)); }
// d/dx GELU = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π). x² is split into hi + lo so e^(−x²/2) keeps full accuracy.
SHRINK_VM __m256 gelu_grad(__m256 x) {
  const __m256 cdf = _mm256_mul_ps(set(0.5f), two_cdf(x));
  const __m256 hi = _mm256_mul_ps(x, x), lo = _mm256_fmsub_ps(x, x, hi);
  const __m256 pdf = exp_corr(_mm256_mul_ps(hi, set(-0.5f)), _mm256_mul_ps(lo, set(-0.5f)));
  return _mm256_fmadd_ps(_mm256_mul_ps(x, set(0.39894228040143267794f)), pdf, cdf);
}
// d/dx erf = 2/√π · e^(−x²)
SHRINK_VM __m256 erf_grad(__m256 x) {
  const __m256 hi = _mm256_mul_ps(x, x), lo = _mm256_fmsub_ps(x, x, hi);
  const __m256 e = exp_corr(_mm256_sub_ps(_mm256_setzero_ps(), hi), _mm256_sub_ps(_mm256_setzero_ps(), lo));
  return _mm256_mul_ps(set(1.1283791670955126f), e);
}

// GELU, tanh form: ½x(1 + tanh(v)) = x·σ(2v), v = √(2/π)(x + 0.044715x³); the σ form does not cancel for x < 0.
SHRINK_VM __m256 gelu_tanh_w(__m256 x, __m256 x2) {
  return _mm256_mul_ps(_mm256_mul_ps(x, set(2.f * 0.79788456080286535588f)), _mm256_fmadd_ps(x2, set(0.044715f), set(1.f)));
}
SHRINK_VM __m256 gelu_tanh(__m256 x) { return _mm256_mul_ps(x, sigmoid(gelu_tanh_w(x, _mm256_mul_ps(x, x)))); }
// d/dx: with s = σ(2v): ½(1 + tanh v) = s and 1 − tanh²v = 4s(1−s), s(1−s) = e/(1+e)² (e = e^−|2v|).
// |x| is capped at 1e4 (where the result is exactly 0 or 1) so that x² stays finite; ±inf gives NaN, as `ref`.
SHRINK_VM __m256 gelu_tanh_grad(__m256 x_in) {
  const __m256 x = _mm256_max_ps(_mm256_min_ps(x_in, set(1e4f)), set(-1e4f));  // NaN → ±1e4: restored below
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 e, r;
  const __m256 s = sigmoid_parts(gelu_tanh_w(x, x2), e, r);
  // s + 2x·c·(1 + 3·0.044715x²) · s(1−s)
  const __m256 k = _mm256_mul_ps(_mm256_mul_ps(set(2.f * 0.79788456080286535588f), x), _mm256_fmadd_ps(x2, set(3.f * 0.044715f), set(1.f)));
  const __m256 d = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(k, e), r), r, s);
  const __m256 bad = _mm256_or_ps(_mm256_cmp_ps(x_in, x_in, _CMP_UNORD_Q), _mm256_cmp_ps(abs(x_in), set(__builtin_inff()), _CMP_EQ_OQ));
  return _mm256_blendv_ps(d, set(__builtin_nanf("")), bad);
}

// --- horizontal helpers

SHRINK_VM float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
SHRINK_VM double hsum(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}
// acc += the 8 floats of v, in double.
SHRINK_VM void add_pd(__m256d& acc0, __m256d& acc1, __m256 v) {
  acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}
// First n (< 8) lanes of p, zeros (or `fill`) elsewhere; and the matching store.
SHRINK_VM __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
SHRINK_VM __m256 load_tail(const float* p, int64_t n, float fill = 0.f) {
  const __m256i m = tail_mask(n);
  return _mm256_blendv_ps(set(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
SHRINK_VM void store_tail(float* p, int64_t n, __m256 v) { _mm256_maskstore_ps(p, tail_mask(n), v); }

}  // namespace vm
}  // namespace shrink

#endif  // SHRINK_X86
