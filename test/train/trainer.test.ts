// Trainer: loss falls, best-model keeping, and an interrupted run resumes to exactly the same weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BatchSampler, Generator, Linear, Module, Tensor, manualSeed, ops } from '../../src/index.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { expectClose } from '../harness/expect.ts';

class Net extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor() {
    super();
    const g = new Generator(3);
    this.fc1 = new Linear(8, 32, { generator: g });
    this.fc2 = new Linear(32, 4, { generator: g });
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(ops.dropout(this.fc1.forward(x).relu(), 0.1, this.training));
  }
}

const data = Tensor.randn([64, 8], { generator: new Generator(1) });
const target = Tensor.from(Int32Array.from({ length: 64 }, (_, i) => (data.data[i * 8]! > 0 ? 1 : 0) + (data.data[i * 8 + 1]! > 0 ? 2 : 0)));

function makeTrainer(outDir: string | undefined, totalSteps: number, resume = false) {
  const model = new Net();
  const sampler = new BatchSampler(64, 16, { seed: 7 });
  const trainer = new Trainer(
    model,
    { totalSteps, lr: 1e-2, warmupSteps: 2, maxGradNorm: 1, evalEvery: 5, outDir, resume, saveEvery: 0 },
    {
      lossFn: () => {
        const idx = Tensor.from(Int32Array.from(sampler.next()));
        return ops.crossEntropy(model.forward(data.indexSelect(0, idx)), target.indexSelect(0, idx));
      },
      evaluate: () => {
        const pred = model.forward(data).argmax(-1).toArray();
        let ok = 0;
        for (let i = 0; i < 64; i++) if (pred[i] === target.data[i]) ok++;
        return { metric: ok / 64 };
      },
      stateful: { sampler },
    },
  );
  return { model, trainer };
}

test('training lowers the loss and keeps the best model', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainer-'));
  manualSeed(0);
  const { trainer } = makeTrainer(dir, 40);
  const r = trainer.train();
  assert.equal(r.step, 40);
  assert.ok(r.history.at(-1)!.loss! < r.history[0]!.loss!, 'loss fell');
  assert.ok(r.bestMetric! > 0.5, `best accuracy ${r.bestMetric}`);
  assert.ok(fs.existsSync(path.join(dir, 'best', 'model.safetensors')));
  assert.equal(fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim(), 'checkpoint-40');
  fs.rmSync(dir, { recursive: true });
});

test('an interrupted run resumes exactly (weights, optimizer, schedule, RNG, data order)', () => {
  manualSeed(0);
  const straight = makeTrainer(undefined, 12);
  straight.trainer.train();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainer-'));
  manualSeed(0);
  const first = makeTrainer(dir, 12);
  let n = 0;
  first.trainer.hooks.onLog = () => {
    if (++n === 5) first.trainer.interrupt();
  };
  const r1 = first.trainer.train();
  assert.equal(r1.interrupted, true);
  assert.equal(r1.step, 5);
  manualSeed(123); // resumption must restore the RNG itself
  const second = makeTrainer(dir, 12, true);
  const r2 = second.trainer.train();
  assert.equal(r2.step, 12);
  for (const [name, p] of straight.model.namedParameters())
    expectClose(new Map(second.model.namedParameters()).get(name)!, p, { atol: 0, rtol: 0 }, name);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp')), []);
  fs.rmSync(dir, { recursive: true });
});

test('a step may return named loss parts (logged and written to log.jsonl); a frozen teacher never trains; hooks run around each step', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainer-parts-'));
  try {
    manualSeed(0);
    const model = new Net();
    const teacher = new Net();
    const teacherBefore = teacher.parameters().map((p) => Array.from(p.data));
    const calls: string[] = [];
    const sampler = new BatchSampler(64, 16, { seed: 7 });
    const t = new Trainer(model, { totalSteps: 3, lr: 1e-2, outDir: dir }, {
      teacher,
      lossFn: ({ teacher: tt }) => {
        const idx = Tensor.from(Int32Array.from(sampler.next()));
        const x = data.indexSelect(0, idx);
        const logits = model.forward(x);
        assert.equal(tt!.training, false, 'teacher in eval mode');
        const soft = ops.softmax((tt as Net).forward(x), -1);
        const task = ops.crossEntropy(logits, target.indexSelect(0, idx));
        const kd = ops.logSoftmax(logits, -1).mul(soft).sum().neg().div(16);
        return { loss: task.add(kd), parts: { task, 'distill.kd.logits': kd } };
      },
      beforeStep: (s) => void calls.push(`before ${s}`),
      afterOptimizerStep: (s) => void calls.push(`after ${s}`),
    });
    const r = t.train();
    assert.deepEqual(calls, ['before 0', 'after 1', 'before 1', 'after 2', 'before 2', 'after 3']);
    for (const e of r.history) {
      assert.deepEqual(Object.keys(e.parts!), ['task', 'distill.kd.logits']);
      assert.ok(Math.abs(e.parts!.task! + e.parts!['distill.kd.logits']! - e.loss!) < 1e-5);
    }
    const log = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(log.map((e) => e.step), [1, 2, 3]);
    assert.equal(log[2].parts.task, r.history[2]!.parts!.task);
    teacher.parameters().forEach((p, i) => {
      assert.deepEqual(Array.from(p.data), teacherBefore[i], 'teacher weights unchanged');
      assert.equal(p.grad, null, 'no gradient reached the teacher');
      assert.equal(p.requiresGrad, true, 'the teacher is given back as it came');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a non-finite loss stops training with an error naming the step', () => {
  const model = new Net();
  let n = 0;
  const t = new Trainer(model, { totalSteps: 5, lr: 1e-2 }, { lossFn: () => (++n === 3 ? model.forward(data).sum().mul(Number.NaN) : model.forward(data).sum()) });
  assert.throws(() => t.train(), { message: 'training diverged: loss is NaN at step 3' });
  assert.equal(t.step, 2);
});

test('an extra parameter group with maximize ascends, and with fixedLr stays off the schedule', () => {
  const model = new Net();
  const lambda = Tensor.zeros([1], { requiresGrad: true });
  const t = new Trainer(model, { totalSteps: 4, lr: 1e-2, warmupSteps: 2, schedule: 'linear' }, {
    lossFn: () => lambda.mul(1).sum().add(model.forward(data).sum().mul(0)), // d loss / d λ = +1
    paramGroups: [{ name: 'lagrange', params: [['lambda', lambda]], lr: 0.1, maximize: true, fixedLr: true }],
  });
  t.train();
  // Adam's first steps move by ≈ lr each in the gradient's sign: ascent on +1 raises λ by ≈ 4 × 0.1
  assert.ok(Math.abs(lambda.item() - 0.4) < 1e-3, `λ = ${lambda.item()}`);
  assert.equal(t.optimizer.groups.at(-1)!.lr, 0.1, 'fixed lr');
  assert.notEqual(t.optimizer.groups[0]!.lr, 1e-2, 'the model groups follow the schedule');
});
