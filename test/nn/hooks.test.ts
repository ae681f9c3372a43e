// Forward hooks (installed as a non-enumerable own `forward`, gone after the last removal), activation capture,
// auxiliary losses and callForward; and the quantization passes built on them leaving no hook behind.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GPT2LMHeadModel, Generator, Linear, Module, ModuleList, Sequential, Tensor, addAuxLoss, callForward, captureActivations, clearAuxLosses,
  collectAuxLosses, gpt2Config, hasForwardHooks, manualSeed, noGrad, registerForwardHook, registerForwardPreHook, tensor, withAuxLosses,
} from '../../src/index.ts';
import { observeInputs } from '../../src/compress/quant/calibrate.ts';
import { quantizeModel } from '../../src/compress/quant/apply.ts';
import { expectClose, expectEqual } from '../harness/expect.ts';

const ownForward = (m: Module) => Object.prototype.hasOwnProperty.call(m, 'forward');

/** Two Linears and a ReLU, calling its children's forward directly as every model does. */
class Mlp extends Module {
  up: Linear;
  down: Linear;
  constructor(g: Generator) {
    super();
    this.up = new Linear(3, 4, { generator: g });
    this.down = new Linear(4, 2, { generator: g });
  }
  forward(x: Tensor): Tensor {
    return this.down.forward(this.up.forward(x).relu());
  }
}

describe('forward hooks', () => {
  test('a hook sees inputs and output, can replace the output, and leaves the module tree untouched', () => {
    const m = new Mlp(new Generator(1));
    const x = Tensor.randn([5, 3], { generator: new Generator(2) });
    const want = m.forward(x);
    const keys = m.stateDictKeys();
    const seen: unknown[][] = [];
    const h = registerForwardHook(m.up, (mod, inputs, out) => {
      assert.equal(mod, m.up);
      seen.push([inputs[0], out]);
    });
    assert.ok(ownForward(m.up) && hasForwardHooks(m.up));
    assert.ok(!Object.keys(m.up).includes('forward'), 'the wrapper is not enumerable');
    assert.deepEqual(m.stateDictKeys(), keys);
    assert.deepEqual(m.namedChildren().map(([k]) => k), ['up', 'down']);
    assert.equal(m.parameters().length, 4);
    expectEqual(m.forward(x), want);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]![0], x);
    expectEqual(seen[0]![1] as Tensor, x.matmul(m.up.weight.t()).add(m.up.bias!));
    // replacing the output (zeroing `up`'s output leaves down's bias)
    const z = registerForwardHook(m.up, (_m, _i, out) => (out as Tensor).mul(0));
    expectClose(m.forward(x), m.down.bias!.reshape([1, 2]).expand([5, 2]), { atol: 0 });
    z.remove();
    h.remove();
    h.remove(); // idempotent
    assert.ok(!ownForward(m.up) && !hasForwardHooks(m.up));
    assert.equal(m.up.forward, Linear.prototype.forward);
    expectEqual(m.forward(x), want);
    assert.equal(seen.length, 2);
  });

  test('pre-hooks may replace the arguments; hooks run in registration order; removing one keeps the others', () => {
    const lin = new Linear(2, 2, { bias: false });
    lin.weight.copy_(tensor([[1, 0], [0, 1]]));
    const order: string[] = [];
    const a = registerForwardPreHook(lin, () => void order.push('pre-a'));
    const b = registerForwardPreHook(lin, (_m, [x]) => (order.push('pre-b'), [(x as Tensor).mul(2)]));
    const postSaw: Tensor[] = [];
    const c = registerForwardHook(lin, (_m, inputs, out) => {
      order.push('post');
      postSaw.push(inputs[0] as Tensor);
      return (out as Tensor).add(1);
    });
    expectEqual(lin.forward(tensor([1, 2])), [3, 5]);
    assert.deepEqual(order, ['pre-a', 'pre-b', 'post']);
    expectEqual(postSaw[0]!, [2, 4], 'the hook sees the replaced arguments');
    b.remove();
    expectEqual(lin.forward(tensor([1, 2])), [2, 3]);
    expectEqual(postSaw[1]!, [1, 2]);
    a.remove();
    c.remove();
    assert.ok(!ownForward(lin));
    const bad = registerForwardPreHook(lin, () => 5 as never);
    assert.throws(() => lin.forward(tensor([1, 2])), /return an array of arguments/);
    bad.remove();
    assert.throws(() => registerForwardHook(new ModuleList([lin]), () => {}), /ModuleList has no forward\(\) to hook/);
  });

  test('an own forward the instance had before is put back after the last hook', () => {
    const lin = new Linear(2, 2);
    const patched = (x: Tensor) => x;
    (lin as unknown as { forward: unknown }).forward = patched;
    let calls = 0;
    const h = registerForwardHook(lin, () => void calls++);
    const x = tensor([1, 2]);
    assert.equal(lin.forward(x), x);
    assert.equal(calls, 1);
    h.remove();
    assert.equal(lin.forward, patched);
    assert.ok(Object.keys(lin).includes('forward'), 'the original descriptor (enumerable) is restored');
  });
});

describe('captureActivations', () => {
  test('inputs and outputs per call, as detached copies; hooks removed afterwards', () => {
    const m = new Mlp(new Generator(3));
    const xs = [Tensor.randn([2, 3], { generator: new Generator(4) }), Tensor.randn([1, 3], { generator: new Generator(5) })];
    const inputs = captureActivations(m, ['down', 'up'], 'input', () => xs.forEach((x) => m.forward(x)));
    assert.deepEqual([...inputs.keys()], ['down', 'up']);
    assert.equal(inputs.get('up')!.length, 2);
    expectEqual(inputs.get('up')![1]!, xs[1]!);
    assert.notEqual(inputs.get('up')![1], xs[1]);
    expectEqual(inputs.get('down')![0]!, m.up.forward(xs[0]!).relu());
    const outputs = captureActivations(m, ['down'], 'output', () => m.forward(xs[0]!));
    expectEqual(outputs.get('down')![0]!, m.forward(xs[0]!));
    // with gradients on, the copies are still detached
    const x = Tensor.randn([2, 3], { generator: new Generator(6), requiresGrad: true });
    const got = captureActivations(m, ['up'], 'output', () => m.forward(x)).get('up')![0]!;
    assert.ok(!got.requiresGrad);
    assert.ok(m.modules().every((mod) => !ownForward(mod) && !hasForwardHooks(mod)));
  });

  test('hooks are removed when run throws, when a name is wrong, and when an output is not a tensor', () => {
    const m = new Mlp(new Generator(7));
    assert.throws(() => captureActivations(m, ['up'], 'output', () => {
      throw new Error('boom');
    }), /boom/);
    assert.throws(() => captureActivations(m, ['up', 'nope'], 'input', () => {}), /getSubmodule: 'nope'/);
    class Pair extends Module {
      lin = new Linear(2, 2);
      forward(x: Tensor): { a: Tensor } {
        return { a: this.lin.forward(x) };
      }
    }
    const p = new Pair();
    assert.throws(() => captureActivations(p, [''], 'output', () => p.forward(tensor([1, 2]))), /the output of '' \(Pair\) is not a Tensor \(object\)/);
    assert.ok([...m.modules(), ...p.modules()].every((mod) => !ownForward(mod)));
  });
});

describe('auxiliary losses', () => {
  class Router extends Module {
    gate: Linear;
    constructor() {
      super();
      this.gate = new Linear(2, 3, { generator: new Generator(8) });
    }
    forward(x: Tensor): Tensor {
      const logits = this.gate.forward(x);
      addAuxLoss(this, 'z_loss', logits.logsumexp(-1).square().mean());
      return logits;
    }
  }
  class Net extends Module {
    blocks = [new Router(), new Router()];
    forward(x: Tensor): Tensor {
      return this.blocks[1]!.forward(this.blocks[0]!.forward(x).narrow(-1, 0, 2));
    }
  }

  test('named by module path, summed over calls, cleared by collection, differentiable', () => {
    const net = new Net();
    const x = tensor([[1, -1], [0.5, 2]]);
    net.forward(x);
    net.forward(x);
    const first = noGrad(() => net.blocks[0]!.gate.forward(x).logsumexp(-1).square().mean().item());
    const losses = collectAuxLosses(net);
    assert.deepEqual([...losses.keys()], ['blocks.0.z_loss', 'blocks.1.z_loss']);
    expectClose(losses.get('blocks.0.z_loss')!, [2 * first], { rtol: 1e-6 });
    assert.equal(collectAuxLosses(net).size, 0, 'collecting clears');
    losses.get('blocks.0.z_loss')!.backward();
    assert.ok(net.blocks[0]!.gate.weight.grad!.abs().sum().item() > 0);
    assert.equal(net.blocks[1]!.gate.weight.grad, null);
    // clear, and withAuxLosses; a loss on the root is named by itself
    net.forward(x);
    clearAuxLosses(net);
    assert.equal(collectAuxLosses(net).size, 0);
    const { result, auxLosses } = withAuxLosses(net, () => {
      addAuxLoss(net, 'extra', tensor(1.5));
      return net.forward(x);
    });
    assert.deepEqual(result.shape, [2, 3]);
    assert.deepEqual([...auxLosses.keys()], ['extra', 'blocks.0.z_loss', 'blocks.1.z_loss']);
    expectEqual(auxLosses.get('extra')!, [1.5]);
    addAuxLoss(net, 'extra', tensor(1));
    assert.throws(() => addAuxLoss(net, 'extra', tensor([1, 2])), /'extra' on Net has shape \[2\], earlier calls \[\]/);
    assert.throws(() => addAuxLoss(net, '', tensor(1)), /non-empty name/);
    clearAuxLosses(net);
  });
});

describe('callForward', () => {
  test('calls forward typed by the module, and explains a module without one', () => {
    const seq = new Sequential(new Linear(2, 2));
    const x = tensor([[1, 2]]);
    const y: Tensor = callForward(seq, x);
    expectEqual(y, seq.forward(x));
    const asModule: Module = seq;
    expectEqual(callForward(asModule, x) as Tensor, y);
    assert.throws(() => callForward(new ModuleList([new Linear(1, 1)])), /ModuleList has no forward\(\) to call/);
  });
});

describe('quantization passes built on hooks', () => {
  const tinyGpt2 = () => {
    manualSeed(3);
    return new GPT2LMHeadModel(gpt2Config({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2, architectures: ['GPT2LMHeadModel'] })).eval();
  };
  const ids = Tensor.from(Int32Array.from([1, 5, 9, 2, 33, 60, 7, 8]), { shape: [2, 4] });

  test('observeInputs sees each layer input once per batch and leaves no hook, also on a bad layer name', () => {
    const model = tinyGpt2();
    const obs = observeInputs(model, ['transformer.h.0.mlp.c_fc', 'transformer.h.1.attn.c_proj'], [{ inputIds: ids }, { inputIds: ids }], 'minmax');
    assert.equal(obs.get('transformer.h.0.mlp.c_fc')!.count, 2 * 8 * 32);
    assert.throws(() => observeInputs(model, ['transformer.h.0.mlp.c_fc', 'transformer.h.9'], [{ inputIds: ids }], 'minmax'), /getSubmodule/);
    assert.ok(model.modules().every((m) => !ownForward(m)));
  });

  test('GPTQ leaves no hook on the model', () => {
    const model = tinyGpt2();
    quantizeModel(model, { scheme: 'int4', groupSize: 16, method: 'gptq', calibration: () => [{ inputIds: ids }] });
    assert.ok(model.modules().every((m) => !ownForward(m)));
  });
});
