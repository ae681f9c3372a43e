// Shared helpers for the addon's kernel families.
#pragma once
#include <napi.h>
#include <cstdint>

namespace shrink {
// True when the CPU supports AVX2 and FMA (checked once at load). Kernels compiled with
// __attribute__((target("avx2,fma"))) may only run when this is true; otherwise the portable path runs.
bool has_avx2_fma();

// Each kernel family registers its functions on the addon's exports.
void init_gemm(Napi::Env env, Napi::Object exports);
void init_elementwise(Napi::Env env, Napi::Object exports);
void init_reduce(Napi::Env env, Napi::Object exports);
void init_nn(Napi::Env env, Napi::Object exports);
void init_convert(Napi::Env env, Napi::Object exports);
void init_quant(Napi::Env env, Napi::Object exports);
}  // namespace shrink
