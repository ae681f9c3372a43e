// Benchmark-only addon (built only where OpenBLAS is installed): OpenBLAS's sgemm in the same process as ours,
// so `npm run bench:gemm` can print the ratio. Not used by the library.
#include <napi.h>
#include <cblas.h>

extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_corename(void);

static Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  // sgemm(a, b, out, M, N, K): row-major C = A·B
  auto a = info[0].As<Napi::Float32Array>();
  auto b = info[1].As<Napi::Float32Array>();
  auto c = info[2].As<Napi::Float32Array>();
  int M = info[3].As<Napi::Number>().Int32Value(), N = info[4].As<Napi::Number>().Int32Value(), K = info[5].As<Napi::Number>().Int32Value();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a.Data(), K, b.Data(), N, 0.0f, c.Data(), N);
  return info.Env().Undefined();
}

static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  openblas_set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// The kernel family OpenBLAS's DYNAMIC_ARCH dispatch picked (e.g. "Haswell", "Cooperlake"; OPENBLAS_CORETYPE overrides).
static Napi::Value Corename(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), openblas_get_corename());
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemm", Napi::Function::New(env, Sgemm));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("corename", Napi::Function::New(env, Corename));
  return exports;
}

NODE_API_MODULE(shrink_blas_bench, Init)
