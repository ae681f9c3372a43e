// Every native kernel against the `ref` backend (the spec): sizes that are not multiples of the vector widths (1, 3,
// 7, 17, 33, 257), size 1, empty tensors, broadcasting (scalar, row, column, middle dim), strided and transposed
// views at non-zero offsets, every unary/binary/reduce op, special values, and sizes large enough to split over
// threads. Runs three times: AVX2 paths on 1 and 2 threads, and the portable paths (setSimd(false)). Then every entry
// point with bad arguments (they throw, never crash), and the thread pool's limits.
// Two wrappers are compared against ref: the default one (tiny outputs on ref, tiny inputs through off-heap scratch)
// and one with minNative = 0, which sends even 1-element tensors to the native kernels.
// Run: node --import tsx --test test/backend/native-parity.test.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, type Backend, type BinaryOp, type FArray, type ReduceOp, type UnaryOp, type View } from '../../src/backend/backend.ts';
import { refBackend } from '../../src/backend/ref/index.ts';
import { createNativeBackend, loadNative, nativeConvert, nativeTestSkip } from '../../src/backend/native/index.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../src/tensor/dtype.ts';

const skip = nativeTestSkip(); // throws (fails this file) when SHRINK_REQUIRE_NATIVE=1 and the addon did not load
const addon = loadNative();
const wrapped: Backend | null = addon ? createNativeBackend(addon, refBackend) : null;
const direct: Backend | null = addon ? createNativeBackend(addon, refBackend, { minNative: 0 }) : null;

// ---- helpers

let seed = 0x5eed;
function rand(): number {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const rnd = (n: number, lo = -2, hi = 2): Float32Array => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rand();
  return a;
};
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const contig = (shape: readonly number[]): number[] => {
  const st: number[] = [];
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) (st[d] = s), (s *= shape[d]!);
  return st;
};
function unravel(i: number, shape: readonly number[]): number[] {
  const out: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return out;
}

interface Tol {
  atol: number;
  rtol: number;
}
const TOL: Tol = { atol: 2e-6, rtol: 2e-6 };

/** |got - want| ≤ atol + rtol·|want| elementwise (NaN matches NaN, ±inf must match). Names the worst element. */
function close(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: Tol = TOL, shape?: readonly number[]): void {
  assert.equal(got.length, want.length, `${name}: length ${got.length}, want ${want.length}`);
  let worst = -1;
  let worstEx = -Infinity;
  let over = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (g === w || (g !== g && w !== w)) continue;
    const d = Math.abs(g - w);
    const ex = Number.isNaN(d) || !Number.isFinite(d) ? Infinity : d - (tol.atol + tol.rtol * Math.abs(w));
    if (ex > 0) {
      over++;
      if (ex > worstEx) (worstEx = ex), (worst = i);
    }
  }
  if (over) {
    const at = shape && numel(shape) === got.length ? `[${unravel(worst, shape)}]` : `${worst}`;
    assert.fail(`${name}: ${over}/${got.length} elements off; worst at ${at}: got ${got[worst]}, want ${want[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`);
  }
}
function sameBits(name: string, got: ArrayLike<number>, want: ArrayLike<number>, hex = 4): void {
  assert.equal(got.length, want.length, `${name}: length`);
  for (let i = 0; i < got.length; i++)
    if (got[i] !== want[i]) {
      let n = 0;
      for (let k = i; k < got.length; k++) if (got[k] !== want[k]) n++;
      assert.fail(`${name}: ${n} differ; first at ${i}: got 0x${got[i]!.toString(16).padStart(hex, '0')}, want 0x${want[i]!.toString(16).padStart(hex, '0')}`);
    }
}

/** Runs `run` on ref and on both native wrappers, with fresh outputs, and compares every returned array. */
function parity(name: string, run: (be: Backend) => FArray | Int32Array | (FArray | Int32Array)[], tol: Tol = TOL, shape?: readonly number[]): void {
  const want = [run(refBackend)].flat();
  for (const [label, be] of [['', wrapped!], [' direct', direct!]] as const) {
    const got = [run(be)].flat();
    want.forEach((w, i) => close(`${name}${label} out${i}`, got[i]!, w, tol, shape));
  }
}

const SPECIALS_ALL = [0, -0, 1, -1, 0.5, -0.5, 3, -3, 10, -10, 30, -30, 90, -90, 120, -120, 1e-30, -1e-30, 1e-42, 3e38, -3e38, Infinity, -Infinity, NaN];
// Denormals: by default the native kernels flush subnormals (FTZ+DAZ, native/simd.h) and `ref` does not, so the two
// differ exactly where a value is subnormal (|x| < 1.18e-38): a subnormal input reads as ±0 on native (log(1e-42) is
// -Infinity there, not -96.7), a subnormal result is ±0 (within every atol here, e.g. exp(-90)). So with flushing on,
// the special-value inputs hold ±0 where they would hold a subnormal; test/backend/denormals.test.ts checks the
// flushing itself, and SHRINK_DENORMALS=keep runs this file with the subnormal specials against ref.
const FLUSHES = !skip && loadNative()?.info().denormals === 'flush';
const SPECIALS = FLUSHES ? SPECIALS_ALL.map((v) => (v !== 0 && Math.abs(v) < 1.1754943508222875e-38 ? (v < 0 ? -0 : 0) : v)) : SPECIALS_ALL;

// Inputs in each op's domain; α/β per op.
const DOMAIN: Partial<Record<UnaryOp, [number, number]>> = { log: [0.05, 4], sqrt: [0.05, 4], rsqrt: [0.05, 4], recip: [0.2, 3], pow_scalar: [0.1, 3] };
const PARAMS: Partial<Record<UnaryOp, [number, number]>> = { clamp: [-0.5, 0.7], pow_scalar: [1.7, 0], leaky_relu: [0.1, 0], affine: [1.5, -0.25] };
// Wide-range inputs for the transcendental approximations (tails and range boundaries).
const WIDE: Partial<Record<UnaryOp, [number, number]>> = { exp: [-100, 90], tanh: [-12, 12], sigmoid: [-100, 100], silu: [-100, 100], gelu: [-14, 12], gelu_tanh: [-12, 12], erf: [-7, 7], log: [1e-30, 1e30] };
// Tolerances: forward ops are within a few float ulps; gradients of gelu/silu/gelu_tanh cancel near their zeros.
const UNARY_TOL: Tol = { atol: 1e-6, rtol: 1e-6 };
const GRAD_TOL: Tol = { atol: 2e-6, rtol: 2e-6 };

const BIN_PATTERNS: [string, number[], (s: number[]) => number[], (s: number[]) => number[]][] = [
  // name, out shape, a strides, b strides (0 = broadcast)
  ['same', [4, 7, 33], contig, contig],
  ['scalar', [5, 19], contig, () => [0, 0]],
  ['scalar-left', [3, 257], () => [0, 0], contig],
  ['row', [6, 37], contig, () => [0, 1]],
  ['column', [6, 37], contig, () => [1, 0]],
  ['middle', [3, 5, 9], contig, () => [9, 0, 1]],
  ['transposed-a', [8, 17], (s) => [1, s[0]!], contig],
  ['permuted-both', [3, 4, 5], () => [1, 15, 3], () => [20, 1, 4]],
  ['one', [1], contig, contig],
  ['one-3d', [1, 1, 1], contig, () => [0, 0, 0]],
  ['size3', [3], contig, contig],
  ['empty', [0, 4], contig, contig],
  ['large-same', [600, 513], contig, contig],
  ['large-row', [1200, 257], contig, () => [0, 1]],
];

const REDUCE_SHAPES: [number, number, number][] = [
  [1, 1, 1], [3, 17, 1], [5, 1000, 1], [64, 65, 1], [1, 7, 1], [2, 257, 1], [1, 140001, 1], [2, 7, 33], [3, 5, 2], [1, 300, 2000], [2, 9, 600], [4, 0, 3], [0, 5, 3], [300, 300, 1],
];

const CONFIGS: { label: string; threads: number; simd: boolean }[] = [
  { label: 'avx2, 1 thread', threads: 1, simd: true },
  { label: 'avx2, 2 threads', threads: 2, simd: true },
  { label: 'portable, 2 threads', threads: 2, simd: false },
];

for (const cfg of CONFIGS) {
  describe(`native vs ref (${cfg.label})`, { skip }, () => {
    let savedThreads = 1;
    before(() => {
      savedThreads = addon!.info().threads;
      addon!.setThreads(cfg.threads);
      addon!.setSimd(cfg.simd);
    });
    after(() => {
      addon!.setThreads(savedThreads);
      addon!.setSimd(true);
    });

    test('configuration took effect', () => {
      assert.equal(addon!.info().threads, cfg.threads);
      assert.equal(addon!.setSimd(), cfg.simd && addon!.info().avx2);
    });

    // ---- unary

    for (const op of UNARY_OPS) {
      const [alpha, beta] = PARAMS[op] ?? [0, 0];
      const [lo, hi] = DOMAIN[op] ?? [-3, 3];
      for (const shape of [[0], [1], [3], [7], [17], [33], [257], [3, 17], [40001]]) {
        test(`unary(op=${op},shape=[${shape}])`, () => {
          const n = numel(shape);
          const x = rnd(n + 3, lo, hi);
          const view: View = { data: x, offset: 3, strides: contig(shape) };
          parity(`unary(${op})`, (be) => {
            const out = new Float32Array(n);
            be.unary(op, view, shape, out, alpha, beta);
            return out;
          }, UNARY_TOL, shape);
          // backward on the same inputs
          const xs = x.slice(3);
          const y = new Float32Array(n);
          refBackend.unary(op, view, shape, y, alpha, beta);
          const g = rnd(n);
          parity(`unaryBackward(${op})`, (be) => {
            const out = new Float32Array(n);
            be.unaryBackward(op, xs, y, g, out, alpha, beta);
            return out;
          }, GRAD_TOL, shape);
        });
      }
      test(`unary(op=${op},special values)`, () => {
        const x = Float32Array.from(SPECIALS);
        parity(`unary(${op}) specials`, (be) => {
          const out = new Float32Array(x.length);
          be.unary(op, { data: x, offset: 0, strides: [1] }, [x.length], out, alpha, beta);
          return out;
        }, UNARY_TOL);
        const y = new Float32Array(x.length);
        refBackend.unary(op, { data: x, offset: 0, strides: [1] }, [x.length], y, alpha, beta);
        const g = Float32Array.from(x, (_, i) => (i % 3) - 1);
        parity(`unaryBackward(${op}) specials`, (be) => {
          const out = new Float32Array(x.length);
          be.unaryBackward(op, x, y, g, out, alpha, beta);
          return out;
        }, GRAD_TOL);
      });
      const wide = WIDE[op];
      if (wide)
        test(`unary(op=${op},range=[${wide}])`, () => {
          const n = 20000;
          const x = new Float32Array(n);
          for (let i = 0; i < n; i++) x[i] = wide[0] + ((wide[1] - wide[0]) * i) / (n - 1);
          parity(`unary(${op}) wide`, (be) => {
            const out = new Float32Array(n);
            be.unary(op, { data: x, offset: 0, strides: [1] }, [n], out, alpha, beta);
            return out;
          }, UNARY_TOL);
          const y = new Float32Array(n);
          refBackend.unary(op, { data: x, offset: 0, strides: [1] }, [n], y, alpha, beta);
          const g = rnd(n);
          parity(`unaryBackward(${op}) wide`, (be) => {
            const out = new Float32Array(n);
            be.unaryBackward(op, x, y, g, out, alpha, beta);
            return out;
          }, GRAD_TOL);
        });
    }

    const STRIDED: [string, number[], number[], number][] = [
      // name, shape, strides, offset (into a buffer of 5000)
      ['transposed [33,17]', [33, 17], [1, 33], 5],
      ['transposed [70,65] (tiled, several tiles)', [70, 65], [1, 70], 1],
      ['permuted [3,4,5]->[5,3,4]', [5, 3, 4], [1, 20, 5], 7],
      ['batched transpose [2,9,40]', [2, 40, 9], [360, 1, 40], 3],
      ['column of a matrix [50]', [50], [17], 2],
      ['every other element [3,20]', [3, 20], [41, 2], 0],
      ['broadcast row [6,37]', [6, 37], [0, 1], 11],
      ['broadcast column [37,6]', [37, 6], [1, 0], 11],
      ['scalar broadcast [5,19]', [5, 19], [0, 0], 4],
      ['flipped [40]', [40], [-1], 100],
      ['size-1 dims [1,7,1,5]', [1, 7, 1, 5], [999, 5, 999, 1], 9],
    ];
    for (const [name, shape, strides, offset] of STRIDED)
      for (const op of ['copy', 'exp', 'gelu', 'neg'] as const)
        test(`unary(op=${op},view=${name})`, () => {
          const view: View = { data: rnd(5000), offset, strides };
          parity(`unary(${op}) ${name}`, (be) => {
            const out = new Float32Array(numel(shape));
            be.unary(op, view, shape, out, 0, 0);
            return out;
          }, UNARY_TOL, shape);
        });
    test('unary(op=copy,view=large transpose [600,700]) splits over threads', () => {
      const view: View = { data: rnd(600 * 700 + 3), offset: 3, strides: [1, 600] };
      parity('large transpose', (be) => {
        const out = new Float32Array(600 * 700);
        be.unary('copy', view, [700, 600], out, 0, 0);
        return out;
      });
    });

    // ---- binary

    for (const op of BINARY_OPS)
      for (const [pname, shape, sa, sb] of BIN_PATTERNS) {
        if (pname.startsWith('large') && op !== 'add' && op !== 'mul' && op !== 'pow' && op !== 'maximum') continue;
        test(`binary(op=${op},shape=[${shape}],b=${pname})`, () => binaryCase(op, shape, sa(shape), sb(shape)));
      }
    test('binary with NaN and ±inf operands', () => {
      const a = Float32Array.from([...SPECIALS, ...SPECIALS]);
      const b = Float32Array.from([...SPECIALS, ...SPECIALS.slice().reverse()]);
      for (const op of BINARY_OPS)
        parity(`binary(${op}) specials`, (be) => {
          const out = new Float32Array(a.length);
          be.binary(op, { data: a, offset: 0, strides: [1] }, { data: b, offset: 0, strides: [1] }, [a.length], out);
          return out;
        });
    });

    // ---- where

    const WHERE: [string, number[], number[], number[], number[]][] = [
      ['broadcast cond, column b', [7, 65], [0, 1], [65, 1], [1, 0]],
      ['all same', [3, 33], [33, 1], [33, 1], [33, 1]],
      ['scalar a', [4, 17], [17, 1], [0, 0], [17, 1]],
      ['transposed cond', [9, 8], [1, 9], [8, 1], [0, 1]],
      ['one', [1], [1], [1], [1]],
      ['large', [400, 700], [700, 1], [700, 1], [0, 1]],
    ];
    for (const [name, shape, sc, sa, sb] of WHERE)
      test(`where(shape=[${shape}],${name})`, () => {
        const n = numel(shape) + 700;
        const c = Float32Array.from({ length: n }, () => (rand() < 0.5 ? 0 : rand() < 0.5 ? 1 : -0.5));
        const views: View[] = [
          { data: c, offset: 1, strides: sc },
          { data: rnd(n), offset: 2, strides: sa },
          { data: rnd(n), offset: 0, strides: sb },
        ];
        parity(`where ${name}`, (be) => {
          const out = new Float32Array(numel(shape));
          be.where(views[0]!, views[1]!, views[2]!, shape, out);
          return out;
        }, TOL, shape);
      });

    // ---- reduce

    for (const op of REDUCE_OPS)
      for (const [outer, r, inner] of REDUCE_SHAPES)
        for (const data of ['random', 'ties'] as const) {
          if (data === 'ties' && (op === 'sum' || op === 'prod')) continue;
          test(`reduce(op=${op},outer=${outer},r=${r},inner=${inner},${data})`, () => reduceCase(op, outer, r, inner, data));
        }
    for (const op of ['max', 'min'] as const)
      for (const [outer, r, inner] of [[3, 40, 1], [1, 300, 1], [2, 30, 9], [1, 140001, 1]] as const)
        test(`reduce(op=${op},outer=${outer},r=${r},inner=${inner},NaN and ±0)`, () => {
          const x = rnd(outer * r * inner);
          // a few NaNs (the first one must win, with its index) and signed zeros
          for (let k = 0; k < 5; k++) x[Math.floor(rand() * x.length)] = NaN;
          for (let k = 0; k < x.length; k += 7) x[k] = k % 2 ? 0 : -0;
          reduceCase(op, outer, r, inner, x);
        });

    // ---- softmax

    /** softmax (or logSoftmax) forward and backward, native vs ref. */
    const softmaxParity = (name: string, x: Float32Array, g: Float32Array, rows: number, n: number, log: boolean) =>
      parity(name, (be) => {
        const y = new Float32Array(rows * n);
        be.softmax(x, rows, n, y, log);
        const dx = new Float32Array(rows * n);
        be.softmaxBackward(y, g, rows, n, dx, log);
        return [y, dx];
      }, { atol: 2e-6, rtol: 4e-6 }, [rows, n]);

    for (const [rows, n] of [[1, 1], [3, 7], [17, 33], [5, 257], [64, 1000], [0, 5], [2, 3001]])
      for (const log of [false, true])
        test(`softmax(rows=${rows},n=${n},log=${log}) fwd+bwd`, () => {
          const x = rnd(rows * n, -8, 8);
          const g = rnd(rows * n);
          softmaxParity(`softmax log=${log}`, x, g, rows, n, log);
        });
    test('softmax with -inf (masked) entries, an all -inf row, and a large spread', () => {
      const rows = 4;
      const n = 37;
      const x = rnd(rows * n, -5, 5);
      for (let i = 0; i < n; i += 3) x[i] = -Infinity;
      for (let i = n; i < 2 * n; i++) x[i] = -Infinity; // row 1: all masked → NaN (0/0), as torch
      for (let i = 2 * n; i < 3 * n; i++) x[i] = (i % 5) * 40 - 80; // row 2: exponents far apart
      const g = rnd(rows * n);
      for (const log of [false, true])
        softmaxParity(`softmax masked log=${log}`, x, g, rows, n, log);
    });

    // ---- LayerNorm / RMSNorm

    for (const [rows, n] of [[1, 1], [5, 7], [1, 17], [33, 64], [3, 257], [200, 256]])
      for (const affine of [true, false])
        for (const mean of [0, 100])
          test(`layerNorm/rmsNorm(rows=${rows},n=${n},affine=${affine},mean=${mean}) fwd+bwd`, () => {
            const x = rnd(rows * n, mean - 3, mean + 3);
            const w = affine ? rnd(n, 0.5, 1.5) : null;
            const b = affine ? rnd(n) : null;
            const g = rnd(rows * n);
            const tol = { atol: 1e-5, rtol: 2e-5 };
            parity('layerNorm', (be) => {
              const out = new Float32Array(rows * n);
              const mu = new Float32Array(rows);
              const rs = new Float32Array(rows);
              be.layerNorm(x, w, b, rows, n, 1e-5, out, mu, rs);
              const dx = new Float32Array(rows * n);
              const dw = affine ? new Float32Array(n).fill(0.5) : null; // accumulates into what is there
              const db = affine ? new Float32Array(n).fill(-0.25) : null;
              be.layerNormBackward(x, w, mu, rs, g, rows, n, dx, dw, db);
              return [out, mu, rs, dx, ...(dw ? [dw, db!] : [])];
            }, tol);
            parity('rmsNorm', (be) => {
              const out = new Float32Array(rows * n);
              const rs = new Float32Array(rows);
              be.rmsNorm(x, w, rows, n, 1e-6, out, rs);
              const dx = new Float32Array(rows * n);
              const dw = affine ? new Float32Array(n).fill(0.5) : null;
              be.rmsNormBackward(x, w, rs, g, rows, n, dx, dw);
              return [out, rs, dx, ...(dw ? [dw] : [])];
            }, tol);
          });

    // ---- embedding

    for (const [V, D, n] of [[50, 1, 5], [50, 7, 300], [50, 37, 2000], [20, 300, 300], [1000, 64, 3], [5, 3, 1]])
      test(`embedding(V=${V},dim=${D},n=${n}) with duplicate indices, and its scatter-add`, () => {
        const w = rnd(V * D);
        const idx = Int32Array.from({ length: n }, (_, i) => (i * 7 + (i % 3)) % Math.min(V, 13)); // many duplicates
        const g = rnd(n * D);
        const init = rnd(V * D);
        parity('embedding', (be) => {
          const out = new Float32Array(n * D);
          be.embedding(w, idx, D, out);
          const dw = init.slice();
          be.embeddingBackward(g, idx, D, dw);
          return [out, dw];
        }, { atol: 0, rtol: 0 }); // same additions in the same order as ref: bit-identical
      });

    // ---- cross-entropy

    for (const [rows, V] of [[1, 1], [5, 7], [37, 1001], [3, 30000]])
      for (const eps of [0, 0.1])
        test(`crossEntropy(rows=${rows},V=${V},labelSmoothing=${eps}) fwd+bwd with ignoreIndex`, () => {
          const x = rnd(rows * V, -4, 4);
          const t = Int32Array.from({ length: rows }, (_, i) => (i % 5 === 3 ? -100 : (i * 31) % V));
          // a confident, correct row: the target's gradient softmax − 1 cancels
          if (rows > 2 && t[1] !== -100) x[V + t[1]!] = 30;
          const gRow = rnd(rows, 0.1, 2);
          parity('crossEntropy', (be) => {
            const loss = new Float32Array(rows);
            const lse = new Float32Array(rows);
            be.crossEntropy(x, t, rows, V, -100, eps, loss, lse);
            const dx = new Float32Array(rows * V);
            be.crossEntropyBackward(x, t, lse, gRow, rows, V, -100, eps, dx);
            return [loss, lse, dx];
          }, { atol: 1e-6, rtol: 4e-6 });
        });

    // ---- AdamW

    for (const n of [17, 1000, 70001])
      test(`adamw(n=${n}), 4 steps`, () => {
        const run = (be: Backend) => {
          let s = 77;
          const r = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
          const p = Float32Array.from({ length: n }, r);
          const m = new Float32Array(n);
          const v = new Float32Array(n);
          for (let t = 1; t <= 4; t++) {
            const g = Float32Array.from({ length: n }, r);
            be.adamw(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.01, 1 - 0.9 ** t, 1 - 0.999 ** t);
          }
          return [p, m, v];
        };
        parity('adamw', run, { atol: 1e-6, rtol: 1e-5 });
      });

    // ---- dropout: the same xoshiro128** stream as Generator.nextU32, so native and ref keep the same elements

    for (const [n, p] of [[5, 0.1], [1000, 0.5], [100003, 0.9]] as const)
      test(`dropout(n=${n},p=${p}): same kept elements, values and generator state as ref`, () => {
        const run = (be: Backend) => {
          const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3);
          const out = new Float32Array(n);
          const state = Int32Array.from([0x1234567, -0x7654321, 0x2468ace, 0x13579bd]);
          be.dropout(x, out, state, Math.round(p * 2 ** 32), 1 / (1 - p));
          return [out, state];
        };
        const [wantOut, wantState] = run(refBackend) as [Float32Array, Int32Array];
        for (const [label, be] of [['', wrapped!], [' direct', direct!]] as const) {
          const [out, state] = run(be) as [Float32Array, Int32Array];
          sameBits(`dropout${label} state`, Array.from(state, (v) => v >>> 0), Array.from(wantState, (v) => v >>> 0), 8);
          close(`dropout${label} out`, out, wantOut, { atol: 0, rtol: 1e-7 });
        }
        const kept = Array.from(wantOut).filter((v) => v !== 0).length;
        assert.ok(Math.abs(kept / n - (1 - p)) < (n > 100 ? 0.02 : 1), `kept ${kept} of ${n} at p=${p}`);
      });

    // ---- matmul through the wrapper (the kernel itself is covered by gemm.test.ts)

    for (const [M, N, K] of [[1, 1, 1], [3, 17, 7], [33, 5, 257]])
      test(`matmul(M=${M},N=${N},K=${K}) through the backend`, () => {
        const a = rnd(2 * M * K);
        const b = rnd(K * N);
        parity('matmul', (be) => {
          const out = new Float32Array(2 * M * N);
          be.matmul({ a, b, out, batch: 2, M, N, K, aOffsets: Int32Array.from([0, M * K]), bOffsets: Int32Array.from([0, 0]), lda: K, ldb: N, transA: false, transB: false, accumulate: false });
          return out;
        }, { atol: 1e-5, rtol: 1e-5 });
      });

    // ---- float16 / bfloat16

    test('f16ToF32 over all 65536 bit patterns', () => {
      const h = Uint16Array.from({ length: 65536 }, (_, i) => i);
      const got = nativeConvert.f16ToF32(h)!;
      close('f16ToF32 values', got, Float32Array.from(h, (v) => f16BitsToF32(v)), { atol: 0, rtol: 0 });
      sameBits('f16ToF32 bits', new Uint32Array(got.buffer), f16ToF32Bits(h), 8);
    });
    test('f32ToF16: specials, subnormal boundaries, rounding ties, NaN payloads, random', () => {
      const u = new Uint32Array(specialF32Bits());
      const x = new Float32Array(u.buffer);
      const h = nativeConvert.f32ToF16(x)!;
      sameBits('f32ToF16', h, Uint16Array.from(u, (b) => f32BitsToF16(b)));
      // and the TypeScript reference of the dtype layer (numbers: NaN payloads are not representable there)
      const finite = x.filter((v) => !Number.isNaN(v));
      sameBits('f32ToF16 vs dtype.ts', nativeConvert.f32ToF16(finite)!, Uint16Array.from(finite, (v) => f32ToF16Bits(v)));
    });
    test('f32ToBf16 / bf16ToF32: ties, NaN, all bf16 patterns', () => {
      const u = new Uint32Array(specialF32Bits());
      const b = nativeConvert.f32ToBf16(new Float32Array(u.buffer))!;
      sameBits('f32ToBf16', b, Uint16Array.from(u, (v) => f32BitsToBf16(v)));
      const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
      const f = nativeConvert.bf16ToF32(all)!;
      sameBits('bf16ToF32', new Uint32Array(f.buffer), Uint32Array.from(all, (v) => (v << 16) >>> 0), 8);
    });
  });
}

// ---- error handling: bad arguments throw, they never crash the process

describe('native argument checks', { skip }, () => {
  const f = new Float32Array(64);
  const meta = Int32Array.from([0, 0, 0, 1, 64, 1, 1]);
  const calls: [string, () => unknown, ErrorConstructor][] = [
    ['unary with a Float64Array', () => (addon!.unary as (...a: unknown[]) => void)(2, new Float64Array(4), 0, f, 4, 0, 0), TypeError],
    ['unary past the end', () => addon!.unary(2, f, 10, f, 60, 0, 0), RangeError],
    ['unary with an unknown op', () => addon!.unary(99, f, 0, f, 4, 0, 0), RangeError],
    ['binary with a view outside its array', () => addon!.binary(f, f, f, Int32Array.from([0, 1, 0, 1, 64, 1, 1])), RangeError],
    ['binary with a negative stride below 0', () => addon!.binary(f, f, f, Int32Array.from([0, 0, 5, 1, 10, 1, -1])), RangeError],
    ['binary with a short out', () => addon!.binary(f, f, new Float32Array(8), meta), RangeError],
    ['binary with 17 dims', () => addon!.binary(f, f, f, Int32Array.from([0, 0, 0, 17, ...new Array(51).fill(1)])), RangeError],
    ['binary with a short meta', () => addon!.binary(f, f, f, Int32Array.from([0, 0, 0, 3, 4])), RangeError],
    ['unaryBackward of exp without y', () => addon!.unaryBackward(2, f, null, f, f, 0, 0), RangeError],
    ['reduce with a short x', () => addon!.reduce(0, f, 2, 40, 1, f, null), RangeError],
    ['softmax with a string', () => (addon!.softmax as (...a: unknown[]) => void)(f, 'x', 8, f, false), TypeError],
    ['embedding with an index out of range', () => addon!.embedding(f, Int32Array.from([0, 16]), 4, f), RangeError],
    ['embeddingBackward with a negative index', () => addon!.embeddingBackward(f, Int32Array.from([-1]), 4, f), RangeError],
    ['crossEntropy with a target out of range', () => addon!.crossEntropy(f, Int32Array.from([8]), 1, 8, -100, 0, f, f), RangeError],
    ['adamw with a short m', () => addon!.adamw(f, f, new Float32Array(3), f, 1, 0.9, 0.99, 1e-8, 0, 1, 1), RangeError],
    ['f32ToF16 into a short dst', () => addon!.f32ToF16(f, new Uint16Array(3)), RangeError],
    ['f16ToF32 from a Float32Array', () => (addon!.f16ToF32 as (...a: unknown[]) => void)(f, f), TypeError],
    ...quantArgumentChecks(),
    ['setThreads(1024) (above maxThreads)', () => addon!.setThreads(1024), RangeError],
    ['setThreads(0)', () => addon!.setThreads(0), RangeError],
    ['setThreads(-3)', () => addon!.setThreads(-3), RangeError],
    ['setThreads(2.5)', () => addon!.setThreads(2.5), RangeError],
    ['setThreads(NaN)', () => addon!.setThreads(NaN), RangeError],
    ['setThreads with a string', () => (addon!.setThreads as (...a: unknown[]) => void)('4'), TypeError],
  ];
  for (const [name, call, type] of calls) test(name, () => assert.throws(call, type));
});

/**
 * Every quant entry point (native/quant.cc) with wrong types, short arrays and sizes whose product wraps around
 * 64 bits: each must throw, none may touch memory. Valid base arguments: M = 2, N = 16, K = 8 (Kp = 8).
 */
function quantArgumentChecks(): [string, () => unknown, ErrorConstructor][] {
  const a = addon!;
  const any = (fn: unknown) => fn as (...args: unknown[]) => void;
  const [M, N, K, Kp] = [2, 16, 8, 8];
  const x = new Float32Array(M * K);
  const q = new Uint8Array(M * Kp);
  const sa = new Float32Array(M);
  const za = new Int32Array(M);
  const w8 = new Int8Array(N * K);
  const packed = new Int8Array(N * Kp);
  const rowSum = new Int32Array(N);
  const sw = new Float32Array(N);
  const out = new Float32Array(M * N);
  const c4 = new Uint8Array((N * K) / 2);
  const wrap = 2 ** 62 + 1; // × 4 wraps to 4 in 64 bits
  // dequantRows / woGemm weight arguments: c8, c4, bits, scale, z8, z4, groupSize, perTensor, K
  const w8args = [w8, null, 8, sw, null, null, K, false, K] as const;
  const w4args = [null, c4, 4, sw, null, null, K, false, K] as const;
  return [
    ['quantizeRowsStatic: x a Float64Array', () => any(a.quantizeRowsStatic)(new Float64Array(M * K), M, K, Kp, 0.1, 0, q), TypeError],
    ['quantizeRowsStatic: short x', () => a.quantizeRowsStatic(x, M + 1, K, Kp, 0.1, 0, new Uint8Array(64)), RangeError],
    ['quantizeRowsStatic: short q', () => a.quantizeRowsStatic(x, M, K, Kp, 0.1, 0, new Uint8Array(M * Kp - 1)), RangeError],
    ['quantizeRowsStatic: zero point 128', () => a.quantizeRowsStatic(x, M, K, Kp, 0.1, 128, q), RangeError],
    ['quantizeRowsStatic: scale 0', () => a.quantizeRowsStatic(x, M, K, Kp, 0, 0, q), RangeError],
    ['quantizeRowsStatic: Kp < K', () => a.quantizeRowsStatic(x, M, K, K - 1, 0.1, 0, q), RangeError],
    ['quantizeRowsStatic: M·K wraps around', () => a.quantizeRowsStatic(x, wrap, 4, 4, 0.1, 0, q), RangeError],
    ['quantizeRowsU7: q an Int8Array', () => any(a.quantizeRowsU7)(x, M, K, Kp, new Int8Array(M * Kp), sa, za), TypeError],
    ['quantizeRowsU7: short scale', () => a.quantizeRowsU7(x, M, K, Kp, q, new Float32Array(M - 1), za), RangeError],
    ['quantizeRowsU7: short zero', () => a.quantizeRowsU7(x, M, K, Kp, q, sa, new Int32Array(M - 1)), RangeError],
    ['quantizeRowsU7: short x', () => a.quantizeRowsU7(new Float32Array(M * K - 1), M, K, Kp, q, sa, za), RangeError],
    ['quantizeRowsU7: M·Kp wraps around', () => a.quantizeRowsU7(x, wrap, 4, 4, q, sa, za), RangeError],
    ['packInt8Weight: w a Uint8Array', () => any(a.packInt8Weight)(new Uint8Array(N * K), N, K, packed, rowSum), TypeError],
    ['packInt8Weight: short w', () => a.packInt8Weight(new Int8Array(N * K - 1), N, K, packed, rowSum), RangeError],
    ['packInt8Weight: short packed', () => a.packInt8Weight(w8, N, K, new Int8Array(N * Kp - 1), rowSum), RangeError],
    ['packInt8Weight: short rowSum', () => a.packInt8Weight(w8, N, K, packed, new Int32Array(N - 1)), RangeError],
    ['packInt8Weight: N·K wraps around', () => a.packInt8Weight(w8, wrap, 4, packed, rowSum), RangeError],
    ['int8Gemm: packed a Uint8Array', () => any(a.int8Gemm)(q, M, Kp, new Uint8Array(N * Kp), N, sa, za, sw, false, rowSum, null, out), TypeError],
    ['int8Gemm: Kp not a multiple of 4', () => a.int8Gemm(q, M, 6, packed, N, sa, za, sw, false, rowSum, null, out), RangeError],
    ['int8Gemm: short qa', () => a.int8Gemm(new Uint8Array(M * Kp - 1), M, Kp, packed, N, sa, za, sw, false, rowSum, null, out), RangeError],
    ['int8Gemm: short packed', () => a.int8Gemm(q, M, Kp, new Int8Array(N * Kp - 4), N, sa, za, sw, false, rowSum, null, out), RangeError],
    ['int8Gemm: short weight scale', () => a.int8Gemm(q, M, Kp, packed, N, sa, za, new Float32Array(N - 1), false, rowSum, null, out), RangeError],
    ['int8Gemm: short bias', () => a.int8Gemm(q, M, Kp, packed, N, sa, za, sw, false, rowSum, new Float32Array(N - 1), out), RangeError],
    ['int8Gemm: short out', () => a.int8Gemm(q, M, Kp, packed, N, sa, za, sw, false, rowSum, null, new Float32Array(M * N - 1)), RangeError],
    ['int8Gemm: M·N wraps around', () => a.int8Gemm(q, wrap, 4, packed, 16, sa, za, sw, true, rowSum, null, out), RangeError],
    ['dequantRows: 8-bit codes a Uint8Array', () => any(a.dequantRows)(new Uint8Array(N * K), null, 8, sw, null, null, K, false, K, 0, N, new Float32Array(N * K)), TypeError],
    ['dequantRows: 8 bits without int8 codes', () => any(a.dequantRows)(null, c4, 8, sw, null, null, K, false, K, 0, N, new Float32Array(N * K)), RangeError],
    // bits 2..4 with an int8 codes array: the kernel used to read it (and not the checked 4-bit one) past its end
    ['dequantRows: 4 bits with a short int8 codes array too', () => any(a.dequantRows)(new Int8Array(1), c4, 4, sw, null, null, K, false, K, 0, N, new Float32Array(N * K)), RangeError],
    ['dequantRows: 4 bits with only an int8 codes array', () => any(a.dequantRows)(new Int8Array(1), null, 4, sw, null, null, K, false, K, 0, N, new Float32Array(N * K)), RangeError],
    ['dequantRows: bits 5', () => any(a.dequantRows)(null, c4, 5, sw, null, null, K, false, K, 0, N, new Float32Array(N * K)), RangeError],
    ['dequantRows: short 4-bit codes', () => any(a.dequantRows)(...w4args.map((v, i) => (i === 1 ? new Uint8Array(c4.length - 1) : v)), 0, N, new Float32Array(N * K)), RangeError],
    ['dequantRows: short scale', () => any(a.dequantRows)(...w8args.map((v, i) => (i === 3 ? new Float32Array(N - 1) : v)), 0, N, new Float32Array(N * K)), RangeError],
    ['dequantRows: short zero point', () => any(a.dequantRows)(...w4args.map((v, i) => (i === 5 ? new Uint8Array(N - 1) : v)), 0, N, new Float32Array(N * K)), RangeError],
    ['dequantRows: two zero-point arrays', () => any(a.dequantRows)(...w4args.map((v, i) => (i === 4 ? new Int8Array(N) : i === 5 ? new Uint8Array(N) : v)), 0, N, new Float32Array(N * K)), RangeError],
    ['dequantRows: K not a multiple of the group size', () => any(a.dequantRows)(...w8args.map((v, i) => (i === 6 ? 3 : v)), 0, N, new Float32Array(N * K)), RangeError],
    ['dequantRows: rows past the codes', () => any(a.dequantRows)(...w8args, 0, N + 1, new Float32Array((N + 1) * K)), RangeError],
    ['dequantRows: r1 < r0', () => any(a.dequantRows)(...w8args, 3, 2, new Float32Array(N * K)), RangeError],
    ['dequantRows: short out', () => any(a.dequantRows)(...w8args, 0, N, new Float32Array(N * K - 1)), RangeError],
    ['dequantRows: rows·K wraps around', () => any(a.dequantRows)(w8, null, 8, sw, null, null, 4, true, 4, wrap - 1, wrap, new Float32Array(4)), RangeError],
    ['woGemm: x a Float64Array', () => any(a.woGemm)(new Float64Array(M * K), M, ...w8args, N, null, out), TypeError],
    ['woGemm: 4 bits with a short int8 codes array too', () => any(a.woGemm)(x, M, new Int8Array(1), c4, 4, sw, null, null, K, false, K, N, null, out), RangeError],
    ['woGemm: 3 bits with only an int8 codes array', () => any(a.woGemm)(x, M, new Int8Array(1), null, 3, sw, null, null, K, false, K, N, null, out), RangeError],
    ['woGemm: short x', () => any(a.woGemm)(new Float32Array(M * K - 1), M, ...w8args, N, null, out), RangeError],
    ['woGemm: short bias', () => any(a.woGemm)(x, M, ...w8args, N, new Float32Array(N - 1), out), RangeError],
    ['woGemm: short out', () => any(a.woGemm)(x, M, ...w8args, N, null, new Float32Array(M * N - 1)), RangeError],
    ['woGemm: more rows than codes', () => any(a.woGemm)(x, M, ...w8args, N + 1, null, new Float32Array(M * (N + 1))), RangeError],
    ['woGemm: M·K wraps around', () => any(a.woGemm)(x, wrap, w8, null, 8, sw, null, null, 4, true, 4, N, null, out), RangeError],
  ];
}

// ---- thread pool: a refused worker thread makes the pool smaller, it does not abort the process

test('thread pool(spawn=refused): runs on the workers it has and reports the smaller size', { skip }, () => {
  const saved = addon!.info().threads;
  const a = rnd(300 * 200);
  const b = rnd(200 * 250);
  const want = new Float32Array(300 * 250);
  const off = Int32Array.from([0]);
  addon!.sgemmRef(a, b, want, 1, 300, 250, 200, off, off, 200, 250, false, false, false);
  const gemm = () => {
    const got = new Float32Array(300 * 250);
    addon!.sgemm(a, b, got, 1, 300, 250, 200, off, off, 200, 250, false, false, false);
    return got;
  };
  const big = rnd(300000);
  const sum = () => {
    const o = new Float32Array(1);
    addon!.reduce(REDUCE_OPS.indexOf('sum'), big, 1, big.length, 1, o, null);
    return o[0]!;
  };
  try {
    addon!.setThreads(2);
    close('gemm on 2 threads', gemm(), want, { atol: 1e-4, rtol: 1e-4 });
    const sum2 = sum();
    // every worker that does not exist yet fails to start (as with EAGAIN)
    addon!._setThreadSpawnLimit(0);
    addon!.setThreads(200);
    close('gemm with refused threads', gemm(), want, { atol: 1e-4, rtol: 1e-4 });
    assert.ok(Math.abs(sum() - sum2) <= 1e-3 * Math.abs(sum2) + 1e-3, 'sum with refused threads');
    const info = addon!.info();
    assert.ok(info.threadSpawnFailed, 'threadSpawnFailed is reported');
    assert.ok(info.threads >= 1 && info.threads < 200, `pool shrank to the threads it has (reports ${info.threads})`);
    // and grows again once threads can be started
    addon!._setThreadSpawnLimit(-1);
    addon!.setThreads(3);
    close('gemm on 3 threads', gemm(), want, { atol: 1e-4, rtol: 1e-4 });
    assert.equal(addon!.info().threads, 3);
  } finally {
    addon!._setThreadSpawnLimit(-1);
    addon!.setThreads(saved);
  }
});

test('setThreads(n=maxThreads) is accepted, and maxThreads is a sane bound', { skip }, () => {
  const saved = addon!.info().threads;
  try {
    const max = addon!.info().maxThreads;
    assert.equal(max, 256);
    assert.equal(addon!.setThreads(max), max);
    assert.equal(addon!.setThreads(1), 1);
  } finally {
    addon!.setThreads(saved);
  }
});

// ---- case bodies

function binaryCase(op: BinaryOp, shape: number[], sa: number[], sb: number[]): void {
  const span = (st: number[]) => shape.reduce((m, s, d) => m + Math.abs(st[d]!) * Math.max(0, s - 1), 0) + 1;
  const lo = op === 'pow' ? 0.2 : -2;
  const a: View = { data: rnd(span(sa) + 2, lo, 2), offset: 2, strides: sa };
  const b: View = { data: rnd(span(sb) + 1, op === 'div' ? 0.5 : -2, 2), offset: 1, strides: sb };
  if (op === 'eq' || op === 'ne' || op === 'le' || op === 'ge' || op === 'maximum' || op === 'minimum') {
    // some ties
    const ad = a.data as Float32Array;
    const bd = b.data as Float32Array;
    for (let i = 0; i < Math.min(ad.length, bd.length); i += 3) bd[i] = ad[i]!;
  }
  parity(`binary(${op})`, (be) => {
    const out = new Float32Array(numel(shape));
    be.binary(op, a, b, shape, out);
    return out;
  }, TOL, shape);
}

function reduceCase(op: ReduceOp, outer: number, r: number, inner: number, data: 'random' | 'ties' | Float32Array): void {
  const n = outer * r * inner;
  const x =
    data instanceof Float32Array ? data
    : op === 'prod' ? rnd(n, 0.95, 1.05)
    : data === 'ties' ? Float32Array.from({ length: n }, () => Math.round(rand() * 4) - 2)
    : rnd(n);
  const withIdx = op === 'max' || op === 'min';
  const run = (be: Backend) => {
    const out = new Float32Array(outer * inner);
    const idx = withIdx ? new Int32Array(outer * inner) : null;
    be.reduce(op, x, outer, r, inner, out, idx);
    return idx ? [out, idx] : [out];
  };
  parity(`reduce(${op})`, run, { atol: 1e-6, rtol: 2e-6 }, [outer, inner]);
  if (withIdx) {
    // signed zeros: the value at the chosen index, bit for bit
    const want = run(refBackend)[0] as Float32Array;
    for (const be of [wrapped!, direct!]) {
      const got = run(be)[0] as Float32Array;
      for (let i = 0; i < got.length; i++)
        if (got[i] === 0) assert.equal(Object.is(got[i], -0), Object.is(want[i], -0), `reduce(${op}) sign of zero at ${i}`);
    }
  }
}

// ---- bit-level references for the conversions (NaN payloads included)

function specialF32Bits(): number[] {
  const out: number[] = [
    0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000, // ±0, ±1, ±inf
    0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xff812345, 0x7fe00001, 0x7fffe000, 0x7fc0ffff, // NaNs: quiet, signaling, payloads
    0x477fe000, 0x477fefff, 0x477ff000, 0x477fffff, 0x7f7fffff, // around the f16 max 65504 and overflow
    0x38800000, 0x387fffff, 0x33800000, 0x33800001, 0x337fffff, 0x33000000, 0x33000001, 0x00000001, 0x807fffff, // f16 subnormal edges
    0x3f801000, 0x3f803000, 0x3f801001, 0x3f802fff, 0x3f808000, 0x3f818000, 0x3f817fff, 0x3f818001, // f16 / bf16 ties
    0x3f7f8000, 0x3f7fffff, 0x7f7f8000, 0x7f7fffff, // bf16 rounding up into the next binade / to inf
  ];
  for (let e = 100; e < 145; e++) for (let k = 0; k < 40; k++) out.push(((e << 23) | Math.floor(rand() * 0x800000) | (rand() < 0.5 ? 0x80000000 : 0)) >>> 0);
  for (let k = 0; k < 20000; k++) out.push(Math.floor(rand() * 0x100000000) >>> 0);
  return out;
}

/** IEEE binary32 → binary16 bits, round to nearest even; NaN → quiet NaN with the top payload bits (as vcvtps2ph). */
function f32BitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  return sign | (f32ToF16Bits(Math.abs(new Float32Array(new Uint32Array([b & 0x7fffffff]).buffer)[0]!)) & 0x7fff);
}
function f32BitsToBf16(b: number): number {
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
/** binary16 → binary32 bits; NaN comes out quiet with its payload (as vcvtph2ps). */
function f16ToF32Bits(h: Uint16Array): Uint32Array {
  return Uint32Array.from(h, (v) => {
    const sign = (v & 0x8000) << 16;
    const e = (v >>> 10) & 0x1f;
    const m = v & 0x3ff;
    if (e === 0x1f) return (sign | 0x7f800000 | (m << 13) | (m ? 0x400000 : 0)) >>> 0;
    const f = new Float32Array([f16BitsToF32(v)]);
    return new Uint32Array(f.buffer)[0]!;
  });
}
