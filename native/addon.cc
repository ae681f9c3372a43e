// Shrink's Node-API addon: entry point. Kernels live in one file per family (gemm, elementwise, reduce, nn,
// convert); each registers its functions through init_<family>. All arguments are validated in TypeScript
// (src/backend/native) before they reach this code.
#include "common.h"
#include "pool.h"

namespace shrink {
bool has_avx2_fma() {
  static const bool v = [] {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return v;
}
}  // namespace shrink

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("avx2", Napi::Boolean::New(env, shrink::has_avx2_fma()));
  o.Set("threads", Napi::Number::New(env, shrink::num_threads()));
  return o;
}

static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  shrink::set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return Napi::Number::New(info.Env(), shrink::num_threads());
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  shrink::init_gemm(env, exports);
  shrink::init_elementwise(env, exports);
  shrink::init_reduce(env, exports);
  shrink::init_nn(env, exports);
  shrink::init_convert(env, exports);
  shrink::init_quant(env, exports);
  return exports;
}

NODE_API_MODULE(shrink_native, Init)
