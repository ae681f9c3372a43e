// The addon's float64 factorizations behind GPTQ (native/linalg.cc: choleskyF64, invertLowerF64) against the
// TypeScript reference (gptq-adapter.ts referenceLinalg), on the AVX2/FMA path and the portable one (setSimd(false)),
// at 1 and 2 threads and at sizes around the 32-row blocks; plus the argument checks and the not-positive-definite
// answer. Summation order differs (blocked, 4-way dot products), so values agree to float64 rounding, not bits.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, getNumThreads, setNumThreads } from '../../src/index.ts';
import { nativeAddon } from '../../src/backend/registry.ts';
import { nativeTestSkip } from '../../src/backend/native/index.ts';
import { gptqColumnsReference, referenceLinalg } from '../../src/compress/quant/gptq-adapter.ts';

const skip = nativeTestSkip();
type L = { choleskyF64(A: Float64Array, K: number): boolean; invertLowerF64(L: Float64Array, K: number): void; setSimd(on?: boolean): boolean };
const addon = skip ? null : (nativeAddon() as unknown as L);

/** A random symmetric positive-definite [K, K] matrix: XᵀX/n + 0.1·I with X [2K, K]. */
function spd(K: number, seed: number): Float64Array {
  const g = new Generator(seed);
  const n = 2 * K;
  const X = Float64Array.from({ length: n * K }, () => g.normal());
  const A = new Float64Array(K * K);
  for (let i = 0; i < K; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let r = 0; r < n; r++) s += X[r * K + i]! * X[r * K + j]!;
      A[i * K + j] = A[j * K + i] = s / n + (i === j ? 0.1 : 0);
    }
  return A;
}

function close(a: Float64Array, b: Float64Array, what: string): void {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i]! - b[i]!) <= 1e-11 * scale)) assert.fail(`${what}: element ${i}: native ${a[i]} vs reference ${b[i]} (scale ${scale})`);
}

const threads0 = getNumThreads();
after(() => {
  setNumThreads(threads0);
  addon?.setSimd(true);
});

for (const simd of [true, false])
  describe(`float64 factorizations (${simd ? 'AVX2/FMA where the CPU has it' : 'portable'})`, { skip }, () => {
    for (const threads of [1, 2])
      test(`${threads} thread(s): Cholesky and the lower-triangular inverse match the reference at K = 1, 5, 31, 32, 33, 100, 257`, () => {
        addon!.setSimd(simd);
        setNumThreads(threads);
        for (const K of [1, 5, 31, 32, 33, 100, 257]) {
          const A = spd(K, K);
          const ref = Float64Array.from(A);
          const nat = Float64Array.from(A);
          assert.equal(referenceLinalg.cholesky(ref, K), true);
          assert.equal(addon!.choleskyF64(nat, K), true);
          close(nat, ref, `cholesky K=${K}`);
          // L Lᵀ gives A back
          for (let i = 0; i < K; i++)
            for (let j = 0; j <= i; j++) {
              let s = 0;
              for (let k = 0; k <= j; k++) s += nat[i * K + k]! * nat[j * K + k]!;
              assert.ok(Math.abs(s - A[i * K + j]!) < 1e-9, `L·Lᵀ[${i},${j}] = ${s}, A = ${A[i * K + j]}`);
            }
          referenceLinalg.invertLower(ref, K);
          const L = Float64Array.from(nat);
          addon!.invertLowerF64(nat, K);
          close(nat, ref, `inverse K=${K}`);
          // L · L⁻¹ = I
          for (let i = 0; i < K; i += Math.max(1, K >> 3))
            for (let j = 0; j < K; j++) {
              let s = 0;
              for (let k = 0; k < K; k++) s += L[i * K + k]! * nat[k * K + j]!;
              assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-9, `(L·L⁻¹)[${i},${j}] = ${s}`);
            }
        }
      });
  });

describe('float64 factorization arguments', { skip }, () => {
  test('a matrix that is not positive definite answers false, as the reference', () => {
    const A = Float64Array.from([4, 2, 0, 2, 1, 0, 0, 0, 1]); // rank-deficient leading 2×2 block
    assert.equal(addon!.choleskyF64(Float64Array.from(A), 3), false);
    assert.equal(referenceLinalg.cholesky(Float64Array.from(A), 3), false);
    assert.equal(addon!.choleskyF64(Float64Array.from([NaN]), 1), false);
  });
  test('wrong types and short arrays throw instead of touching memory', () => {
    const any = (f: unknown) => f as (...a: unknown[]) => unknown;
    assert.throws(() => any(addon!.choleskyF64)(new Float32Array(4), 2), { name: 'TypeError', message: 'shrink_native.choleskyF64: argument 0 must be a Float64Array' });
    assert.throws(() => any(addon!.invertLowerF64)(new Float64Array(3), 2), { name: 'RangeError', message: 'shrink_native.invertLowerF64: A must hold K·K elements (1 ≤ K ≤ 2^20)' });
    assert.throws(() => any(addon!.choleskyF64)(new Float64Array(4), 0), RangeError);
  });
});

describe("GPTQ's column loop (gptqColumnsF64) against the TypeScript reference, bit for bit", { skip }, () => {
  type G = { gptqColumnsF64(...a: unknown[]): number };
  const cases = [
    { N: 37, K: 64, G: 16, bits: 4, act: false, B: 32 },
    { N: 20, K: 96, G: 96, bits: 8, act: false, B: 40 },
    { N: 9, K: 48, G: 8, bits: 3, act: true, B: 16 },
  ];
  for (const c of cases)
    for (const simd of [true, false])
      for (const threads of [1, 2])
        test(`N ${c.N}, K ${c.K}, group ${c.G}, ${c.bits} bits${c.act ? ', act-order' : ''}, block ${c.B}: ${simd ? 'AVX2' : 'portable'}, ${threads} thread(s)`, () => {
          addon!.setSimd(simd);
          setNumThreads(threads);
          const g = new Generator(c.N * 7 + c.K);
          const U = spd(c.K, c.K + 1); // any matrix with a nonzero diagonal will do for the loop
          const W0 = Float64Array.from({ length: c.N * c.K }, () => g.normal());
          const perm = Int32Array.from({ length: c.K }, (_, i) => i);
          if (c.act) for (let i = c.K - 1; i > 0; i--) { const j = Math.floor(g.random() * (i + 1)); [perm[i], perm[j]] = [perm[j]!, perm[i]!]; }
          const gpr = c.K / c.G;
          const scale = Float32Array.from({ length: c.N * gpr }, () => 0.05 + 0.2 * g.random());
          const zero = Int32Array.from({ length: c.N * gpr }, () => (c.bits === 8 ? 0 : Math.floor(g.random() * 2 ** c.bits)));
          const run = (native: boolean) => {
            const W = Float64Array.from(W0);
            const codes = c.bits === 8 ? new Int8Array(c.N * c.K) : new Uint8Array(c.N * c.K);
            const err = new Float64Array(c.N * c.B);
            let loss = 0;
            for (let i1 = 0; i1 < c.K; i1 += c.B) {
              const i2 = Math.min(c.K, i1 + c.B);
              for (let c0 = i1; c0 < i2; c0 += 7) {
                const a = { W, N: c.N, K: c.K, U, i1, i2, c0, c1: Math.min(i2, c0 + 7), perm, G: c.G, scale, zero, bits: c.bits, codes, err, B: c.B };
                loss += native
                  ? (addon as unknown as G).gptqColumnsF64(a.W, a.N, a.K, a.U, a.i1, a.i2, a.c0, a.c1, a.perm, a.G, a.scale, a.zero, a.bits, new Uint8Array(codes.buffer), a.err, a.B)
                  : gptqColumnsReference(a);
              }
            }
            return { W, codes, err, loss };
          };
          const n = run(true);
          const r = run(false);
          assert.deepEqual(n.codes, r.codes);
          assert.deepEqual(n.W, r.W);
          assert.deepEqual(n.err, r.err);
          assert.equal(n.loss, r.loss);
        });
  test('argument checks: a range outside the block, a short codes array', () => {
    const f = (addon as unknown as G).gptqColumnsF64;
    const K = 8;
    const args = (o: Record<string, unknown> = {}) => {
      const a: Record<string, unknown> = { W: new Float64Array(2 * K), N: 2, K, U: new Float64Array(K * K).fill(1), i1: 0, i2: 8, c0: 0, c1: 8, perm: Int32Array.from({ length: K }, (_, i) => i), G: 4, scale: new Float32Array(4).fill(1), zero: new Int32Array(4), bits: 4, codes: new Uint8Array(2 * K), err: new Float64Array(2 * 8), B: 8, ...o };
      return [a.W, a.N, a.K, a.U, a.i1, a.i2, a.c0, a.c1, a.perm, a.G, a.scale, a.zero, a.bits, a.codes, a.err, a.B];
    };
    assert.equal(typeof f(...args()), 'number');
    assert.throws(() => f(...args({ c1: 9 })), RangeError);
    assert.throws(() => f(...args({ codes: new Uint8Array(3) })), RangeError);
    assert.throws(() => f(...args({ perm: Int32Array.from({ length: K }, () => 99) })), RangeError);
  });
});
