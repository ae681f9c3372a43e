// The addon's integer kernels (native/quant.cc) against the TypeScript reference paths in
// src/compress/quant/kernels.ts: bit-identical int8 dynamic / static outputs and weight dequantization, and the
// dequantizing weight-only GEMM (int8 / int4 / 3- and 2-bit, GEMV and packed paths) to float32 rounding, at odd
// sizes, extreme codes and 1 and 2 threads. Every kernel runs twice: with the AVX2 paths (where the CPU has them)
// and with the portable ones (setSimd(false) + setGemmKernel('portable'), what non-x86 builds run).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, getNumThreads, setNumThreads } from '../../src/index.ts';
import { nativeAddon, setBackend } from '../../src/backend/registry.ts';
import { nativeTestSkip } from '../../src/backend/native/index.ts';
import { int8DynamicLinear, int8StaticLinear, weightOnlyLinear } from '../../src/compress/quant/kernels.ts';
import { quantizeWeight } from '../../src/compress/quant/rtn.ts';
import { dequantizeRows, QuantLinear, type QuantizedWeight } from '../../src/compress/quant/modules.ts';
import { Tensor, storageVersion } from '../../src/tensor/tensor.ts';

const skip = nativeTestSkip();
const addon = skip ? null : nativeAddon();
const g = new Generator(21);
const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => s * g.normal());

function both(fn: () => Float32Array): [Float32Array, Float32Array] {
  const prev = setBackend('ref');
  const r = fn();
  setBackend('native');
  const n = fn();
  setBackend(prev);
  return [r, n];
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what}: element ${i}: ref ${a[i]} vs native ${b[i]}`);
}

const MODES = [
  { kernels: 'avx2', simd: true },
  { kernels: 'portable', simd: false },
] as const;

for (const mode of MODES)
  describe(`quant kernels (kernels=${mode.kernels})`, { skip }, () => {
    before(() => {
      addon!.setSimd(mode.simd);
      addon!.setGemmKernel(mode.simd ? 'auto' : 'portable');
    });
    after(() => {
      addon!.setSimd(true);
      addon!.setGemmKernel('auto');
    });

    test('configuration took effect', () => {
      assert.equal(addon!.setSimd(), mode.simd && addon!.info().avx2);
      assert.equal(addon!.setGemmKernel(), mode.simd && addon!.info().avx2 ? 'avx2' : 'portable');
    });

    test('int8 dynamic: native equals the reference bit for bit', () => {
      const prevThreads = getNumThreads();
      for (const threads of [1, 2]) {
        setNumThreads(threads);
        for (const [M, N, K] of [[1, 1, 1], [1, 17, 3], [3, 16, 4], [5, 33, 67], [4, 48, 128], [9, 31, 300], [64, 96, 768], [2, 5, 1100]]) {
          const w = quantizeWeight('w', rand(N * K, 0.05), N, K, { bits: 8, granularity: 'channel', symmetric: true });
          const x = rand(M * K);
          const bias = rand(N);
          const [r, n] = both(() => {
            const out = new Float32Array(M * N);
            int8DynamicLinear(x, M, w, bias, out);
            return out;
          });
          sameBits(r, n, `${M}×${N}×${K} (${threads} threads)`);
        }
      }
      setNumThreads(prevThreads);
    });

    test('int8 dynamic: extreme codes accumulate exactly (no 16-bit saturation)', () => {
      const [M, N, K] = [4, 16, 4096];
      // weights all -128 (one row +127), activations at the top of the 7-bit range
      const codes = new Int8Array(N * K).fill(-128);
      codes.fill(127, 0, K);
      const w: QuantizedWeight = { shape: [N, K], bits: 8, codes, groupSize: K, perTensor: false, scale: new Float32Array(N).fill(1), zero: null };
      const x = new Float32Array(M * K).fill(1); // per-row range [0, 1]: codes 127, zero 0, scale 1/127
      const [r, n] = both(() => {
        const out = new Float32Array(M * N);
        int8DynamicLinear(x, M, w, null, out);
        return out;
      });
      sameBits(r, n, 'extremes');
      const s = Math.fround(1 / 127);
      assert.equal(n[1], Math.fround(s * (127 * -128 * K)));
      assert.equal(n[0], Math.fround(s * (127 * 127 * K)));
    });

    test('weight-only int8 and int4: native dequantization equals the reference bit for bit; the dequantizing GEMM agrees to float32 rounding', () => {
      const q = addon as unknown as { dequantRows: (...a: unknown[]) => void };
      for (const [M, N, K, spec] of [
        [1, 70, 64, { bits: 8, granularity: 'channel', symmetric: true }],
        [7, 33, 96, { bits: 8, granularity: 'tensor', symmetric: false }],
        [3, 130, 128, { bits: 4, granularity: 'group', groupSize: 64, symmetric: false }],
          [5, 21, 96, { bits: 2, granularity: 'group', groupSize: 32, symmetric: false }],
        [2, 9, 64, { bits: 3, granularity: 'group', groupSize: 32, symmetric: true }],
        // packed-GEMM path (M > 4) with K blocks that start on an odd element (514 = 2 × 257: a nibble boundary)
        [33, 50, 514, { bits: 4, granularity: 'channel', symmetric: false }],
        [12, 16, 1000, { bits: 8, granularity: 'group', groupSize: 8, symmetric: false }],
        [70, 200, 768, { bits: 4, granularity: 'group', groupSize: 128, symmetric: true }],
      ] as const) {
        const w = quantizeWeight('w', rand(N * K, 0.1), N, K, spec);
        const [r0, r1] = [1, N];
        const want = new Float32Array((r1 - r0) * K);
        dequantizeRows(w, r0, r1, want);
        const got = new Float32Array((r1 - r0) * K);
        const z = w.zero;
        q.dequantRows(w.bits === 8 ? w.codes : null, w.bits === 8 ? null : w.codes, w.bits, w.scale, z instanceof Int8Array ? z : null, z instanceof Uint8Array ? z : null, w.groupSize, w.perTensor, K, r0, r1, got);
        sameBits(want, got, `dequant ${JSON.stringify(spec)}`);
        const x = rand(M * K);
        const bias = rand(N);
        for (const threads of [1, 2]) {
          const prevThreads = getNumThreads();
          setNumThreads(threads);
          const [r, n] = both(() => {
            const out = new Float32Array(M * N);
            weightOnlyLinear(x, M, w, bias, out);
            return out;
          });
          setNumThreads(prevThreads);
          for (let i = 0; i < r.length; i++) assert.ok(Math.abs(r[i]! - n[i]!) <= 2e-5 * (1 + Math.abs(r[i]!)), `${M}×${N}×${K} ${JSON.stringify(spec)} (${threads}t) [${i}]: ${r[i]} vs ${n[i]}`);
        }
      }
    });

    test('int8 static: native equals the reference bit for bit', () => {
      for (const threads of [1, 2]) {
        const prevThreads = getNumThreads();
        setNumThreads(threads);
        for (const [M, N, K, inScale, inZero] of [[1, 1, 1, 0.02, 0], [3, 17, 5, 0.05, 64], [9, 31, 300, 0.03, 127], [64, 96, 768, 0.04, 60]]) {
          const w = quantizeWeight('w', rand(N * K, 0.05), N, K, { bits: 8, granularity: 'channel', symmetric: true });
          const x = rand(M * K);
          const bias = rand(N);
          const [r, n] = both(() => {
            const out = new Float32Array(M * N);
            int8StaticLinear(x, M, w, inScale, inZero, bias, out);
            return out;
          });
          sameBits(r, n, `static ${M}×${N}×${K} (${threads} threads)`);
        }
        setNumThreads(prevThreads);
      }
    });
  });

// Module.loadStateDict copies a checkpoint into the existing buffers in place (Tensor.copy_): the packed int8 weight
// the native int8 GEMM caches per codes array must not survive that (it did: old codes with the new scales).
for (const scheme of ['int8-dynamic', 'int8-static'] as const)
  test(`quantLinear(scheme=${scheme}) after loadStateDict uses the new codes`, { skip }, () => {
    const [M, N, K] = [5, 33, 67];
    const make = (seed: number) => {
      const gg = new Generator(seed);
      const w = quantizeWeight('w', Float32Array.from({ length: N * K }, () => 0.05 * gg.normal()), N, K, { bits: 8, granularity: 'channel', symmetric: true });
      const m = new QuantLinear(scheme, w, Tensor.from(Float32Array.from({ length: N }, () => gg.normal())));
      if (scheme === 'int8-static') m.setInputQuant(4 / 127, 64);
      return m;
    };
    const x = Tensor.from(rand(M * K), { shape: [M, K] });
    const prev = setBackend('native');
    try {
      const a = make(1);
      const b = make(2);
      const before = a.forward(x).data as Float32Array; // packs and caches a's codes
      a.loadStateDict(b.stateDict());
      const got = a.forward(x).data as Float32Array;
      const fresh = make(2).forward(x).data as Float32Array; // a module built with the new weights
      setBackend('ref');
      const want = a.forward(x).data as Float32Array;
      sameBits(want, got, `${scheme} after loadStateDict, native vs ref`);
      sameBits(fresh, got, `${scheme} after loadStateDict vs a freshly built module`);
      assert.ok(before.some((v, i) => v !== got[i]), 'the two weight sets must give different outputs');
      // and back again: writing the old weights restores the old output
      setBackend('native');
      a.loadStateDict(make(1).stateDict());
      sameBits(before, a.forward(x).data as Float32Array, `${scheme} after loading the first weights again`);
      // any in-place write through the Tensor API (here fill_) invalidates the packed copy too
      a.getBuffer('weight')!.fill_(3);
      const filled = a.forward(x).data as Float32Array;
      setBackend('ref');
      sameBits(a.forward(x).data as Float32Array, filled, `${scheme} after fill_ on the codes`);
    } finally {
      setBackend(prev);
    }
  });

test('storageVersion(tensor): copy_ and fill_ bump it, for every view of the storage', () => {
  const buf = new Int8Array(12);
  const t = new Tensor(buf, [3, 4], 'int8');
  const view = new Tensor(buf.subarray(4), [8], 'int8');
  const v0 = storageVersion(buf);
  t.copy_(Tensor.from(new Int8Array(12).fill(2), { shape: [3, 4] }));
  const v1 = storageVersion(buf);
  assert.ok(v1 > v0, 'copy_ bumps the version');
  view.fill_(1);
  assert.ok(storageVersion(buf) > v1, 'a write through another view of the same buffer bumps it too');
  assert.equal(storageVersion(view.data), storageVersion(t.data));
  assert.equal(storageVersion(new Int8Array(12)), 0, 'an untouched storage is at version 0');
});
