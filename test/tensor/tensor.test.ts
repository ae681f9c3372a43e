// Tensor API: creation, dtypes, views, indexing, reductions and nn ops against hand-computed values; errors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, arange, eye, manualSeed, ops, randn, tensor, zeros } from '../../src/index.ts';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/tensor/dtype.ts';
import { expectClose, expectEqual, expectThrows } from '../harness/expect.ts';

describe('creation and dtypes', () => {
  test('tensor infers shape and defaults to float32', () => {
    const t = tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, 'float32');
    assert.deepEqual(t.tolist(), [[1, 2, 3], [4, 5, 6]]);
    assert.equal(tensor(7).item(), 7);
    assert.deepEqual(tensor(7).shape, []);
  });
  test('ragged arrays are rejected', () => expectThrows(() => tensor([[1, 2], [3]] as never), 'ragged nested array'));
  test('arange, full, eye, zeros', () => {
    assert.deepEqual(arange(5).tolist(), [0, 1, 2, 3, 4]);
    assert.equal(arange(5).dtype, 'int32');
    assert.deepEqual(arange(0, 1, 0.25).tolist(), [0, 0.25, 0.5, 0.75]);
    assert.deepEqual(Tensor.full([2], 3).tolist(), [3, 3]);
    assert.deepEqual(eye(2).tolist(), [[1, 0], [0, 1]]);
    expectThrows(() => zeros([2, -1]), 'invalid size -1');
  });
  test('seeded generators repeat and have the right moments', () => {
    const a = randn([1000], { generator: new Generator(5) });
    const b = randn([1000], { generator: new Generator(5) });
    expectEqual(a, b);
    const big = randn([100000], { generator: new Generator(9) });
    assert.ok(Math.abs(big.mean().item()) < 0.02);
    assert.ok(Math.abs(big.std().item() - 1) < 0.02);
    const r = Tensor.randint(3, 7, [10000], { generator: new Generator(1) });
    const v = r.toArray();
    assert.ok(Math.min(...v) === 3 && Math.max(...v) === 6);
    manualSeed(3);
    const c = randn([4]);
    manualSeed(3);
    expectEqual(randn([4]), c);
  });
  test('generator state round-trips', () => {
    const gen = new Generator(11);
    gen.normal();
    const st = gen.getState();
    const x = [gen.normal(), gen.random(), gen.nextU32()];
    gen.setState(JSON.parse(JSON.stringify(st)));
    assert.deepEqual([gen.normal(), gen.random(), gen.nextU32()], x);
  });
  test('float16 conversion is bit-exact on edge cases (round to nearest even)', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [Infinity, 0x7c00],
      [5.960464477539063e-8, 0x0001], [2.980232238769531e-8, 0x0000], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
      [6.103515625e-5, 0x0400], [0.1, 0x2e66],
    ];
    for (const [x, h] of cases) assert.equal(f32ToF16Bits(x), h, `f16(${x})`);
    assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
    for (const h of [0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0xfbff]) assert.equal(f32ToF16Bits(f16BitsToF32(h)), h);
  });
  test('bfloat16 conversion rounds to nearest even and keeps NaN', () => {
    assert.equal(f32ToBf16Bits(1), 0x3f80);
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie → even
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(bf16BitsToF32(0x3f80), 1);
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
  });
  test('to() converts between all dtypes', () => {
    const x = tensor([-1.5, 0.25, 3.75, 200]);
    assert.deepEqual(x.to('float16').to('float32').tolist(), [-1.5, 0.25, 3.75, 200]);
    assert.deepEqual(x.to('bfloat16').tolist(), [-1.5, 0.25, 3.75, 200]);
    assert.deepEqual(x.to('int32').tolist(), [-1, 0, 3, 200]); // truncation toward zero, as torch
    assert.deepEqual(x.to('int8').tolist(), [-1, 0, 3, 127]);
    assert.deepEqual(x.to('uint8').tolist(), [0, 0, 3, 200]);
    assert.deepEqual(tensor([1, 2], { dtype: 'int32' }).to('float64').dtype, 'float64');
    const big = randn([5000]);
    expectClose(big.half().float(), big, { atol: 1e-4, rtol: 1e-3 });
    expectClose(big.bfloat16().float(), big, { atol: 1e-2, rtol: 1e-2 });
  });
  test('math on a storage dtype names the dtype', () => {
    expectThrows(() => tensor([1, 2], { dtype: 'int32' }).exp(), 'exp: expected a float32 or float64 input, got int32');
    expectThrows(() => tensor([1, 2]).add(tensor([1, 2], { dtype: 'float64' })), 'add: dtypes differ (float32 and float64)');
  });
});

describe('views', () => {
  const x = arange(24).to('float32').reshape(2, 3, 4);
  test('transpose/permute share storage and read correctly', () => {
    const t = x.transpose(0, 2);
    assert.equal(t.data, x.data);
    assert.deepEqual(t.shape, [4, 3, 2]);
    assert.equal(t.isContiguous(), false);
    assert.deepEqual(t.contiguous().toArray().slice(0, 4), Float32Array.from([0, 12, 4, 16]));
    assert.deepEqual(x.permute(1, 2, 0).contiguous().reshape(-1).tolist().slice(0, 4), [0, 12, 1, 13]);
  });
  test('narrow/slice/select', () => {
    assert.deepEqual(x.narrow(2, 1, 2).contiguous().reshape(-1).tolist().slice(0, 4), [1, 2, 5, 6]);
    assert.deepEqual(x.slice(2, 0, undefined, 2).select(0, 1).tolist(), [[12, 14], [16, 18], [20, 22]]);
    assert.deepEqual(x.slice(1, -1).shape, [2, 1, 4]);
    expectThrows(() => x.narrow(1, 2, 2), 'narrow: start 2 + length 2 is out of range for dimension 1 of size 3');
    expectThrows(() => x.select(0, 2), 'select: index 2 is out of range for dimension 0 with size 2');
  });
  test('view needs compatible strides; reshape copies when it must', () => {
    expectThrows(() => x.transpose(0, 1).view(-1), 'view: shape [24] is not compatible');
    assert.deepEqual(x.transpose(0, 1).reshape(-1).tolist().slice(0, 6), [0, 1, 2, 3, 12, 13]);
    const v = x.transpose(1, 2).view(2, 4, 3); // identity view of a permuted tensor stays a view
    assert.equal(v.data, x.data);
    const merged = x.view(6, 4).transpose(0, 1).view(4, 2, 3); // splitting a transposed dim is a view
    assert.equal(merged.data, x.data);
    assert.deepEqual(merged.contiguous().toArray(), x.view(6, 4).transpose(0, 1).contiguous().toArray());
    expectThrows(() => x.reshape(5, -1), 'reshape: shape [5,-1] is invalid for input of size 24');
  });
  test('expand, squeeze, unsqueeze, flatten, movedim', () => {
    const c = tensor([[1], [2]]);
    assert.deepEqual(c.expand(2, 3).tolist(), [[1, 1, 1], [2, 2, 2]]);
    assert.deepEqual(c.expand(-1, 2).tolist(), [[1, 1], [2, 2]]);
    expectThrows(() => c.expand(3, 3), 'expand: cannot expand shape [2,1] to [3,3]');
    assert.deepEqual(c.squeeze().shape, [2]);
    assert.deepEqual(c.unsqueeze(0).shape, [1, 2, 1]);
    assert.deepEqual(x.flatten(1).shape, [2, 12]);
    assert.deepEqual(x.movedim(0, -1).shape, [3, 4, 2]);
  });
  test('cat, stack, split, chunk', () => {
    const a = tensor([[1, 2], [3, 4]]);
    const b = tensor([[5, 6]]);
    assert.deepEqual(ops.cat([a, b], 0).tolist(), [[1, 2], [3, 4], [5, 6]]);
    assert.deepEqual(ops.stack([a, a], 2).shape, [2, 2, 2]);
    expectThrows(() => ops.cat([a, b], 1), 'cat: tensor 1 has shape [1,2], incompatible with [2,2] along dim 1');
    assert.deepEqual(arange(7).split(3).map((t) => t.tolist()), [[0, 1, 2], [3, 4, 5], [6]]);
    assert.deepEqual(arange(6).chunk(4).map((t) => t.numel), [2, 2, 2]);
    expectThrows(() => arange(6).split([2, 2]), 'split: sizes [2,2] sum to 4, but dimension 0 has size 6');
  });
  test('copy_ writes through a view', () => {
    const z = zeros([2, 3]);
    z.narrow(1, 1, 2).copy_(tensor([7, 8]));
    assert.deepEqual(z.tolist(), [[0, 7, 8], [0, 7, 8]]);
  });
});

describe('indexing', () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  const idx = (v: number[], shape?: number[]) => tensor(v, { dtype: 'int32', shape });
  test('indexSelect, gather, scatterAdd', () => {
    assert.deepEqual(x.indexSelect(1, idx([2, 0])).tolist(), [[3, 1], [6, 4]]);
    assert.deepEqual(x.indexSelect(0, idx([-1])).tolist(), [[4, 5, 6]]);
    assert.deepEqual(x.gather(1, idx([2, 2, 0, 1], [2, 2])).tolist(), [[3, 3], [4, 5]]);
    assert.deepEqual(zeros([2, 3]).scatterAdd(1, idx([0, 0, 2, 1], [2, 2]), tensor([[1, 2], [3, 4]])).tolist(), [[3, 0, 0], [0, 4, 3]]);
    expectThrows(() => x.indexSelect(1, idx([3])), 'indexSelect: index 3 is out of range for dimension with size 3');
    expectThrows(() => x.indexSelect(1, tensor([1])), 'indexSelect: expected an integer index tensor (int32), got float32');
  });
  test('where, maskedFill, comparisons', () => {
    assert.deepEqual(x.gt(3).tolist(), [[0, 0, 0], [1, 1, 1]]);
    assert.deepEqual(x.maskedFill(x.lt(3), -1).tolist(), [[-1, -1, 3], [4, 5, 6]]);
    assert.deepEqual(ops.where(tensor([1, 0, 1]), x, tensor(0)).tolist(), [[1, 0, 3], [4, 0, 6]]);
  });
  test('topk, oneHot, cumsum', () => {
    const t = tensor([[1, 5, 3, 5], [9, 2, 8, 0]]);
    const r = t.topk(2, 1);
    assert.deepEqual(r.values.tolist(), [[5, 5], [9, 8]]);
    assert.deepEqual(r.indices.tolist(), [[1, 3], [0, 2]]);
    assert.deepEqual(t.topk(1, 0, false).indices.tolist(), [[0, 1, 0, 1]]);
    assert.deepEqual(ops.oneHot(idx([2, 0])).tolist(), [[0, 0, 1], [1, 0, 0]]);
    assert.deepEqual(t.cumsum(1).tolist(), [[1, 6, 9, 14], [9, 11, 19, 19]]);
  });
  test('embedding', () => {
    const w = tensor([[0, 0], [1, 1], [2, 2]]);
    assert.deepEqual(ops.embedding(idx([2, 1, 2], [1, 3]), w).tolist(), [[[2, 2], [1, 1], [2, 2]]]);
    expectThrows(() => ops.embedding(idx([3]), w), 'embedding: index 3 is out of range for dimension with size 3');
  });
});

describe('math', () => {
  test('broadcasting binary ops', () => {
    const a = tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(a.add(tensor([10, 20, 30])).tolist(), [[11, 22, 33], [14, 25, 36]]);
    assert.deepEqual(a.mul(tensor([[2], [3]])).tolist(), [[2, 4, 6], [12, 15, 18]]);
    assert.deepEqual(a.sub(1).tolist(), [[0, 1, 2], [3, 4, 5]]);
    assert.deepEqual(ops.sub(1, a).tolist(), [[0, -1, -2], [-3, -4, -5]]);
    assert.deepEqual(ops.div(6, a).tolist()[0], [6, 3, 2]);
    assert.deepEqual(a.pow(2).tolist()[1], [16, 25, 36]);
    assert.deepEqual(a.maximum(3.5).tolist(), [[3.5, 3.5, 3.5], [4, 5, 6]]);
    expectThrows(() => a.add(tensor([1, 2])), 'add: shapes [2,3] and [2] cannot be broadcast');
  });
  test('unary functions match known values', () => {
    const x = tensor([-1, 0, 0.5, 2], { dtype: 'float64' });
    expectClose(x.erf(), [-0.8427007929497149, 0, 0.5204998778130465, 0.9953222650189527], { atol: 1e-15, rtol: 1e-14 });
    expectClose(x.gelu(), [-0.15865525393145707, 0, 0.34573123063700656, 1.9544997361036416], { atol: 1e-15, rtol: 1e-14 });
    expectClose(x.gelu('tanh'), [-0.15880800939172324, 0, 0.34571400982514394, 1.954597694087775], { atol: 1e-15, rtol: 1e-14 });
    expectClose(x.silu(), [-0.2689414213699951, 0, 0.3112296656009273, 1.7615941559557649], { atol: 1e-15, rtol: 1e-14 });
    expectClose(tensor([5.5, -4.2], { dtype: 'float64' }).erf(), [0.9999999999999927, -0.9999999971445058], { atol: 1e-15, rtol: 1e-14 });
    assert.deepEqual(tensor([-2, 0.5, 3]).clamp(-1, 1).tolist(), [-1, 0.5, 1]);
  });
  test('reductions over any dims, keepDim, max with indices', () => {
    const a = arange(24).to('float32').reshape(2, 3, 4);
    assert.deepEqual(a.sum([0, 2]).tolist(), [60, 92, 124]);
    assert.deepEqual(a.sum([0, 2], true).shape, [1, 3, 1]);
    assert.deepEqual(a.mean(-1).tolist()[0], [1.5, 5.5, 9.5]);
    const m = a.max(1);
    assert.deepEqual(m.values.tolist(), [[8, 9, 10, 11], [20, 21, 22, 23]]);
    assert.deepEqual(m.indices.tolist(), [[2, 2, 2, 2], [2, 2, 2, 2]]);
    assert.equal(a.argmax().item(), 23);
    assert.deepEqual(a.argmin(2, true).shape, [2, 3, 1]);
    expectClose(tensor([1, 2, 3, 4]).var(), [1.6666666], { rtol: 1e-6 });
    expectClose(tensor([1, 2, 3, 4]).var(null, { correction: 0 }), [1.25]);
    expectClose(tensor([[1000, 1000], [-Infinity, 0]]).logsumexp(1), [1000 + Math.log(2), 0]);
    expectClose(tensor([3, -4]).norm(), [5]);
    expectThrows(() => a.sum(3), 'sum: dimension 3 is out of range for a tensor of rank 3 (expected -3..2)');
  });
  test('matmul: batch broadcast, vectors, transposed views', () => {
    const a = tensor([[1, 2], [3, 4]]);
    assert.deepEqual(a.matmul(tensor([1, 1])).tolist(), [3, 7]);
    assert.deepEqual(tensor([1, 1]).matmul(a).tolist(), [4, 6]);
    assert.deepEqual(a.matmul(a.t()).tolist(), [[5, 11], [11, 25]]);
    assert.deepEqual(a.t().matmul(a).tolist(), [[10, 14], [14, 20]]);
    const b = randn([3, 1, 4, 5]);
    const c = randn([2, 5, 6]);
    const out = b.matmul(c);
    assert.deepEqual(out.shape, [3, 2, 4, 6]);
    expectClose(out.select(0, 2).select(0, 1), b.select(0, 2).select(0, 0).matmul(c.select(0, 1)), { atol: 1e-5 });
    // heads split out of a [B, T, H] tensor: row stride ≠ row length, no copy needed
    const x = randn([2, 5, 12]);
    const q = x.reshape(2, 5, 3, 4).transpose(1, 2); // (B, nH, T, hd)
    expectClose(q.matmul(q.transpose(-1, -2)), q.contiguous().matmul(q.contiguous().transpose(-1, -2).contiguous()), { atol: 1e-5 });
    expectThrows(() => a.matmul(randn([3, 2])), 'matmul: shapes [2,2] and [3,2] cannot be multiplied (2 != 3)');
  });
  test('softmax, layerNorm, rmsNorm values', () => {
    expectClose(tensor([1, 2, 3]).softmax(0), [0.09003057, 0.24472847, 0.66524096], { rtol: 1e-6 });
    expectClose(tensor([[1, 2, 3]]).logSoftmax(-1), [-2.40760596, -1.40760596, -0.40760596], { rtol: 1e-6 });
    expectClose(ops.layerNorm(tensor([[1, 2, 3, 4]]), [4], tensor([1, 1, 2, 2]), tensor([0, 1, 0, 0]), 0), [-1.3416408, 0.5527864, 0.8944272, 2.6832816], { rtol: 1e-6 });
    expectClose(ops.rmsNorm(tensor([[3, 4]]), tensor([1, 2]), 0), [0.8485281, 2.2627417], { rtol: 1e-6 });
    expectThrows(() => ops.layerNorm(tensor([[1, 2, 3]]), [4]), 'layerNorm: input shape [1,3] does not end with normalized shape [4]');
  });
  test('losses match torch formulas', () => {
    const logits = tensor([[2, 1, 0.1], [0.5, 2.5, 0.3]]);
    const target = tensor([0, 1], { dtype: 'int32' });
    // −log softmax at the targets, averaged
    const lsm = logits.logSoftmax(-1).toArray();
    const want = -(lsm[0]! + lsm[4]!) / 2;
    expectClose(ops.crossEntropy(logits, target), [want], { rtol: 1e-6 });
    expectClose(ops.crossEntropy(logits, tensor([0, -100], { dtype: 'int32' })), [-lsm[0]!], { rtol: 1e-6 });
    // label smoothing ε: (1-ε)·nll + ε·mean_c(−log p_c)
    const eps = 0.1;
    const smooth = (r: number, t: number) => (1 - eps) * -lsm[r * 3 + t]! + (eps * -(lsm[r * 3]! + lsm[r * 3 + 1]! + lsm[r * 3 + 2]!)) / 3;
    expectClose(ops.crossEntropy(logits, target, { labelSmoothing: eps }), [(smooth(0, 0) + smooth(1, 1)) / 2], { rtol: 1e-6 });
    expectThrows(() => ops.crossEntropy(logits, tensor([0, 3], { dtype: 'int32' })), 'crossEntropy: index 3 is out of range for dimension with size 3');
    expectThrows(() => ops.crossEntropy(logits, tensor([0], { dtype: 'int32' })), 'crossEntropy: target shape [1] does not match input [2,3]');
    expectClose(ops.mseLoss(tensor([1, 2]), tensor([3, 2])), [2]);
    const p = tensor([0.5, 0.5, 0]);
    expectClose(ops.klDiv(tensor([0.25, 0.75, 0.01]).log(), p, { reduction: 'sum' }), [0.5 * Math.log(2) + 0.5 * Math.log(0.5 / 0.75)], { rtol: 1e-6 });
  });
  test('dropout keeps the expectation and is identity in eval', () => {
    const x = Tensor.ones([10000]);
    const y = ops.dropout(x, 0.25, true, new Generator(1));
    const kept = (y.toArray() as Float32Array).filter((v) => v !== 0);
    assert.ok(Math.abs(kept.length / 10000 - 0.75) < 0.02);
    expectClose(kept.slice(0, 3), [4 / 3, 4 / 3, 4 / 3], { rtol: 1e-6 });
    assert.equal(ops.dropout(x, 0.25, false), x);
  });
});
