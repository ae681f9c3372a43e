/**
 * Ctrl-C (SIGINT) and SIGTERM for synchronous loops. Node runs process.on('SIGINT') listeners from the event loop,
 * so a training loop that never yields never sees them and Ctrl-C is ignored. While a watch is active, a native
 * signal handler (native/signal.cc) records the signal in a flag that interruptRequested() reads without yielding;
 * the loop checks it between steps, saves what it must and stops.
 *
 *   const stop = watchInterrupts();
 *   try {
 *     for (let step = 0; step < n && !interruptRequested(); step++) trainStep();
 *   } finally {
 *     stop();
 *   }
 *
 * - Watches nest: the handlers are installed by the first and the previous ones (Node's default: exit on the signal,
 *   or libuv's when process.on listeners exist) come back when the last one stops. While watching, process.on
 *   ('SIGINT' / 'SIGTERM') listeners do not run. A new outermost watch starts with no signal recorded.
 * - A second SIGINT/SIGTERM while the first is still recorded (not cleared) ends the process at once with status
 *   128 + signal number (130 for Ctrl-C): the usual "press Ctrl-C twice to force quit".
 * - Without the native addon (not built, or SHRINK_NATIVE_SIGNALS=0) the watch falls back to process.on listeners,
 *   which only run when the loop yields to the event loop (an `await` between steps); a loop that never yields then
 *   cannot be interrupted by Ctrl-C except by the second-signal exit, which also needs a yield. Build the addon
 *   (npm run build:native) for synchronous loops.
 */
import { constants } from 'node:os';
import { loadNative, type NativeAddon } from '../backend/native/index.ts';

type SignalName = 'SIGINT' | 'SIGTERM';
const SIGNALS: readonly SignalName[] = ['SIGINT', 'SIGTERM'];

let depth = 0;
/** The native watch in use (decided when the outermost watch starts), or null for the process-listener fallback. */
let nativeWatch: NativeAddon | null = null;
/** The signal the fallback listeners recorded. */
let jsPending: SignalName | null = null;

function nativeSignals(): NativeAddon | null {
  if (process.env.SHRINK_NATIVE_SIGNALS === '0') return null;
  const a = loadNative();
  return a && typeof a.signalWatch === 'function' ? a : null;
}

function onSignal(sig: NodeJS.Signals): void {
  const name = sig as SignalName;
  if (jsPending !== null) process.exit(128 + constants.signals[name]);
  jsPending = name;
}

/** Start watching SIGINT and SIGTERM; nestable; returns a function that stops this watch. */
export function watchInterrupts(): () => void {
  if (depth === 0) {
    jsPending = null;
    const a = nativeSignals();
    nativeWatch = a && a.signalWatch() ? a : null;
    if (!nativeWatch) for (const s of SIGNALS) process.on(s, onSignal);
  }
  depth++;
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--depth > 0) return;
    if (nativeWatch) {
      // Keep what arrived observable after the watch ends (until clearInterrupt or the next outermost watch).
      const sig = nativeWatch.signalPending();
      if (sig !== 0 && jsPending === null) jsPending = nameOf(sig);
      nativeWatch.signalUnwatch();
      nativeWatch = null;
    } else {
      for (const s of SIGNALS) process.off(s, onSignal);
    }
  };
}

function nameOf(sig: number): SignalName | null {
  return SIGNALS.find((s) => constants.signals[s] === sig) ?? null;
}

/** True once SIGINT/SIGTERM arrived while watching (observable from synchronous code, without yielding). */
export function interruptRequested(): boolean {
  return interruptSignal() !== null;
}

/** Which signal arrived ('SIGINT' | 'SIGTERM' | null). */
export function interruptSignal(): string | null {
  if (nativeWatch) {
    const sig = nativeWatch.signalPending();
    if (sig !== 0) return nameOf(sig);
  }
  return jsPending;
}

/** Forget a received signal. */
export function clearInterrupt(): void {
  jsPending = null;
  nativeWatch?.signalClear();
}
