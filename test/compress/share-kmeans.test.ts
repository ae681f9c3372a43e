// share.kmeans: 1-D k-means against brute force (converged assignment: every weight at its nearest centroid,
// centroids the means of their members; linear init values), 4-bit packing, centroid gradient = sum of the members'
// gradients (gradcheck + a dense Linear), save/reload bit-exact, stored bytes, option errors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, compress, noGrad } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { Linear } from '../../src/nn/layers.ts';
import { modelSize } from '../../src/eval/size.ts';
import type { ModelInputs, ModelOutput } from '../../src/models/outputs.ts';
import { initCentroids, kmeans1d, packCodes, unpackCodes } from '../../src/compress/share/kmeans.ts';
import { ClusteredLinear, gatherWeight, kmeansModel } from '../../src/compress/share/clustered.ts';
import { expectThrows } from '../harness/expect.ts';
import { gradcheck, f64 } from '../harness/gradcheck.ts';
import { tinyBert } from '../harness/tiny-models.ts';
import { roundTrip } from '../harness/roundtrip.ts';

const { runRecipe } = compress;
type Fwd = Module & { forward(i: ModelInputs): ModelOutput };

function values(n: number, seed: number): Float64Array {
  const g = new Generator(seed);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = (g.random() - 0.5) * (g.random() < 0.1 ? 6 : 1);
  return v;
}

describe('k-means', () => {
  test('linear init spaces k values evenly over [min, max]', () => {
    const c = initCentroids([0.5, -1, 3, 2, 0, 1], 5, 'linear');
    assert.deepEqual([...c], [-1, 0, 1, 2, 3]);
  });

  for (const init of ['linear', 'random', 'kmeans++'] as const)
    test(`${init}: converged assignment matches brute force; centroids are their members' means; seeded`, () => {
      const v = values(600, 4);
      const k = 16;
      const r = kmeans1d(v, k, { init, iters: 500, seed: 3 });
      assert.ok(r.converged, `${init} converged in ${r.iterations}`);
      for (let j = 1; j < k; j++) assert.ok(r.centroids[j - 1]! <= r.centroids[j]!);
      const sums = new Float64Array(k);
      const counts = new Float64Array(k);
      for (let i = 0; i < v.length; i++) {
        let best = Infinity;
        for (let j = 0; j < k; j++) best = Math.min(best, Math.abs(v[i]! - r.centroids[j]!));
        assert.ok(Math.abs(v[i]! - r.centroids[r.assign[i]!]!) <= best + 1e-15, `value ${i} is not at its nearest centroid`);
        sums[r.assign[i]!] += v[i]!;
        counts[r.assign[i]!]++;
      }
      for (let j = 0; j < k; j++) if (counts[j]) assert.ok(Math.abs(sums[j]! / counts[j]! - r.centroids[j]!) < 1e-12);
      const again = kmeans1d(v, k, { init, iters: 500, seed: 3 });
      assert.deepEqual([...again.centroids], [...r.centroids]);
    });

  test('brute force on tiny data: the optimal 2-clustering of sorted values is found', () => {
    const v = [0, 0.1, 0.2, 5, 5.1, 9];
    // every split point of the sorted values; k-means from linear init reaches the best here
    let best = Infinity;
    for (let s = 1; s < v.length; s++) {
      const a = v.slice(0, s);
      const b = v.slice(s);
      const mean = (x: number[]) => x.reduce((p, q) => p + q, 0) / x.length;
      const cost = a.reduce((p, x) => p + (x - mean(a)) ** 2, 0) + b.reduce((p, x) => p + (x - mean(b)) ** 2, 0);
      best = Math.min(best, cost);
    }
    const r = kmeans1d(v, 2, { init: 'linear' });
    const cost = v.reduce((p, x, i) => p + (x - r.centroids[r.assign[i]!]!) ** 2, 0);
    assert.ok(Math.abs(cost - best) < 1e-12, `${cost} vs ${best}`);
  });

  test('4-bit packing round trip (odd length), low nibble first; 8-bit', () => {
    const codes = Uint8Array.from([1, 15, 0, 7, 9]);
    const p = packCodes(codes, 4);
    assert.deepEqual([...p], [0xf1, 0x70, 0x09]);
    assert.deepEqual([...unpackCodes(p, 5, 4)], [...codes]);
    const big = Uint8Array.from({ length: 1001 }, (_, i) => (i * 7) % 16);
    assert.deepEqual([...unpackCodes(packCodes(big, 4), 1001, 4)], [...big]);
    const b8 = Uint8Array.from({ length: 300 }, (_, i) => i % 256);
    assert.deepEqual([...unpackCodes(packCodes(b8, 8), 300, 8)], [...b8]);
    expectThrows(() => packCodes([16], 4), 'code 16 does not fit 4 bits');
  });
});

describe('ClusteredLinear', () => {
  test('gradcheck: the gather from the codebook is differentiable', () => {
    const g = new Generator(5);
    const cb = f64([6], g);
    const idx = Tensor.from(Int32Array.from({ length: 12 }, (_, i) => (i * 5) % 6));
    const x = f64([3, 4], g).requiresGrad_(false);
    gradcheck('gatherWeight', (c) => x.matmul(gatherWeight(c, idx, 3, 4).t()), [cb]);
  });

  test('centroid gradient = sum of its members’ gradients in the equivalent dense Linear', () => {
    const g = new Generator(8);
    const [N, K, k] = [5, 6, 4];
    const codes = Uint8Array.from({ length: N * K }, () => Math.floor(g.random() * k));
    const cb = Float32Array.from([-0.5, -0.1, 0.2, 0.7]);
    const bias = Tensor.randn([N], { generator: g });
    const cl = ClusteredLinear.fromCodes(cb, codes, [N, K], 4, bias);
    const dense = Linear.fromWeights(cl.weightOutIn(), bias);
    const x = Tensor.randn([3, K], { generator: g });
    const R = Tensor.randn([3, N], { generator: g });
    cl.forward(x).mul(R).sum().backward();
    dense.forward(x).mul(R).sum().backward();
    const gw = dense.weight.grad!.toFloat32Array();
    const want = new Float64Array(k);
    for (let i = 0; i < N * K; i++) want[codes[i]!] += gw[i]!;
    const got = cl.codebook.grad!.toFloat32Array();
    for (let j = 0; j < k; j++) assert.ok(Math.abs(got[j]! - want[j]!) < 1e-5, `centroid ${j}: ${got[j]} vs ${want[j]}`);
    assert.deepEqual(cl.bias!.grad!.toFloat32Array(), dense.bias!.grad!.toFloat32Array());
    // inference (no grad) uses the cached dense weight, rebuilt when the codebook changes
    const y0 = noGrad(() => cl.forward(x).toFloat32Array());
    assert.deepEqual(y0, noGrad(() => dense.forward(x).toFloat32Array()));
    noGrad(() => cl.codebook.copy_(cl.codebook.mul(2)));
    const y1 = noGrad(() => cl.forward(x).toFloat32Array());
    assert.notDeepEqual(y1, y0);
  });

  test('stored bytes of a 4-bit 768×768 layer ≤ 14 % of fp32 (codebook + packed codes + bias)', () => {
    const N = 768;
    const codes = new Uint8Array(N * N).map((_, i) => i % 16);
    const cl = ClusteredLinear.fromCodes(Float32Array.from({ length: 16 }, (_, i) => i), codes, [N, N], 4, Tensor.zeros([N]));
    const parts = cl.storedSize();
    const bytes = parts.reduce((a, p) => a + p.bytes, 0);
    assert.equal(bytes, 64 + (N * N) / 2 + 4 * N);
    const fp32 = 4 * (N * N + N);
    assert.ok(bytes / fp32 <= 0.14, `${((100 * bytes) / fp32).toFixed(2)} %`);
    assert.equal(parts.reduce((a, p) => a + p.parameters, 0), N * N + N);
  });
});

const g = new Generator(17);
const ids = Tensor.randint(1, 40, [3, 6], { dtype: 'int32', generator: g });
const attn = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0]), { shape: [3, 6] });
const clsBatch = { inputIds: ids, attentionMask: attn, labels: Tensor.from(Int32Array.from([0, 2, 1])) };


describe('share.kmeans method', () => {
  for (const [clusters, bits] of [[16, 4], [64, 8]] as const)
    test(`BERT, ${clusters} clusters: ${bits}-bit codes, smaller stored size, save/reload bit-exact`, () => {
      const m = tinyBert();
      const before = modelSize(m);
      const r = runRecipe(m, [{ method: 'share.kmeans', clusters }]).steps[0]!;
      assert.equal(r.layers, 12);
      assert.equal(r.bits, bits);
      const q = m.getSubmodule('bert.encoder.layer.0.attention.self.query') as ClusteredLinear;
      assert.ok(q instanceof ClusteredLinear);
      assert.equal(q.clusters, clusters);
      const after = modelSize(m);
      assert.equal(after.parameters, before.parameters);
      assert.equal(before.bytes - after.bytes, (r.layer_bytes_before as number) - (r.layer_bytes_after as number));
      const y0 = noGrad(() => (m as Fwd).forward(clsBatch).logits.toFloat32Array());
      const { loaded, config } = roundTrip(m);
      const e = (config.compression_config as { modules: Record<string, Record<string, unknown>> }).modules['bert.encoder.layer.0.attention.self.query']!;
      assert.deepEqual(e, { type: 'clustered_linear', in_features: 32, out_features: 32, clusters, bits, bias: true });
      const lq = loaded.getSubmodule('bert.encoder.layer.0.attention.self.query') as ClusteredLinear;
      assert.deepEqual(lq.codes(), q.codes());
      assert.deepEqual(noGrad(() => (loaded as Fwd).forward(clsBatch).logits.toFloat32Array()), y0);
      assert.equal(modelSize(loaded).bytes, after.bytes);
    });

  test('finetune after share.kmeans trains the centroids, codes fixed', () => {
    const m = tinyBert();
    kmeansModel(m, { clusters: 16 });
    const q = m.getSubmodule('bert.encoder.layer.0.output.dense') as ClusteredLinear;
    assert.ok(m.parameters().includes(q.codebook));
    const codes = q.codes().slice();
    const cb0 = q.codebook.toFloat32Array();
    const out = (m as Fwd).forward(clsBatch);
    out.loss!.backward();
    assert.ok(q.codebook.grad && q.codebook.grad.toFloat32Array().some((x) => x !== 0));
    noGrad(() => q.codebook.copy_(q.codebook.sub(q.codebook.grad!.mul(0.1))));
    assert.notDeepEqual(q.codebook.toFloat32Array(), cb0);
    assert.deepEqual(q.codes(), codes);
  });

  test('option errors name the option', () => {
    const m = tinyBert();
    expectThrows(() => runRecipe(m, [{ method: 'share.kmeans', clusters: 64, bits: 4 }]), "option 'clusters' 64 does not fit option 'bits' 4");
    expectThrows(() => runRecipe(m, [{ method: 'share.kmeans', clusters: 300 }]), "option 'clusters' must be an integer in [2, 256]");
    expectThrows(() => runRecipe(m, [{ method: 'share.kmeans', bits: 2 }]), "option 'bits' must be 4 or 8");
    expectThrows(() => runRecipe(m, [{ method: 'share.kmeans', init: 'kmeans' }]), "option 'init' expects one of 'linear', 'random', 'kmeans++'");
    expectThrows(() => runRecipe(m, [{ method: 'share.kmeans', iters: 0 }]), "option 'iters' must be an integer >= 1");
    assert.ok(m.getSubmodule('bert.encoder.layer.0.attention.self.query') instanceof Linear, 'nothing changed');
  });
});
