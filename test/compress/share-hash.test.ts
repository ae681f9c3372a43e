// share.hash (HashedNets): the hash is MurmurHash3 x86_32 (checked against published vectors through a byte-wise
// reference) and deterministic; the bucket fit is the least-squares one; the bucket gradient is the sum of ξ·dV
// (finite differences + a dense Linear); inference caches V and follows changed buckets; save/reload bit-exact with
// a smaller file; option errors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Generator, Tensor, compress, noGrad, savePretrained } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { Conv1D, Linear } from '../../src/nn/layers.ts';
import { modelSize } from '../../src/eval/size.ts';
import type { ModelInputs, ModelOutput } from '../../src/models/outputs.ts';
import { HashedLinear, fitBuckets, hashIndexSigns, hashModel, hashedWeight, murmur3Pair } from '../../src/compress/share/hash.ts';
import { expectThrows } from '../harness/expect.ts';
import { gradcheck, f64 } from '../harness/gradcheck.ts';
import { tinyBert, tinyGpt2 } from '../harness/tiny-models.ts';
import { roundTrip } from '../harness/roundtrip.ts';

const { runRecipe } = compress;
type Fwd = Module & { forward(i: ModelInputs): ModelOutput };

/** MurmurHash3 x86_32 over bytes, written from the reference algorithm (blocks, tail, fmix). */
function murmur3Bytes(key: Uint8Array, seed: number): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const nblocks = key.length >> 2;
  const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));
  for (let b = 0; b < nblocks; b++) {
    let k = key[4 * b]! | (key[4 * b + 1]! << 8) | (key[4 * b + 2]! << 16) | (key[4 * b + 3]! << 24);
    k = Math.imul(rotl(Math.imul(k, c1), 15), c2);
    h = (Math.imul(rotl(h ^ k, 13), 5) + 0xe6546b64) | 0;
  }
  // tail: the last 1–3 bytes, little-endian
  const t = nblocks * 4;
  const rest = key.length & 3;
  if (rest) {
    let k = 0;
    for (let r = rest - 1; r >= 0; r--) k = (k << 8) | key[t + r]!;
    h ^= Math.imul(rotl(Math.imul(k, c1), 15), c2);
  }
  h ^= key.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const pairBytes = (i: number, j: number) => new Uint8Array(Uint32Array.from([i, j]).buffer);

const g0 = new Generator(17);
const ids = Tensor.randint(1, 40, [3, 6], { dtype: 'int32', generator: g0 });
const attn = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0]), { shape: [3, 6] });
const clsBatch = { inputIds: ids, attentionMask: attn, labels: Tensor.from(Int32Array.from([0, 2, 1])) };

function fileBytes(m: Module): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'share-hash-'));
  try {
    savePretrained(m as never, dir);
    return fs.statSync(path.join(dir, 'model.safetensors')).size;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('hash functions', () => {
  test('the byte-wise reference reproduces published MurmurHash3 x86_32 vectors', () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    assert.equal(murmur3Bytes(enc(''), 0), 0);
    assert.equal(murmur3Bytes(enc(''), 1), 0x514e28b7);
    assert.equal(murmur3Bytes(enc(''), 0xffffffff), 0x81f16f39);
    assert.equal(murmur3Bytes(new Uint8Array(4), 0), 0x2362f9de);
    assert.equal(murmur3Bytes(enc('aaaa'), 0x9747b28c), 0x5a97808a);
    assert.equal(murmur3Bytes(enc('Hello, world!'), 0x9747b28c), 0x24884cba);
    assert.equal(murmur3Bytes(enc('The quick brown fox jumps over the lazy dog'), 0x9747b28c), 0x2fa826cd);
  });

  test('murmur3Pair(i, j, seed) is MurmurHash3 of the 8-byte little-endian key (i, j)', () => {
    for (const [i, j, seed] of [[0, 0, 0], [1, 2, 3], [767, 3071, 42], [0xffffffff, 7, 0x9e3779b9], [123456, 654321, 0xdeadbeef]])
      assert.equal(murmur3Pair(i!, j!, seed!), murmur3Bytes(pairBytes(i!, j!), seed!), `(${i}, ${j}; ${seed})`);
  });

  test('maps are deterministic, seed-dependent, spread over the buckets, signs balanced', () => {
    const [N, K, B] = [48, 64, 97];
    const a = hashIndexSigns(N, K, B, 7);
    const b = hashIndexSigns(N, K, B, 7);
    assert.deepEqual(a.index, b.index);
    assert.deepEqual(a.sign, b.sign);
    const c = hashIndexSigns(N, K, B, 8);
    assert.ok(a.index.some((x, p) => x !== c.index[p]));
    const counts = new Float64Array(B);
    for (const x of a.index) {
      assert.ok(x >= 0 && x < B);
      counts[x]++;
    }
    const mean = (N * K) / B;
    for (const n of counts) assert.ok(Math.abs(n - mean) < 6 * Math.sqrt(mean), `bucket count ${n} vs mean ${mean.toFixed(1)}`);
    const plus = a.sign.filter((s) => s === 1).length;
    assert.ok(a.sign.every((s) => s === 1 || s === -1));
    assert.ok(Math.abs(plus / (N * K) - 0.5) < 0.05, `${plus} of ${N * K} signs are +1`);
    // the sign is not a function of the bucket
    const mixed = new Set<number>();
    for (let p = 0; p < N * K; p++) if (a.sign[p] !== a.sign[a.index.indexOf(a.index[p]!)]) mixed.add(a.index[p]!);
    assert.ok(mixed.size > B / 2);
  });
});

describe('least-squares buckets', () => {
  const [N, K, B] = [12, 20, 31];
  const g = new Generator(3);
  const W = Float64Array.from({ length: N * K }, () => g.normal());
  const { index, sign } = hashIndexSigns(N, K, B, 11);
  const err = (w: ArrayLike<number>) => {
    let e = 0;
    for (let p = 0; p < W.length; p++) e += (W[p]! - sign[p]! * w[index[p]!]!) ** 2;
    return e;
  };
  const best = fitBuckets(W, index, sign, B);

  test('each bucket is the mean of ξ·W over its members, and the residual is orthogonal to every bucket', () => {
    for (let b = 0; b < B; b++) {
      let s = 0;
      let n = 0;
      let normal = 0;
      for (let p = 0; p < W.length; p++)
        if (index[p] === b) {
          s += sign[p]! * W[p]!;
          n++;
          normal += sign[p]! * (W[p]! - sign[p]! * best[b]!);
        }
      assert.ok(Math.abs(best[b]! - (n ? s / n : 0)) < 1e-12);
      assert.ok(Math.abs(normal) < 1e-10, `bucket ${b}: Σ ξ·(W − ξ w) = ${normal}`);
    }
  });

  test('the mean fit beats the first member’s value and every perturbation', () => {
    const e = err(best);
    const first = new Float64Array(B);
    const taken = new Uint8Array(B);
    for (let p = 0; p < W.length; p++)
      if (!taken[index[p]!]) {
        taken[index[p]!] = 1;
        first[index[p]!] = sign[p]! * W[p]!;
      }
    assert.ok(err(first) > e, `first member ${err(first)} vs mean ${e}`);
    const gp = new Generator(9);
    for (let t = 0; t < 20; t++) {
      const w = Float64Array.from(best, (v) => v + 0.05 * gp.normal());
      assert.ok(err(w) > e);
    }
    // one bucket moved by ±δ raises the error by exactly n_b·δ² (a parabola with its minimum at the mean)
    const b = index[0]!;
    const nb = index.filter((x) => x === b).length;
    for (const d of [0.1, -0.3]) {
      const w = Float64Array.from(best);
      w[b] += d;
      assert.ok(Math.abs(err(w) - e - nb * d * d) < 1e-9);
    }
  });

  test('HashedLinear.fit stores the same buckets and its weight error is below the zero weight’s', () => {
    const h = HashedLinear.fit(W, [N, K], B, 11);
    assert.deepEqual(h.buckets.toFloat32Array(), Float32Array.from(best));
    assert.equal(h.compression, (N * K) / B);
    const V = h.weightOutIn().toFloat32Array();
    let num = 0;
    for (let p = 0; p < W.length; p++) num += (W[p]! - V[p]!) ** 2;
    assert.ok(Math.abs(num - err(best)) < 1e-6 * err(best));
  });
});

describe('HashedLinear', () => {
  test('gradcheck: the bucket gradient (gather × constant signs) matches finite differences', () => {
    const g = new Generator(5);
    const [N, K, B] = [4, 5, 7];
    const maps = hashIndexSigns(N, K, B, 2);
    const idx = Tensor.from(maps.index);
    const sgn = Tensor.from(Float64Array.from(maps.sign));
    const w = f64([B], g);
    const x = f64([3, K], g).requiresGrad_(false);
    gradcheck('hashedWeight', (b) => x.matmul(hashedWeight(b, idx, sgn, N, K).t()), [w]);
  });

  test('bucket gradient = Σ over members of ξ·dV of the equivalent dense Linear; inference caches V and follows the buckets', () => {
    const g = new Generator(8);
    const [N, K, B] = [6, 5, 9];
    const W = Float64Array.from({ length: N * K }, () => g.normal());
    const bias = Tensor.randn([N], { generator: g });
    const h = HashedLinear.fit(W, [N, K], B, 4, bias);
    const dense = Linear.fromWeights(h.weightOutIn(), bias);
    const x = Tensor.randn([3, K], { generator: g });
    const R = Tensor.randn([3, N], { generator: g });
    h.forward(x).mul(R).sum().backward();
    dense.forward(x).mul(R).sum().backward();
    const gv = dense.weight.grad!.toFloat32Array();
    const { index, sign } = hashIndexSigns(N, K, B, 4);
    const want = new Float64Array(B);
    for (let p = 0; p < N * K; p++) want[index[p]!] += sign[p]! * gv[p]!;
    const got = h.buckets.grad!.toFloat32Array();
    for (let b = 0; b < B; b++) assert.ok(Math.abs(got[b]! - want[b]!) < 1e-5, `bucket ${b}: ${got[b]} vs ${want[b]}`);
    assert.deepEqual(h.bias!.grad!.toFloat32Array(), dense.bias!.grad!.toFloat32Array());
    h.eval();
    const y0 = noGrad(() => h.forward(x).toFloat32Array());
    assert.deepEqual(y0, noGrad(() => dense.forward(x).toFloat32Array()));
    assert.deepEqual(noGrad(() => h.forward(x).toFloat32Array()), y0, 'cached');
    noGrad(() => h.buckets.copy_(h.buckets.mul(2)));
    const y1 = noGrad(() => h.forward(x).toFloat32Array());
    assert.notDeepEqual(y1, y0);
    assert.deepEqual(y1, noGrad(() => Linear.fromWeights(h.weightOutIn(), bias).forward(x).toFloat32Array()));
  });
});

describe('share.hash method', () => {
  test('BERT, default ratio 1/8: per-layer buckets, smaller model and file, save/reload bit-exact', () => {
    const m = tinyBert();
    const before = modelSize(m);
    const fileBefore = fileBytes(m);
    const r = runRecipe(m, [{ method: 'share.hash' }]).steps[0]!;
    assert.equal(r.layers, 12);
    // q/k/v/o 32×32 → 128 buckets, FFN 24×32 → 96
    assert.equal(r.buckets, '128/128/128/128/96/96/128/128/128/128/96/96');
    assert.equal(r.compression, 8);
    assert.ok((r.mean_weight_error as number) > 0 && (r.mean_weight_error as number) < 1);
    const q = m.getSubmodule('bert.encoder.layer.0.attention.self.query') as HashedLinear;
    assert.ok(q instanceof HashedLinear);
    assert.equal(q.numBuckets, 128);
    const after = modelSize(m);
    assert.equal(before.bytes - after.bytes, (r.layer_bytes_before as number) - (r.layer_bytes_after as number));
    assert.ok(fileBytes(m) < fileBefore - 30000, 'the file shrinks by the hashed layers');
    const y0 = noGrad(() => (m as Fwd).forward(clsBatch).logits.toFloat32Array());
    const { loaded, config } = roundTrip(m);
    const e = (config.compression_config as { modules: Record<string, Record<string, unknown>> }).modules['bert.encoder.layer.0.attention.self.query']!;
    assert.deepEqual(e, { type: 'hashed_linear', in_features: 32, out_features: 32, buckets: 128, seed: '0', hash: 'murmur3_x86_32', bias: true });
    const lq = loaded.getSubmodule('bert.encoder.layer.0.attention.self.query') as HashedLinear;
    assert.deepEqual(lq.maps().index.toArray(), q.maps().index.toArray());
    assert.deepEqual(noGrad(() => (loaded as Fwd).forward(clsBatch).logits.toFloat32Array()), y0);
    assert.equal(modelSize(loaded).bytes, after.bytes);
  });

  test('GPT-2 Conv1D layers, fixed bucket count, a seed above 2^31: bit-exact round trip', () => {
    const m = tinyGpt2();
    const c = m.getSubmodule('transformer.h.1.mlp.c_fc') as Conv1D;
    const W = noGrad(() => c.weightOutIn().contiguous().toFloat32Array());
    const r = runRecipe(m, [{ method: 'share.hash', buckets: 50, seed: 4000000000, targets: ['transformer.h.1.**'] }]).steps[0]!;
    assert.equal(r.layers, 4);
    assert.equal(r.buckets, '50/50/50/50');
    const h = m.getSubmodule('transformer.h.1.mlp.c_fc') as HashedLinear;
    assert.equal(h.seed, 4000000000);
    const { index, sign } = hashIndexSigns(24, 32, 50, 4000000000);
    assert.deepEqual(h.buckets.toFloat32Array(), Float32Array.from(fitBuckets(W, index, sign, 50)));
    assert.ok(m.getSubmodule('transformer.h.0.mlp.c_fc') instanceof Conv1D);
    const batch = { inputIds: ids };
    const y0 = noGrad(() => (m as unknown as Fwd).forward(batch).logits.toFloat32Array());
    const { loaded, config } = roundTrip(m);
    assert.equal((config.compression_config as { modules: Record<string, Record<string, unknown>> }).modules['transformer.h.1.mlp.c_fc']!.seed, '4000000000');
    assert.equal((loaded.getSubmodule('transformer.h.1.mlp.c_fc') as HashedLinear).seed, 4000000000);
    assert.deepEqual(noGrad(() => (loaded as unknown as Fwd).forward(batch).logits.toFloat32Array()), y0);
  });

  test('finetune after share.hash trains the buckets', () => {
    const m = tinyBert();
    hashModel(m, { ratio: 0.25 });
    const q = m.getSubmodule('bert.encoder.layer.1.output.dense') as HashedLinear;
    assert.ok(m.parameters().includes(q.buckets));
    m.train();
    const out = (m as Fwd).forward(clsBatch);
    out.loss!.backward();
    assert.ok(q.buckets.grad && q.buckets.grad.toFloat32Array().some((x) => x !== 0));
  });

  test('option errors name the option', () => {
    const m = tinyBert();
    expectThrows(() => runRecipe(m, [{ method: 'share.hash', ratio: 0.5, buckets: 10 }]), "share.hash: options 'ratio' and 'buckets' both set the bucket count: give one");
    expectThrows(() => runRecipe(m, [{ method: 'share.hash', ratio: 1.5 }]), "share.hash: option 'ratio' must be in (0, 1] (buckets per weight), got 1.5");
    expectThrows(() => runRecipe(m, [{ method: 'share.hash', buckets: 0 }]), "share.hash: option 'buckets' must be an integer >= 1, got 0");
    expectThrows(() => runRecipe(m, [{ method: 'share.hash', buckets: 1000 }]), "share.hash: option 'buckets' 1000: layer 'bert.encoder.layer.0.intermediate.dense' has only 768 weights");
    expectThrows(() => runRecipe(m, [{ method: 'share.hash', seed: -1 }]), "share.hash: option 'seed' must be an integer in [0, 2^32), got -1");
    assert.ok(m.getSubmodule('bert.encoder.layer.0.attention.self.query') instanceof Linear, 'nothing changed');
  });
});
