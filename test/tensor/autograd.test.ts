// Autograd engine: accumulation, shared subgraphs, noGrad, detach, retainGrad, frozen leaves, errors, graph freeing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad, tensor, Tensor, isGradEnabled } from '../../src/index.ts';
import { expectClose, expectThrows } from '../harness/expect.ts';

test('y = x² + 5x + 4 → dy/dx = 2x + 5', () => {
  const x = tensor([1, -2, 3], { requiresGrad: true });
  x.square().add(x.mul(5)).add(4).sum().backward();
  assert.deepEqual(x.grad!.tolist(), [7, 1, 11]);
});

test('gradients accumulate across backward calls and through shared subgraphs', () => {
  const x = tensor([2], { requiresGrad: true });
  const y = x.mul(3);
  y.mul(y).sum().backward(); // d(9x²)/dx = 18x = 36
  assert.deepEqual(x.grad!.tolist(), [36]);
  x.mul(2).sum().backward();
  assert.deepEqual(x.grad!.tolist(), [38]);
  x.zeroGrad();
  assert.equal(x.grad, null);
});

test('noGrad records no graph; detach cuts it', () => {
  const x = tensor([1, 2], { requiresGrad: true });
  const y = noGrad(() => {
    assert.equal(isGradEnabled(), false);
    return x.mul(2);
  });
  assert.equal(isGradEnabled(), true);
  assert.equal(y.requiresGrad, false);
  const z = x.detach().mul(2).add(x).sum();
  z.backward();
  assert.deepEqual(x.grad!.tolist(), [1, 1]);
});

test('frozen leaves get no grad; retainGrad keeps a non-leaf grad', () => {
  const w = tensor([3], { requiresGrad: false });
  const x = tensor([2], { requiresGrad: true });
  const h = x.mul(w).retainGrad();
  h.square().sum().backward();
  assert.equal(w.grad, null);
  assert.deepEqual(h.grad!.tolist(), [12]);
  assert.deepEqual(x.grad!.tolist(), [36]);
});

test('backward frees the graph unless retainGraph', () => {
  const x = tensor([1, 2], { requiresGrad: true });
  const y = x.exp().sum();
  y.backward(undefined, { retainGraph: true });
  y.backward();
  expectClose(x.grad!, [2 * Math.E, 2 * Math.E ** 2], { rtol: 1e-6 });
  assert.equal(y._node, null);
});

test('errors: non-scalar backward, no grad, wrong grad shape, int requiresGrad', () => {
  const x = tensor([1, 2], { requiresGrad: true });
  expectThrows(() => x.mul(2).backward(), 'backward: grad can be implicitly created only for scalar outputs, got shape [2]');
  expectThrows(() => tensor([1]).backward(), 'backward: the tensor does not require grad');
  expectThrows(() => x.mul(2).backward(tensor([1, 2, 3])), 'backward: gradient shape [3] does not match tensor shape [2]');
  expectThrows(() => tensor([1], { dtype: 'int32' }).requiresGrad_(), 'requiresGrad_: only float32/float64 tensors can require grad, got int32');
});

test('broadcast gradients are summed back to the input shape', () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
  const b = tensor([1, 10, 100], { requiresGrad: true });
  a.mul(b).sum().backward();
  assert.deepEqual(b.grad!.tolist(), [5, 7, 9]);
  assert.deepEqual(a.grad!.tolist(), [[1, 10, 100], [1, 10, 100]]);
});

test('a deep chain does not overflow the stack', () => {
  const x = tensor([1], { requiresGrad: true });
  let y: Tensor = x;
  for (let i = 0; i < 20000; i++) y = y.add(1);
  y.sum().backward();
  assert.deepEqual(x.grad!.tolist(), [1]);
});

test('profileOps: calls, total and self time per op, nested ops counted once, nothing recorded outside it', async () => {
  const { defineOp, profileOps } = await import('../../src/index.ts');
  const spin = (ms: number) => {
    const t = performance.now();
    while (performance.now() - t < ms);
  };
  const inner = defineOp<[Tensor]>({ name: 'test.profile.inner', forward: (x) => (spin(4), x) });
  const outer = defineOp<[Tensor]>({ name: 'test.profile.outer', forward: (x) => (spin(3), inner(inner(x))) });
  const x = tensor([1, 2, 3]);
  outer(x); // not profiled
  const p = profileOps(() => {
    outer(x);
    spin(5);
    return 7;
  });
  assert.equal(p.result, 7);
  const by = Object.fromEntries(p.ops.map((o) => [o.op, o]));
  assert.deepEqual(Object.keys(by).sort(), ['test.profile.inner', 'test.profile.outer']);
  assert.equal(by['test.profile.outer']!.calls, 1);
  assert.equal(by['test.profile.inner']!.calls, 2);
  // inner: 2 × ≥ 4 ms, its own; outer: ≥ 3 ms of its own plus inner's; ≥ 5 ms outside any op (the identities are exact)
  assert.ok(by['test.profile.inner']!.selfMs >= 8, String(by['test.profile.inner']!.selfMs));
  assert.equal(by['test.profile.inner']!.selfMs, by['test.profile.inner']!.totalMs);
  assert.ok(by['test.profile.outer']!.selfMs >= 3, String(by['test.profile.outer']!.selfMs));
  assert.ok(Math.abs(by['test.profile.outer']!.totalMs - by['test.profile.outer']!.selfMs - by['test.profile.inner']!.totalMs) < 1e-9);
  assert.ok(p.outsideMs >= 5 && Math.abs(p.totalMs - p.outsideMs - by['test.profile.outer']!.totalMs) < 1e-9);
  expectThrows(() => profileOps(() => profileOps(() => 0)), /profileOps: already profiling/);
  // the profiler is off again: an op after it records nothing, and the next profile starts empty
  assert.deepEqual(profileOps(() => 0).ops, []);
});
