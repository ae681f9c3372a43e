// Optimizers against float64 re-implementations of torch's update rules; schedules; clipping; state round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, Generator, LRScheduler, SGD, Tensor, clipGradNorm, decayGroups, lrMultiplier, tensor } from '../../src/index.ts';
import { expectClose } from '../harness/expect.ts';

/** torch.optim.AdamW's step in float64. */
function adamwRef(p: number[], grads: number[][], lr: number, b1: number, b2: number, eps: number, wd: number): number[] {
  const w = [...p];
  const m = w.map(() => 0);
  const v = w.map(() => 0);
  grads.forEach((g, t0) => {
    const t = t0 + 1;
    for (let i = 0; i < w.length; i++) {
      w[i]! *= 1 - lr * wd;
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! ** 2;
      const mh = m[i]! / (1 - b1 ** t);
      const vh = v[i]! / (1 - b2 ** t);
      w[i]! -= (lr * mh) / (Math.sqrt(vh) + eps);
    }
  });
  return w;
}

const gen = new Generator(42);
const gradSeq = (n: number, steps: number) => Array.from({ length: steps }, () => Array.from({ length: n }, () => gen.normal()));

test('AdamW matches torch.optim.AdamW (weight decay, bias correction) for 5 steps', () => {
  const init = [0.5, -1, 2, 0.1, -0.3];
  const grads = gradSeq(5, 5);
  const p = tensor(init, { requiresGrad: true });
  const opt = new AdamW([p], { lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
  for (const g of grads) {
    p.grad = tensor(g);
    opt.step();
  }
  expectClose(p, adamwRef(init, grads, 0.01, 0.9, 0.99, 1e-8, 0.1), { atol: 1e-6, rtol: 1e-5 });
});

test('AdamW parameter groups: no decay for biases and LayerNorm weights', () => {
  const named: [string, Tensor][] = [
    ['dense.weight', tensor([1], { requiresGrad: true })],
    ['dense.bias', tensor([1], { requiresGrad: true })],
    ['LayerNorm.weight', tensor([1], { requiresGrad: true })],
  ];
  const groups = decayGroups(named, 0.5);
  assert.equal(groups[0]!.params.length, 1);
  assert.equal(groups[1]!.params.length, 2);
  const opt = new AdamW(groups, { lr: 0.1 });
  for (const [, p] of named) p.grad = tensor([0]);
  opt.step();
  expectClose(named[0]![1], [1 - 0.1 * 0.5], { rtol: 1e-6 });
  expectClose(named[1]![1], [1], { rtol: 0 });
});

test('SGD with momentum / Nesterov / weight decay matches torch.optim.SGD', () => {
  for (const nesterov of [false, true]) {
    const grads = gradSeq(3, 4);
    const p = tensor([1, -2, 0.5], { dtype: 'float64', requiresGrad: true });
    const opt = new SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov });
    const w = [1, -2, 0.5];
    const buf = [0, 0, 0];
    grads.forEach((g, t) => {
      p.grad = tensor(g, { dtype: 'float64' });
      opt.step();
      for (let i = 0; i < 3; i++) {
        const d = g[i]! + 0.01 * w[i]!;
        buf[i] = t === 0 ? d : 0.9 * buf[i]! + d;
        w[i]! -= 0.1 * (nesterov ? d + 0.9 * buf[i]! : buf[i]!);
      }
    });
    expectClose(p, w, { atol: 1e-12, rtol: 1e-12 });
  }
});

test('optimizer state round trip resumes exactly', () => {
  const grads = gradSeq(4, 5);
  const run = (split: boolean) => {
    const p = tensor([1, 2, 3, 4], { requiresGrad: true });
    let opt = new AdamW([p], { lr: 0.05 });
    grads.forEach((g, i) => {
      if (split && i === 3) {
        const s = opt.stateDict();
        opt = new AdamW([p], { lr: 0.05 });
        opt.loadStateDict(s);
      }
      p.grad = tensor(g);
      opt.step();
    });
    return p;
  };
  expectClose(run(true), run(false), { atol: 0, rtol: 0 });
});

test('schedules: linear and cosine with warmup (HF formulas)', () => {
  assert.equal(lrMultiplier('linear', 0, 10, 110), 0);
  assert.equal(lrMultiplier('linear', 5, 10, 110), 0.5);
  assert.equal(lrMultiplier('linear', 10, 10, 110), 1);
  assert.equal(lrMultiplier('linear', 60, 10, 110), 0.5);
  assert.equal(lrMultiplier('linear', 110, 10, 110), 0);
  assert.ok(Math.abs(lrMultiplier('cosine', 60, 10, 110) - 0.5) < 1e-12);
  assert.equal(lrMultiplier('constant', 50, 10, 110), 1);
  const p = tensor([1], { requiresGrad: true });
  const opt = new AdamW([p], { lr: 1 });
  const sched = new LRScheduler(opt, 'linear', 2, 4);
  const lrs = [sched.lr];
  for (let i = 0; i < 4; i++) sched.step(), lrs.push(sched.lr);
  assert.deepEqual(lrs, [0, 0.5, 1, 0.5, 0]);
});

test('clipGradNorm scales to the global norm', () => {
  const a = tensor([3, 0], { requiresGrad: true });
  const b = tensor([4], { requiresGrad: true });
  a.grad = tensor([3, 0]);
  b.grad = tensor([4]);
  const total = clipGradNorm([a, b], 1);
  assert.ok(Math.abs(total - 5) < 1e-6);
  expectClose(a.grad, [3 / (5 + 1e-6), 0], { rtol: 1e-6 });
  expectClose(b.grad, [4 / (5 + 1e-6)], { rtol: 1e-6 });
  assert.ok(Math.abs(clipGradNorm([a, b], 10) - 1) < 1e-6); // already within the bound: returned, not scaled
});
