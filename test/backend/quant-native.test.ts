// The addon's integer kernels (native/quant.cc) against the TypeScript reference paths in
// src/compress/quant/kernels.ts: bit-identical int8 dynamic outputs and weight dequantization, and the dequantizing
// weight-only GEMM (int8 / int4, GEMV and packed paths) to float32 rounding, at odd sizes, extreme codes and 1 and
// 2 threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, getNumThreads, setNumThreads } from '../../src/index.ts';
import { nativeAddon, setBackend } from '../../src/backend/registry.ts';
import { int8DynamicLinear, weightOnlyLinear } from '../../src/compress/quant/kernels.ts';
import { quantizeWeight } from '../../src/compress/quant/rtn.ts';
import { dequantizeRows, type QuantizedWeight } from '../../src/compress/quant/modules.ts';

const native = nativeAddon() !== null;
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

test('int8 dynamic: native equals the reference bit for bit', { skip: !native && 'native addon not built' }, () => {
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

test('int8 dynamic: extreme codes accumulate exactly (no 16-bit saturation)', { skip: !native && 'native addon not built' }, () => {
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

test('weight-only int8 and int4: native dequantization equals the reference bit for bit; the dequantizing GEMM agrees to float32 rounding', { skip: !native && 'native addon not built' }, () => {
  const addon = nativeAddon() as unknown as { dequantRows: (...a: unknown[]) => void };
  for (const [M, N, K, spec] of [
    [1, 70, 64, { bits: 8, granularity: 'channel', symmetric: true }],
    [7, 33, 96, { bits: 8, granularity: 'tensor', symmetric: false }],
    [3, 130, 128, { bits: 4, granularity: 'group', groupSize: 64, symmetric: false }],
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
    addon.dequantRows(w.bits === 8 ? w.codes : null, w.bits === 8 ? null : w.codes, w.bits, w.scale, z instanceof Int8Array ? z : null, z instanceof Uint8Array ? z : null, w.groupSize, w.perTensor, K, r0, r1, got);
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
