// Shrink's Node-API addon: entry point. Kernels live in one file per family (gemm, elementwise, reduce, nn,
// convert, quant) plus signal.cc (SIGINT/SIGTERM watch); each registers its functions through init_<family>. Arguments
// are validated in TypeScript (src/backend/native) and re-checked here (a bad call throws, it never crashes).
#include <cstdio>

#include "common.h"
#include "pool.h"
#include "simd.h"

namespace shrink {
bool has_avx2_fma() {
  static const bool v = [] {
#if SHRINK_X86 && (defined(__GNUC__) || defined(__clang__))
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
  o.Set("maxThreads", Napi::Number::New(env, shrink::max_threads()));
  o.Set("threadSpawnFailed", Napi::Boolean::New(env, shrink::thread_spawn_failed()));
  o.Set("x86", Napi::Boolean::New(env, SHRINK_X86 != 0));
  return o;
}

// setThreads(n): an integer in [1, maxThreads]; anything else is a TypeError/RangeError (not silently clamped).
static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "shrink_native.setThreads: argument 0 must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 1 && n <= shrink::max_threads()) || n != static_cast<double>(static_cast<int>(n))) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "shrink_native.setThreads: thread count must be an integer in [1, %d], got %g", shrink::max_threads(), n);
    Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  shrink::set_num_threads(static_cast<int>(n));
  return Napi::Number::New(env, shrink::num_threads());
}

// _setThreadSpawnLimit(workers): tests only. Starting a worker thread fails (as EAGAIN would) once `workers`
// workers exist; -1 lifts the limit. Lets the tests check that the pool degrades instead of aborting.
static Napi::Value SetThreadSpawnLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "shrink_native._setThreadSpawnLimit: argument 0 must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  shrink::set_thread_spawn_limit(info[0].As<Napi::Number>().Int32Value());
  return env.Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("_setThreadSpawnLimit", Napi::Function::New(env, SetThreadSpawnLimit));
  shrink::init_gemm(env, exports);
  shrink::init_elementwise(env, exports);
  shrink::init_reduce(env, exports);
  shrink::init_nn(env, exports);
  shrink::init_convert(env, exports);
  shrink::init_quant(env, exports);
  shrink::init_signal(env, exports);
  return exports;
}

NODE_API_MODULE(shrink_native, Init)
