// Shared helpers for the addon's kernel families.
#pragma once
#include <napi.h>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "simd.h"

namespace shrink {
// True when the CPU supports AVX2 and FMA (checked once at load) and SHRINK_ISA allows AVX2 (simd.h). Kernels
// compiled with __attribute__((target("avx2,fma"))) may only run when this is true; otherwise the portable path runs.
bool has_avx2_fma();

// ---- Kernel names (`shrink info`, benchmarks) ----
// Each kernel family names the path it dispatches to right now, e.g. register_kernel("sgemm", [] { return
// has_avx512f() ? "avx512 …" : has_avx2_fma() ? "avx2 6x16" : "portable 6x16"; }) in its init_<family>. The addon's
// kernels() returns {family: name()} for every registered family, in registration order; registering a family again
// replaces its function (addon.cc registers defaults for sgemm, int8 and convert before the init_<family> calls).
using KernelNameFn = const char* (*)();
void register_kernel(const char* family, KernelNameFn name);

// ---- Denormal mode around a kernel (simd.h DenormalScope) ----
// Wrap each exported kernel so it runs with FTZ/DAZ (or SHRINK_DENORMALS=keep) on the calling thread:
//   export_fn(env, exports, "unary", denormal_guarded<Unary>);                               (raw Node-API)
//   exports.Set("sgemm", Napi::Function::New(env, denormal_guarded_napi<Sgemm>));          (node-addon-api)
// Work dispatched to the pool's workers runs in the mode anyway (pool.cc), and parallel_run / parallel_for set it
// on the caller too, so only kernels that also compute on the calling thread outside the pool need this.
template <napi_value (*F)(napi_env, napi_callback_info)>
napi_value denormal_guarded(napi_env env, napi_callback_info info) {
  DenormalScope scope;
  return F(env, info);
}
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value denormal_guarded_napi(const Napi::CallbackInfo& info) {
  DenormalScope scope;
  return F(info);
}

// A GEMM operand B [K, N] produced panel by panel instead of read from memory (e.g. dequantized from integer
// codes, so the float matrix never exists whole). pack() fills the 16-column micro-panels [p0, p1) of the nc columns
// starting at j0, for k in [k0, k0 + kc): micro-panel p at dst + p·16·kc, element (k, c) at [k·16 + c], columns past
// nc zero. It runs on the GEMM's threads, several at once on disjoint panels.
struct BPanelSource {
  virtual void pack(int64_t k0, int kc, int64_t j0, int nc, int p0, int p1, float* dst) const = 0;
  virtual ~BPanelSource() = default;
};
// C[M, N] (=|+=) A[M, K] (row-major, row stride lda) · B, on the thread pool, with the packed SGEMM's kernels.
void sgemm_source_b(const float* A, int64_t lda, const BPanelSource& B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate);
// Σ x[k]·y[k] in float32 with the GEMV path's kernels (AVX2/FMA accumulators where available).
float sdot(const float* x, const float* y, int64_t n);
// Pack nr ≤ 16 rows of a row-major [nr, kc] float block (row stride ld), read as the columns of B, into one
// micro-panel (the layout BPanelSource::pack writes).
void pack_b_rows(const float* rows, int64_t ld, int kc, int nr, float* dst);
// C[M, N] = bias (or 0) in every row, then += A[M, K] (row stride K) · B: the weight-only layers' GEMM onto the bias.
void sgemm_source_b_bias(const float* A, const BPanelSource& B, const float* bias, float* C, int64_t M, int64_t N, int64_t K);

// C[M, N] (=|+=) A[M, K] (row stride lda) · Wᵀ for W [N, K] (row stride ldw): a Linear's product x·Wᵀ with the
// packed SGEMM (GEMV loops for M = 1). nt threads, or nt ≤ 0: as sgemm does for one matrix (one thread below
// 2·64³ flop, else the whole pool). Must not be called with nt ≠ 1 from inside a pool job.
void sgemm_abt(const float* A, int64_t lda, const float* W, int64_t ldw, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, int nt);
// B = Wᵀ for a weight W [N, K] that produces its rows on demand: `w.row(n, k0, kc, dst)` writes W[n, k0 : k0 + kc]
// as floats (dequantized, looked up in a codebook, densified, …). Each 16-row micro-panel is produced into a
// per-thread buffer (16·kc floats, L1-resident) and transposed into the panel, so W never exists whole.
template <class W>
struct RowPanels final : BPanelSource {
  const W& w;
  explicit RowPanels(const W& w_) : w(w_) {}
  void pack(int64_t k0, int kc, int64_t j0, int nc, int p0, int p1, float* dst) const override {
    constexpr int nr_max = 16;
    thread_local std::vector<float> tmp;
    if (tmp.size() < static_cast<size_t>(nr_max) * kc) tmp.resize(static_cast<size_t>(nr_max) * kc);
    for (int p = p0; p < p1; p++) {
      const int jr = p * nr_max, nr = std::min(nr_max, nc - jr);
      for (int c = 0; c < nr; c++) w.row(j0 + jr + c, k0, kc, tmp.data() + static_cast<int64_t>(c) * kc);
      pack_b_rows(tmp.data(), kc, kc, nr, dst + static_cast<int64_t>(p) * nr_max * kc);
    }
  }
};

// Each kernel family registers its functions on the addon's exports.
void init_gemm(Napi::Env env, Napi::Object exports);
void init_elementwise(Napi::Env env, Napi::Object exports);
void init_reduce(Napi::Env env, Napi::Object exports);
void init_nn(Napi::Env env, Napi::Object exports);
void init_convert(Napi::Env env, Napi::Object exports);
void init_quant(Napi::Env env, Napi::Object exports);
void init_signal(Napi::Env env, Napi::Object exports);
}  // namespace shrink
