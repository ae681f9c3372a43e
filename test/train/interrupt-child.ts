// Child process for interrupt.test.ts: watches SIGINT/SIGTERM (a nested watch, started and stopped first, must not
// end the outer one), prints "ready", then spins in a synchronous loop polling interruptRequested() (or, with
// --yield, yielding to the event loop between polls, for the process-listener fallback) and prints what it noticed.
//   --second       after noticing, keep spinning without clearing (a second signal must end the process: 130)
//   --after-stop   after noticing, stop the watch, print "stopped" and spin (the default handlers are back)
import { clearInterrupt, interruptRequested, interruptSignal, watchInterrupts } from '../../src/train/interrupt.ts';

const has = (f: string) => process.argv.includes(f);
const LIMIT_MS = 20000;

function spin(ms: number): void {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) for (let i = 0; i < 1000; i++) x += Math.sqrt(i);
  if (x < 0) console.log(x);
}

const stop = watchInterrupts();
watchInterrupts()(); // nested watch: stopping it must leave the outer one active
if (interruptRequested()) throw new Error('a signal was reported before any arrived');
console.log('ready');

const t0 = Date.now();
if (has('--yield')) {
  while (!interruptRequested()) {
    if (Date.now() - t0 > LIMIT_MS) {
      console.log('timeout');
      process.exit(3);
    }
    spin(5);
    await new Promise((r) => setImmediate(r));
  }
} else {
  while (!interruptRequested()) {
    if (Date.now() - t0 > LIMIT_MS) {
      console.log('timeout');
      process.exit(3);
    }
    spin(5);
  }
}
console.log(`noticed ${interruptSignal()} after ${Date.now() - t0} ms`);

if (has('--second')) {
  console.log('waiting for a second signal');
  if (has('--yield')) {
    for (const end = Date.now() + LIMIT_MS; Date.now() < end; ) {
      spin(5);
      await new Promise((r) => setImmediate(r));
    }
  } else spin(LIMIT_MS);
  console.log('timeout');
  process.exit(4);
}
if (has('--after-stop')) {
  stop();
  if (interruptSignal() === null) throw new Error('the received signal must stay observable after the watch stops');
  clearInterrupt();
  if (interruptRequested()) throw new Error('clearInterrupt did not forget the signal');
  console.log('stopped');
  spin(LIMIT_MS);
  console.log('timeout');
  process.exit(5);
}
stop();
clearInterrupt();
console.log('clean exit');
process.exit(0);
