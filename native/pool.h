// Persistent thread pool shared by all native kernels.
#pragma once
#include <cstdint>
#include <functional>

namespace shrink {
// Number of threads the pool uses (the caller counts as one). Initially SHRINK_THREADS or the core count.
int num_threads();
void set_num_threads(int n);
// Runs fn(begin, end) over [0, n) split into contiguous chunks of at least `grain` elements, one chunk per thread,
// on the pool with the caller participating. Blocks until all chunks are done. Serial when n <= grain or 1 thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
// Runs fn(tid, nthreads) once on each of `nthreads` threads (tid 0 is the caller). For kernels that need a
// per-thread role (e.g. GEMM packing with a barrier). nthreads <= num_threads().
void parallel_run(int nthreads, const std::function<void(int, int)>& fn);
}  // namespace shrink
