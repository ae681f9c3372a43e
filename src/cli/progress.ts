/** A one-line training progress report on stderr (a TTY gets a carriage-return bar); loss parts when a step has them. */
import type { LogEntry } from '../train/trainer.ts';

export function progress(label: string, total: number, quiet = false): (e: LogEntry) => void {
  const t0 = performance.now();
  let first: number | undefined; // a resumed run starts mid-way: the ETA counts the steps this process ran
  return (e) => {
    if (quiet) return;
    first ??= e.step - 1;
    const done = e.step / total;
    const eta = ((performance.now() - t0) / Math.max(1, e.step - first)) * (total - e.step) / 1000;
    const bar = '#'.repeat(Math.round(done * 30)).padEnd(30, '.');
    const line = `${label} [${bar}] ${e.step}/${total} loss ${e.loss?.toFixed(4)}${e.parts && Object.keys(e.parts).length > 1 ? ` (${Object.entries(e.parts).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')})` : ''} lr ${e.lr?.toExponential(2)}${e.eval ? ` eval ${e.eval.metric.toFixed(4)}` : ''} eta ${eta.toFixed(0)}s`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}${e.step === total ? '\n' : ''}`);
    else if (e.step % Math.max(1, Math.floor(total / 20)) === 0 || e.step === total || e.eval) process.stderr.write(line + '\n');
  };
}
