// SIGINT / SIGTERM seen from synchronous JavaScript (src/train/interrupt.ts is the API).
//
// Node delivers signals to process.on('SIGINT') listeners through the event loop, so a training loop that never
// yields never sees them: Ctrl-C is ignored. Here a sigaction handler records the signal in an atomic flag that
// JS polls between steps (signalPending(), one cheap call) without yielding.
//
//   signalWatch():   starts a watch (nestable; the first one installs the handlers for SIGINT and SIGTERM and
//                    forgets any earlier signal). Returns true when the handlers are installed (false: this platform
//                    has no sigaction, the caller falls back to process listeners).
//   signalUnwatch(): ends one watch; the last one restores the handlers that were there before (Node's own, or
//                    libuv's when process.on('SIGINT') listeners exist). Returns the number of watches left.
//   signalPending(): the signal number that arrived while watching (SIGINT 2, SIGTERM 15), or 0.
//   signalClear():   forgets it.
//
// A second SIGINT/SIGTERM while the first is still pending (not cleared) ends the process at once from the
// handler with the conventional status 128 + signal (130 for Ctrl-C): the user asked twice, and the loop may be
// stuck in a long step. While a watch is active process.on('SIGINT'/'SIGTERM') listeners do not run (this handler
// replaced libuv's); they run again after the last watch ends.
//
// The handler only touches a lock-free atomic and calls write()/_exit(), which are async-signal-safe; it may run on
// any thread (the kernel picks one; pool workers do not block signals).
#include <node_api.h>

#include <atomic>
#include <csignal>

#include "args.h"
#include "common.h"

#if !defined(_WIN32)
#include <unistd.h>
#define SHRINK_HAS_SIGACTION 1
#else
#define SHRINK_HAS_SIGACTION 0
#endif

namespace shrink {
namespace {

std::atomic<int> g_pending{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");
int g_watches = 0;  // only touched from the JS thread

#if SHRINK_HAS_SIGACTION
constexpr int kSignals[2] = {SIGINT, SIGTERM};
struct sigaction g_previous[2];

extern "C" void on_signal(int sig) {
  const int before = g_pending.exchange(sig);
  if (before != 0) {
    static const char msg[] = "\nshrink: second interrupt, exiting immediately\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(128 + sig);
  }
}

bool install() {
  for (int i = 0; i < 2; i++) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(kSignals[i], &sa, &g_previous[i]) != 0) {
      for (int j = 0; j < i; j++) sigaction(kSignals[j], &g_previous[j], nullptr);
      return false;
    }
  }
  return true;
}

void restore() {
  for (int i = 0; i < 2; i++) sigaction(kSignals[i], &g_previous[i], nullptr);
}
#endif

napi_value make_bool(napi_env env, bool v) {
  napi_value r;
  napi_get_boolean(env, v, &r);
  return r;
}
napi_value make_int(napi_env env, int v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

napi_value SignalWatch(napi_env env, napi_callback_info) {
#if SHRINK_HAS_SIGACTION
  if (g_watches == 0) {
    g_pending.store(0);
    if (!install()) {
      napi_throw_error(env, nullptr, "shrink_native.signalWatch: sigaction failed");
      return nullptr;
    }
  }
  g_watches++;
  return make_bool(env, true);
#else
  return make_bool(env, false);
#endif
}

napi_value SignalUnwatch(napi_env env, napi_callback_info) {
#if SHRINK_HAS_SIGACTION
  if (g_watches > 0 && --g_watches == 0) restore();
#endif
  return make_int(env, g_watches);
}

napi_value SignalPending(napi_env env, napi_callback_info) { return make_int(env, g_pending.load()); }

napi_value SignalClear(napi_env env, napi_callback_info) {
  g_pending.store(0);
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

}  // namespace

void init_signal(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "signalWatch", SignalWatch);
  export_fn(env, exports, "signalUnwatch", SignalUnwatch);
  export_fn(env, exports, "signalPending", SignalPending);
  export_fn(env, exports, "signalClear", SignalClear);
}

}  // namespace shrink
