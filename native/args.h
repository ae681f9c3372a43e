// Argument unwrapping for the elementwise / reduce / nn / convert kernels, on raw Node-API.
//
// Why not Napi::CallbackInfo: it keeps 6 arguments inline and heap-allocates (plus calls napi_get_cb_info twice) for
// more, and most kernels take 7–11. Why check at all when TypeScript validates everything: a wrong type or a short
// array reaching a kernel would read or write out of bounds and take the whole process down; here it becomes a
// TypeError / RangeError. The checks reuse what napi_get_typedarray_info returns anyway (type, length, data), so
// they add no Node-API calls, only a few compares (ENGINE-NOTES §1.3: ~85 ns per typed array is the real cost).
#pragma once
#include <node_api.h>

#include <cstdint>
#include <cstdio>
#include <functional>

#include "pool.h"

namespace shrink {

// When false, every kernel in these families takes its portable (non-AVX2/F16C) path: set from JS through
// setSimd(false) so the tests can check both paths on an AVX2 machine. Defined in elementwise.cc.
bool simd_enabled();

class Args {
 public:
  static constexpr size_t kMax = 16;

  Args(napi_env env, napi_callback_info info, const char* fn) : env_(env), fn_(fn) {
    // Node fills the slots past the actual argument count with undefined.
    if (napi_get_cb_info(env, info, &argc_, v_, nullptr, nullptr) != napi_ok)
      for (size_t i = 0; i < kMax; i++) napi_get_undefined(env, &v_[i]);
  }

  napi_env env() const { return env_; }
  bool failed() const { return err_ != nullptr; }
  // Argument i as it was passed (undefined past the count), for arguments of other kinds (arrays of typed arrays).
  napi_value value(size_t i) const { return v_[i]; }
  // Whether argument i was passed and is not undefined (optional arguments).
  bool given(size_t i) const {
    napi_valuetype t = napi_undefined;
    return i < kMax && napi_typeof(env_, v_[i], &t) == napi_ok && t != napi_undefined;
  }

  // Typed-array arguments. `len` receives the element count. Wrong type → TypeError (data nullptr).
  float* f32(size_t i, size_t& len) { return static_cast<float*>(typed(i, napi_float32_array, len, false)); }
  double* f64(size_t i, size_t& len) { return static_cast<double*>(typed(i, napi_float64_array, len, false)); }
  float* f32_opt(size_t i, size_t& len) { return static_cast<float*>(typed(i, napi_float32_array, len, true)); }
  int32_t* i32(size_t i, size_t& len) { return static_cast<int32_t*>(typed(i, napi_int32_array, len, false)); }
  int32_t* i32_opt(size_t i, size_t& len) { return static_cast<int32_t*>(typed(i, napi_int32_array, len, true)); }
  uint16_t* u16(size_t i, size_t& len) { return static_cast<uint16_t*>(typed(i, napi_uint16_array, len, false)); }
  uint8_t* u8(size_t i, size_t& len) { return static_cast<uint8_t*>(typed(i, napi_uint8_array, len, false)); }
  int8_t* i8(size_t i, size_t& len) { return static_cast<int8_t*>(typed(i, napi_int8_array, len, false)); }
  int8_t* i8_opt(size_t i, size_t& len) { return static_cast<int8_t*>(typed(i, napi_int8_array, len, true)); }
  uint8_t* u8_opt(size_t i, size_t& len) { return static_cast<uint8_t*>(typed(i, napi_uint8_array, len, true)); }

  int64_t int64(size_t i) {
    int64_t r = 0;
    if (!err_ && napi_get_value_int64(env_, v_[i], &r) != napi_ok) type_error(i, "a number");
    return r;
  }
  double num(size_t i) {
    double r = 0;
    if (!err_ && napi_get_value_double(env_, v_[i], &r) != napi_ok) type_error(i, "a number");
    return r;
  }
  bool flag(size_t i) {
    bool r = false;
    if (!err_ && napi_get_value_bool(env_, v_[i], &r) != napi_ok) type_error(i, "a boolean");
    return r;
  }

  // RangeError unless `ok`. Returns ok so checks can be chained.
  bool check(bool ok, const char* what) {
    if (!ok && !err_) {
      range_ = true;
      std::snprintf(buf_, sizeof buf_, "shrink_native.%s: %s", fn_, what);
      err_ = buf_;
    }
    return ok;
  }

  // Throws the recorded error; returns the value a napi_callback returns after throwing.
  napi_value fail() {
    if (range_) napi_throw_range_error(env_, nullptr, err_);
    else napi_throw_type_error(env_, nullptr, err_);
    return nullptr;
  }
  napi_value undefined() {
    napi_value u;
    napi_get_undefined(env_, &u);
    return u;
  }

 private:
  void* typed(size_t i, napi_typedarray_type want, size_t& len, bool optional) {
    len = 0;
    if (err_) return nullptr;
    if (optional) {
      napi_valuetype t;
      if (napi_typeof(env_, v_[i], &t) == napi_ok && (t == napi_null || t == napi_undefined)) return nullptr;
    }
    napi_typedarray_type type;
    void* data = nullptr;
    if (napi_get_typedarray_info(env_, v_[i], &type, &len, &data, nullptr, nullptr) != napi_ok || type != want) {
      len = 0;
      type_error(i, want == napi_float32_array ? "a Float32Array"
                    : want == napi_float64_array ? "a Float64Array"
                    : want == napi_int32_array ? "an Int32Array"
                    : want == napi_uint8_array ? "a Uint8Array"
                    : want == napi_int8_array  ? "an Int8Array"
                                               : "a Uint16Array");
      return nullptr;
    }
    return data;
  }
  void type_error(size_t i, const char* what) {
    if (err_) return;
    std::snprintf(buf_, sizeof buf_, "shrink_native.%s: argument %zu must be %s", fn_, i, what);
    err_ = buf_;
  }

  napi_env env_;
  const char* fn_;
  size_t argc_ = kMax;
  napi_value v_[kMax];
  const char* err_ = nullptr;
  bool range_ = false;
  char buf_[160];
};

// True when an array of `len` elements holds a·b elements, for a, b ≥ 0 (false for negative counts), without
// computing a·b (a product of two checked-but-huge arguments could wrap around and pass a `len >= a * b` test).
inline bool holds(size_t len, int64_t a, int64_t b = 1) {
  if (a < 0 || b < 0) return false;
  if (a == 0 || b == 0) return true;
  return static_cast<uint64_t>(a) <= static_cast<uint64_t>(len) / static_cast<uint64_t>(b);
}

// True when a·b·c ≤ len for a, b, c ≥ 0, without overflow.
inline bool holds3(size_t len, int64_t a, int64_t b, int64_t c) {
  if (a < 0 || b < 0 || c < 0) return false;
  if (a == 0 || b == 0 || c == 0) return true;
  return holds(len, a, b) && holds(len, a * b, c);  // a·b ≤ len here, so it does not overflow
}

// True when [off, off + n) lies inside an array of `len` elements, for any off and n (no overflow of off + n).
inline bool span_in(size_t len, int64_t off, int64_t n) {
  return off >= 0 && n >= 0 && static_cast<uint64_t>(off) <= len && static_cast<uint64_t>(n) <= len - static_cast<uint64_t>(off);
}

// parallel_for without its cost on small inputs: below `grain` (or with one thread) fn runs inline, with no
// std::function built (a [&] lambda with several captures would be heap-allocated). Larger inputs wrap fn in
// std::ref, which fits std::function's inline buffer.
template <class F>
inline void par_for(int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  if (n <= grain || num_threads() <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  parallel_for(n, grain, std::function<void(int64_t, int64_t)>(std::ref(fn)));
}

// Registers a raw Node-API function on `exports`.
inline void export_fn(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn) == napi_ok) napi_set_named_property(env, exports, name, fn);
}

}  // namespace shrink
