// Per-layer kernel choice of QuantLinear (kernels.ts chooseKernel, issue 25): integer schemes always run the exact
// int8 GEMM; weight-only layers choose between dequantize-in-pack ('wo-pack') and a cached dequantized float32 weight
// ('fp32-cache', tiny layers only) by measurement per shape class, or as SHRINK_QUANT_KERNEL forces; both give the
// reference's numbers up to float32 summation order, and the choice and its reason are reported per class.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor } from '../../src/index.ts';
import { setBackend } from '../../src/backend/registry.ts';
import { nativeTestSkip } from '../../src/backend/native/index.ts';
import { FP32_CACHE_MAX_WEIGHTS, chooseKernel, clearKernelChoices, fp32CacheBytes, shapeClass } from '../../src/compress/quant/kernels.ts';
import { quantizeWeight } from '../../src/compress/quant/rtn.ts';
import { QuantEmbedding, QuantLinear, referenceForward } from '../../src/compress/quant/modules.ts';

const skip = nativeTestSkip();
const g = new Generator(25);
const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => s * g.normal());

function layer(scheme: 'int8' | 'int4' | 'int8-dynamic', N: number, K: number): QuantLinear {
  const spec = scheme === 'int4' ? ({ bits: 4, granularity: 'group', groupSize: 32, symmetric: false } as const) : ({ bits: 8, granularity: 'channel', symmetric: true } as const);
  const w = quantizeWeight('w', rand(N * K, 0.1), N, K, spec);
  return new QuantLinear(scheme, w, new Tensor(rand(N, 0.1), [N], 'float32'));
}

function close(a: Float32Array, b: Float32Array, what: string, tol = 2e-5): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i]! - b[i]!) > tol * (1 + Math.abs(b[i]!))) assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]}`);
}

const prevEnv = process.env.SHRINK_QUANT_KERNEL;
afterEach(() => {
  if (prevEnv === undefined) delete process.env.SHRINK_QUANT_KERNEL;
  else process.env.SHRINK_QUANT_KERNEL = prevEnv;
  clearKernelChoices();
});

test('shape classes: decode M ≤ 4, small M ≤ 64, large above', () => {
  assert.deepEqual([1, 4, 5, 64, 65, 4096].map(shapeClass), ['decode', 'decode', 'small', 'small', 'large', 'large']);
});

test('SHRINK_QUANT_KERNEL rejects unknown names', () => {
  process.env.SHRINK_QUANT_KERNEL = 'fastest';
  assert.throws(() => layer('int8', 8, 16).kernelFor(8), /SHRINK_QUANT_KERNEL must be one of auto, int8-gemm, wo-pack, fp32-cache/);
});

test('weight-only: wo-pack and fp32-cache agree with the reference (float32 summation order) in every shape class', { skip }, () => {
  const prev = setBackend('native');
  try {
    for (const scheme of ['int8', 'int4'] as const)
      for (const M of [1, 3, 17, 130]) {
        const l = layer(scheme, 48, 64);
        const x = new Tensor(rand(M * 64), [M, 64], 'float32');
        const ref = referenceForward(l, x).data as Float32Array;
        const outs: Record<string, Float32Array> = {};
        for (const k of ['wo-pack', 'fp32-cache'] as const) {
          process.env.SHRINK_QUANT_KERNEL = k;
          const c = l.kernelFor(M);
          assert.equal(c.kernel, k);
          assert.match(c.reason, /forced by SHRINK_QUANT_KERNEL/);
          outs[k] = l.forward(x).data as Float32Array;
          close(outs[k]!, ref, `${scheme} M=${M} ${k}`);
        }
        assert.ok(fp32CacheBytes(l.qweight) === 48 * 64 * 4, 'the fp32 cache holds 4 bytes per weight');
      }
  } finally {
    setBackend(prev);
  }
});

test('weight-only auto: a tiny layer is measured once per shape class and keeps its choice; a large one stays wo-pack', { skip }, () => {
  const prev = setBackend('native');
  try {
    delete process.env.SHRINK_QUANT_KERNEL;
    const l = layer('int4', 64, 128);
    const x = new Tensor(rand(100 * 128), [100, 128], 'float32');
    const y = l.forward(x).data as Float32Array;
    const c = l.kernelFor(100);
    assert.ok(c.kernel === 'wo-pack' || c.kernel === 'fp32-cache', c.kernel);
    assert.match(c.reason, /measured at M=100 \(large\): wo-pack [\d.]+ µs, fp32-cache [\d.]+ µs/);
    assert.equal(l.kernelFor(200), c, 'same class: no second measurement');
    if (c.kernel === 'wo-pack') assert.equal(fp32CacheBytes(l.qweight), 0, 'a cache that lost the measurement is dropped');
    close(y, referenceForward(l, x).data as Float32Array, 'auto');
    // another layer of the same shape and format reuses the measurement (cached per CPU model and shape)
    const l2 = layer('int4', 64, 128);
    assert.equal(l2.kernelFor(100).reason, c.reason);
    const plan = l.kernelPlan();
    assert.deepEqual(Object.keys(plan), ['decode', 'small', 'large']);
    const big = layer('int8', 512, 256);
    assert.ok(512 * 256 > FP32_CACHE_MAX_WEIGHTS);
    const b = big.kernelFor(64);
    assert.equal(b.kernel, 'wo-pack');
    assert.match(b.reason, /no fp32 cache/);
  } finally {
    setBackend(prev);
  }
});

test('int8-dynamic always runs the integer GEMM, whatever SHRINK_QUANT_KERNEL says', { skip }, () => {
  const prev = setBackend('native');
  try {
    process.env.SHRINK_QUANT_KERNEL = 'fp32-cache';
    const l = layer('int8-dynamic', 16, 32);
    const c = l.kernelFor(8);
    assert.equal(c.kernel, 'int8-gemm');
    assert.match(c.reason, /scheme's definition.*does not apply/);
    const w = l.qweight;
    assert.equal(chooseKernel('int8-static', w, 1).kernel, 'int8-gemm');
    l.forward(new Tensor(rand(8 * 32), [8, 32], 'float32'));
    assert.equal(fp32CacheBytes(w), 0);
  } finally {
    setBackend(prev);
  }
});

test('fp32-cache follows new codes copied into the layer (loadStateDict)', { skip }, () => {
  const prev = setBackend('native');
  try {
    process.env.SHRINK_QUANT_KERNEL = 'fp32-cache';
    const a = layer('int8', 24, 32);
    const b = layer('int8', 24, 32);
    const x = new Tensor(rand(10 * 32), [10, 32], 'float32');
    a.forward(x);
    a.loadStateDict(b.stateDict());
    close(a.forward(x).data as Float32Array, referenceForward(b, x).data as Float32Array, 'after loadStateDict');
  } finally {
    setBackend(prev);
  }
});

test('TypeScript backend: the reference kernel', () => {
  const prev = setBackend('ref');
  try {
    const l = layer('int4', 16, 32);
    assert.equal(l.kernelFor(5).kernel, 'reference');
    const x = new Tensor(rand(5 * 32), [5, 32], 'float32');
    close(l.forward(x).data as Float32Array, referenceForward(l, x).data as Float32Array, 'ref backend');
  } finally {
    setBackend(prev);
  }
});

test('QuantEmbedding: the native gather (dequantGather) equals the TypeScript row loop bit for bit', { skip }, () => {
  for (const spec of [{ bits: 8, granularity: 'channel', symmetric: true }, { bits: 4, granularity: 'group', groupSize: 16, symmetric: false }, { bits: 3, granularity: 'group', groupSize: 8, symmetric: false }] as const) {
    const [V, D] = [37, 48];
    const e = new QuantEmbedding(quantizeWeight('e', rand(V * D, 0.2), V, D, spec));
    const ids = Tensor.from(Int32Array.from({ length: 50 }, (_, i) => (i * 7) % V), { shape: [5, 10] });
    const prev = setBackend('ref');
    const r = e.forward(ids).data as Float32Array;
    setBackend('native');
    const n = e.forward(ids).data as Float32Array;
    setBackend(prev);
    for (let i = 0; i < r.length; i++) if (!Object.is(r[i], n[i])) assert.fail(`${spec.bits}-bit: element ${i}: ${r[i]} vs ${n[i]}`);
    assert.throws(() => e.forward(Tensor.from(Int32Array.from([0, V]), { shape: [2] })), /index 37 is out of range for 37 embeddings/);
  }
});
