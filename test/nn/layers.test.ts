// Layers against hand-computed values (numpy float64 where noted), gradients reaching parameters, default
// initialisation bounds, and the init helpers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Conv1D, Dropout, Embedding, Generator, LayerNorm, Linear, RMSNorm, Sequential, Tensor, asLinearLike, init, isLinearLike, manualSeed, noGrad,
  sliceEmbedding, sliceLayerNorm, sliceLinear, tensor,
} from '../../src/index.ts';
import { Conv1D as Gpt2Conv1D } from '../../src/models/gpt2/modeling.ts';
import { expectClose, expectEqual } from '../harness/expect.ts';

const stats = (t: Tensor) => {
  const v = Array.from(t.toFloat32Array());
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std, min: Math.min(...v), max: Math.max(...v) };
};

describe('Linear', () => {
  test('y = x·Wᵀ + b and its gradients', () => {
    const lin = new Linear(3, 2);
    lin.weight.copy_(tensor([[1, 0, -1], [2, 1, 0]]));
    lin.bias!.copy_(tensor([0.5, -0.5]));
    const y = lin.forward(tensor([[1, 2, 3], [0, 1, -1]]));
    // row 0: [1-3+0.5, 2+2-0.5] ; row 1: [0+1+0.5, 0+1-0.5]
    expectEqual(y, [-1.5, 3.5, 1.5, 0.5]);
    y.mul(tensor([[1, 2]])).sum().backward(); // dL/dy = [[1, 2], [1, 2]]
    expectEqual(lin.weight.grad!, [1, 3, 2, 2, 6, 4]); // dW = gᵀ·x
    expectEqual(lin.bias!.grad!, [2, 4]);
  });

  test('leading dims are kept; bias=false has no bias parameter', () => {
    const lin = new Linear(3, 2, { bias: false });
    assert.equal(lin.bias, null);
    assert.deepEqual(lin.stateDictKeys(), ['weight']);
    lin.weight.copy_(tensor([[1, 1, 1], [0, 0, 1]]));
    const y = lin.forward(Tensor.arange(0, 12, 1, { dtype: 'float32' }).reshape(2, 2, 3));
    assert.deepEqual(y.shape, [2, 2, 2]);
    expectEqual(y, [3, 2, 12, 5, 21, 8, 30, 11]);
  });

  test('default init is U(±1/√in) for weight and bias, seeded by the generator', () => {
    const a = new Linear(256, 128, { generator: new Generator(1) });
    const b = new Linear(256, 128, { generator: new Generator(1) });
    const c = new Linear(256, 128, { generator: new Generator(2) });
    const bound = 1 / 16;
    const s = stats(a.weight);
    assert.ok(s.min >= -bound && s.max <= bound, `weight in ±${bound}: [${s.min}, ${s.max}]`);
    assert.ok(Math.abs(s.std - bound / Math.sqrt(3)) < 0.002, `std ${s.std}`);
    const sb = stats(a.bias!);
    assert.ok(sb.min >= -bound && sb.max <= bound && sb.max - sb.min > bound);
    expectEqual(a.weight, b.weight);
    assert.notDeepEqual(a.weight.tolist(), c.weight.tolist());
    assert.ok(a.weight.requiresGrad && a.bias!.requiresGrad);
  });
});

describe('LayerNorm / RMSNorm', () => {
  test('LayerNorm forward and gradients (numpy float64 reference)', () => {
    const ln = new LayerNorm(4);
    assert.equal(ln.eps, 1e-5);
    ln.weight!.copy_(tensor([1, 2, 0.5, 1]));
    ln.bias!.copy_(tensor([0, 0, 1, -1]));
    const x = tensor([[1, 2, 3, 4], [2, 2, 2, 2]], { requiresGrad: true });
    const y = ln.forward(x);
    // row 0: mean 2.5, var 1.25 ⇒ x̂ = (x − 2.5)/√1.25001; row 1 is constant ⇒ x̂ = 0, y = bias
    expectClose(y, [-1.3416354199689269, -0.894423613312618, 1.2236059033281546, 0.3416354199689269, 0, 0, 1, -1], { atol: 1e-6, rtol: 1e-6 });
    y.mul(tensor([[1, 0, -1, 2], [0.5, 0.5, 0.5, 0.5]])).sum().backward();
    expectClose(ln.bias!.grad!, [1.5, 0.5, -0.5, 2.5], { atol: 0, rtol: 0 });
    expectClose(ln.weight!.grad!, [-1.3416354199689269, 0, -0.447211806656309, 2.6832708399378538], { atol: 1e-6, rtol: 1e-6 });
    expectClose(
      x.grad!,
      [0.6708150267350894, -0.447212701072767, -1.1180286222243145, 0.894426296561992, -19.76423537605237, 138.34964763236658, -98.82117688026185, -19.76423537605237],
      { atol: 1e-5, rtol: 1e-4 },
    );
  });

  test('LayerNorm without affine parameters; multi-dim normalized shape', () => {
    const ln = new LayerNorm([2, 2], { elementwiseAffine: false, eps: 0 });
    assert.deepEqual(ln.stateDictKeys(), []);
    const y = ln.forward(tensor([[[1, 3], [1, 3]]]));
    expectClose(y, [-1, 1, -1, 1], { atol: 1e-6 });
  });

  test('RMSNorm forward and weight gradient (numpy float64 reference)', () => {
    const n = new RMSNorm(2);
    assert.equal(n.eps, 1e-6);
    n.weight.copy_(tensor([1, 2]));
    const y = n.forward(tensor([[3, 4], [1, -1]])); // rstd = 1/√(12.5 + 1e-6), 1/√(1 + 1e-6)
    expectClose(y, [0.8485281034827337, 2.2627416092872896, 0.999999500000375, -1.99999900000075], { atol: 1e-6, rtol: 1e-6 });
    y.sum().backward();
    expectClose(n.weight.grad!, [1.8485276034831086, 0.13137130464326985], { atol: 1e-6, rtol: 1e-6 });
  });
});

describe('Embedding', () => {
  test('lookup, repeated ids accumulate gradient, the padding row stays zero and gets none', () => {
    const emb = new Embedding(5, 2, { paddingIdx: 0 });
    expectEqual(emb.weight.select(0, 0), [0, 0]);
    emb.weight.copy_(tensor([[0, 0], [1, 2], [3, 4], [5, 6], [7, 8]]));
    const ids = tensor([[0, 3], [3, 1]], { dtype: 'int32' });
    const y = emb.forward(ids);
    assert.deepEqual(y.shape, [2, 2, 2]);
    expectEqual(y, [0, 0, 5, 6, 5, 6, 1, 2]);
    y.mul(tensor([1, 10])).sum().backward();
    expectEqual(emb.weight.grad!, [0, 0, 1, 10, 0, 0, 2, 20, 0, 0]);
  });

  test('N(0, 1) init; negative paddingIdx counts from the end; out-of-range paddingIdx throws', () => {
    const s = stats(new Embedding(200, 50, { generator: new Generator(3) }).weight);
    assert.ok(Math.abs(s.mean) < 0.03 && Math.abs(s.std - 1) < 0.03, `mean ${s.mean} std ${s.std}`);
    const e = new Embedding(4, 3, { paddingIdx: -1 });
    assert.equal(e.paddingIdx, 3);
    expectEqual(e.weight.select(0, 3), [0, 0, 0]);
    assert.throws(() => new Embedding(4, 3, { paddingIdx: 4 }), /paddingIdx 4 is out of range/);
  });
});

describe('Dropout / Sequential', () => {
  test('Dropout zeroes ≈p of the elements and scales the rest by 1/(1−p) while training; identity in eval', () => {
    const d = new Dropout(0.25, new Generator(7));
    const x = Tensor.ones([4000], { requiresGrad: true });
    const y = d.forward(x);
    const v = y.toFloat32Array();
    let zeros = 0;
    for (const e of v) {
      if (e === 0) zeros++;
      else assert.ok(Math.abs(e - 4 / 3) < 1e-6);
    }
    assert.ok(Math.abs(zeros / v.length - 0.25) < 0.03, `dropped ${zeros / v.length}`);
    y.sum().backward();
    expectEqual(x.grad!, y.detach()); // d(x·mask)/dx = mask
    d.eval();
    assert.equal(d.forward(x), x);
    assert.equal(new Dropout(0).forward(x), x);
    assert.throws(() => new Dropout(1.5), /probability must be in \[0, 1\]/);
  });

  test('Sequential has torch keys (0.weight, 2.bias) and chains forward', () => {
    const g = new Generator(0);
    const seq = new Sequential(new Linear(3, 4, { generator: g }), new Dropout(0.5), new Linear(4, 2, { generator: g }));
    assert.deepEqual(seq.stateDictKeys(), ['0.weight', '0.bias', '2.weight', '2.bias']);
    seq.eval();
    const x = Tensor.randn([5, 3], { generator: g });
    const want = (seq[2] as Linear).forward((seq[0] as Linear).forward(x));
    expectEqual(seq.forward(x), want);
    assert.equal(seq.length, 3);
  });
});

describe('init helpers', () => {
  test('fans, xavier/kaiming bounds and stds, constants, truncated normal', () => {
    assert.deepEqual(init.fans(Tensor.empty([8, 4, 3])), [12, 24]);
    const g = new Generator(11);
    const xu = stats(init.xavierUniform_(Tensor.empty([300, 100]), 1, g));
    const xb = Math.sqrt(6 / 400);
    assert.ok(xu.min >= -xb && xu.max <= xb && Math.abs(xu.std - xb / Math.sqrt(3)) < 0.003);
    const ku = stats(init.kaimingUniform_(Tensor.empty([300, 100]), Math.sqrt(5), g));
    assert.ok(ku.min >= -0.1 && ku.max <= 0.1 && ku.max > 0.099); // a = √5 ⇒ bound 1/√fan_in
    const kn = stats(init.kaimingNormal_(Tensor.empty([300, 100]), 0, g));
    assert.ok(Math.abs(kn.std - Math.sqrt(2 / 100)) < 0.003, `kaiming normal std ${kn.std}`);
    const xn = stats(init.xavierNormal_(Tensor.empty([300, 100]), 2, g));
    assert.ok(Math.abs(xn.std - 2 * Math.sqrt(2 / 400)) < 0.003, `xavier normal std ${xn.std}`);
    const tn = stats(init.truncNormal_(Tensor.empty([5000]), 0, 1, -0.5, 1, g));
    assert.ok(tn.min >= -0.5 && tn.max <= 1);
    const u = stats(init.uniform_(Tensor.empty([5000]), 2, 3, g));
    assert.ok(u.min >= 2 && u.max < 3 && Math.abs(u.mean - 2.5) < 0.02);
    expectEqual(init.constant_(Tensor.empty([3]), 1.5), [1.5, 1.5, 1.5]);
    expectEqual(init.ones_(Tensor.empty([2], { dtype: 'float64' })), [1, 1]);
    expectEqual(init.zeros_(Tensor.ones([2])), [0, 0]);
  });

  test('half-precision tensors are filled through float32; integer tensors are refused', () => {
    const h = init.constant_(Tensor.empty([3], { dtype: 'float16' }), 0.5);
    expectEqual(h.toFloat32Array(), [0.5, 0.5, 0.5]);
    assert.throws(() => init.ones_(Tensor.empty([2], { dtype: 'int32' })), /expected a floating-point tensor, got int32/);
    assert.throws(() => init.zeros_(Tensor.empty([2, 3]).t()), /must be contiguous/);
  });
});

describe('Conv1D, LinearLike, fromWeights and slicing', () => {
  const g = new Generator(21);
  const W = Tensor.randn([3, 4], { generator: g }); // [out, in]
  const b = Tensor.randn([3], { generator: g });
  const x = Tensor.randn([2, 5, 4], { generator: g });
  const ref = (w: Tensor, bias: Tensor | null, v: Tensor) => {
    const y = v.matmul(w.t());
    return bias ? y.add(bias) : y;
  };

  test('Conv1D: weight [in, out], y = x·W + b, HF keys; GPT-2 modeling re-exports the same class', () => {
    assert.equal(Gpt2Conv1D, Conv1D);
    const c = new Conv1D(4, 3);
    assert.deepEqual(c.weight.shape, [4, 3]);
    assert.deepEqual(c.stateDictKeys(), ['weight', 'bias']);
    expectEqual(c.bias!, [0, 0, 0]);
    c.weight.copy_(W.t());
    c.bias!.copy_(b);
    const y = c.forward(x);
    assert.deepEqual(y.shape, [2, 5, 3]);
    expectClose(y, ref(W, b, x), { atol: 1e-6 });
    y.sum().backward();
    expectClose(c.weight.grad!, x.reshape([10, 4]).t().matmul(Tensor.ones([10, 3])), { atol: 1e-5 });
    const nb = new Conv1D(4, 3, 0.02, { bias: false });
    assert.equal(nb.bias, null);
    assert.deepEqual(nb.stateDictKeys(), ['weight']);
  });

  test('LinearLike: the same [out, in] view of a Linear and a Conv1D; weightOutIn is a view, setWeightOutIn copies in place', () => {
    const lin = Linear.fromWeights(W, b);
    const conv = Conv1D.fromWeights(W, b);
    for (const m of [lin, conv]) {
      const ll = asLinearLike(m)!;
      assert.ok(ll && isLinearLike(m));
      assert.equal(ll.inFeatures, 4);
      assert.equal(ll.outFeatures, 3);
      assert.equal(ll.hasBias, true);
      expectEqual(ll.weightOutIn().contiguous(), W);
      expectClose(ll.forward(x), ref(W, b, x), { atol: 1e-6 });
      assert.equal(ll.weightOutIn().data, m.weight.data, 'a view of the parameter storage');
    }
    assert.equal(lin.weightOutIn(), lin.weight);
    assert.deepEqual(conv.weight.shape, [4, 3]);
    assert.equal(asLinearLike(new LayerNorm(3)), null);
    assert.ok(!isLinearLike(new Embedding(2, 2)));
    // writes through the view reach the [in, out] parameter
    noGrad(() => conv.weightOutIn().select(0, 1).fill_(7));
    expectEqual(conv.weight.select(1, 1), [7, 7, 7, 7]);
    // setWeightOutIn: same storage, new values, same outputs for both kinds
    const W2 = Tensor.randn([3, 4], { generator: g });
    const before = [lin.weight, conv.weight, lin.weight.data, conv.weight.data];
    lin.setWeightOutIn(W2);
    conv.setWeightOutIn(W2);
    assert.deepEqual([lin.weight, conv.weight, lin.weight.data, conv.weight.data], before);
    expectEqual(conv.weight, W2.t().contiguous());
    expectClose(conv.forward(x), lin.forward(x), { atol: 1e-6 });
    assert.throws(() => conv.setWeightOutIn(W2.t()), /expected \[3, 4\] \(\[out, in\]\), got \[4,3\]/);
  });

  test('fromWeights copies into new trainable leaves, draws no random numbers, and reads Conv1D [in, out] on request', () => {
    manualSeed(5);
    const src = W.clone();
    const lin = Linear.fromWeights(src);
    const conv = Conv1D.fromWeights(src.t(), null, { layout: 'inOut' });
    const drawn = Tensor.randn([4]);
    manualSeed(5);
    expectEqual(drawn, Tensor.randn([4]), 'default generator untouched');
    assert.equal(lin.bias, null);
    assert.deepEqual(conv.stateDictKeys(), ['weight']);
    assert.ok(lin.weight.requiresGrad && lin.weight.isLeaf && conv.weight.requiresGrad && conv.weight.isLeaf);
    noGrad(() => src.fill_(0));
    expectClose(lin.forward(x), ref(W, null, x), { atol: 1e-6 });
    expectClose(conv.forward(x), ref(W, null, x), { atol: 1e-6 });
    assert.throws(() => Linear.fromWeights(Tensor.zeros([3])), /weight must be a 2-D tensor/);
    assert.throws(() => Linear.fromWeights(W, Tensor.zeros([4])), /bias must be a 1-D tensor \[3\]/);
  });

  for (const kind of ['Linear', 'Conv1D'] as const) {
    const make = () => (kind === 'Linear' ? Linear.fromWeights(W, b) : Conv1D.fromWeights(W, b));

    test(`sliceLinear(${kind}) by outputs: the selected columns of the original output`, () => {
      const m = make();
      const outIdx = [2, 0];
      const s = sliceLinear(m, { outIdx });
      assert.ok(s instanceof (kind === 'Linear' ? Linear : Conv1D));
      assert.equal(s.outFeatures, 2);
      assert.equal(s.inFeatures, 4);
      expectClose(s.forward(x), m.forward(x).indexSelect(-1, tensor([2, 0], { dtype: 'int32' })), { atol: 1e-6 });
      expectEqual(s.bias!, [b.data[2]!, b.data[0]!]);
    });

    test(`sliceLinear(${kind}) by inputs: the original with the dropped inputs zeroed; new storage, flags kept`, () => {
      const m = make();
      m.requiresGrad_(false).eval();
      const inIdx = [0, 3];
      const s = sliceLinear(m, { inIdx });
      assert.equal(s.inFeatures, 2);
      assert.equal(s.outFeatures, 3);
      const keep = tensor([1, 0, 0, 1]);
      const want = m.forward(x.mul(keep));
      expectClose(s.forward(x.indexSelect(-1, tensor(inIdx, { dtype: 'int32' }))), want, { atol: 1e-6 });
      // both at once
      const both = sliceLinear(m, { outIdx: [1], inIdx });
      expectClose(both.forward(x.indexSelect(-1, tensor(inIdx, { dtype: 'int32' }))), want.narrow(-1, 1, 1), { atol: 1e-6 });
      // copies: the original's storage is not shared and later edits do not leak
      assert.notEqual(s.weight.data, m.weight.data);
      assert.notEqual(s.bias!.data, m.bias!.data);
      noGrad(() => m.weight.fill_(0));
      expectClose(s.forward(x.indexSelect(-1, tensor(inIdx, { dtype: 'int32' }))), want, { atol: 1e-6 });
      assert.ok(!s.weight.requiresGrad && !s.bias!.requiresGrad && !s.training);
      assert.throws(() => sliceLinear(m, { inIdx: [4] }), /index 4 is out of range for dimension \d of size 4/);
    });
  }

  test('sliceLayerNorm keeps eps and the selected affine entries (LayerNorm and RMSNorm)', () => {
    const ln = new LayerNorm(4, { eps: 1e-3 });
    ln.weight!.copy_(tensor([1, 2, 3, 4]));
    ln.bias!.copy_(tensor([0, 0.1, 0.2, 0.3]));
    const s = sliceLayerNorm(ln, [3, 1]);
    assert.ok(s instanceof LayerNorm);
    assert.deepEqual(s.normalizedShape, [2]);
    assert.equal(s.eps, 1e-3);
    expectEqual(s.weight!, [4, 2]);
    expectClose(s.bias!, [0.3, 0.1], { atol: 0 });
    // x = [1, 3]: mean 2, var 1 ⇒ x̂ = ±1/√1.001
    const r = 1 / Math.sqrt(1.001);
    expectClose(s.forward(tensor([[1, 3]])), [-4 * r + 0.3, 2 * r + 0.1], { atol: 1e-6 });
    assert.notEqual(s.weight!.data, ln.weight!.data);
    const plain = sliceLayerNorm(new LayerNorm(3, { elementwiseAffine: false }), [0, 2]);
    assert.deepEqual(plain.stateDictKeys(), []);
    const rms = new RMSNorm(3);
    rms.weight.copy_(tensor([1, 2, 3]));
    const rs = sliceLayerNorm(rms, [2, 0]);
    assert.ok(rs instanceof RMSNorm);
    expectEqual(rs.weight, [3, 1]);
    // x = [3, 4]: rms = √12.5
    expectClose(rs.forward(tensor([[3, 4]])), [(3 * 3) / Math.sqrt(12.5 + 1e-6), 4 / Math.sqrt(12.5 + 1e-6)], { atol: 1e-6 });
    assert.throws(() => sliceLayerNorm(new LayerNorm([2, 2]), [0]), /only a 1-D normalized shape/);
  });

  test('sliceEmbedding keeps every row and the padding index, slicing the hidden dim', () => {
    const emb = new Embedding(6, 5, { paddingIdx: 1, generator: new Generator(4) });
    const s = sliceEmbedding(emb, [4, 0, 2]);
    assert.equal(s.numEmbeddings, 6);
    assert.equal(s.embeddingDim, 3);
    assert.equal(s.paddingIdx, 1);
    const ids = tensor([[0, 1, 5], [3, 3, 2]], { dtype: 'int32' });
    expectEqual(s.forward(ids), emb.forward(ids).indexSelect(-1, tensor([4, 0, 2], { dtype: 'int32' })));
    assert.notEqual(s.weight.data, emb.weight.data);
    assert.ok(s.weight.requiresGrad);
  });
});
