// Float64 finite-difference gradient checks: one sample per differentiable op in OP_REGISTRY (a test fails if an
// op has none), plus the composites built from them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, OP_REGISTRY, Tensor, ops, tensor } from '../../src/index.ts';
import { f64, gradcheck } from '../harness/gradcheck.ts';

const g = new Generator(7);
const T = (shape: number[], lo = -1, hi = 1) => f64(shape, g, lo, hi);
/** Values away from 0 (for kinks at 0): magnitude in [0.1, 1], random sign. */
const awayFromZero = (shape: number[]) => {
  const t = T(shape, 0.1, 1);
  const d = t.data as Float64Array;
  for (let i = 0; i < d.length; i++) if (g.random() < 0.5) d[i] = -d[i]!;
  return t;
};
const ints = (vals: number[], shape?: number[]) => tensor(vals, { dtype: 'int32', shape: shape ?? [vals.length] });

type Sample = { fn: (...xs: Tensor[]) => Tensor; inputs: () => Tensor[]; eps?: number };

/** Samples keyed by registry op name (primitives) … */
const PRIMITIVES: Record<string, Sample[]> = {
  neg: [{ fn: (x) => x.neg(), inputs: () => [T([3, 4])] }],
  exp: [{ fn: (x) => x.exp(), inputs: () => [T([3, 4])] }],
  log: [{ fn: (x) => x.log(), inputs: () => [T([3, 4], 0.2, 2)] }],
  sqrt: [{ fn: (x) => x.sqrt(), inputs: () => [T([3, 4], 0.2, 2)] }],
  rsqrt: [{ fn: (x) => x.rsqrt(), inputs: () => [T([3, 4], 0.2, 2)] }],
  abs: [{ fn: (x) => x.abs(), inputs: () => [awayFromZero([3, 4])] }],
  tanh: [{ fn: (x) => x.tanh(), inputs: () => [T([3, 4], -2, 2)] }],
  sigmoid: [{ fn: (x) => x.sigmoid(), inputs: () => [T([3, 4], -3, 3)] }],
  relu: [{ fn: (x) => x.relu(), inputs: () => [awayFromZero([3, 4])] }],
  silu: [{ fn: (x) => x.silu(), inputs: () => [T([3, 4], -3, 3)] }],
  gelu: [{ fn: (x) => x.gelu(), inputs: () => [T([3, 5], -3, 3)] }],
  geluTanh: [{ fn: (x) => x.gelu('tanh'), inputs: () => [T([3, 5], -3, 3)] }],
  erf: [{ fn: (x) => x.erf(), inputs: () => [T([3, 4], -2.5, 2.5)] }, { fn: (x) => x.erf(), inputs: () => [T([4], 3, 4)] }],
  sin: [{ fn: (x) => x.sin(), inputs: () => [T([3, 4], -3, 3)] }],
  cos: [{ fn: (x) => x.cos(), inputs: () => [T([3, 4], -3, 3)] }],
  square: [{ fn: (x) => x.square(), inputs: () => [T([3, 4])] }],
  reciprocal: [{ fn: (x) => x.reciprocal(), inputs: () => [T([3, 4], 0.3, 2)] }],
  sign: [{ fn: (x) => x.sign().add(x), inputs: () => [awayFromZero([3, 4])] }],
  affine: [{ fn: (x) => x.mul(2.5).add(-1), inputs: () => [T([3, 4])] }],
  powScalar: [{ fn: (x) => x.pow(1.7), inputs: () => [T([3, 4], 0.2, 2)] }],
  clamp: [{ fn: (x) => x.clamp(-0.5, 0.5), inputs: () => [T([4, 5], -1, 1)] }],
  leakyRelu: [{ fn: (x) => ops.leakyRelu(x, 0.1), inputs: () => [awayFromZero([3, 4])] }],
  add: [{ fn: (a, b) => a.add(b), inputs: () => [T([2, 3, 4]), T([3, 1])] }],
  sub: [{ fn: (a, b) => a.sub(b), inputs: () => [T([3, 4]), T([4])] }],
  mul: [{ fn: (a, b) => a.mul(b), inputs: () => [T([2, 1, 4]), T([3, 1])] }],
  div: [{ fn: (a, b) => a.div(b), inputs: () => [T([3, 4]), T([3, 4], 0.5, 2)] }],
  pow: [{ fn: (a, b) => a.pow(b), inputs: () => [T([3, 4], 0.3, 2), T([4], -1, 2)] }],
  maximum: [{ fn: (a, b) => a.maximum(b), inputs: () => [T([3, 4]), T([3, 4])] }],
  minimum: [{ fn: (a, b) => a.minimum(b), inputs: () => [T([3, 4]), T([1, 4])] }],
  where: [{ fn: (a, b) => ops.where(ints([1, 0, 1, 0], [4]), a, b), inputs: () => [T([3, 4]), T([3, 1])] }],
  // a float32 round trip is flat below float32 resolution: difference over a wider step
  to: [{ fn: (x) => x.to('float32').to('float64').add(x), inputs: () => [T([3])], eps: 1e-2 }],
  sum: [
    { fn: (x) => x.sum(), inputs: () => [T([3, 4])] },
    { fn: (x) => x.sum([0, 2], true), inputs: () => [T([2, 3, 4])] },
    { fn: (x) => x.sum(1), inputs: () => [T([2, 3, 4])] },
  ],
  amax: [{ fn: (x) => x.amax(1), inputs: () => [T([3, 5])] }, { fn: (x) => x.amax(), inputs: () => [T([3, 5])] }],
  amin: [{ fn: (x) => x.amin([0, 2], true), inputs: () => [T([2, 3, 4])] }],
  maxDim: [{ fn: (x) => x.max(1).values, inputs: () => [T([3, 5])] }, { fn: (x) => x.min(0, true).values, inputs: () => [T([4, 3])] }],
  contiguous: [{ fn: (x) => x.transpose(0, 1).contiguous(), inputs: () => [T([3, 4])] }],
  clone: [{ fn: (x) => x.clone(), inputs: () => [T([3, 4])] }],
  view: [{ fn: (x) => x.view(2, 6), inputs: () => [T([3, 4])] }, { fn: (x) => x.transpose(0, 1).reshape(12), inputs: () => [T([3, 4])] }],
  permute: [{ fn: (x) => x.permute(2, 0, 1), inputs: () => [T([2, 3, 4])] }],
  slice: [{ fn: (x) => x.slice(1, 1, 4, 2), inputs: () => [T([3, 5])] }, { fn: (x) => x.narrow(0, 1, 2), inputs: () => [T([3, 5])] }],
  expand: [{ fn: (x) => x.expand(2, 3, 4), inputs: () => [T([3, 1])] }],
  unsqueeze: [{ fn: (x) => x.unsqueeze(1), inputs: () => [T([3, 4])] }],
  cat: [{ fn: (a, b) => ops.cat([a, b], 1), inputs: () => [T([2, 3]), T([2, 2])] }],
  indexSelect: [{ fn: (x) => x.indexSelect(1, ints([2, 0, 2])), inputs: () => [T([2, 3, 2])] }],
  gather: [{ fn: (x) => x.gather(1, ints([0, 2, 1, 1, 0, 0], [3, 2])), inputs: () => [T([3, 4])] }],
  scatterAdd: [{ fn: (x, s) => x.scatterAdd(1, ints([0, 2, 1, 1, 0, 0], [3, 2]), s), inputs: () => [T([3, 4]), T([3, 2])] }],
  matmul: [
    { fn: (a, b) => a.matmul(b), inputs: () => [T([3, 4]), T([4, 5])] },
    { fn: (a, b) => a.matmul(b.transpose(-1, -2)), inputs: () => [T([2, 3, 4]), T([5, 4])] },
    { fn: (a, b) => a.transpose(-1, -2).matmul(b), inputs: () => [T([2, 4, 3]), T([2, 4, 2])] },
    { fn: (a, b) => a.matmul(b), inputs: () => [T([4]), T([4])] },
    { fn: (a, b) => a.matmul(b), inputs: () => [T([2, 1, 3, 4]), T([3, 4, 2])] },
  ],
  softmax: [{ fn: (x) => x.softmax(-1), inputs: () => [T([3, 5], -2, 2)] }, { fn: (x) => x.softmax(0), inputs: () => [T([3, 5], -2, 2)] }],
  logSoftmax: [{ fn: (x) => x.logSoftmax(1), inputs: () => [T([2, 4, 3], -2, 2)] }],
  layerNorm: [
    { fn: (x, w, b) => ops.layerNorm(x, [5], w, b, 1e-5), inputs: () => [T([3, 5], -2, 2), T([5]), T([5])] },
    { fn: (x) => ops.layerNorm(x, [2, 3]), inputs: () => [T([2, 2, 3], -2, 2)] },
  ],
  rmsNorm: [{ fn: (x, w) => ops.rmsNorm(x, w, 1e-6), inputs: () => [T([3, 6], -2, 2), T([6])] }, { fn: (x) => ops.rmsNorm(x), inputs: () => [T([2, 4])] }],
  embedding: [{ fn: (w) => ops.embedding(ints([1, 3, 1, 0], [2, 2]), w), inputs: () => [T([4, 3])] }],
  crossEntropy: [
    { fn: (x) => ops.crossEntropy(x, ints([1, 0, 3, -100])), inputs: () => [T([4, 5], -2, 2)] },
    { fn: (x) => ops.crossEntropy(x, ints([2, 4, 1]), { labelSmoothing: 0.1, reduction: 'sum' }), inputs: () => [T([3, 5], -2, 2)] },
    { fn: (x) => ops.crossEntropy(x, ints([0, 1, 2, 1], [2, 2]), { reduction: 'none' }), inputs: () => [T([2, 3, 2], -2, 2)] },
  ],
  cumsum: [{ fn: (x) => x.cumsum(1), inputs: () => [T([3, 4])] }],
  dropout: [{ fn: (x) => ops.dropout(x, 0.3, true, new Generator(3)), inputs: () => [T([4, 5])] }],
  linear: [
    { fn: (x, w, b) => ops.linear(x, w, b), inputs: () => [T([2, 3, 4]), T([5, 4]), T([5])] },
    { fn: (x, w) => ops.linear(x, w), inputs: () => [T([3, 4]), T([5, 4])] },
    { fn: (x, w, b) => ops.linear(x.transpose(0, 1), w, b), inputs: () => [T([4, 3]), T([5, 4]), T([5]).requiresGrad_(false)] },
  ],
};

/** … and composites (no registry entry; their gradient comes from their parts). */
const COMPOSITES: Record<string, Sample[]> = {
  mean: [{ fn: (x) => x.mean([0, 2]), inputs: () => [T([2, 3, 4])] }],
  var: [{ fn: (x) => x.var(1), inputs: () => [T([3, 5])] }],
  std: [{ fn: (x) => x.std(), inputs: () => [T([3, 5])] }],
  logsumexp: [{ fn: (x) => x.logsumexp(1), inputs: () => [T([3, 5], -3, 3)] }],
  norm: [{ fn: (x) => x.norm(), inputs: () => [T([3, 4])] }, { fn: (x) => x.norm(3, 1), inputs: () => [awayFromZero([3, 4])] }],
  select: [{ fn: (x) => x.select(1, -1), inputs: () => [T([3, 4])] }],
  split: [{ fn: (x) => x.split([1, 3], 1)[1]!, inputs: () => [T([2, 4])] }],
  stack: [{ fn: (a, b) => ops.stack([a, b], 1), inputs: () => [T([2, 3]), T([2, 3])] }],
  movedim: [{ fn: (x) => x.movedim(0, 2).contiguous(), inputs: () => [T([2, 3, 4])] }],
  mseLoss: [{ fn: (a, b) => ops.mseLoss(a, b), inputs: () => [T([3, 4]), T([3, 4])] }],
  klDiv: [{ fn: (a, p) => ops.klDiv(a.logSoftmax(-1), p.softmax(-1), { reduction: 'batchmean' }), inputs: () => [T([3, 4]), T([3, 4])] }],
  softCrossEntropy: [{ fn: (s, t) => ops.softCrossEntropy(s, t, { temperature: 2 }), inputs: () => [T([3, 4], -2, 2), T([3, 4], -2, 2).requiresGrad_(false)] }],
  crossEntropySoftTargets: [{ fn: (x, p) => ops.crossEntropy(x, p.softmax(-1), { labelSmoothing: 0.2 }), inputs: () => [T([3, 4]), T([3, 4])] }],
  topk: [{ fn: (x) => x.topk(2, 1).values, inputs: () => [T([3, 5])] }],
  geluComposite: [{ fn: (x) => x.mul(0.5).mul(x.div(Math.SQRT2).erf().add(1)), inputs: () => [T([5], -2, 2)] }],
  attention: [
    {
      fn: (q, k, v) => q.matmul(k.transpose(-1, -2)).div(2).softmax(-1).matmul(v),
      inputs: () => [T([2, 3, 4]), T([2, 3, 4]), T([2, 3, 4])],
    },
  ],
};

test('every differentiable op in OP_REGISTRY has a gradient check sample', () => {
  const missing = [...OP_REGISTRY.keys()].filter((n) => !(n in PRIMITIVES));
  assert.deepEqual(missing, [], `ops without a gradcheck sample: ${missing.join(', ')}`);
});

for (const [name, samples] of [...Object.entries(PRIMITIVES), ...Object.entries(COMPOSITES)])
  samples.forEach((s, i) => test(`gradcheck ${name}#${i}`, () => gradcheck(`${name}#${i}`, s.fn, s.inputs(), { eps: s.eps })));
