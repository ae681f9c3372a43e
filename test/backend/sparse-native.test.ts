// The sparse kernels of pruned layers (native/sparse.cc) against the TypeScript reference (spmmReference): the CSR
// kernel for M ≤ 4 (row dot products) and M > 4 (64-row transposed blocks, with a partial last block), the
// densifying packed GEMM, the SIMD and portable paths; and the argument checks (a corrupt CSR throws, never reads
// out of bounds).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Generator } from '../../src/index.ts';
import { nativeAddon, setBackend } from '../../src/backend/registry.ts';
import { nativeTestSkip } from '../../src/backend/native/index.ts';
import { csrFromDense, csrToDense, sparseAddon, sparseKernelFor, spmmReference, SPARSE_DISPATCH, type CsrWeight } from '../../src/compress/prune/sparse.ts';

const skip = nativeTestSkip();
const g = new Generator(31);
const rand = (n: number) => Float32Array.from({ length: n }, () => g.normal());

function randomCsr(N: number, K: number, density: number): CsrWeight {
  const w = rand(N * K);
  for (let i = 0; i < w.length; i++) if (g.random() >= density) w[i] = 0;
  return csrFromDense(w, N, K);
}

function close(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    const tol = 1e-5 * (1 + Math.abs(b[i]!));
    if (!(Math.abs(a[i]! - b[i]!) <= tol)) assert.fail(`${what}: element ${i}: native ${a[i]} vs reference ${b[i]}`);
  }
}

test('csrFromDense / csrToDense round-trip; the reference is x·Wᵀ + b', () => {
  const w = Float32Array.from([0, 2, 0, -1, 0, 0, 3, 0, 0.5]);
  const c = csrFromDense(w, 3, 3);
  assert.deepEqual(Array.from(c.rowPtr), [0, 1, 2, 4]);
  assert.deepEqual(Array.from(c.colIdx), [1, 0, 0, 2]);
  assert.deepEqual(Array.from(c.values), [2, -1, 3, 0.5]);
  assert.deepEqual(Array.from(csrToDense(c)), Array.from(w));
  const out = new Float32Array(3);
  spmmReference(Float32Array.from([1, 2, 3]), 1, c, Float32Array.from([0.25, 0, -1]), out);
  assert.deepEqual(Array.from(out), [2 * 2 + 0.25, -1 * 1, 3 * 1 + 0.5 * 3 - 1]);
});

test('dispatch: small M always runs the CSR kernel; large M above the measured density runs the densifying GEMM', () => {
  assert.equal(sparseKernelFor(1, 0.9), 'csr');
  assert.equal(sparseKernelFor(SPARSE_DISPATCH.denseFromM - 1, 0.9), 'csr');
  assert.equal(sparseKernelFor(SPARSE_DISPATCH.denseFromM, 0.1), 'csr');
  assert.equal(sparseKernelFor(SPARSE_DISPATCH.denseFromM, SPARSE_DISPATCH.largeMaxDensity + 0.01), 'dense');
});

for (const simd of [true, false])
  describe(`sparse kernels (${simd ? 'SIMD' : 'portable'})`, { skip }, () => {
    const addon = () => nativeAddon() as unknown as { setSimd(on?: boolean): boolean };
    let prev: string;
    before(() => {
      prev = setBackend('native');
      addon().setSimd(simd);
    });
    after(() => {
      addon().setSimd(true);
      setBackend(prev as never);
    });

    test('CSR and densifying kernels match the reference for M in {1, 3, 5, 64, 70}, densities 0–100 %', () => {
      const a = sparseAddon()!;
      assert.ok(a, 'the addon has the sparse kernels');
      for (const [N, K] of [[7, 19], [33, 130]] as const)
        for (const d of [0, 0.05, 0.3, 1])
          for (const M of [1, 3, 5, 64, 70]) {
            const c = randomCsr(N, K, d);
            const x = rand(M * K);
            const bias = M % 2 ? rand(N) : null;
            const ref = new Float32Array(M * N);
            spmmReference(x, M, c, bias, ref);
            for (const k of ['sparseGemm', 'sparseDenseGemm'] as const) {
              const out = new Float32Array(M * N).fill(NaN);
              a[k](x, M, K, c.rowPtr, c.colIdx, c.values, N, bias, out);
              close(out, ref, `${k} N=${N} K=${K} density=${d} M=${M}`);
            }
          }
    });

    test('argument checks: a corrupt CSR or short arrays throw RangeError / TypeError', () => {
      const a = sparseAddon()!;
      const c = randomCsr(4, 8, 0.5);
      const x = rand(8);
      const out = new Float32Array(4);
      const call = (o: Partial<{ rowPtr: Int32Array; colIdx: Uint16Array; vals: Float32Array; K: number; out: Float32Array; x: Float32Array }>) =>
        a.sparseGemm(o.x ?? x, 1, o.K ?? 8, o.rowPtr ?? c.rowPtr, o.colIdx ?? c.colIdx, o.vals ?? c.values, 4, null, o.out ?? out);
      const badCol = c.colIdx.slice();
      if (badCol.length) badCol[0] = 8;
      assert.throws(() => call({ colIdx: badCol }), /RangeError|column index is >= K/);
      assert.throws(() => call({ rowPtr: Int32Array.from([0, 3, 2, 4, c.values.length]) }), /rowPtr must not decrease/);
      assert.throws(() => call({ rowPtr: Int32Array.from([1, 1, 1, 1, 1]) }), /rowPtr\[0\] must be 0/);
      assert.throws(() => call({ rowPtr: Int32Array.from([0, 0, 0, 0, c.values.length + 1]) }), /shorter than rowPtr\[N\]/);
      assert.throws(() => call({ out: new Float32Array(3) }), /too short/);
      assert.throws(() => call({ x: new Float32Array(7) }), /too short/);
      assert.throws(() => call({ K: 70000 }), /K <= 65536/);
      assert.throws(() => a.sparseGemm(x, 1, 8, c.rowPtr, c.colIdx as unknown as Uint16Array, new Float64Array(4) as unknown as Float32Array, 4, null, out), TypeError);
    });
  });
