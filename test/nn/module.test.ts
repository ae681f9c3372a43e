// Module: attribute-path keys (lists, ModuleList, Map and record dicts), buffers, strict loading errors, tied
// weights, swapping by path, train/eval, freezing, apply.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, Tensor, tensor } from '../../src/index.ts';
import { LazyTensor } from '../../src/nn/module.ts';
import { expectEqual } from '../harness/expect.ts';

class Block extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout = new Dropout(0.1);
  constructor() {
    super();
    this.dense = new Linear(4, 4);
    this.LayerNorm = new LayerNorm(4);
    this.registerBuffer('mask', Tensor.ones([4]));
  }
}
class Net extends Module {
  static override tied = { 'head.weight': 'emb.weight' };
  readonly config = { hidden: 4, name: 'net' }; // plain data: not a child
  emb: Embedding;
  layer: Block[];
  extra: ModuleList<Linear>;
  experts: Map<string, Linear>;
  heads: Record<string, Linear>;
  head: Linear;
  constructor() {
    super();
    this.emb = new Embedding(10, 4);
    this.layer = [new Block(), new Block()];
    this.extra = new ModuleList([new Linear(4, 2, { bias: false })]);
    this.experts = new Map([['a', new Linear(2, 2, { bias: false })]]);
    this.heads = { cls: new Linear(4, 3) };
    this.head = new Linear(4, 10, { bias: false });
    this.head.weight = this.emb.weight;
    this.registerBuffer('position_ids', Tensor.arange(8), false);
    this.registerBuffer('scale', tensor([2]));
  }
}

const ALL_KEYS = [
  'scale', // Net's own persistent buffer (it has no Tensor fields of its own)
  'emb.weight',
  'layer.0.mask',
  'layer.0.dense.weight',
  'layer.0.dense.bias',
  'layer.0.LayerNorm.weight',
  'layer.0.LayerNorm.bias',
  'layer.1.mask',
  'layer.1.dense.weight',
  'layer.1.dense.bias',
  'layer.1.LayerNorm.weight',
  'layer.1.LayerNorm.bias',
  'extra.0.weight',
  'experts.a.weight',
  'heads.cls.weight',
  'heads.cls.bias',
  'head.weight',
];

describe('attribute paths', () => {
  test('stateDict keys, module by module: own params, own buffers, then children in field order', () => {
    const n = new Net();
    const keys = n.stateDictKeys();
    assert.deepEqual(keys, ALL_KEYS);
    assert.ok(!keys.includes('position_ids'), 'non-persistent buffer left out');
    assert.equal(n.stateDict().get('head.weight'), n.emb.weight, 'values are the live tensors');
  });

  test('namedModules / namedChildren walk lists, ModuleList, Map and record dicts; config objects are ignored', () => {
    const n = new Net();
    assert.deepEqual(
      n.namedChildren().map(([k]) => k),
      ['emb', 'layer.0', 'layer.1', 'extra', 'experts.a', 'heads.cls', 'head'],
    );
    const names = n.namedModules().map(([k]) => k);
    assert.deepEqual(names.slice(0, 6), ['', 'emb', 'layer.0', 'layer.0.dense', 'layer.0.LayerNorm', 'layer.0.dropout']);
    assert.ok(names.includes('extra.0') && names.includes('experts.a') && names.includes('heads.cls'));
    assert.equal(n.modules().length, names.length);
  });

  test('tied parameters are listed once, under the first path; forSave drops the tied key', () => {
    const n = new Net();
    const pn = n.namedParameters().map(([k]) => k);
    assert.ok(pn.includes('emb.weight') && !pn.includes('head.weight'));
    assert.equal(n.parameters().length, pn.length);
    assert.equal(n.numParameters(), 10 * 4 + 2 * (16 + 4 + 4 + 4) + 8 + 4 + 12 + 3);
    const saved = n.stateDictKeys({ forSave: true });
    assert.deepEqual(saved, n.stateDictKeys().filter((k) => k !== 'head.weight'));
    assert.deepEqual(
      n.namedBuffers().map(([k]) => k),
      ['position_ids', 'scale', 'layer.0.mask', 'layer.1.mask'],
    );
  });

  test('registerBuffer rejects dotted names and clashes with fields', () => {
    const b = new Block();
    assert.throws(() => b.registerBuffer('a.b', Tensor.zeros([1])), { message: "registerBuffer: invalid buffer name 'a.b' (non-empty, no '.')" });
    assert.throws(() => b.registerBuffer('dense', Tensor.zeros([1])), { message: "registerBuffer: 'dense' is already a field of Block" });
    b.registerBuffer('mask', Tensor.zeros([4])); // re-registering replaces
    expectEqual(b.getBuffer('mask')!, [0, 0, 0, 0]);
  });
});

describe('loadStateDict', () => {
  test('round trip copies in place (storage kept), converts dtype, keeps ties', () => {
    const a = new Net();
    const b = new Net();
    const storage = b.layer[1]!.dense.weight.data;
    const sd = new Map([...a.stateDict({ forSave: true })].map(([k, t]) => [k, t.double()] as [string, Tensor]));
    const r = b.loadStateDict(sd);
    assert.deepEqual(r, { missing: [], unexpected: [] });
    assert.equal(b.layer[1]!.dense.weight.data, storage);
    assert.equal(b.layer[1]!.dense.weight.dtype, 'float32');
    expectEqual(b.layer[1]!.dense.weight, a.layer[1]!.dense.weight);
    expectEqual(b.experts.get('a')!.weight, a.experts.get('a')!.weight);
    assert.equal(b.head.weight, b.emb.weight);
    expectEqual(b.head.weight, a.emb.weight);
  });

  test('either side of a tie may be the one given', () => {
    const a = new Net();
    const b = new Net();
    const sd = a.stateDict();
    sd.delete('emb.weight'); // the file holds only head.weight
    assert.deepEqual(b.loadStateDict(sd), { missing: [], unexpected: [] });
    expectEqual(b.emb.weight, a.emb.weight);
  });

  test('persistent buffers load; records accept plain objects', () => {
    const n = new Net();
    const sd = Object.fromEntries(n.stateDict());
    sd['scale'] = tensor([5]);
    sd['layer.1.mask'] = tensor([1, 0, 1, 0]);
    n.loadStateDict(sd);
    expectEqual(n.getBuffer('scale')!, [5]);
    expectEqual(n.layer[1]!.getBuffer('mask')!, [1, 0, 1, 0]);
  });

  test('strict mode lists every missing, unexpected and wrong-shape key in one error, and copies nothing', () => {
    const n = new Net();
    const sd = n.stateDict({ forSave: true });
    sd.delete('layer.0.dense.bias');
    sd.delete('heads.cls.weight');
    sd.set('layer.9.dense.weight', Tensor.zeros([4, 4]));
    sd.set('emb.weight', Tensor.zeros([11,4]));
    sd.set('layer.1.dense.weight', Tensor.zeros([4,5]));
    const fresh = new Net();
    const before = fresh.layer[0]!.dense.weight.toArray();
    sd.set('layer.0.dense.weight', Tensor.full([4, 4], 7)); // a good key: must not be copied when the load fails
    assert.throws(() => fresh.loadStateDict(sd), {
      message:
        'loadStateDict(Net): missing keys (2): layer.0.dense.bias, heads.cls.weight' +
        ' | unexpected keys (1): layer.9.dense.weight' +
        ' | wrong shapes (2): emb.weight: checkpoint [11,4], model [10,4]; layer.1.dense.weight: checkpoint [4,5], model [4,4]',
    });
    expectEqual(fresh.layer[0]!.dense.weight, before);
  });

  test('non-strict returns missing and unexpected keys, still throws on wrong shapes', () => {
    const n = new Net();
    const sd = n.stateDict({ forSave: true });
    sd.delete('layer.0.dense.bias');
    sd.set('layer.9.dense.weight', Tensor.zeros([4, 4]));
    assert.deepEqual(new Net().loadStateDict(sd, { strict: false }), { missing: ['layer.0.dense.bias'], unexpected: ['layer.9.dense.weight'] });
    sd.set('emb.weight', Tensor.zeros([11,4]));
    assert.throws(() => new Net().loadStateDict(sd, { strict: false }), {
      message: 'loadStateDict(Net): wrong shapes (1): emb.weight: checkpoint [11,4], model [10,4]',
    });
  });

  test('a checkpoint of the wrong size: the first five keys of each category with the totals, not every key', () => {
    class Deep extends Module {
      layers: Linear[];
      constructor(hidden: number, n: number) {
        super();
        this.layers = Array.from({ length: n }, () => new Linear(hidden, hidden));
      }
    }
    const sd = new Deep(8, 20).stateDict(); // hidden 8 where the model has 4: every key present has the wrong shape
    sd.delete('layers.0.bias');
    for (let i = 0; i < 7; i++) sd.set(`extra.${i}.weight`, Tensor.zeros([1]));
    const fresh = new Deep(4, 26); // layers 20..25 are not in the checkpoint
    const before = fresh.layers[1]!.weight.toArray();
    let msg = '';
    assert.throws(() => fresh.loadStateDict(sd), (e: Error) => ((msg = e.message), true));
    assert.equal(
      msg,
      'loadStateDict(Deep): missing keys (13): layers.0.bias, layers.20.weight, layers.20.bias, layers.21.weight, layers.21.bias, … and 8 more' +
        ' | unexpected keys (7): extra.0.weight, extra.1.weight, extra.2.weight, extra.3.weight, extra.4.weight, … and 2 more' +
        ' | wrong shapes (39): layers.0.weight: checkpoint [8,8], model [4,4]; layers.1.weight: checkpoint [8,8], model [4,4];' +
        ' layers.1.bias: checkpoint [8], model [4]; layers.2.weight: checkpoint [8,8], model [4,4]; layers.2.bias: checkpoint [8], model [4];' +
        ' … and 34 more',
    );
    assert.equal(msg.split('\n').length, 1);
    expectEqual(fresh.layers[1]!.weight, before);
    // exactly five of a category: all listed, no "more"
    const five = new Deep(4, 3).stateDict();
    for (let i = 0; i < 5; i++) five.set(`x${i}`, Tensor.zeros([1]));
    assert.throws(() => new Deep(4, 3).loadStateDict(five), { message: 'loadStateDict(Deep): unexpected keys (5): x0, x1, x2, x3, x4' });
  });
});

describe('modes, freezing, apply', () => {
  test('train/eval propagate through lists and dicts', () => {
    const n = new Net();
    n.eval();
    assert.ok(n.modules().every((m) => m.training === false));
    assert.equal(n.experts.get('a')!.training, false);
    const x = Tensor.ones([2, 4]);
    assert.equal(n.layer[0]!.dropout.forward(x), x, 'dropout is the identity in eval');
    n.train();
    assert.ok(n.modules().every((m) => m.training === true));
    n.layer[1]!.train(false);
    assert.equal(n.layer[1]!.dense.training, false);
    assert.equal(n.layer[0]!.dense.training, true);
  });

  test('freezing: frozen parameters stay parameters (and in stateDict) but get no grad', () => {
    const n = new Net();
    n.layer[0]!.requiresGrad_(false);
    assert.equal(n.numParameters({ trainableOnly: true }), n.numParameters() - 28);
    assert.ok(n.parameters().includes(n.layer[0]!.dense.weight));
    assert.ok(n.stateDict().has('layer.0.dense.weight'));
    const b0 = n.layer[0]!;
    const b1 = n.layer[1]!;
    b1.dense.forward(b0.dense.forward(Tensor.ones([1, 4]))).sum().backward();
    assert.equal(b0.dense.weight.grad, null);
    assert.ok(b1.dense.weight.grad !== null);
    n.zeroGrad();
    assert.equal(b1.dense.weight.grad, null);
    n.requiresGrad_(true);
    assert.equal(n.numParameters({ trainableOnly: true }), n.numParameters());
  });

  test('apply visits children first, then the module itself', () => {
    const n = new Net();
    const seen: string[] = [];
    n.layer[0]!.apply((m) => seen.push(m.constructor.name));
    assert.deepEqual(seen, ['Linear', 'LayerNorm', 'Dropout', 'Block']);
  });
});

describe('getSubmodule / setSubmodule', () => {
  test('swap a module in a field, an array, a ModuleList, a Map and a record', () => {
    const n = new Net();
    const cases: [string, () => Module][] = [
      ['head', () => n.head],
      ['layer.1.dense', () => n.layer[1]!.dense],
      ['extra.0', () => n.extra[0]!],
      ['experts.a', () => n.experts.get('a')!],
      ['heads.cls', () => n.heads['cls']!],
      ['layer.0', () => n.layer[0]!],
    ];
    for (const [path, get] of cases) {
      const old = get();
      assert.equal(n.getSubmodule(path), old, path);
      const fresh = path === 'layer.0' ? new Block() : new Linear(4, 4, { bias: false });
      assert.equal(n.setSubmodule(path, fresh), old, path);
      assert.equal(get(), fresh, path);
      assert.equal(n.getSubmodule(path), fresh, path);
    }
    const keys = n.stateDictKeys();
    assert.ok(!keys.includes('layer.1.dense.bias') && !keys.includes('heads.cls.bias'));
    assert.ok(keys.includes('experts.a.weight') && keys.includes('extra.0.weight'));
    assert.equal(n.stateDict().get('extra.0.weight')!.shape.join(','), '4,4');
  });

  test('errors name the path and the part that is missing', () => {
    const n = new Net();
    assert.equal(n.getSubmodule(''), n);
    assert.throws(() => n.getSubmodule('layer.1.nope'), { message: "getSubmodule: 'layer.1.nope' has no module at 'nope' (in 'layer.1')" });
    assert.throws(() => n.getSubmodule('layer.7'), { message: "getSubmodule: 'layer.7' has no module at '7' (in 'layer')" });
    assert.throws(() => n.getSubmodule('config'), { message: "getSubmodule: 'config' has no module at 'config' (in Net)" });
    assert.throws(() => n.getSubmodule('layer'), { message: "getSubmodule: 'layer' is a container of modules, not a module" });
    assert.throws(() => n.setSubmodule('experts.b', new Linear(2, 2)), /has no module at 'b'/);
  });
});

describe('loadStateDict with lazy tensors (a checkpoint streamed in)', () => {
  const lazyOf = (m: Module, reads: string[], shapeOf: (k: string, s: readonly number[]) => number[] = (_k, s) => [...s]) =>
    new Map(
      [...m.stateDict()].map(([k, t]) => {
        const copy = t.clone();
        return [k, new LazyTensor(shapeOf(k, t.shape), () => (reads.push(k), copy))] as const;
      }),
    );
  test('each tensor is read once, when it is copied in, and the values arrive', () => {
    const src = new Linear(3, 2);
    const dst = new Linear(3, 2);
    const reads: string[] = [];
    dst.loadStateDict(lazyOf(src, reads));
    assert.deepEqual(reads.sort(), ['bias', 'weight']);
    expectEqual(dst.weight, src.weight);
    expectEqual(dst.bias!, src.bias!);
  });
  test('a wrong shape is reported from the header before anything is read', () => {
    const reads: string[] = [];
    const lazy = lazyOf(new Linear(3, 2), reads, (k, s) => (k === 'weight' ? [2, 4] : [...s]));
    assert.throws(() => new Linear(3, 2).loadStateDict(lazy), { message: 'loadStateDict(Linear): wrong shapes (1): weight: checkpoint [2,4], model [2,3]' });
    assert.deepEqual(reads, []);
  });
});
