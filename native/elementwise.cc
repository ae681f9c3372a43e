#include "common.h"
namespace shrink {
void init_elementwise(Napi::Env env, Napi::Object exports) { (void)env; (void)exports; }
}  // namespace shrink
