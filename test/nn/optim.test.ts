// Optimizers against torch's update rules: hard-coded float64 references (numpy, written as torch's
// _single_tensor_adamw / sgd) and a plain float64 re-implementation in this file; per-parameter step counts;
// parameter groups; state round trips that resume bit-exactly; gradient clipping.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdamW, Generator, LayerNorm, Linear, Module, RMSNorm, SGD, Tensor, backend, clipGradNorm, decayGroups, gradNorm, tensor,
  type OptimizerState,
} from '../../src/index.ts';
import { expectClose, expectEqual } from '../harness/expect.ts';

const P0 = [0.5, -1.0, 2.0, 0.1, -0.3];
const GRADS = [
  [0.1, -0.2, 0.3, 0.0, 1.5],
  [-0.4, 0.25, 0.3, 0.05, -1.0],
  [0.2, 0.2, -0.6, 0.0, 0.5],
  [1.0, -0.05, 0.1, -0.02, 0.0],
];
// numpy float64, torch.optim.AdamW(lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1), after steps 1..4:
//   p *= 1 - lr*wd; m.lerp_(g, 1-b1); v = b2*v + (1-b2)*g*g; p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)
const ADAMW_NUMPY = [
  [0.4895000009999999, -0.9890000004999999, 1.9880000003333334, 0.0999, -0.3096999999333333],
  [0.49459440478837446, -0.9896375155529626, 1.9760120006663333, 0.09237550421070158, -0.3108367646776133],
  [0.4952008473856108, -0.9931007559428293, 1.9747907739595711, 0.0865308356077191, -0.3133182470627142],
  [0.48982348886028215, -0.9949657785609827, 1.9726458364263135, 0.08422789453871869, -0.3152974409627105],
];
// numpy float64, torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01, dampening / nesterov as named), 4 steps
const SGD_NUMPY = {
  dampening: [0.4347063378246545, -1.013488325554309, 1.9005954089513282, 0.0887727873204729, -0.6539560724370688],
  nesterov: [0.346218476049687, -1.0367413648543742, 1.8940609913514272, 0.08544547411547322, -0.7000232247716048],
};

/** torch.optim.AdamW's update for one parameter in float64; `grads[t]` null = no grad at that step (skipped). */
function adamwRef(p0: number[], grads: (number[] | null)[], lr: number, b1: number, b2: number, eps: number, wd: number): number[] {
  const w = [...p0];
  const m = w.map(() => 0);
  const v = w.map(() => 0);
  let t = 0;
  for (const g of grads) {
    if (!g) continue;
    t++;
    for (let i = 0; i < w.length; i++) {
      w[i]! *= 1 - lr * wd;
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! ** 2;
      const mh = m[i]! / (1 - b1 ** t);
      const vh = v[i]! / (1 - b2 ** t);
      w[i]! -= (lr * mh) / (Math.sqrt(vh) + eps);
    }
  }
  return w;
}

const randGrads = (g: Generator, n: number, steps: number) => Array.from({ length: steps }, () => Array.from({ length: n }, () => g.normal()));

describe('AdamW', () => {
  test(`float64 matches the numpy reference of torch.optim.AdamW at every step`, () => {
    const p = tensor(P0, { dtype: 'float64', requiresGrad: true });
    const opt = new AdamW([p], { lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
    GRADS.forEach((g, t) => {
      p.grad = tensor(g, { dtype: 'float64' });
      opt.step();
      expectClose(p, ADAMW_NUMPY[t]!, { atol: 1e-15, rtol: 1e-13 }, `step ${t + 1}`);
    });
  });

  test(`float32 (${backend().name} kernel) matches the numpy reference`, () => {
    const p = tensor(P0, { requiresGrad: true });
    const opt = new AdamW([p], { lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
    GRADS.forEach((g, t) => {
      p.grad = tensor(g);
      opt.step();
      expectClose(p, ADAMW_NUMPY[t]!, { atol: 1e-6, rtol: 1e-6 }, `step ${t + 1}`);
    });
  });

  test('float32 matches the float64 formula over 6 steps on a large parameter (native kernel path)', () => {
    const gen = new Generator(42);
    const n = 5000; // above the native kernel's small-size cut-over to ref
    const init = Array.from({ length: n }, () => gen.normal());
    const grads = randGrads(gen, n, 6);
    const p = tensor(init, { requiresGrad: true });
    const opt = new AdamW([p], { lr: 3e-3, weightDecay: 0.05 });
    for (const g of grads) {
      p.grad = tensor(g);
      opt.step();
    }
    expectClose(p, adamwRef(init, grads, 3e-3, 0.9, 0.999, 1e-8, 0.05), { atol: 2e-6, rtol: 1e-5 });
  });

  test('a parameter without grad is skipped and its bias correction uses its own step count (torch per-param step)', () => {
    const gen = new Generator(5);
    const grads = randGrads(gen, 3, 4);
    const a = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    const b = tensor([-1, 0, 1], { dtype: 'float64', requiresGrad: true });
    const opt = new AdamW([a, b], { lr: 0.1, weightDecay: 0.01 });
    const bGrads = [null, null, grads[2]!, grads[3]!];
    for (let t = 0; t < 4; t++) {
      a.grad = tensor(grads[t]!, { dtype: 'float64' });
      b.grad = bGrads[t] ? tensor(bGrads[t]!, { dtype: 'float64' }) : null;
      opt.step();
      if (t === 1) {
        expectEqual(b, [-1, 0, 1]); // untouched: no decay either
        assert.deepEqual(Object.keys(opt.stateDict().buffers[1]!), []);
      }
    }
    expectClose(a, adamwRef([1, 2, 3], grads, 0.1, 0.9, 0.999, 1e-8, 0.01), { atol: 1e-14, rtol: 1e-13 });
    expectClose(b, adamwRef([-1, 0, 1], bGrads, 0.1, 0.9, 0.999, 1e-8, 0.01), { atol: 1e-14, rtol: 1e-13 });
    assert.deepEqual(opt.stateDict().groups[0]!.steps, [4, 2]);
    assert.equal(opt.stepCount, 4);
  });

  test('parameter groups carry their own lr / weight decay / betas', () => {
    const a = tensor([1, -1], { dtype: 'float64', requiresGrad: true });
    const b = tensor([1, -1], { dtype: 'float64', requiresGrad: true });
    const c = tensor([1, -1], { dtype: 'float64', requiresGrad: true });
    const opt = new AdamW([{ params: [a] }, { params: [b], weightDecay: 0, lr: 0.5 }, { params: [c], betas: [0.5, 0.9] }], { lr: 0.1, weightDecay: 0.2 });
    assert.deepEqual(
      opt.groups.map((g) => [g.lr, g.weightDecay, g.betas, g.eps]),
      [[0.1, 0.2, [0.9, 0.999], 1e-8], [0.5, 0, [0.9, 0.999], 1e-8], [0.1, 0.2, [0.5, 0.9], 1e-8]],
    );
    const gs = [[0.3, -0.7], [0.1, 0.2]];
    for (const g of gs) {
      for (const p of [a, b, c]) p.grad = tensor(g, { dtype: 'float64' });
      opt.step();
    }
    expectClose(a, adamwRef([1, -1], gs, 0.1, 0.9, 0.999, 1e-8, 0.2), { atol: 1e-14, rtol: 1e-13 });
    expectClose(b, adamwRef([1, -1], gs, 0.5, 0.9, 0.999, 1e-8, 0), { atol: 1e-14, rtol: 1e-13 });
    expectClose(c, adamwRef([1, -1], gs, 0.1, 0.5, 0.9, 1e-8, 0.2), { atol: 1e-14, rtol: 1e-13 });
    opt.lr = 0.01;
    assert.deepEqual(opt.groups.map((g) => g.lr), [0.01, 0.01, 0.01]);
    opt.groups[1]!.lr = 0.02;
    assert.equal(opt.lr, 0.01);
  });

  test('decayGroups: no decay for biases and norm weights (by module type, or by HF names)', () => {
    class M extends Module {
      dense = new Linear(2, 2);
      LayerNorm = new LayerNorm(2);
      norm = new RMSNorm(2);
      frozen = new Linear(2, 2, { bias: false });
    }
    const m = new M();
    m.frozen.requiresGrad_(false);
    const byType = decayGroups(m, 0.1);
    assert.deepEqual(byType.map((g) => g.weightDecay), [0.1, 0]);
    assert.deepEqual(byType[0]!.params, [m.dense.weight]);
    assert.deepEqual(byType[1]!.params, [m.dense.bias, m.LayerNorm.weight, m.LayerNorm.bias, m.norm.weight]);
    assert.deepEqual(decayGroups(m.namedParameters(), 0.1), byType);
    const names = [
      'bert.encoder.layer.0.attention.output.LayerNorm.weight', 'bert.embeddings.LayerNorm.bias', 'transformer.h.0.ln_1.weight',
      'transformer.ln_f.weight', 'model.layers.0.input_layernorm.weight', 'model.norm.weight', 'cls.predictions.bias',
      'transformer.h.0.attn.c_attn.weight', 'model.embed_tokens.weight', 'bert.pooler.dense.weight',
    ];
    const named = names.map((n) => [n, tensor([0], { requiresGrad: true })] as [string, Tensor]);
    const [decay, noDecay] = decayGroups(named, 0.01);
    assert.equal(noDecay!.params.length, 7);
    assert.deepEqual(decay!.params, named.slice(7).map(([, p]) => p));
    const opt = new AdamW(decayGroups(m, 0.5), { lr: 0.1 });
    for (const p of m.parameters()) p.grad = Tensor.zeros(p.shape);
    const w = m.dense.weight.toArray();
    opt.step();
    expectClose(m.dense.weight, Array.from(w, (x) => x * (1 - 0.1 * 0.5)), { rtol: 1e-6 });
    expectEqual(m.LayerNorm.weight!, [1, 1]);
  });

  test('argument errors', () => {
    const p = tensor([1], { requiresGrad: true });
    assert.throws(() => new AdamW([]), /AdamW: got an empty parameter list/);
    assert.throws(() => new AdamW([p, p]), /a parameter appears more than once/);
    assert.throws(() => new AdamW([Tensor.zeros([1], { dtype: 'float16' })]), /parameters must be float32 or float64, got float16/);
    assert.throws(() => new AdamW([p], { betas: [0.9, 1] }), /betas must be two numbers in \[0, 1\)/);
    assert.throws(() => new AdamW([p], { lr: -1 }), /invalid learning rate -1/);
    const opt = new AdamW([p]);
    p.grad = Tensor.zeros([2]);
    assert.throws(() => opt.step(), /AdamW: gradient of shape \[2\] for a parameter of shape \[1\]/);
  });
});

describe('SGD', () => {
  test('momentum with dampening, and Nesterov, match the numpy reference of torch.optim.SGD', () => {
    for (const [name, opts] of [['dampening', { dampening: 0.1 }], ['nesterov', { nesterov: true }]] as const) {
      const p = tensor(P0, { dtype: 'float64', requiresGrad: true });
      const opt = new SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.01, ...opts });
      for (const g of GRADS) {
        p.grad = tensor(g, { dtype: 'float64' });
        opt.step();
      }
      expectClose(p, SGD_NUMPY[name], { atol: 1e-14, rtol: 1e-13 }, name);
    }
  });

  test('float32 momentum / Nesterov / plain SGD follow the formula', () => {
    const gen = new Generator(9);
    for (const momentum of [0, 0.8])
      for (const nesterov of momentum ? [false, true] : [false]) {
        const grads = randGrads(gen, 4, 5);
        const p = tensor([1, -2, 0.5, 3], { requiresGrad: true });
        const opt = new SGD([p], { lr: 0.05, momentum, weightDecay: 0.02, nesterov });
        const w = [1, -2, 0.5, 3];
        const buf = [0, 0, 0, 0];
        grads.forEach((g, t) => {
          p.grad = tensor(g);
          opt.step();
          for (let i = 0; i < 4; i++) {
            let d = g[i]! + 0.02 * w[i]!;
            if (momentum) {
              buf[i] = t === 0 ? d : momentum * buf[i]! + d;
              d = nesterov ? d + momentum * buf[i]! : buf[i]!;
            }
            w[i]! -= 0.05 * d;
          }
        });
        expectClose(p, w, { atol: 1e-6, rtol: 1e-6 }, `momentum ${momentum} nesterov ${nesterov}`);
      }
    assert.throws(() => new SGD([tensor([1])], { momentum: 0, nesterov: true }), /Nesterov momentum requires a momentum and zero dampening/);
  });
});

describe('optimizer state', () => {
  /** A checkpoint as the Trainer writes it: JSON metadata + tensors copied out. */
  const roundTrip = (s: OptimizerState): OptimizerState => ({
    ...(JSON.parse(JSON.stringify({ step: s.step, groups: s.groups })) as Omit<OptimizerState, 'buffers'>),
    buffers: s.buffers.map((b) => Object.fromEntries(Object.entries(b).map(([k, t]) => [k, tensor(t.toArray(), { shape: t.shape })]))),
  });

  for (const kind of ['AdamW', 'SGD'] as const)
    test(`${kind}: 3 steps, save, load into a fresh optimizer, 2 more = 5 straight steps (bit-exact)`, () => {
      const gen = new Generator(1);
      const grads = randGrads(gen, 7, 5);
      const make = (ps: Tensor[]) =>
        kind === 'AdamW'
          ? new AdamW([{ params: [ps[0]!] }, { params: [ps[1]!], weightDecay: 0 }], { lr: 0.05, weightDecay: 0.1 })
          : new SGD([{ params: [ps[0]!] }, { params: [ps[1]!], lr: 0.2 }], { lr: 0.05, momentum: 0.9, weightDecay: 0.1 });
      const run = (split: boolean) => {
        const ps = [tensor([1, 2, 3, 4], { requiresGrad: true }), tensor([-1, 0, 1], { requiresGrad: true })];
        let opt = make(ps);
        grads.forEach((g, i) => {
          if (split && i === 3) {
            const saved = roundTrip(opt.stateDict());
            opt = make(ps);
            opt.loadStateDict(saved);
          }
          ps[0]!.grad = tensor(g.slice(0, 4));
          ps[1]!.grad = i === 1 ? null : tensor(g.slice(4)); // one skipped step: per-parameter counts must survive
          opt.step();
        });
        return ps;
      };
      const [a, b] = run(true);
      const [a2, b2] = run(false);
      expectEqual(a!, a2!);
      expectEqual(b!, b2!);
    });

  test('stateDict is JSON-able metadata + tensors; loadStateDict validates and restores hyperparameters', () => {
    const p = tensor([1, 2], { requiresGrad: true });
    const opt = new AdamW([p], { lr: 0.1, betas: [0.8, 0.9] });
    p.grad = tensor([1, 1]);
    opt.step();
    const s = opt.stateDict();
    assert.deepEqual(JSON.parse(JSON.stringify(s.groups)), [{ lr: 0.1, weightDecay: 0.01, betas: [0.8, 0.9], eps: 1e-8, steps: [1] }]);
    assert.deepEqual(Object.keys(s.buffers[0]!), ['m', 'v']);
    expectClose(s.buffers[0]!['m']!, [0.2, 0.2], { rtol: 1e-6 });
    const fresh = new AdamW([tensor([0, 0], { requiresGrad: true })], { lr: 1 });
    fresh.loadStateDict(s);
    assert.equal(fresh.lr, 0.1);
    assert.deepEqual(fresh.groups[0]!.betas, [0.8, 0.9]);
    assert.equal(fresh.stepCount, 1);
    // older checkpoints without per-parameter steps: parameters with state take the global step
    const old = { ...s, groups: [{ lr: 0.1, weightDecay: 0.01 }] };
    fresh.loadStateDict(old);
    assert.deepEqual(fresh.stateDict().groups[0]!.steps, [1]);
    assert.throws(() => fresh.loadStateDict({ ...s, buffers: [{ m: Tensor.zeros([3]), v: Tensor.zeros([3]) }] }), /buffer 'm' of parameter 0 has shape \[3\], parameter has \[2\]/);
    assert.throws(() => fresh.loadStateDict({ ...s, groups: [] }), /state has 0 groups, optimizer has 1/);
  });

  test('zeroGrad sets grads to null; step allocates state once and reuses it', () => {
    const p = tensor([1, 2], { requiresGrad: true });
    const opt = new AdamW([p]);
    p.grad = tensor([1, 1]);
    opt.step();
    const m = opt.stateDict().buffers[0]!['m']!;
    p.grad = tensor([1, 1]);
    opt.step();
    assert.equal(opt.stateDict().buffers[0]!['m'], m);
    opt.zeroGrad();
    assert.equal(p.grad, null);
  });
});

describe('clipGradNorm', () => {
  test('L2 over all gradients as one vector; scales by maxNorm/(total+1e-6); skips params without grad', () => {
    const a = tensor([3, 0], { requiresGrad: true });
    const b = tensor([[4]], { requiresGrad: true });
    const c = tensor([1], { requiresGrad: true }); // no grad
    a.grad = tensor([3, 0]);
    b.grad = tensor([[4]]);
    const total = clipGradNorm([a, b, c], 1);
    assert.ok(Math.abs(total - 5) < 1e-12, `total ${total}`); // √(9 + 16)
    expectClose(a.grad, [3 / (5 + 1e-6), 0], { rtol: 1e-7 });
    expectClose(b.grad, [4 / (5 + 1e-6)], { rtol: 1e-7 });
    assert.equal(c.grad, null);
    const before = [...a.grad.toArray(), ...b.grad.toArray()];
    assert.ok(Math.abs(clipGradNorm([a, b], 10) - 1) < 1e-6); // within the bound: returned, not scaled
    expectEqual(tensor([...a.grad.toArray(), ...b.grad.toArray()]), before);
    assert.equal(clipGradNorm([c], 1), 0);
  });

  test('other norms and float64 grads', () => {
    const a = tensor([1, -2], { dtype: 'float64', requiresGrad: true });
    const b = tensor([2], { dtype: 'float64', requiresGrad: true });
    a.grad = tensor([1, -2], { dtype: 'float64' });
    b.grad = tensor([2], { dtype: 'float64' });
    assert.equal(gradNorm([a, b], Infinity), 2);
    assert.equal(gradNorm([a, b], 1), 5);
    assert.ok(Math.abs(gradNorm([a, b], 3) - 17 ** (1 / 3)) < 1e-12);
    const total = clipGradNorm([a, b], 1, Infinity);
    assert.equal(total, 2);
    expectClose(a.grad, [1 / (2 + 1e-6), -2 / (2 + 1e-6)], { atol: 0, rtol: 1e-15 });
    assert.throws(() => clipGradNorm([a], 1, 0), /normType must be > 0/);
  });
});
