// Persistent thread pool shared by all native kernels.
//
// Workers are started once (lazily, on the first parallel call) and sleep on a condition variable between jobs.
// A job is published by bumping a generation counter; the caller runs part 0 itself and then waits for the
// workers. Every spin is bounded: a short burst of `pause` instructions, then yield/sleep, so an idle or
// descheduled peer never makes another core burn (ENGINE-NOTES §1.2: unbounded spins collapsed 2-thread GEMM
// throughput on this shared VM). Calls from inside a job (nested) and concurrent calls from another JS thread
// run serially instead of dispatching.
#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SHRINK_PAUSE() _mm_pause()
#else
#define SHRINK_PAUSE() std::this_thread::yield()
#endif

namespace shrink {
namespace {

constexpr int kSpin = 2000;  // pause iterations before a waiter yields / sleeps
constexpr auto kYieldWindow = std::chrono::microseconds(300);

int default_threads() {
  if (const char* s = std::getenv("SHRINK_THREADS")) {
    int n = std::atoi(s);
    if (n >= 1 && n <= 1024) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

struct Pool {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread> workers;  // worker i has tid i + 1
  std::atomic<uint64_t> generation{0};
  std::atomic<int> remaining{0};
  const std::function<void(int, int)>* job = nullptr;
  int job_threads = 0;
  bool stop = false;
  int threads = default_threads();
  std::mutex dispatch;  // one job at a time

  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      generation.fetch_add(1);
    }
    cv.notify_all();
    for (auto& t : workers)
      if (t.joinable()) t.join();
  }

  void ensure_workers(int n) {  // n = total threads including the caller
    while (static_cast<int>(workers.size()) < n - 1) {
      int tid = static_cast<int>(workers.size()) + 1;
      // The generation is read here, before the job that needs this worker is published; reading it inside the
      // new thread could miss that job and deadlock.
      uint64_t start = generation.load(std::memory_order_acquire);
      workers.emplace_back([this, tid, start] { worker_loop(tid, start); });
    }
  }

  void worker_loop(int tid, uint64_t seen);
};

Pool& pool() {
  static Pool* p = new Pool();  // leaked on purpose: workers must not be joined during static destruction
  return *p;
}

thread_local bool t_in_job = false;

void Pool::worker_loop(int tid, uint64_t seen) {
  t_in_job = true;  // anything a worker calls runs serially
  for (;;) {
    // Bounded wait for a new generation: a burst of pauses, then yields for up to kYieldWindow (kernels are
    // often called back to back, and a condition-variable wake costs tens of µs), then sleep.
    int spins = 0;
    while (generation.load(std::memory_order_acquire) == seen && spins < kSpin) {
      SHRINK_PAUSE();
      spins++;
    }
    if (generation.load(std::memory_order_acquire) == seen) {
      auto until = std::chrono::steady_clock::now() + kYieldWindow;
      while (generation.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    }
    if (generation.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return generation.load(std::memory_order_acquire) != seen; });
    }
    seen = generation.load(std::memory_order_acquire);
    const std::function<void(int, int)>* j;
    int nt;
    bool st;
    {
      std::lock_guard<std::mutex> lk(mu);
      j = job;
      nt = job_threads;
      st = stop;
    }
    if (st) return;
    if (j && tid < nt) {
      (*j)(tid, nt);
      remaining.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace

int num_threads() { return pool().threads; }

void set_num_threads(int n) {
  if (n < 1) n = 1;
  if (n > 1024) n = 1024;
  std::lock_guard<std::mutex> lk(pool().dispatch);
  pool().threads = n;
}

void parallel_run(int nthreads, const std::function<void(int, int)>& fn) {
  Pool& p = pool();
  if (nthreads > p.threads) nthreads = p.threads;
  if (nthreads <= 1 || t_in_job) {
    fn(0, 1);
    return;
  }
  std::unique_lock<std::mutex> guard(p.dispatch, std::try_to_lock);
  if (!guard.owns_lock()) {  // another JS thread is using the pool: do the work alone
    fn(0, 1);
    return;
  }
  p.ensure_workers(nthreads);
  {
    std::lock_guard<std::mutex> lk(p.mu);
    p.job = &fn;
    p.job_threads = nthreads;
    p.remaining.store(nthreads - 1, std::memory_order_release);
    p.generation.fetch_add(1, std::memory_order_acq_rel);
  }
  p.cv.notify_all();
  t_in_job = true;
  fn(0, nthreads);
  t_in_job = false;
  int spins = 0;
  while (p.remaining.load(std::memory_order_acquire) > 0) {
    if (spins < kSpin) {
      SHRINK_PAUSE();
      spins++;
    } else {
      std::this_thread::yield();
    }
  }
  std::lock_guard<std::mutex> lk(p.mu);
  p.job = nullptr;
  p.job_threads = 0;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = (n + grain - 1) / grain;
  int nt = num_threads();
  if (chunks < nt) nt = static_cast<int>(chunks);
  if (nt <= 1 || t_in_job) {
    fn(0, n);
    return;
  }
  parallel_run(nt, [&](int tid, int total) {
    int64_t b = n * tid / total, e = n * (tid + 1) / total;
    if (b < e) fn(b, e);
  });
}

}  // namespace shrink
