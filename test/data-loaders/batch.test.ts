// collate (right padding, masks, truncation), BatchSampler / DataLoader (seeded per-epoch shuffling, dropLast,
// resumable state, length grouping).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BatchSampler, DataLoader, collate, type LoaderState } from '../../src/data/batch.ts';
import type { TrainerHooks } from '../../src/train/trainer.ts';
import { expectThrows } from '../harness/expect.ts';

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('collate', () => {
  test('pads right, masks padding, int32 [B, T]', () => {
    const b = collate([{ ids: [5, 6, 7] }, { ids: [8], tokenTypeIds: [1] }, { ids: [] }], { padId: 0 });
    assert.equal(b.inputIds.dtype, 'int32');
    assert.deepEqual(b.inputIds.shape, [3, 3]);
    assert.deepEqual(b.inputIds.tolist(), [[5, 6, 7], [8, 0, 0], [0, 0, 0]]);
    assert.deepEqual(b.attentionMask.tolist(), [[1, 1, 1], [1, 0, 0], [0, 0, 0]]);
    assert.equal(b.attentionMask.dtype, 'int32');
    assert.deepEqual(b.tokenTypeIds!.tolist(), [[0, 0, 0], [1, 0, 0], [0, 0, 0]]);
    assert.equal(collate([{ ids: [1] }], { padId: 0 }).tokenTypeIds, undefined);
  });

  test('pair inputs keep their token types; padId is used where padded', () => {
    const b = collate([{ ids: [101, 7, 102, 8, 102], tokenTypeIds: [0, 0, 0, 1, 1] }, { ids: [101, 9, 102], tokenTypeIds: [0, 0, 0] }], { padId: 3 });
    assert.deepEqual(b.inputIds.tolist(), [[101, 7, 102, 8, 102], [101, 9, 102, 3, 3]]);
    assert.deepEqual(b.tokenTypeIds!.tolist(), [[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]);
  });

  test('truncation to maxLength and padTo max', () => {
    assert.deepEqual(collate([{ ids: [1, 2, 3, 4] }, { ids: [5] }], { padId: 0, maxLength: 2 }).inputIds.tolist(), [[1, 2], [5, 0]]);
    assert.deepEqual(collate([{ ids: [1] }], { padId: 0, maxLength: 8 }).inputIds.shape, [1, 1]); // longest wins
    const m = collate([{ ids: [1, 2] }, { ids: [3, 4, 5, 6, 7, 8] }], { padId: 9, maxLength: 4, padTo: 'max' });
    assert.deepEqual(m.inputIds.tolist(), [[1, 2, 9, 9], [3, 4, 5, 6]]);
    assert.deepEqual(m.attentionMask.tolist(), [[1, 1, 0, 0], [1, 1, 1, 1]]);
  });

  test('bad input', () => {
    expectThrows(() => collate([], { padId: 0 }), 'collate: empty batch');
    expectThrows(() => collate([{ ids: [1, 2], tokenTypeIds: [0] }], { padId: 0 }), 'item 0 has 2 ids but 1 tokenTypeIds');
    expectThrows(() => collate([{ ids: [1] }], { padId: 0, padTo: 'max' }), "padTo 'max' needs maxLength");
    expectThrows(() => collate([{ ids: [1] }], { padId: 0, maxLength: 0 }), 'maxLength must be a positive integer');
  });
});

describe('BatchSampler', () => {
  test('each epoch is a seeded permutation, reshuffled per epoch, same for the same seed', () => {
    const s = new BatchSampler(10, 3, { seed: 4 });
    const e0 = [s.next(), s.next(), s.next(), s.next()];
    assert.deepEqual(e0.map((b) => b.length), [3, 3, 3, 1]);
    assert.deepEqual(sorted(e0.flat()), range(10));
    const e1 = [s.next(), s.next(), s.next(), s.next()].flat();
    assert.equal(s.epoch, 1);
    assert.deepEqual(sorted(e1), range(10));
    assert.notDeepEqual(e1, e0.flat());
    const again = new BatchSampler(10, 3, { seed: 4 });
    assert.deepEqual([again.next(), again.next(), again.next(), again.next()], e0);
    assert.notDeepEqual(Array.from(new BatchSampler(10, 3, { seed: 5 }).orderFor(0)), e0.flat());
    assert.deepEqual(Array.from(new BatchSampler(5, 2, { shuffle: false }).orderFor(3)), range(5));
  });

  test('resumes exactly from a JSON state, mid-epoch and at an epoch end', () => {
    const straight = new BatchSampler(10, 3, { seed: 4 });
    const all = Array.from({ length: 12 }, () => straight.next());
    for (const k of [0, 2, 4, 5, 8]) {
      const a = new BatchSampler(10, 3, { seed: 4 });
      for (let i = 0; i < k; i++) a.next();
      const st = JSON.parse(JSON.stringify(a.state())) as LoaderState;
      const b = new BatchSampler(10, 3, { seed: 4 });
      b.setState(st);
      assert.deepEqual(Array.from({ length: 12 - k }, () => b.next()), all.slice(k), `resumed after ${k} batches`);
    }
  });

  test('dropLast and the no-batch case', () => {
    const s = new BatchSampler(10, 3, { seed: 1, dropLast: true });
    assert.equal(s.batchesPerEpoch, 3);
    const e0 = [s.next(), s.next(), s.next()];
    assert.equal(s.epoch, 0);
    assert.ok(e0.every((b) => b.length === 3));
    s.next();
    assert.equal(s.epoch, 1);
    expectThrows(() => new BatchSampler(2, 3, { dropLast: true }).next(), 'no batches (2 items, batchSize 3, dropLast)');
    expectThrows(() => new BatchSampler(0, 3).next(), 'no batches (0 items');
  });

  test('a state from another run is refused', () => {
    const s = new BatchSampler(10, 3, { seed: 4 });
    expectThrows(() => s.setState({ epoch: 0, position: 0, seed: 5 }), 'saved seed 5 differs from 4');
    expectThrows(() => s.setState({ epoch: 0, position: 0, seed: 4, size: 11 }), 'saved for 11 items, this sampler has 10');
    expectThrows(() => s.setState({ epoch: 0, position: 12, seed: 4 }), 'invalid epoch 0 / position 12');
    s.setState({ epoch: 2, position: 3, seed: 4 }); // states saved before `size` existed still load
    assert.equal(s.epoch, 2);
  });
});

describe('DataLoader', () => {
  const data = range(23).map((i) => ({ id: i, ids: Array.from({ length: 1 + ((i * 7) % 13) }, () => i) }));

  test('for-of yields one epoch; epochs are reshuffled permutations; collate is applied', () => {
    const dl = new DataLoader(data, { batchSize: 5, seed: 9, collate: (xs, idx) => ({ idx, ids: xs.map((x) => x.id) }) });
    assert.equal(dl.length, 5);
    const epochs: number[][] = [];
    for (let e = 0; e < 3; e++) {
      const seen: number[] = [];
      let n = 0;
      for (const b of dl) {
        assert.deepEqual(b.ids, b.idx);
        assert.equal(dl.epoch, e);
        seen.push(...b.ids);
        n++;
      }
      assert.equal(n, 5);
      assert.deepEqual(sorted(seen), range(23));
      epochs.push(seen);
    }
    assert.notDeepEqual(epochs[0], epochs[1]);
    assert.notDeepEqual(epochs[1], epochs[2]);
  });

  test('default batches are the items; dropLast; shuffle false keeps order', () => {
    const dl = new DataLoader(range(7), { batchSize: 3, shuffle: false, dropLast: true });
    assert.deepEqual([...dl], [[0, 1, 2], [3, 4, 5]]);
    assert.deepEqual([...dl], [[0, 1, 2], [3, 4, 5]]);
    assert.deepEqual([...new DataLoader(range(7), { batchSize: 3, shuffle: false })], [[0, 1, 2], [3, 4, 5], [6]]);
    assert.deepEqual([...new DataLoader(range(2), { batchSize: 3, dropLast: true })], []);
  });

  test('a run resumed from its state continues with the same batches', () => {
    const mk = () => new DataLoader(data, { batchSize: 4, seed: 2, collate: (xs) => xs.map((x) => x.id) });
    const straight = mk();
    const want: number[][] = [];
    for (let e = 0; e < 3; e++) for (const b of straight) want.push(b);
    const first = mk();
    const got: number[][] = [];
    for (const b of first) got.push(b);
    const it = first[Symbol.iterator]();
    for (let i = 0; i < 3; i++) got.push(it.next().value!); // stop mid-epoch 1
    const saved = JSON.stringify(first.state());
    const resumed = mk();
    resumed.setState(JSON.parse(saved));
    assert.equal(resumed.epoch, 1);
    for (const b of resumed) got.push(b); // the rest of epoch 1
    for (const b of resumed) got.push(b); // epoch 2
    assert.deepEqual(got, want);
    // next() streams across epochs in the same order
    const stream = mk();
    assert.deepEqual(Array.from({ length: want.length }, () => stream.next()), want);
  });

  test('length grouping (group_by_length) reduces padding and keeps every item once', () => {
    const lens = data.map((d) => d.ids.length);
    const padded = (batches: number[][]) => batches.reduce((s, b) => s + b.length * Math.max(...b.map((i) => lens[i]!)), 0);
    const plain = new DataLoader(data, { batchSize: 4, seed: 1, collate: (_, idx) => idx });
    const grouped = new DataLoader(data, { batchSize: 4, seed: 1, megabatchMult: 3, lengthOf: (d) => d.ids.length, collate: (_, idx) => idx });
    const a = [...plain];
    const b = [...grouped];
    assert.deepEqual(sorted(b.flat()), range(23));
    assert.ok(padded(b) < padded(a), `grouped ${padded(b)} vs plain ${padded(a)}`);
    assert.ok(b[0]!.some((i) => lens[i] === Math.max(...lens)), 'the longest item is in the first batch');
    for (let k = 0; k < 2; k++) {
      const mega = b.slice(k * 3, k * 3 + 3).flat().slice(1).map((i) => lens[i]!);
      assert.deepEqual(mega, [...mega].sort((x, y) => y - x), 'each megabatch is sorted longest first (after its head, which may be swapped)');
    }
  });

  test('fits the Trainer stateful interface', () => {
    const dl = new DataLoader(range(4), { batchSize: 2 });
    const stateful: NonNullable<TrainerHooks['stateful']> = { dl };
    assert.ok(stateful.dl);
  });
});
