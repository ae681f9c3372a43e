#include "common.h"
namespace shrink {
void init_gemm(Napi::Env env, Napi::Object exports) { (void)env; (void)exports; }
}  // namespace shrink
