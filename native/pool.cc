// TEMPORARY serial stub; replaced by the real persistent pool.
#include "pool.h"
namespace shrink {
static int g_threads = 1;
int num_threads() { return g_threads; }
void set_num_threads(int n) { g_threads = n < 1 ? 1 : n; }
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) { (void)grain; if (n > 0) fn(0, n); }
void parallel_run(int nthreads, const std::function<void(int, int)>& fn) { (void)nthreads; fn(0, 1); }
}  // namespace shrink
