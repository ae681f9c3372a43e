// Module: attribute-path keys, ModuleLists, strict loading errors, tied weights, swapping, modes, freezing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Embedding, LayerNorm, Linear, Module, Tensor, tensor } from '../../src/index.ts';
import { expectClose, expectThrows } from '../harness/expect.ts';

class Block extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  constructor() {
    super();
    this.dense = new Linear(4, 4);
    this.LayerNorm = new LayerNorm(4);
  }
}
class Net extends Module {
  static override tied = { 'head.weight': 'emb.weight' };
  emb: Embedding;
  layer: Block[];
  head: Linear;
  constructor() {
    super();
    this.emb = new Embedding(10, 4);
    this.layer = [new Block(), new Block()];
    this.head = new Linear(4, 10, { bias: false });
    this.head.weight = this.emb.weight;
    this.registerBuffer('position_ids', Tensor.arange(8), false);
    this.registerBuffer('scale', tensor([2]));
  }
}

test('state dict keys are attribute paths; tied keys dropped for saving', () => {
  const n = new Net();
  const keys = [...n.stateDict().keys()];
  assert.deepEqual(keys, [
    'emb.weight', 'head.weight', 'layer.0.dense.weight', 'layer.0.dense.bias', 'layer.0.LayerNorm.weight', 'layer.0.LayerNorm.bias',
    'layer.1.dense.weight', 'layer.1.dense.bias', 'layer.1.LayerNorm.weight', 'layer.1.LayerNorm.bias', 'scale',
  ].sort((a, b) => keys.indexOf(a) - keys.indexOf(b)));
  assert.ok(!n.stateDict({ forSave: true }).has('head.weight'));
  assert.ok(!n.stateDict().has('position_ids'));
  // tied parameters are listed once
  assert.equal(n.namedParameters().filter(([k]) => k === 'head.weight').length, 0);
  assert.equal(n.numParameters(), 10 * 4 + 2 * (16 + 4 + 4 + 4));
});

test('loadStateDict round-trips and ties survive', () => {
  const a = new Net();
  const b = new Net();
  b.loadStateDict(a.stateDict({ forSave: true }));
  expectClose(b.layer[1]!.dense.weight, a.layer[1]!.dense.weight, { atol: 0, rtol: 0 });
  assert.equal(b.head.weight, b.emb.weight);
  expectClose(b.head.weight, a.emb.weight, { atol: 0, rtol: 0 });
});

test('strict loading lists every missing, unexpected and wrong-shape key in one error', () => {
  const n = new Net();
  const sd = n.stateDict({ forSave: true });
  sd.delete('layer.0.dense.bias');
  sd.set('layer.9.dense.weight', Tensor.zeros([4, 4]));
  sd.set('emb.weight', Tensor.zeros([11, 4]));
  expectThrows(
    () => new Net().loadStateDict(sd),
    'loadStateDict(Net): missing keys (1): layer.0.dense.bias',
    'unexpected keys (1): layer.9.dense.weight',
    'wrong shapes (1): emb.weight: checkpoint [11,4], model [10,4]',
  );
  sd.set('emb.weight', Tensor.zeros([10, 4]));
  const r = new Net().loadStateDict(sd, { strict: false });
  assert.deepEqual(r, { missing: ['layer.0.dense.bias'], unexpected: ['layer.9.dense.weight'] });
});

test('train/eval propagate; freezing; swapping a submodule by path', () => {
  const n = new Net();
  n.eval();
  assert.equal(n.layer[1]!.LayerNorm.training, false);
  n.train();
  assert.equal(n.layer[0]!.dense.training, true);
  n.layer[0]!.requiresGrad_(false);
  assert.equal(n.numParameters({ trainableOnly: true }), n.numParameters() - 28);
  const fresh = new Linear(4, 4, { bias: false });
  const old = n.setSubmodule('layer.1.dense', fresh);
  assert.ok(old instanceof Linear);
  assert.equal(n.getSubmodule('layer.1.dense'), fresh);
  assert.ok(!n.stateDict().has('layer.1.dense.bias'));
  expectThrows(() => n.getSubmodule('layer.1.nope'), "getSubmodule: 'layer.1.nope' has no module at 'nope'");
});

test('layers compute torch formulas and gradients reach parameters', () => {
  const lin = new Linear(3, 2);
  lin.weight.copy_(tensor([[1, 0, -1], [2, 1, 0]]));
  lin.bias!.copy_(tensor([0.5, -0.5]));
  const y = lin.forward(tensor([[1, 2, 3]]));
  assert.deepEqual(y.tolist(), [[-1.5, 3.5]]);
  y.sum().backward();
  assert.deepEqual(lin.weight.grad!.tolist(), [[1, 2, 3], [1, 2, 3]]);
  assert.deepEqual(lin.bias!.grad!.tolist(), [1, 1]);
  const emb = new Embedding(5, 2, { paddingIdx: 0 });
  assert.deepEqual(emb.weight.select(0, 0).tolist(), [0, 0]);
  emb.forward(tensor([0, 3, 3], { dtype: 'int32' })).sum().backward();
  assert.deepEqual(emb.weight.grad!.tolist(), [[0, 0], [0, 0], [0, 0], [2, 2], [0, 0]]);
});
