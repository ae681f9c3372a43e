// LR schedules = HF get_{constant,linear,cosine}_schedule_with_warmup: exact values at warmup start/end, mid
// decay and the end; the scheduler object applied to an optimizer; resuming from its state.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, LRScheduler, SGD, constantWithWarmup, cosineWithWarmup, linearWithWarmup, lrMultiplier, tensor } from '../../src/index.ts';

const close = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) < 1e-15, `${what}: got ${got}, want ${want}`);

describe('pure schedules (warmup 10, total 110)', () => {
  test('linear: 0 → 1 over warmup, then 1 → 0 at the end, 0 after', () => {
    const at = (s: number) => linearWithWarmup(s, 10, 110);
    assert.equal(at(0), 0);
    assert.equal(at(5), 0.5);
    assert.equal(at(9), 0.9);
    assert.equal(at(10), 1);
    assert.equal(at(35), 0.75);
    assert.equal(at(60), 0.5);
    assert.equal(at(109), 0.01);
    assert.equal(at(110), 0);
    assert.equal(at(150), 0);
  });

  test('cosine (numCycles 0.5): half a cosine from 1 to 0 after warmup', () => {
    const at = (s: number) => cosineWithWarmup(s, 10, 110);
    assert.equal(at(0), 0);
    assert.equal(at(5), 0.5);
    assert.equal(at(10), 1);
    close(at(35), 0.5 * (1 + Math.SQRT1_2), 'quarter');
    close(at(60), 0.5, 'middle');
    close(at(85), 0.5 * (1 - Math.SQRT1_2), 'three quarters');
    assert.equal(at(110), 0);
    close(at(120), 0.5 * (1 + Math.cos(1.1 * Math.PI)), 'past the end (HF keeps the cosine going)');
    close(cosineWithWarmup(60, 10, 110, 1), 0, 'one full cycle: zero at the middle');
    close(cosineWithWarmup(110, 10, 110, 1), 1, 'one full cycle: back to 1');
  });

  test('constant with warmup; no warmup starts at full lr; lrMultiplier dispatches by name', () => {
    assert.equal(constantWithWarmup(0, 4), 0);
    assert.equal(constantWithWarmup(1, 4), 0.25);
    assert.equal(constantWithWarmup(4, 4), 1);
    assert.equal(constantWithWarmup(1000, 4), 1);
    assert.equal(linearWithWarmup(0, 0, 100), 1);
    assert.equal(cosineWithWarmup(0, 0, 100), 1);
    assert.equal(lrMultiplier('linear', 60, 10, 110), 0.5);
    close(lrMultiplier('cosine', 35, 10, 110), cosineWithWarmup(35, 10, 110), 'cosine');
    assert.equal(lrMultiplier('constant', 2, 4, 10), 0.5);
  });
});

describe('LRScheduler', () => {
  test('sets every group to its base lr × multiplier; starts at step 0', () => {
    const opt = new AdamW([{ params: [tensor([1], { requiresGrad: true })] }, { params: [tensor([1], { requiresGrad: true })], lr: 0.1 }], { lr: 1 });
    const sched = new LRScheduler(opt, 'linear', 2, 4);
    const lrs = [sched.lrs];
    for (let i = 0; i < 5; i++) {
      sched.step();
      lrs.push(sched.lrs);
    }
    assert.deepEqual(lrs, [[0, 0], [0.5, 0.05], [1, 0.1], [0.5, 0.05], [0, 0], [0, 0]]);
    assert.equal(sched.lr, 0);
  });

  test('cosine with numCycles; resuming from stateDict continues identically', () => {
    const mk = () => new SGD([tensor([1], { requiresGrad: true })], { lr: 2 });
    const a = new LRScheduler(mk(), 'cosine', 3, 13, { numCycles: 0.5 });
    for (let i = 0; i < 8; i++) a.step();
    close(a.lr, 2 * 0.5 * (1 + Math.cos(Math.PI * 0.5)), 'step 8 = middle of the decay');
    const saved = JSON.parse(JSON.stringify(a.stateDict()));
    const b = new LRScheduler(mk(), 'cosine', 3, 13);
    b.loadStateDict(saved);
    assert.equal(b.lr, a.lr);
    for (let i = 0; i < 3; i++) a.step(), b.step();
    assert.equal(b.lr, a.lr);
    assert.equal(b.lastStep, 11);
  });

  test('bad arguments', () => {
    const opt = new SGD([tensor([1], { requiresGrad: true })], { lr: 1 });
    assert.throws(() => new LRScheduler(opt, 'step' as never, 0, 10), /unknown schedule 'step' \(constant, linear, cosine\)/);
    assert.throws(() => new LRScheduler(opt, 'linear', -1, 10), /must be non-negative/);
    assert.throws(() => new LRScheduler(opt, 'linear', 0, 10).loadStateDict({ lastStep: 1, baseLrs: [1, 2] }), /2 base lrs, optimizer has 1 groups/);
  });
});
