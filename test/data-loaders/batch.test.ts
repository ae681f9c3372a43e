// Batching, resumable shuffling and MLM masking statistics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchSampler, collate, maskTokens } from '../../src/data/batch.ts';
import { Generator, Tensor } from '../../src/index.ts';

test('collate pads right, masks padding, truncates', () => {
  const b = collate([{ ids: [5, 6, 7] }, { ids: [8], tokenTypeIds: [1] }], { padId: 0 });
  assert.deepEqual(b.inputIds.tolist(), [[5, 6, 7], [8, 0, 0]]);
  assert.deepEqual(b.attentionMask.tolist(), [[1, 1, 1], [1, 0, 0]]);
  assert.deepEqual(b.tokenTypeIds!.tolist(), [[0, 0, 0], [1, 0, 0]]);
  assert.deepEqual(collate([{ ids: [1, 2, 3, 4] }], { padId: 0, maxLength: 2 }).inputIds.tolist(), [[1, 2]]);
});

test('shuffling is a seeded permutation per epoch and resumes exactly', () => {
  const s = new BatchSampler(10, 3, { seed: 4 });
  const epoch0 = [s.next(), s.next(), s.next(), s.next()].flat();
  assert.deepEqual([...epoch0].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const straight = new BatchSampler(10, 3, { seed: 4 });
  const all = Array.from({ length: 9 }, () => straight.next());
  const resumed = new BatchSampler(10, 3, { seed: 4 });
  for (let i = 0; i < 5; i++) resumed.next();
  const st = JSON.parse(JSON.stringify(resumed.state()));
  const fresh = new BatchSampler(10, 3, { seed: 4 });
  fresh.setState(st);
  assert.deepEqual(Array.from({ length: 4 }, () => fresh.next()), all.slice(5));
  assert.notDeepEqual(all.slice(4, 8).flat(), epoch0); // epoch 1 is reshuffled
});

test('MLM masking follows 15% / 80-10-10 and never touches specials', () => {
  const n = 200000;
  const ids = Tensor.from(Int32Array.from({ length: n }, (_, i) => (i % 50 === 0 ? 101 : 1000 + (i % 7))), { shape: [n / 100, 100] });
  const { inputIds, labels } = maskTokens(ids, { maskId: 103, vocabSize: 30522, specialIds: [101, 102, 0], generator: new Generator(1) });
  const src = ids.toArray();
  const out = inputIds.toArray();
  const lab = labels.toArray();
  let chosen = 0;
  let masked = 0;
  let same = 0;
  for (let i = 0; i < n; i++) {
    if (src[i] === 101) assert.equal(lab[i], -100);
    if (lab[i] === -100) {
      assert.equal(out[i], src[i]);
      continue;
    }
    assert.equal(lab[i], src[i]);
    chosen++;
    if (out[i] === 103) masked++;
    else if (out[i] === src[i]) same++;
  }
  const eligible = n - n / 50;
  assert.ok(Math.abs(chosen / eligible - 0.15) < 0.005, `chosen ${chosen / eligible}`);
  assert.ok(Math.abs(masked / chosen - 0.8) < 0.01, `masked ${masked / chosen}`);
  assert.ok(Math.abs(same / chosen - 0.1) < 0.01, `unchanged ${same / chosen}`);
});
