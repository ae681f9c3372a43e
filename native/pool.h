// Persistent thread pool shared by all native kernels.
#pragma once
#include <cstdint>
#include <functional>

namespace shrink {
// Upper bound of the pool size: set_num_threads and SHRINK_THREADS accept 1..kMaxThreads.
constexpr int kMaxThreads = 256;
// Number of threads the pool uses (the caller counts as one). Initially SHRINK_THREADS or the core count (both
// clamped to kMaxThreads); lowered automatically when the system refuses to start more threads.
int num_threads();
// Clamps n to [1, kMaxThreads] (the JS entry point rejects values outside that range with a RangeError).
void set_num_threads(int n);
int max_threads();
// True once the system refused to start a worker (the pool then runs on the threads it has).
bool thread_spawn_failed();
// Tests: make starting a worker fail (as EAGAIN would) once `workers` workers exist; -1 lifts the limit.
void set_thread_spawn_limit(int workers);
// Runs fn(begin, end) over [0, n) split into contiguous chunks of at least `grain` elements, one chunk per thread,
// on the pool with the caller participating. Blocks until all chunks are done. Serial when n <= grain or 1 thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
// Runs fn(tid, nthreads) once on each of `nthreads` threads (tid 0 is the caller). For kernels that need a
// per-thread role (e.g. GEMM packing with a barrier). nthreads <= num_threads().
void parallel_run(int nthreads, const std::function<void(int, int)>& fn);
}  // namespace shrink
