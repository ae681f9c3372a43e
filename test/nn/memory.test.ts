// 1000 training steps of a small MLP keep resident memory flat: graphs are freed by backward, optimizer state
// is allocated once, and nothing else accumulates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, Generator, Linear, Module, Tensor, backend, ops } from '../../src/index.ts';

class MLP extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(g: Generator) {
    super();
    this.fc1 = new Linear(64, 256, { generator: g });
    this.fc2 = new Linear(256, 64, { generator: g });
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x).gelu());
  }
}

test(`1000 training steps keep RSS flat (${backend().name} backend)`, () => {
  const g = new Generator(0);
  const model = new MLP(g);
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const x = Tensor.randn([32, 64], { generator: g });
  const target = Tensor.randint(0, 64, [32], { generator: g });
  const steps = backend().name === 'native' ? 1000 : 300;
  let rss200 = 0;
  let maxAfter = 0;
  let first = 0;
  let last = 0;
  for (let step = 1; step <= steps; step++) {
    const loss = ops.crossEntropy(model.forward(x), target);
    opt.zeroGrad();
    loss.backward();
    opt.step();
    if (step === 1) first = loss.item();
    last = loss.item();
    if (step === Math.floor(steps / 5)) rss200 = process.memoryUsage().rss;
    if (step > steps / 5 && step % 50 === 0) maxAfter = Math.max(maxAfter, process.memoryUsage().rss);
  }
  const growthMB = (maxAfter - rss200) / 2 ** 20;
  assert.ok(growthMB < 64, `RSS grew by ${growthMB.toFixed(1)} MB after step ${steps / 5}`);
  assert.ok(last < first * 0.5, `loss did not fall: ${first} → ${last}`);
});
