#include "common.h"
namespace shrink {
void init_nn(Napi::Env env, Napi::Object exports) { (void)env; (void)exports; }
}  // namespace shrink
