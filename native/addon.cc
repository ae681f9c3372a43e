// Shrink's Node-API addon: entry point. Kernels live in one file per family (gemm, elementwise, reduce, nn,
// convert, quant, sparse, fff, moe, codebook, linalg) plus signal.cc (SIGINT/SIGTERM watch); each registers its functions
// through init_<family>. Arguments are validated in TypeScript (src/backend/native) and re-checked here (a bad call
// throws, it never crashes).
//
// Load-time settings (simd.h), read once here: SHRINK_ISA (cap on the instruction set) and SHRINK_DENORMALS
// (flush|keep). An unknown value of either makes the load fail with an Error that says what is accepted.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "pool.h"
#include "simd.h"

namespace shrink {
bool simd_enabled();  // elementwise.cc (args.h)
void init_sparse(Napi::Env env, Napi::Object exports);  // sparse.cc
void init_fff(Napi::Env env, Napi::Object exports);  // fff.cc
void init_moe(Napi::Env env, Napi::Object exports);  // moe.cc
void init_codebook(Napi::Env env, Napi::Object exports);  // codebook.cc
void init_linalg(Napi::Env env, Napi::Object exports);  // linalg.cc

bool has_avx2_fma() {
  static const bool v = isa_at_least(Isa::avx2) && cpu_features().avx2_fma;
  return v;
}

namespace {
struct KernelEntry {
  std::string family;
  KernelNameFn name;
};
std::mutex g_kernels_mu;
std::vector<KernelEntry>& kernel_table() {
  static std::vector<KernelEntry>* t = new std::vector<KernelEntry>();
  return *t;
}
}  // namespace

void register_kernel(const char* family, KernelNameFn name) {
  std::lock_guard<std::mutex> lk(g_kernels_mu);
  for (KernelEntry& e : kernel_table())
    if (e.family == family) {
      e.name = name;
      return;
    }
  kernel_table().push_back({family, name});
}
}  // namespace shrink

// kernels(): {family: the path it dispatches to now}, e.g. {sgemm: 'avx2 6x16', int8: 'avx2 vpmaddubsw', …}.
static Napi::Value Kernels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  std::lock_guard<std::mutex> lk(shrink::g_kernels_mu);
  for (const shrink::KernelEntry& e : shrink::kernel_table()) o.Set(e.family, Napi::String::New(env, e.name()));
  return o;
}

static Napi::Value CpuInfo(Napi::Env env) {
  const shrink::CpuFeatures& f = shrink::cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("avx2", Napi::Boolean::New(env, f.avx2_fma));
  o.Set("f16c", Napi::Boolean::New(env, f.f16c));
  o.Set("avx512", Napi::Boolean::New(env, f.avx512));
  o.Set("avx512vnni", Napi::Boolean::New(env, f.avx512_vnni));
  o.Set("avx512bf16", Napi::Boolean::New(env, f.avx512_bf16));
  o.Set("avxvnni", Napi::Boolean::New(env, f.avx_vnni));
  o.Set("amx", Napi::Boolean::New(env, f.amx));
  return o;
}

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("avx2", Napi::Boolean::New(env, shrink::has_avx2_fma()));
  o.Set("isa", Napi::String::New(env, shrink::isa_name(shrink::isa_reported())));
  o.Set("cpuIsa", Napi::String::New(env, shrink::isa_name(shrink::cpu_isa() == shrink::Isa::native ? shrink::Isa::avx512 : shrink::cpu_isa())));
  const char* req = shrink::isa_request().raw;
  o.Set("isaRequested", req && *req ? Napi::Value(Napi::String::New(env, req)) : Napi::Value(env.Null()));
  o.Set("cpu", CpuInfo(env));
  o.Set("denormals", Napi::String::New(env, shrink::flush_denormals() ? "flush" : "keep"));
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

// _setDenormals(mode?: 'flush' | 'keep'): tests and benchmarks only; sets the mode for later calls (the pool's
// workers pick it up at their next job). Returns the mode in effect.
static Napi::Value SetDenormals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() >= 1 && !info[0].IsUndefined()) {
    const std::string m = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : std::string();
    if (m != "flush" && m != "keep") {
      Napi::TypeError::New(env, "shrink_native._setDenormals: mode must be 'flush' or 'keep'").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    shrink::denormal_flush_flag().store(m == "flush", std::memory_order_relaxed);
  }
  return Napi::String::New(env, shrink::flush_denormals() ? "flush" : "keep");
}

// _denormalState(): tests only. What the FTZ+DAZ bits are right now: {js} on the calling thread outside any kernel
// (must stay off: JavaScript keeps IEEE subnormals), {kernel} inside a kernel on the calling thread, {workers} on
// every pool thread during a 2-thread job (null when the pool runs on one thread).
static Napi::Value DenormalState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("js", Napi::Boolean::New(env, shrink::thread_flushes_denormals()));
  bool kernel;
  {
    shrink::DenormalScope scope;
    kernel = shrink::thread_flushes_denormals();
  }
  o.Set("kernel", Napi::Boolean::New(env, kernel));
  std::atomic<int> ran{0}, flushing{0};
  shrink::parallel_run(2, [&](int tid, int) {
    if (tid == 0) return;
    ran++;
    if (shrink::thread_flushes_denormals()) flushing++;
  });
  o.Set("workers", ran.load() == 0 ? Napi::Value(env.Null()) : Napi::Value(Napi::Boolean::New(env, flushing.load() == ran.load())));
  return o;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (!shrink::isa_request().valid) {
    std::string msg = std::string("shrink: SHRINK_ISA must be 'avx512', 'avx2', 'portable' or 'native' (unset), got '") + shrink::isa_request().raw + "'";
    Napi::Error::New(env, msg).ThrowAsJavaScriptException();
    return exports;
  }
  if (!shrink::denormal_request().valid) {
    std::string msg = std::string("shrink: SHRINK_DENORMALS must be 'flush' (default) or 'keep', got '") + shrink::denormal_request().raw + "'";
    Napi::Error::New(env, msg).ThrowAsJavaScriptException();
    return exports;
  }
  // Default kernel names for families whose init may not register one (a registration there replaces these).
  shrink::register_kernel("sgemm", [] { return shrink::has_avx2_fma() ? "avx2 6x16" : "portable 6x16"; });
  shrink::register_kernel("int8", [] { return shrink::simd_enabled() ? "avx2 vpmaddubsw" : "portable"; });
  shrink::register_kernel("convert", [] { return shrink::simd_enabled() && shrink::cpu_features().f16c ? "f16c" : "portable"; });
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("kernels", Napi::Function::New(env, Kernels));
  exports.Set("_setDenormals", Napi::Function::New(env, SetDenormals));
  exports.Set("_denormalState", Napi::Function::New(env, DenormalState));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("_setThreadSpawnLimit", Napi::Function::New(env, SetThreadSpawnLimit));
  shrink::init_gemm(env, exports);
  shrink::init_elementwise(env, exports);
  shrink::init_reduce(env, exports);
  shrink::init_nn(env, exports);
  shrink::init_convert(env, exports);
  shrink::init_quant(env, exports);
  shrink::init_sparse(env, exports);
  shrink::init_fff(env, exports);
  shrink::init_moe(env, exports);
  shrink::init_codebook(env, exports);
  shrink::init_linalg(env, exports);
  shrink::init_signal(env, exports);
  return exports;
}

NODE_API_MODULE(shrink_native, Init)
