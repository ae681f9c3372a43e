/**
 * Parity of the TRIME loss and the kNN-LM pieces with methods/knnlm_trime (princeton-nlp/TRIME trime_loss.py,
 * knnlm.py get_knn_log_prob, sequence_scorer.py combine_knn_and_vocab_probs), every tensor of the fixture checked,
 * plus a float64 gradient check of the loss in every memory variant.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor } from '../../src/index.ts';
import { methodFixture } from '../harness/fixtures.ts';
import { expectClose } from '../harness/expect.ts';
import { f64, gradcheck } from '../harness/gradcheck.ts';
import { inBatchLogits, memoryMask, trimeLoss } from '../../src/compress/memory/trime.ts';
import { interpolate, knnLogProb, memoryLogProb, ContinuousCache, type KnnMetric } from '../../src/compress/memory/knn.ts';

const fx = methodFixture('knnlm_trime');
const checked = new Set<string>();
const want = (n: string) => {
  checked.add(n);
  return fx.t(n);
};
const ints = (t: Tensor) => Int32Array.from(t.toArray() as ArrayLike<number>, Number);

test('trime: in-batch logits, loss, ori_loss, sample size (local memory)', () => {
  const reps = want('trime.reps');
  const logits = want('trime.logits');
  const targets = want('trime.targets');
  expectClose(inBatchLogits(reps, 'local'), want('trime.in_batch_logits'), { atol: 1e-3, rtol: 1e-5 }, 'trime.in_batch_logits');
  const r = trimeLoss(reps.double(), logits.double(), targets, { variant: 'local' });
  expectClose(r.loss, want('trime.loss').double(), { atol: 1e-4, rtol: 1e-5 }, 'trime.loss');
  expectClose(r.oriLoss, want('trime.ori_loss').double(), { atol: 1e-4, rtol: 1e-5 }, 'trime.ori_loss');
  assert.equal(r.sampleSize, want('trime.sample_size').item());
  const s = fx.index as unknown as { scalars_float64: Record<string, number> };
  assert.ok(Math.abs(r.loss.item() - s.scalars_float64['trime.loss']!) < 1e-4);
  assert.ok(Math.abs(r.oriLoss.item() - s.scalars_float64['trime.ori_loss']!) < 1e-4);
  // float32 path too
  const r32 = trimeLoss(reps, logits, targets);
  expectClose(r32.loss, want('trime.loss'), { atol: 1e-3, rtol: 1e-5 }, 'trime.loss (float32)');
});

test('knn: datastore kNN log-prob (l2 / ip, temperatures) and λ interpolation', () => {
  const keys = want('knn.keys').toFloat32Array();
  const vals = ints(want('knn.vals'));
  const q = want('knn.queries'); // [T, B, C]
  const tg = want('knn.targets'); // [T, B]
  const [T, B] = tg.shape as [number, number];
  const lmLogits = want('knn.lm_logits'); // [B, T, V]
  const tgBT = ints(tg.transpose(0, 1).contiguous()); // [B, T]
  const lmLp = lmLogits.logSoftmax(2).gather(2, Tensor.from(tgBT, { shape: [B, T, 1] })).reshape(B, T);
  expectClose(lmLp, want('knn.lm_target_logprob'), { atol: 1e-5 }, 'knn.lm_target_logprob');
  const cases: [string, KnnMetric, number][] = [['l2_temp1', 'l2', 1], ['l2_temp2', 'l2', 2], ['ip_temp1', 'ip', 1]];
  for (const [name, metric, temperature] of cases) {
    const lp = knnLogProb(q.toFloat32Array(), ints(tg), keys, vals, { k: 8, metric, temperature, padId: 1 });
    expectClose(Tensor.from(Float32Array.from(lp), { shape: [T, B, 1] }), want(`knn.${name}.knn_logprob`), { atol: 1e-3, rtol: 1e-5 }, `knn.${name}.knn_logprob`);
    // [T, B] → [B, T]
    const knnBT = new Float64Array(B * T);
    for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) knnBT[b * T + t] = lp[t * B + b]!;
    const mix = interpolate(knnBT, lmLp.toFloat32Array(), 0.25);
    expectClose(Tensor.from(Float32Array.from(mix), { shape: [B, T] }), want(`knn.${name}.interp_lambda0.25`), { atol: 1e-4, rtol: 1e-5 }, `knn.${name}.interp_lambda0.25`);
  }
});

test('every fixture tensor is checked', () => {
  const missing = [...fx.tensors.keys()].filter((k) => !checked.has(k));
  assert.deepEqual(missing, []);
});

test('trime: masks of the long and ext variants', () => {
  const all = [0, 1, 2, 3, 4, 5];
  const v = (m: Tensor) => Array.from(m.toFloat32Array(), (x) => (x === 0 ? 1 : 0));
  // B = 2 segments of L = 3
  assert.deepEqual(v(memoryMask('local', 2, 3, all, all)), [0,0,0,0,0,0, 1,0,0,0,0,0, 1,1,0,0,0,0, 0,0,0,0,0,0, 0,0,0,1,0,0, 0,0,0,1,1,0]);
  assert.deepEqual(v(memoryMask('long', 2, 3, all, all)), [0,0,0,0,0,0, 1,0,0,0,0,0, 1,1,0,0,0,0, 1,1,1,0,0,0, 1,1,1,1,0,0, 1,1,1,1,1,0]);
  assert.deepEqual(v(memoryMask('ext', 2, 3, all, all)), [0,0,0,1,1,1, 1,0,0,1,1,1, 1,1,0,1,1,1, 1,1,1,0,0,0, 1,1,1,1,0,0, 1,1,1,1,1,0]);
  assert.deepEqual(v(memoryMask('ext', 2, 3, all, all, { dropLocal: true })), [0,0,0,1,1,1, 0,0,0,1,1,1, 0,0,0,1,1,1, 1,1,1,0,0,0, 1,1,1,0,0,0, 1,1,1,0,0,0]);
  // two chains of one segment each = local
  assert.deepEqual(v(memoryMask('long', 2, 3, all, all, { chains: 2 })), v(memoryMask('local', 2, 3, all, all)));
});

test('trime: ignored targets are neither scored nor memory', () => {
  const g = new Generator(3);
  const reps = Tensor.randn([2, 4, 8], { generator: g, dtype: 'float64' });
  const logits = Tensor.randn([8, 5], { generator: g, dtype: 'float64' });
  const y = Tensor.from(Int32Array.from([1, 2, 1, -100, 3, 1, 1, 2]), { shape: [2, 4] });
  const r = trimeLoss(reps, logits, y);
  assert.equal(r.sampleSize, 7);
  assert.deepEqual(r.inBatchLogits.shape, [7, 7]);
  assert.ok(Number.isFinite(r.loss.item()));
});

for (const variant of ['local', 'long', 'ext'] as const)
  test(`trime: gradient check (${variant})`, () => {
    const g = new Generator(11);
    const reps = f64([2, 4, 6], g);
    const logits = f64([8, 5], g, -2, 2);
    const y = Tensor.from(Int32Array.from([1, 2, 1, 2, 1, 1, 0, 2]), { shape: [2, 4] });
    gradcheck(`trime ${variant}`, (r, z) => trimeLoss(r, z, y, { variant }).tokenLoss, [reps, logits], { atol: 1e-6, rtol: 1e-4 });
  });

test('memory modes gn / li and the continuous cache', () => {
  const lm = [1, 2, 0.5];
  // no memory: plain LM log-prob
  assert.ok(Math.abs(memoryLogProb(lm, 1, [], [], 'gn') - (2 - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(0.5)))) < 1e-12);
  // gn: joint softmax over vocabulary logits and memory logits, memory entries counting for their label
  const mem = [1.5, 0.2];
  const lab = [1, 0];
  const Z = Math.exp(1) + Math.exp(2) + Math.exp(0.5) + Math.exp(1.5) + Math.exp(0.2);
  assert.ok(Math.abs(memoryLogProb(lm, 1, mem, lab, 'gn') - Math.log((Math.exp(2) + Math.exp(1.5)) / Z)) < 1e-9);
  // li: λ·p_mem + (1 − λ)·p_LM
  const pLm = Math.exp(2) / (Math.exp(1) + Math.exp(2) + Math.exp(0.5));
  const pMem = Math.exp(1.5) / (Math.exp(1.5) + Math.exp(0.2));
  assert.ok(Math.abs(memoryLogProb(lm, 1, mem, lab, 'li', 0.3) - Math.log(0.3 * pMem + 0.7 * pLm)) < 1e-9);
  const c = new ContinuousCache(2, 2, 1);
  assert.equal(c.logProb([1, 0], 3), -10000);
  c.add([1, 0], 3);
  c.add([0, 1], 4);
  c.add([1, 1], 3); // evicts the first
  assert.equal(c.length, 2);
  const p3 = Math.exp(1) / (Math.exp(1) + Math.exp(0));
  assert.ok(Math.abs(c.logProb([1, 0], 3) - Math.log(p3)) < 1e-9);
});
