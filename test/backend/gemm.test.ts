// The native fp32 GEMM (native/gemm.cc) against its triple-loop reference (sgemmRef) on random shapes: sizes that
// are not multiples of the 6×16 (AVX2) or 8×48 (AVX-512) tile, size 1 (GEMV paths), empty dims, K = 0, all
// transpose combinations, leading dimensions larger than a row, batch offsets (including one operand broadcast over
// the batch), accumulate, shrunken cache blocks (so every blocking loop and the double-buffered B panel run on small
// sizes), at 1, 2 and 3 threads — once per SGEMM kernel family (AVX-512, AVX2) that this CPU and SHRINK_ISA allow
// (setGemmKernel selects it; a family the CPU lacks is skipped with a message), plus the portable kernels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative, nativeTestSkip } from '../../src/backend/native/index.ts';

type F32 = Float32Array;
type Family = 'avx512' | 'avx2' | 'portable';
interface GemmAddon {
  setThreads(n: number): number;
  setGemmBlocking(kc?: number, mc?: number, nc?: number): [number, number, number];
  setGemmKernel(name?: 'auto' | Family): Family;
  kernels(): Record<string, string>;
  sgemm(a: F32, b: F32, out: F32, batch: number, M: number, N: number, K: number, aOff: Int32Array, bOff: Int32Array, lda: number, ldb: number, transA: boolean, transB: boolean, accumulate: boolean): void;
  sgemmRef(a: F32, b: F32, out: F32, batch: number, M: number, N: number, K: number, aOff: Int32Array, bOff: Int32Array, lda: number, ldb: number, transA: boolean, transB: boolean, accumulate: boolean): void;
}

const skip = nativeTestSkip(); // throws (fails this file) when SHRINK_REQUIRE_NATIVE=1 and the addon did not load
const addon: GemmAddon | null = loadNative();

// mulberry32: deterministic inputs
let seed = 12345;
function rand(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const randArray = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);

interface Case {
  batch: number;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
  padA?: number; // lda - stored row length
  padB?: number;
  broadcastA?: boolean; // every batch entry reads the same A
  broadcastB?: boolean;
}

function describeCase(c: Case): string {
  return `batch ${c.batch} M ${c.M} N ${c.N} K ${c.K} tA ${c.transA} tB ${c.transB} acc ${c.accumulate} padA ${c.padA ?? 0} padB ${c.padB ?? 0}${c.broadcastA ? ' bcastA' : ''}${c.broadcastB ? ' bcastB' : ''}`;
}

/** Runs sgemm and sgemmRef on the same inputs and compares with a tolerance that grows with K. */
function check(c: Case): void {
  const { batch, M, N, K, transA, transB, accumulate } = c;
  // stored shapes: A is M×K (K×M when transposed), B is K×N (N×K)
  const [aRows, aCols] = transA ? [K, M] : [M, K];
  const [bRows, bCols] = transB ? [N, K] : [K, N];
  const lda = aCols + (c.padA ?? 0);
  const ldb = bCols + (c.padB ?? 0);
  const aSize = aRows > 0 ? (aRows - 1) * lda + aCols : 0;
  const bSize = bRows > 0 ? (bRows - 1) * ldb + bCols : 0;
  const lead = 3; // offsets start past a few unused floats
  const aOff = Int32Array.from({ length: batch }, (_, i) => lead + (c.broadcastA ? 0 : i * (aSize + 2)));
  const bOff = Int32Array.from({ length: batch }, (_, i) => lead + (c.broadcastB ? 0 : i * (bSize + 1)));
  const a = randArray(lead + (c.broadcastA ? 1 : batch) * (aSize + 2));
  const b = randArray(lead + (c.broadcastB ? 1 : batch) * (bSize + 1));
  const init = randArray(batch * M * N);
  const got = init.slice();
  const want = init.slice();
  addon!.sgemm(a, b, got, batch, M, N, K, aOff, bOff, lda, ldb, transA, transB, accumulate);
  addon!.sgemmRef(a, b, want, batch, M, N, K, aOff, bOff, lda, ldb, transA, transB, accumulate);
  // |a|, |b| ≤ 1: the fp32 rounding error of a length-K dot product stays well below 1e-6·(K + 1)
  const tol = 1e-6 * (K + 1) + 1e-6;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= tol * Math.max(1, Math.abs(want[i]!))))
      assert.fail(`${describeCase(c)}: element ${i} (batch ${Math.floor(i / (M * N))}) got ${got[i]} want ${want[i]} (tol ${tol})`);
  }
}

const SIZES = [1, 2, 5, 7, 8, 9, 13, 14, 15, 16, 17, 31, 33, 47, 49, 129, 257];
const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

/** Why a kernel family cannot be tested here (false: it can): the CPU, or SHRINK_ISA, does not allow it. */
function familySkip(family: Family): string | false {
  if (skip) return skip;
  const got = addon!.setGemmKernel(family);
  addon!.setGemmKernel('auto');
  return got === family ? false : `the ${family} SGEMM kernel is not available here (CPU or SHRINK_ISA=${process.env.SHRINK_ISA ?? ''}: runs ${got})`;
}

for (const family of ['avx512', 'avx2'] as const)
for (const threads of [1, 2, 3]) {
  test(`sgemm vs sgemmRef, ${family} kernel, ${threads} thread(s)`, { skip: familySkip(family) }, async (t) => {
    assert.equal(addon!.setThreads(threads), threads);
    assert.equal(addon!.setGemmKernel(family), family);
    t.after(() => void addon!.setGemmKernel('auto'));
    assert.match(addon!.kernels().sgemm!, new RegExp(`^${family} \\d+x\\d+$`));

    await t.test('random shapes, all transposes, lda/ldb padding, accumulate', () => {
      for (const [transA, transB] of TRANSPOSES)
        for (let r = 0; r < 10; r++) {
          let M = pick(SIZES), N = pick(SIZES), K = pick(SIZES);
          while (M * N * K > 2e6) (M = pick(SIZES)), (N = pick(SIZES)), (K = pick(SIZES));
          check({ batch: 1, M, N, K, transA, transB, accumulate: rand() < 0.5, padA: pick([0, 0, 1, 5]), padB: pick([0, 0, 3, 16]) });
        }
    });

    await t.test('size 1 (GEMV paths) and tile edges', () => {
      for (const [transA, transB] of TRANSPOSES)
        for (const [M, N, K] of [
          [1, 1, 1],
          [1, 1, 300],
          [1, 700, 300],
          [1, 77, 5],
          [300, 1, 257],
          [130, 1, 33],
          [6, 16, 1],
          [7, 17, 9],
          [12, 32, 64],
          [14, 32, 1],
          [15, 33, 1],
          [2, 2, 1],
          [3, 5, 2],
          [13, 31, 19],
          [28, 64, 40],
          [29, 65, 41],
          [27, 48, 17],
          [43, 97, 300],
          [8, 48, 1],
          [9, 49, 3],
          [17, 95, 5],
          [16, 144, 70],
        ] as const)
          for (const accumulate of [false, true]) check({ batch: 1, M, N, K, transA, transB, accumulate, padA: 2, padB: 1 });
    });

    await t.test('empty dims and K = 0', () => {
      for (const [transA, transB] of TRANSPOSES)
        for (const [M, N, K] of [
          [0, 5, 3],
          [4, 0, 3],
          [0, 0, 0],
          [4, 5, 0],
          [1, 1, 0],
          [40, 50, 0],
        ] as const)
          for (const accumulate of [false, true]) check({ batch: 2, M, N, K, transA, transB, accumulate });
      // batch 0 touches nothing
      const out = new Float32Array(4).fill(7);
      addon!.sgemm(new Float32Array(4), new Float32Array(4), out, 0, 2, 2, 1, new Int32Array(0), new Int32Array(0), 1, 2, false, false, false);
      assert.deepEqual([...out], [7, 7, 7, 7]);
    });

    await t.test('batches: offsets, broadcast operands, batch-parallel and per-matrix threading', () => {
      for (const [transA, transB] of TRANSPOSES) {
        check({ batch: 3, M: 17, N: 33, K: 7, transA, transB, accumulate: false, padA: 1 });
        check({ batch: 4, M: 40, N: 30, K: 50, transA, transB, accumulate: true, broadcastB: true }); // shared weight
        check({ batch: 5, M: 33, N: 20, K: 65, transA, transB, accumulate: false, broadcastA: true });
        check({ batch: 8, M: 64, N: 64, K: 32, transA, transB, accumulate: false }); // attention-like, split over the batch
        check({ batch: 3, M: 70, N: 90, K: 100, transA, transB, accumulate: true, padB: 2 }); // odd batch: each matrix threaded
      }
    });

    await t.test('larger single GEMMs (threaded row and column splits)', () => {
      for (const [transA, transB] of TRANSPOSES) {
        check({ batch: 1, M: 200, N: 150, K: 130, transA, transB, accumulate: false, padA: 3 });
        check({ batch: 1, M: 5, N: 700, K: 150, transA, transB, accumulate: true }); // one row tile: columns split
        check({ batch: 1, M: 131, N: 17, K: 300, transA, transB, accumulate: false, padB: 1 });
      }
    });

    await t.test('small cache blocks: every blocking loop, edge blocks, double-buffered B panel', () => {
      const saved = addon!.setGemmBlocking();
      try {
        for (const [kc, mc, nc] of [
          [16, 12, 32],
          [9, 6, 16],
          [40, 18, 48],
          [9, 14, 32],
          [17, 28, 64],
          [33, 42, 96],
        ] as const) {
          addon!.setGemmBlocking(kc, mc, nc);
          for (const [transA, transB] of TRANSPOSES) {
            check({ batch: 1, M: 65, N: 77, K: 70, transA, transB, accumulate: false, padA: 1, padB: 2 });
            check({ batch: 2, M: 19, N: 100, K: 33, transA, transB, accumulate: true });
            check({ batch: 1, M: 3, N: 130, K: 41, transA, transB, accumulate: false });
          }
        }
      } finally {
        addon!.setGemmBlocking(-1, -1, -1); // the kernel's defaults
      }
      assert.deepEqual(addon!.setGemmBlocking(), saved);
    });

    await t.test('portable kernels (CPUs without AVX2/FMA)', () => {
      const before = addon!.setGemmKernel();
      assert.equal(before, family);
      try {
        assert.equal(addon!.setGemmKernel('portable'), 'portable');
        for (const [transA, transB] of TRANSPOSES) {
          check({ batch: 1, M: 37, N: 41, K: 300, transA, transB, accumulate: false, padA: 1, padB: 2 });
          check({ batch: 2, M: 7, N: 1, K: 20, transA, transB, accumulate: true });
          check({ batch: 1, M: 1, N: 150, K: 77, transA, transB, accumulate: false, padA: 3 });
          check({ batch: 1, M: 90, N: 80, K: 70, transA, transB, accumulate: true });
        }
      } finally {
        addon!.setGemmKernel(family);
      }
      assert.equal(addon!.setGemmKernel(), before);
    });

    await t.test('bad arguments throw instead of touching memory', () => {
      const off = new Int32Array([0]);
      assert.throws(() => addon!.sgemm(new Float32Array(4), new Float32Array(4), new Float32Array(3), 1, 2, 2, 2, off, off, 2, 2, false, false, false), RangeError);
      assert.throws(() => addon!.sgemm(new Float32Array(3), new Float32Array(4), new Float32Array(4), 1, 2, 2, 2, off, off, 2, 2, false, false, false), RangeError);
      assert.throws(() => addon!.sgemm(new Float32Array(4), new Float32Array(4), new Float32Array(4), 1, 2, 2, 2, new Int32Array([1]), off, 2, 2, false, false, false), RangeError);
      assert.throws(() => (addon!.sgemm as (...a: unknown[]) => void)(new Float64Array(4), new Float32Array(4), new Float32Array(4), 1, 2, 2, 2, off, off, 2, 2, false, false, false), TypeError);
    });
  });
}

test('sgemm kernel selection: auto picks the best family the CPU and SHRINK_ISA allow; names and bad names', { skip }, () => {
  const auto = addon!.setGemmKernel('auto');
  const name = addon!.kernels().sgemm!;
  assert.ok(name.startsWith(`${auto} `), `kernels().sgemm '${name}' names the family '${auto}'`);
  const avx512 = familySkip('avx512') === false;
  const avx2 = familySkip('avx2') === false;
  assert.equal(auto, avx512 ? 'avx512' : avx2 ? 'avx2' : 'portable');
  if (process.env.SHRINK_ISA === 'avx2') assert.notEqual(auto, 'avx512', 'SHRINK_ISA=avx2 keeps the AVX-512 kernel off');
  if (process.env.SHRINK_ISA === 'portable') assert.equal(auto, 'portable');
  assert.equal(addon!.setGemmKernel('portable'), 'portable');
  assert.equal(addon!.kernels().sgemm, 'portable 6x16');
  assert.equal(addon!.setGemmKernel('auto'), auto);
  assert.throws(() => (addon!.setGemmKernel as (n: string) => string)('avx1024'), TypeError);
  assert.equal(addon!.setGemmKernel(), auto);
});
