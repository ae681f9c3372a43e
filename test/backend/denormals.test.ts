// Denormals (native/simd.h): the native kernels run with flush-to-zero + denormals-are-zero (MXCSR FTZ|DAZ) on the
// pool's workers and, around each kernel, on the calling thread — so subnormal floats (|x| < 1.18e-38) cost nothing
// extra (on some CPUs a GEMM over inputs scaled by 1e-39 took 150× longer) and read/write as ±0 — unless
// SHRINK_DENORMALS=keep. JavaScript on the calling thread keeps IEEE subnormals. `ref` never flushes, so native and
// ref results differ exactly where a value is subnormal (checked below; the parity tests compare with tolerances far
// above 1.2e-38, so flushed values never fail them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON_PATH, loadNative, nativeTestSkip } from '../../src/backend/native/index.ts';
import { refBackend } from '../../src/backend/registry.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const skip = nativeTestSkip();
const addon = skip ? null : loadNative();
const MIN_NORMAL = 1.1754943508222875e-38;
const B_MUL = 2; // BINARY_OPS index (src/backend/backend.ts)

function filled(n: number, scale: number, seed = 1): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = ((s / 2 ** 32) - 0.5) * scale;
  }
  return x;
}

function bestMs(fn: () => void, runs: number): number {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

/**
 * Best ms of `normal` and `sub`, timed in interleaved rounds (load from elsewhere on a shared machine hits both
 * alike). Up to 3 attempts: passes as soon as one shows sub < 2·normal — with flushing both cost the same, so any
 * quiet moment passes, while a real subnormal penalty (4–150×) fails every attempt.
 */
function assertWithin2x(what: string, normal: () => void, sub: () => void): void {
  normal();
  sub();
  let msg = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    let n = Infinity;
    let s = Infinity;
    for (let round = 0; round < 5; round++) {
      n = Math.min(n, bestMs(normal, 2));
      s = Math.min(s, bestMs(sub, 2));
    }
    if (s < 2 * n) return;
    msg += ` attempt ${attempt + 1}: subnormal ${s.toFixed(2)} ms vs normal ${n.toFixed(2)} ms;`;
  }
  assert.fail(`${what}:${msg}`);
}

/** Runs `code` (CommonJS, `a` = the addon) in a child process with `env` added; returns its last stdout line parsed. */
function child(env: Record<string, string>, code: string): unknown {
  const r = spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(ADDON_PATH)}); ${code}`], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('denormals(mode=default): info says flush; kernels and pool workers flush, the JS thread keeps IEEE subnormals', { skip }, () => {
  if (process.env.SHRINK_DENORMALS === 'keep') return;
  assert.equal(addon!.info().denormals, 'flush');
  const st = addon!._denormalState();
  assert.equal(st.js, false, 'the JS thread must not be left with FTZ/DAZ');
  assert.equal(st.kernel, true);
  if (addon!.info().threads > 1) assert.equal(st.workers, true);
  // After native calls, JavaScript still computes subnormals (doubles and float32 rounding alike).
  const x = new Float32Array(1 << 16).fill(1e-39);
  const out = new Float32Array(x.length);
  addon!.binaryContig(B_MUL, x, 0, x, 0, out);
  const tiny = Number(process.argv.length) * 1e-310; // not constant-foldable
  assert.notEqual(tiny * 0.5, 0);
  assert.notEqual(Math.fround(Number(process.argv.length) * 1e-39), 0);
});

test('denormals(op=sgemm,size=512): subnormal inputs run within 2x of normal ones and the products flush to 0', { skip }, () => {
  if (process.env.SHRINK_DENORMALS === 'keep') return;
  const N = 512;
  const off = new Int32Array([0]);
  const b = filled(N * N, 2, 7);
  const aNormal = filled(N * N, 2e-5, 3);
  const aSub = filled(N * N, 2e-39, 3); // |a| ≤ 1e-39: every element subnormal
  const c = new Float32Array(N * N);
  const run = (a: Float32Array) => () => addon!.sgemm(a, b, c, 1, N, N, N, off, off, N, N, false, false, false);
  assertWithin2x(`sgemm ${N}³`, run(aNormal), run(aSub));
  run(aSub)();
  assert.ok(c.every((v) => v === 0), 'DAZ: subnormal inputs read as 0, so every product is 0');
});

test('denormals(op=mul,n=4M): subnormal results run within 2x of normal ones and flush to ±0', { skip }, () => {
  if (process.env.SHRINK_DENORMALS === 'keep') return;
  const n = 1 << 22;
  const half = new Float32Array(n).fill(0.5);
  const xNormal = filled(n, 1, 5).map((v) => v * 4 * MIN_NORMAL + Math.sign(v) * 4 * MIN_NORMAL); // normal, result normal
  const xSub = filled(n, 1, 5).map((v) => v * MIN_NORMAL); // subnormal inputs and results
  const out = new Float32Array(n);
  const run = (x: Float32Array) => () => addon!.binaryContig(B_MUL, x, 0, half, 0, out);
  assertWithin2x(`mul over ${n}`, run(xNormal), run(xSub));
  run(xSub)();
  assert.ok(out.every((v) => v === 0), 'every subnormal result is flushed');
  run(xNormal)();
  assert.ok(out.every((v, i) => v === Math.fround(xNormal[i]! * 0.5)), 'normal results are exact');
});

test('denormals(ref vs native): results differ only where the input or the exact result is subnormal', { skip }, () => {
  if (process.env.SHRINK_DENORMALS === 'keep') return;
  // A mix: normal values, subnormal values, values whose product with 0.75 underflows, and zeros.
  const x = new Float32Array([1, -2.5, 3e-39, -1e-45, 1.5e-38, 1.2e-38, MIN_NORMAL, 0, -0, 7e-30, 2 * MIN_NORMAL]);
  const y = new Float32Array(x.length).fill(0.75);
  const nat = new Float32Array(x.length);
  // Outputs of ≤ 16 floats go to `ref` in the backend, so call the addon's kernel directly (it is the one that flushes).
  const big = new Float32Array(1024);
  const bigY = new Float32Array(1024).fill(0.75);
  big.set(x);
  const bigOut = new Float32Array(1024);
  addon!.binaryContig(B_MUL, big, 0, bigY, 0, bigOut);
  nat.set(bigOut.subarray(0, x.length));
  const ref = new Float32Array(x.length);
  refBackend.binary('mul', { data: x, offset: 0, strides: [1] }, { data: y, offset: 0, strides: [1] }, [x.length], ref);
  for (let i = 0; i < x.length; i++) {
    const subIn = x[i] !== 0 && Math.abs(x[i]!) < MIN_NORMAL;
    const subOut = ref[i] !== 0 && Math.abs(ref[i]!) < MIN_NORMAL;
    if (subIn || subOut) assert.ok(nat[i] === 0, `x=${x[i]}: flushed to ±0, got ${nat[i]}`);
    else assert.ok(Object.is(nat[i], ref[i]), `x=${x[i]}: native ${nat[i]} == ref ${ref[i]}`);
  }
});

test('denormals(SHRINK_DENORMALS=keep): child process: the mode is off everywhere and subnormals are kept', { skip }, () => {
  const r = child(
    { SHRINK_DENORMALS: 'keep' },
    `const x = new Float32Array(4096).fill(3e-39), y = new Float32Array(4096).fill(0.5), o = new Float32Array(4096);
     a.binaryContig(${B_MUL}, x, 0, y, 0, o);
     console.log(JSON.stringify({ mode: a.info().denormals, state: a._denormalState(), threads: a.info().threads, out: o[4095], want: Math.fround(Math.fround(3e-39) * 0.5) }));`,
  ) as { mode: string; state: { js: boolean; kernel: boolean; workers: boolean | null }; threads: number; out: number; want: number };
  assert.equal(r.mode, 'keep');
  assert.equal(r.state.js, false);
  assert.equal(r.state.kernel, false);
  if (r.threads > 1) assert.equal(r.state.workers, false);
  assert.notEqual(r.out, 0);
  assert.equal(r.out, r.want);
});

test('denormals(SHRINK_DENORMALS=flush|bogus): flush is the default spelled out; an unknown value is a clear error', { skip }, () => {
  const r = child({ SHRINK_DENORMALS: 'flush' }, `console.log(JSON.stringify(a.info().denormals))`);
  assert.equal(r, 'flush');
  const bad = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(ADDON_PATH)})`], { cwd: root, env: { ...process.env, SHRINK_DENORMALS: 'off' }, encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /SHRINK_DENORMALS must be 'flush' \(default\) or 'keep', got 'off'/);
  const reg = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import('./src/backend/registry.ts').then((m) => m.backend())`], { cwd: root, env: { ...process.env, SHRINK_DENORMALS: 'off', SHRINK_BACKEND: '' }, encoding: 'utf8' });
  assert.notEqual(reg.status, 0);
  assert.match(reg.stderr, /SHRINK_DENORMALS must be 'flush' \(the default\) or 'keep', got 'off'/);
});

test('denormals(_setDenormals): switching at run time reaches the caller and the workers', { skip }, () => {
  const prev = addon!._setDenormals();
  try {
    assert.equal(addon!._setDenormals('keep'), 'keep');
    let st = addon!._denormalState();
    assert.equal(st.kernel, false);
    if (st.workers !== null) assert.equal(st.workers, false);
    assert.equal(addon!._setDenormals('flush'), 'flush');
    st = addon!._denormalState();
    assert.equal(st.kernel, true);
    if (st.workers !== null) assert.equal(st.workers, true);
    assert.equal(st.js, false);
    assert.throws(() => addon!._setDenormals('off' as 'keep'), /mode must be 'flush' or 'keep'/);
  } finally {
    addon!._setDenormals(prev);
  }
});
