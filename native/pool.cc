// Persistent thread pool shared by all native kernels (API in pool.h).
//
// Workers start lazily (on the first parallel call that needs them) and then live for the whole process. A job is
// published under the mutex together with a generation number; each worker reads (generation, job) as one pair
// under that mutex, so it can never run one generation twice or miss the generation it is counted in. The caller
// runs part 0 itself and then waits for the others.
//
// Every wait is bounded (ENGINE-NOTES §1.2: an unbounded spin barrier collapsed 2-thread GEMM on this shared VM):
// a burst of `pause` instructions, then sched_yield for a short window (kernels often come back to back and a
// condition-variable wake costs tens of µs), then the worker sleeps on the condition variable.
//
// Calls from inside a job (nested) and concurrent calls from another thread (e.g. a second JS worker) run
// serially on the calling thread instead of dispatching. An exception thrown by a job part is caught on the
// thread that threw it, the caller waits for all parts, and then rethrows the first one on its own thread.
//
// When the system refuses a new thread (EAGAIN: a process/thread limit, or no memory for its stack) the pool does
// not abort: it keeps the workers it has, lowers its size to them (num_threads() reports it) and runs every job
// on those; with none, work runs serially on the caller. set_num_threads accepts 1..kMaxThreads (pool.h).
//
// Denormals (simd.h): every worker puts itself in the current mode (FTZ+DAZ unless SHRINK_DENORMALS=keep) before
// each job, and parallel_run / parallel_for hold a DenormalScope on the caller, so all pooled work runs in it and
// the caller's own mode (JavaScript's thread) is restored when the call returns.
#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "simd.h"
#if SHRINK_X86
#define SHRINK_PAUSE() _mm_pause()
#else
#define SHRINK_PAUSE() std::this_thread::yield()
#endif

namespace shrink {
namespace {

constexpr int kSpin = 2000;                                   // pause iterations before yielding
constexpr auto kYieldWindow = std::chrono::microseconds(300);  // then yields for this long before sleeping
std::atomic<int> g_spawn_limit{-1};  // tests: refuse to start workers beyond this many (-1: no limit)

int clamp_threads(int n) { return n < 1 ? 1 : (n > kMaxThreads ? kMaxThreads : n); }

int default_threads() {
  if (const char* s = std::getenv("SHRINK_THREADS")) {
    int n = std::atoi(s);
    if (n >= 1) return clamp_threads(n);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : clamp_threads(static_cast<int>(hc));
}

thread_local bool t_in_job = false;  // true on workers always, and on the caller while it runs its part

class Pool {
 public:
  std::atomic<int> threads{default_threads()};
  std::atomic<bool> spawn_failed_{false};

  // Runs fn(tid, n') for tid in [0, n') with the caller as tid 0, where n' = n, or fewer when the system would not
  // start enough workers (fn must split its work by the n' it is given); n >= 2 and at most kMaxThreads.
  // Returns false (without running anything) when another thread is dispatching right now, or when no worker
  // could be started at all: the caller then runs the work serially.
  bool run(int n, const std::function<void(int, int)>& fn) {
    std::unique_lock<std::mutex> guard(dispatch_, std::try_to_lock);
    if (!guard.owns_lock()) return false;
    n = ensure_workers(n);
    if (n < 2) return false;
    error_ = nullptr;
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &fn;
      job_threads_ = n;
      pending_.store(n - 1, std::memory_order_relaxed);
      generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    t_in_job = true;
    call(fn, 0, n);
    t_in_job = false;
    // Bounded spin, then yield, until every other part has finished.
    for (int spins = 0; pending_.load(std::memory_order_acquire) > 0;) {
      if (spins < kSpin) {
        SHRINK_PAUSE();
        spins++;
      } else {
        std::this_thread::yield();
      }
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = nullptr;
      job_threads_ = 0;
    }
    std::exception_ptr err = error_;
    error_ = nullptr;
    guard.unlock();
    if (err) std::rethrow_exception(err);
    return true;
  }

 private:
  std::mutex dispatch_;  // one job at a time
  std::mutex mu_;        // guards job_, job_threads_ and generation_ updates
  std::condition_variable cv_;
  std::vector<std::thread> workers_;  // worker i has tid i + 1
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0;
  std::mutex error_mu_;
  std::exception_ptr error_;

  void call(const std::function<void(int, int)>& fn, int tid, int n) {
    try {
      fn(tid, n);
    } catch (...) {
      std::lock_guard<std::mutex> lk(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
  }

  // Starts workers until n threads (the caller included) exist; called with dispatch_ held. Returns how many
  // threads the job can use: n, or 1 + the workers there are when the system refused to start another one (the
  // pool's size is then lowered to that, so later calls do not retry on every job).
  int ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n - 1) {
      int tid = static_cast<int>(workers_.size()) + 1;
      // Read the generation before the job that needs this worker is published; reading it inside the new
      // thread could see that job's generation already and skip it.
      uint64_t seen = generation_.load(std::memory_order_acquire);
      try {
        const int limit = g_spawn_limit.load(std::memory_order_relaxed);
        if (limit >= 0 && static_cast<int>(workers_.size()) >= limit)
          throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again), "thread spawn limit (test)");
        workers_.emplace_back([this, tid, seen] { worker_loop(tid, seen); });
      } catch (...) {
        // No thread was started (std::thread's constructor throws before anything runs): use the ones there are.
        const int have = static_cast<int>(workers_.size()) + 1;
        threads.store(have, std::memory_order_relaxed);
        spawn_failed_.store(true, std::memory_order_relaxed);
        return have;
      }
    }
    return n;
  }

  void worker_loop(int tid, uint64_t seen) {
    t_in_job = true;  // anything a worker calls runs serially
    for (;;) {
      wait_for_change(seen);
      const std::function<void(int, int)>* job;
      int n;
      {
        std::lock_guard<std::mutex> lk(mu_);
        seen = generation_.load(std::memory_order_relaxed);
        job = job_;
        n = job_threads_;
      }
      if (job && tid < n) {
        apply_denormal_mode();
        call(*job, tid, n);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  void wait_for_change(uint64_t seen) {
    auto changed = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    for (int i = 0; i < kSpin; i++) {
      if (changed()) return;
      SHRINK_PAUSE();
    }
    auto until = std::chrono::steady_clock::now() + kYieldWindow;
    while (std::chrono::steady_clock::now() < until) {
      if (changed()) return;
      std::this_thread::yield();
    }
    std::unique_lock<std::mutex> lk(mu_);
    sleepers_.fetch_add(1, std::memory_order_acq_rel);
    cv_.wait(lk, changed);
    sleepers_.fetch_sub(1, std::memory_order_acq_rel);
  }
};

// Leaked on purpose: workers must not be joined (or their std::thread objects destroyed) during static destruction.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int num_threads() { return pool().threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) { pool().threads.store(clamp_threads(n), std::memory_order_relaxed); }

int max_threads() { return kMaxThreads; }

bool thread_spawn_failed() { return pool().spawn_failed_.load(std::memory_order_relaxed); }

void set_thread_spawn_limit(int workers) { g_spawn_limit.store(workers, std::memory_order_relaxed); }

void parallel_run(int nthreads, const std::function<void(int, int)>& fn) {
  DenormalScope denormals;
  Pool& p = pool();
  int limit = p.threads.load(std::memory_order_relaxed);
  if (nthreads > limit) nthreads = limit;
  if (nthreads <= 1 || t_in_job || !p.run(nthreads, fn)) fn(0, 1);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  DenormalScope denormals;
  int nt = num_threads();
  if (n <= grain || nt <= 1 || t_in_job) {
    fn(0, n);
    return;
  }
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks < nt) nt = static_cast<int>(chunks);
  parallel_run(nt, [&](int tid, int total) {
    int64_t b = n * tid / total, e = n * (tid + 1) / total;
    if (b < e) fn(b, e);
  });
}

}  // namespace shrink
