// MLM masking as HF DataCollatorForLanguageModeling: 15 % of the non-special, non-pad positions chosen; of those
// 80 % [MASK], 10 % random id in [0, vocabSize), 10 % unchanged; labels -100 exactly where not chosen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskTokens } from '../../src/data/mlm.ts';
import { collate } from '../../src/data/batch.ts';
import { Generator } from '../../src/tensor/random.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { expectThrows } from '../harness/expect.ts';

const CLS = 101, SEP = 102, MASK = 103, PAD = 0, V = 30522;

/** B rows of T tokens: [CLS] words… [SEP] then padding (row b has a varying length). */
function batch(B: number, T: number): Tensor {
  const g = new Generator(42);
  const rows = Array.from({ length: B }, (_, b) => {
    const len = T - (b % 17) * 7;
    return { ids: [CLS, ...Array.from({ length: len - 2 }, () => g.randint(1000, 2000)), SEP] };
  });
  return collate(rows, { padId: PAD }).inputIds;
}

test('proportions on a large batch; specials and padding never chosen; labels exactly at chosen positions', () => {
  const ids = batch(400, 512);
  const { inputIds, labels } = maskTokens(ids, { maskId: MASK, vocabSize: V, specialIds: [CLS, SEP, MASK], padId: PAD, generator: new Generator(1) });
  assert.deepEqual(inputIds.shape, [400, 512]);
  assert.equal(inputIds.dtype, 'int32');
  assert.equal(labels.dtype, 'int32');
  const src = ids.toArray();
  const out = inputIds.toArray();
  const lab = labels.toArray();
  let eligible = 0, chosen = 0, masked = 0, same = 0, random = 0, randomSum = 0;
  for (let i = 0; i < src.length; i++) {
    const s = src[i]!;
    const special = s === CLS || s === SEP || s === PAD;
    if (!special) eligible++;
    if (lab[i] === -100) {
      assert.equal(out[i], s, `unchosen position ${i} changed`);
      continue;
    }
    assert.ok(!special, `special/pad id ${s} chosen at ${i}`);
    assert.equal(lab[i], s, 'label = original id');
    chosen++;
    if (out[i] === MASK) masked++;
    else if (out[i] === s) same++;
    else {
      random++;
      randomSum += out[i]!;
      assert.ok(out[i]! >= 0 && out[i]! < V);
    }
  }
  assert.ok(eligible > 150000, `eligible ${eligible}`);
  // tolerances are > 5 standard deviations
  assert.ok(Math.abs(chosen / eligible - 0.15) < 0.005, `chosen ${chosen / eligible}`);
  assert.ok(Math.abs(masked / chosen - 0.8) < 0.015, `masked ${masked / chosen}`);
  assert.ok(Math.abs(random / chosen - 0.1) < 0.01, `random ${random / chosen}`);
  assert.ok(Math.abs(same / chosen - 0.1) < 0.01, `unchanged ${same / chosen}`);
  assert.ok(Math.abs(randomSum / random / V - 0.5) < 0.03, 'random ids are uniform over the vocabulary');
});

test('deterministic under a seed; the generator advances between calls', () => {
  const ids = batch(8, 64);
  const o = { maskId: MASK, vocabSize: V, specialIds: new Set([CLS, SEP]), padId: PAD };
  const a = maskTokens(ids, { ...o, generator: new Generator(7) });
  const b = maskTokens(ids, { ...o, generator: new Generator(7) });
  assert.deepEqual(a.inputIds.tolist(), b.inputIds.tolist());
  assert.deepEqual(a.labels.tolist(), b.labels.tolist());
  assert.notDeepEqual(maskTokens(ids, { ...o, generator: new Generator(8) }).labels.tolist(), a.labels.tolist());
  const g = new Generator(7);
  const first = maskTokens(ids, { ...o, generator: g });
  const second = maskTokens(ids, { ...o, generator: g });
  assert.deepEqual(first.labels.tolist(), a.labels.tolist());
  assert.notDeepEqual(second.labels.tolist(), first.labels.tolist());
  const st = g.getState();
  const third = maskTokens(ids, { ...o, generator: g });
  assert.deepEqual(maskTokens(ids, { ...o, generator: new Generator().setState(st) }).labels.tolist(), third.labels.tolist());
  assert.deepEqual(ids.toArray(), batch(8, 64).toArray(), 'input not modified');
});

test('Tensor, number[][] and Int32Array inputs give the same result', () => {
  const ids = batch(4, 32);
  const o = { maskId: MASK, vocabSize: V, specialIds: [CLS, SEP], padId: PAD };
  const t = maskTokens(ids, { ...o, generator: new Generator(3) });
  const nested = maskTokens(ids.tolist() as number[][], { ...o, generator: new Generator(3) });
  const flat = maskTokens(ids.toArray() as Int32Array, { ...o, shape: [4, 32], generator: new Generator(3) });
  for (const r of [nested, flat]) {
    assert.deepEqual(r.inputIds.shape, [4, 32]);
    assert.deepEqual(r.inputIds.tolist(), t.inputIds.tolist());
    assert.deepEqual(r.labels.tolist(), t.labels.tolist());
  }
  assert.deepEqual(maskTokens(Int32Array.from([5, 6]), { ...o }).labels.shape, [2]);
});

test('edge probabilities and bad arguments', () => {
  const ids = [[CLS, 5, 6, 7, SEP, PAD]];
  const none = maskTokens(ids, { maskId: MASK, vocabSize: V, specialIds: [CLS, SEP], padId: PAD, mlmProbability: 0 });
  assert.deepEqual(none.labels.tolist(), [[-100, -100, -100, -100, -100, -100]]);
  const all = maskTokens(ids, { maskId: MASK, vocabSize: V, specialIds: [CLS, SEP], padId: PAD, mlmProbability: 1, maskReplaceProb: 1, randomReplaceProb: 0 });
  assert.deepEqual(all.inputIds.tolist(), [[CLS, MASK, MASK, MASK, SEP, PAD]]);
  assert.deepEqual(all.labels.tolist(), [[-100, 5, 6, 7, -100, -100]]);
  const base = { maskId: MASK, vocabSize: V, specialIds: [] as number[] };
  expectThrows(() => maskTokens([[1, 2], [3]], base), 'row 1 has 1 ids, row 0 has 2');
  expectThrows(() => maskTokens(Tensor.from([[1, 2]]), base), 'inputIds must be int32, got float32');
  expectThrows(() => maskTokens(Int32Array.from([1, 2, 3]), { ...base, shape: [2, 2] }), 'shape [2,2] does not hold 3 ids');
  expectThrows(() => maskTokens([[1]], { ...base, mlmProbability: 1.5 }), 'mlmProbability must be in [0, 1], got 1.5');
  expectThrows(() => maskTokens([[1]], { ...base, maskReplaceProb: 0.95, randomReplaceProb: 0.1 }), '> 1');
  expectThrows(() => maskTokens([[1]], { ...base, vocabSize: 0 }), 'vocabSize must be a positive integer');
});
