// Every native kernel against the `ref` backend (the spec) on random shapes: sizes that are not multiples of the
// vector widths or GEMM tiles, size 1, empty tensors, broadcasting, strided views, 1 and 2 threads.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, type Backend, type UnaryOp, type View } from '../../src/backend/backend.ts';
import { refBackend } from '../../src/backend/ref/index.ts';
import { createNativeBackend, loadNative } from '../../src/backend/native/index.ts';
import { Generator } from '../../src/index.ts';
import { f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/tensor/dtype.ts';
import { expectClose, expectEqual } from '../harness/expect.ts';

const addon = loadNative();
const native: Backend | null = addon ? createNativeBackend(addon, refBackend) : null;
const skip = addon ? false : 'native addon not built';
const g = new Generator(99);
const rnd = (n: number, lo = -2, hi = 2) => Float32Array.from({ length: n }, () => lo + (hi - lo) * g.random());
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const contig = (shape: readonly number[]) => {
  const st: number[] = [];
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) (st[d] = s), (s *= shape[d]!);
  return st;
};
const TOL = { atol: 2e-6, rtol: 2e-5 };

/** Run a kernel on both backends with fresh outputs and compare. */
function both(name: string, run: (be: Backend) => Float32Array | Float32Array[], tol = TOL): void {
  const want = [run(refBackend)].flat();
  const got = [run(native!)].flat();
  want.forEach((w, i) => expectClose(got[i]!, w, tol, `${name}[out ${i}]`));
}

const DOMAIN: Partial<Record<UnaryOp, [number, number]>> = { log: [0.1, 3], sqrt: [0.1, 3], rsqrt: [0.1, 3], recip: [0.2, 3], pow_scalar: [0.1, 3] };

for (const threads of [1, 2]) {
  describe(`native vs ref, ${threads} thread(s)`, { skip }, () => {
    test('setThreads', () => assert.equal(addon!.setThreads(threads), threads));

    for (const op of UNARY_OPS)
      for (const shape of [[0], [1], [7], [3, 17], [2, 5, 33], [40000]])
        test(`unary(op=${op},shape=[${shape}])`, () => {
          addon!.setThreads(threads);
          const [lo, hi] = DOMAIN[op] ?? [-3, 3];
          const n = numel(shape);
          const x = rnd(n + 3, lo, hi);
          const view: View = { data: x, offset: 3, strides: contig(shape) };
          const [a, b] = op === 'clamp' ? [-0.5, 0.7] : op === 'pow_scalar' ? [1.7, 0] : op === 'leaky_relu' ? [0.1, 0] : [1.5, -0.25];
          both(`unary ${op}`, (be) => {
            const out = new Float32Array(n);
            be.unary(op, view, shape, out, a, b);
            return out;
          }, { atol: 3e-6, rtol: 3e-5 });
          // backward
          const y = new Float32Array(n);
          refBackend.unary(op, view, shape, y, a, b);
          const xs = x.subarray(3);
          const gr = rnd(n);
          both(`unaryBackward ${op}`, (be) => {
            const out = new Float32Array(n);
            be.unaryBackward(op, xs, y, gr, out, a, b);
            return out;
          }, { atol: 3e-6, rtol: 3e-5 });
        });

    test('unary on strided (transposed, offset) views', () => {
      addon!.setThreads(threads);
      const x = rnd(5 + 7 * 9);
      for (const op of ['copy', 'exp', 'gelu'] as const) {
        const view: View = { data: x, offset: 5, strides: [1, 7] }; // a [7, 9] tensor read as its [9, 7]… transposed
        both(`unary strided ${op}`, (be) => {
          const out = new Float32Array(63);
          be.unary(op, view, [7, 9], out, 0, 0);
          return out;
        });
      }
    });

    const PATTERNS: [string, number[], number[], number[]][] = [
      // name, out shape, a strides, b strides (0 = broadcast)
      ['same', [4, 7, 33], contig([4, 7, 33]), contig([4, 7, 33])],
      ['scalar', [5, 19], contig([5, 19]), [0, 0]],
      ['row', [6, 37], contig([6, 37]), [0, 1]],
      ['column', [6, 37], contig([6, 37]), [1, 0]],
      ['middle', [3, 5, 9], contig([3, 5, 9]), [9, 0, 1]],
      ['scalar-left', [300, 200], [0, 0], contig([300, 200])],
      ['transposed', [8, 9], [1, 8], contig([8, 9])],
      ['one', [1], [1], [1]],
      ['empty', [0, 4], [4, 1], [4, 1]],
    ];
    for (const op of BINARY_OPS)
      for (const [pname, shape, sa, sb] of PATTERNS)
        test(`binary(op=${op},shape=[${shape}],pattern=${pname})`, () => {
          addon!.setThreads(threads);
          const n = numel(shape) + 400;
          const lo = op === 'pow' ? 0.2 : -2;
          const a: View = { data: rnd(n, lo, 2), offset: 2, strides: sa };
          const b: View = { data: rnd(n, op === 'div' ? 0.5 : -2, 2), offset: 1, strides: sb };
          if (op === 'eq' || op === 'ne' || op === 'le' || op === 'ge') (b.data as Float32Array).set((a.data as Float32Array).subarray(1, 50), 0); // some ties
          both(`binary ${op} ${pname}`, (be) => {
            const out = new Float32Array(numel(shape));
            be.binary(op, a, b, shape, out);
            return out;
          });
        });

    test('where with broadcast condition', () => {
      addon!.setThreads(threads);
      const shape = [7, 65];
      const c: View = { data: Float32Array.from({ length: 65 }, (_, i) => i % 3), offset: 0, strides: [0, 1] };
      const a: View = { data: rnd(7 * 65), offset: 0, strides: contig(shape) };
      const b: View = { data: rnd(7), offset: 0, strides: [1, 0] };
      both('where', (be) => {
        const out = new Float32Array(7 * 65);
        be.where(c, a, b, shape, out);
        return out;
      });
    });

    for (const op of REDUCE_OPS)
      for (const [outer, r, inner] of [[1, 1, 1], [3, 17, 1], [5, 1000, 1], [2, 7, 33], [1, 300, 2000], [4, 0, 3], [64, 65, 1]])
        test(`reduce(op=${op},outer=${outer},r=${r},inner=${inner})`, () => {
          addon!.setThreads(threads);
          const x = op === 'prod' ? rnd(outer * r * inner, 0.9, 1.1) : rnd(outer * r * inner);
          const withIdx = op === 'max' || op === 'min';
          if (withIdx && r === 0) return; // the op layer rejects max over an empty dim
          const res = (be: Backend) => {
            const out = new Float32Array(outer * inner);
            const idx = withIdx ? new Int32Array(outer * inner) : null;
            be.reduce(op, x, outer, r, inner, out, idx);
            return { out, idx };
          };
          const want = res(refBackend);
          const got = res(native!);
          expectClose(got.out, want.out, { atol: 1e-5, rtol: 1e-5 }, `reduce ${op}`);
          if (want.idx) expectEqual(got.idx!, want.idx, `reduce ${op} indices`);
        });

    for (const [rows, n] of [[1, 1], [3, 7], [17, 33], [64, 1000], [0, 5]])
      test(`softmax/logSoftmax fwd+bwd(rows=${rows},n=${n})`, () => {
        addon!.setThreads(threads);
        const x = rnd(rows * n, -5, 5);
        const gr = rnd(rows * n);
        for (const log of [false, true]) {
          both(`softmax log=${log}`, (be) => {
            const y = new Float32Array(rows * n);
            be.softmax(x, rows, n, y, log);
            const dx = new Float32Array(rows * n);
            be.softmaxBackward(y, gr, rows, n, dx, log);
            return [y, dx];
          });
        }
      });

    for (const [rows, n] of [[1, 1], [5, 7], [33, 64], [200, 256]])
      for (const affine of [true, false])
        test(`layerNorm/rmsNorm fwd+bwd(rows=${rows},n=${n},affine=${affine})`, () => {
          addon!.setThreads(threads);
          const x = rnd(rows * n, -3, 3);
          const w = affine ? rnd(n, 0.5, 1.5) : null;
          const b = affine ? rnd(n) : null;
          const gr = rnd(rows * n);
          both('layerNorm', (be) => {
            const out = new Float32Array(rows * n);
            const mean = new Float32Array(rows);
            const rstd = new Float32Array(rows);
            be.layerNorm(x, w, b, rows, n, 1e-5, out, mean, rstd);
            const dx = new Float32Array(rows * n);
            const dw = affine ? new Float32Array(n).fill(0.5) : null; // accumulates into existing values
            const db = affine ? new Float32Array(n) : null;
            be.layerNormBackward(x, w, mean, rstd, gr, rows, n, dx, dw, db);
            return [out, mean, rstd, dx, ...(dw ? [dw, db!] : [])];
          }, { atol: 2e-5, rtol: 1e-4 });
          both('rmsNorm', (be) => {
            const out = new Float32Array(rows * n);
            const rstd = new Float32Array(rows);
            be.rmsNorm(x, w, rows, n, 1e-6, out, rstd);
            const dx = new Float32Array(rows * n);
            const dw = affine ? new Float32Array(n) : null;
            be.rmsNormBackward(x, w, rstd, gr, rows, n, dx, dw);
            return [out, rstd, dx, ...(dw ? [dw] : [])];
          }, { atol: 2e-5, rtol: 1e-4 });
        });

    test('embedding with duplicate indices and its scatter-add backward', () => {
      addon!.setThreads(threads);
      const V = 50;
      const D = 37;
      const w = rnd(V * D);
      const idx = Int32Array.from({ length: 300 }, (_, i) => (i * 7) % 13);
      const gr = rnd(300 * D);
      both('embedding', (be) => {
        const out = new Float32Array(300 * D);
        be.embedding(w, idx, D, out);
        const dw = new Float32Array(V * D);
        be.embeddingBackward(gr, idx, D, dw);
        return [out, dw];
      }, { atol: 1e-5, rtol: 1e-5 });
    });

    for (const eps of [0, 0.1])
      test(`crossEntropy fwd+bwd(labelSmoothing=${eps})`, () => {
        addon!.setThreads(threads);
        const rows = 37;
        const V = 1001;
        const x = rnd(rows * V, -4, 4);
        const t = Int32Array.from({ length: rows }, (_, i) => (i % 5 === 0 ? -100 : (i * 31) % V));
        const gRow = rnd(rows);
        both('crossEntropy', (be) => {
          const loss = new Float32Array(rows);
          const lse = new Float32Array(rows);
          be.crossEntropy(x, t, rows, V, -100, eps, loss, lse);
          const dx = new Float32Array(rows * V);
          be.crossEntropyBackward(x, t, lse, gRow, rows, V, -100, eps, dx);
          return [loss, lse, dx];
        }, { atol: 1e-5, rtol: 1e-5 });
      });

    test('adamw, several steps', () => {
      addon!.setThreads(threads);
      const n = 70001;
      const run = (be: Backend) => {
        const gg = new Generator(5);
        const p = Float32Array.from({ length: n }, () => gg.normal());
        const m = new Float32Array(n);
        const v = new Float32Array(n);
        for (let t = 1; t <= 3; t++) {
          const gr = Float32Array.from({ length: n }, () => gg.normal());
          be.adamw(p, gr, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.01, 1 - 0.9 ** t, 1 - 0.999 ** t);
        }
        return [p, m, v];
      };
      const want = run(refBackend);
      const got = run(native!);
      want.forEach((w, i) => expectClose(got[i]!, w, { atol: 1e-6, rtol: 1e-5 }, `adamw ${i}`));
    });

    for (const [M, N, K] of [[1, 1, 1], [5, 7, 3], [17, 33, 129], [64, 64, 64], [130, 70, 257], [0, 5, 5], [4, 4, 0]])
      for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]])
        test(`sgemm(M=${M},N=${N},K=${K},transA=${ta},transB=${tb})`, () => {
          addon!.setThreads(threads);
          const batch = 3;
          const lda = (ta ? M : K) + 2;
          const ldb = (tb ? K : N) + 1;
          const aRows = ta ? K : M;
          const bRows = tb ? N : K;
          const a = rnd(batch * aRows * lda + 5);
          const b = rnd(bRows * ldb + 3);
          const aOff = Int32Array.from({ length: batch }, (_, i) => 5 + i * aRows * lda);
          const bOff = new Int32Array(batch).fill(3); // B broadcast over the batch
          for (const accumulate of [false, true]) {
            const init = rnd(batch * M * N);
            const run = (f: NonNullable<typeof addon>["sgemm"]) => {
              const out = init.slice();
              f(a, b, out, batch, M, N, K, aOff, bOff, lda, ldb, ta, tb, accumulate);
              return out;
            };
            expectClose(run(addon!.sgemm), run(addon!.sgemmRef), { atol: 1e-5 * Math.max(1, Math.sqrt(K)), rtol: 1e-4 }, `sgemm acc=${accumulate}`);
          }
        });

    test('sgemm large enough to use both threads matches ref', () => {
      addon!.setThreads(threads);
      const [M, N, K] = [301, 283, 517];
      const a = rnd(M * K);
      const b = rnd(K * N);
      const o = new Int32Array([0]);
      const got = new Float32Array(M * N);
      const want = new Float32Array(M * N);
      addon!.sgemm(a, b, got, 1, M, N, K, o, o, K, N, false, false, false);
      addon!.sgemmRef(a, b, want, 1, M, N, K, o, o, K, N, false, false, false);
      expectClose(got, want, { atol: 1e-4, rtol: 1e-4 });
    });

    test('float16 / bfloat16 conversions are bit-exact with the TypeScript reference', () => {
      addon!.setThreads(threads);
      const specials = [0, -0, 1, -1, 65504, 65520, 1e-8, 6e-8, 3e-8, 6.1e-5, Infinity, -Infinity, NaN, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 3.4e38];
      const x = Float32Array.from([...specials, ...rnd(100000, -70000, 70000), ...rnd(1000, -1e-4, 1e-4)]);
      const h = new Uint16Array(x.length);
      addon!.f32ToF16(x, h);
      const hw = Uint16Array.from(x, (v) => f32ToF16Bits(v));
      expectEqual(h, hw, 'f32→f16');
      const back = new Float32Array(x.length);
      addon!.f16ToF32(h, back);
      expectEqual(back, Float32Array.from(hw, (v) => f16BitsToF32(v)), 'f16→f32');
      const bf = new Uint16Array(x.length);
      addon!.f32ToBf16(x, bf);
      expectEqual(bf, Uint16Array.from(x, (v) => f32ToBf16Bits(v)), 'f32→bf16');
    });
  });
}
