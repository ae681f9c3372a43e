// src/train/interrupt.ts with real child processes (test/train/interrupt-child.ts): a synchronous loop notices
// SIGINT/SIGTERM through the native handler, a second Ctrl-C exits with 130, the previous handlers come back when
// the watch stops, and without the addon the process-listener fallback works for a loop that yields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeTestSkip } from '../../src/backend/native/index.ts';

const skip = nativeTestSkip();
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHILD = path.join(root, 'test/train/interrupt-child.ts');

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
  /** ms from sending the first signal until the child printed "noticed" (-1: it never did). */
  noticedMs: number;
}

/**
 * Starts the child, sends `signals[0]` once it prints "ready", and each further signal once it prints the line in
 * `after` (default: "noticed"); resolves when the child exits (killed after 30 s).
 */
function run(args: string[], signals: NodeJS.Signals[], opts: { env?: Record<string, string>; after?: string } = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { cwd: root, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let sent = 0;
    let sentAt = 0;
    let noticedMs = -1;
    const killer = setTimeout(() => child.kill('SIGKILL'), 30000);
    const next = () => {
      if (sent < signals.length) {
        if (sent === 0) sentAt = Date.now();
        child.kill(signals[sent++]!);
      }
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (sent === 0 && out.includes('ready\n')) next();
      if (noticedMs < 0 && out.includes('noticed')) noticedMs = Date.now() - sentAt;
      if (sent === 1 && out.includes(`${opts.after ?? 'noticed'}`) && out.slice(out.indexOf(opts.after ?? 'noticed')).includes('\n')) next();
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, out, err, noticedMs });
    });
  });
}

const show = (o: Outcome) => `exit ${o.code} signal ${o.signal}\nstdout:\n${o.out}\nstderr:\n${o.err}`;

for (const sig of ['SIGINT', 'SIGTERM'] as const)
  test(`interrupt(signal=${sig},loop=synchronous): noticed without yielding, clean exit`, { skip }, async () => {
    const o = await run([], [sig]);
    assert.equal(o.code, 0, show(o));
    assert.equal(o.signal, null, show(o));
    assert.match(o.out, new RegExp(`noticed ${sig} after \\d+ ms`), show(o));
    assert.match(o.out, /clean exit/, show(o));
    assert.ok(o.noticedMs >= 0 && o.noticedMs < 3000, `noticed after ${o.noticedMs} ms\n${show(o)}`);
  });

test('interrupt(signal=SIGINT x2,loop=synchronous): a second Ctrl-C exits at once with 130', { skip }, async () => {
  const o = await run(['--second'], ['SIGINT', 'SIGINT'], { after: 'waiting for a second signal' });
  assert.match(o.out, /noticed SIGINT/, show(o));
  assert.doesNotMatch(o.out, /timeout/, show(o));
  assert.equal(o.code, 130, show(o));
  assert.equal(o.signal, null, show(o));
});

test('interrupt(signal=SIGINT,after stop): the previous handler is back (Node default: killed by SIGINT)', { skip }, async () => {
  const o = await run(['--after-stop'], ['SIGINT', 'SIGINT'], { after: 'stopped' });
  assert.match(o.out, /noticed SIGINT[\s\S]*stopped/, show(o));
  assert.doesNotMatch(o.out, /timeout/, show(o));
  assert.equal(o.signal, 'SIGINT', show(o));
});

// The fallback (no addon, or SHRINK_NATIVE_SIGNALS=0): process listeners, seen when the loop yields.
test('interrupt(signal=SIGTERM,loop=yielding,fallback=process listeners): noticed, clean exit', async () => {
  const o = await run(['--yield'], ['SIGTERM'], { env: { SHRINK_NATIVE_SIGNALS: '0' } });
  assert.equal(o.code, 0, show(o));
  assert.match(o.out, /noticed SIGTERM/, show(o));
  assert.ok(o.noticedMs >= 0 && o.noticedMs < 3000, `noticed after ${o.noticedMs} ms\n${show(o)}`);
});

test('interrupt(signal=SIGINT x2,loop=yielding,fallback=process listeners): second Ctrl-C exits with 130', async () => {
  const o = await run(['--yield', '--second'], ['SIGINT', 'SIGINT'], { env: { SHRINK_NATIVE_SIGNALS: '0' }, after: 'waiting for a second signal' });
  assert.match(o.out, /noticed SIGINT/, show(o));
  assert.equal(o.code, 130, show(o));
});
