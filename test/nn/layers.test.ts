// Layers against hand-computed values (numpy float64 where noted), gradients reaching parameters, default
// initialisation bounds, and the init helpers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Dropout, Embedding, Generator, LayerNorm, Linear, RMSNorm, Sequential, Tensor, init, tensor } from '../../src/index.ts';
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
