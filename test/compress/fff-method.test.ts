// fff.ultrafast: the MLP slot of chosen blocks becomes an FFFLayer (BERT, GPT-2, Llama), a short training stage
// lowers the task loss through the masked form, eval mode runs CMM with the same outputs, and a saved model
// reloads through compression_config with identical outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Generator, Tensor, compress, fromPretrained, noGrad, savePretrained } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import type { ModelInputs, ModelOutput } from '../../src/models/outputs.ts';
import { anatomy } from '../../src/models/anatomy.ts';
import { FFFLayer } from '../../src/compress/fff/index.ts';
import { expectClose, expectThrows } from '../harness/expect.ts';
import { tinyBert, tinyGpt2, tinyLlama } from '../harness/tiny-models.ts';

const { runRecipe } = compress;
const g = new Generator(11);
const ids = Tensor.randint(1, 40, [3, 6], { dtype: 'int32', generator: g });
const clsBatch = { inputIds: ids, attentionMask: Tensor.ones([3, 6], { dtype: 'int32' }), labels: Tensor.from(Int32Array.from([0, 2, 1])) };
const fwd = (m: Module, b: ModelInputs) => (m as unknown as { forward(b: ModelInputs): ModelOutput }).forward(b);
const lossOf = (m: Module) => noGrad(() => fwd(m.eval(), clsBatch).loss!.item());

test('BERT: replaces the targeted MLP slot; training lowers the loss; eval (CMM) = masked form; save → fromPretrained', () => {
  const m = tinyBert();
  let i = 0;
  const task: compress.TaskData = {
    name: 'synthetic', metric: 'loss', greaterIsBetter: false,
    nextBatch: () => clsBatch,
    sampler: { state: () => i, setState: (s: number) => void (i = s) },
    evaluate: (mm: Module) => lossOf(mm),
    calibration: () => [{ inputIds: ids }],
    latencyInputs: () => ({ inputIds: ids }),
    evalArgs: [],
  };
  const r = runRecipe(m, { train: { steps: 12, lr: 1e-2, warmup: 0, batch_size: 3 }, steps: [{ method: 'fff.ultrafast', depth: 3, targets: ['bert.encoder.layer.1'] }] }, { task });
  const a = anatomy(m);
  assert.equal(a.blocks[0]!.mlp!.kind, 'dense');
  assert.equal(a.blocks[1]!.mlp!.kind, 'custom');
  assert.equal(a.blocks[1]!.mlp!.module, 'FFFLayer');
  assert.equal(r.steps[0]!.method, 'fff.ultrafast');
  assert.equal(r.steps[0]!.neurons, 15);
  assert.equal(r.steps[0]!.neurons_per_token, 4);
  const hist = r.history[0]!;
  const first = hist[0]?.loss;
  const last = hist[hist.length - 1]?.loss;
  if (typeof first === 'number' && typeof last === 'number') assert.ok(last < first, `training lowered the loss: ${first} → ${last}`);

  const fff = m.getSubmodule('bert.encoder.layer.1.mlp') as FFFLayer;
  assert.ok(fff instanceof FFFLayer);
  const evalLogits = noGrad(() => fwd(m.eval(), clsBatch).logits);
  const maskedLogits = noGrad(() => {
    fff.train(); // the FFF alone in training mode: its masked form, nothing else changes (dropout is 0 in eval elsewhere)
    const out = fwd(m, clsBatch).logits;
    fff.eval();
    return out;
  });
  expectClose(evalLogits, maskedLogits, { atol: 1e-5, rtol: 1e-4 }, 'CMM vs masked logits');

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fff-'));
  try {
    savePretrained(m as never, dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(cfg.compression_config.modules['bert.encoder.layer.1.mlp'], { type: 'fff', input_width: 32, output_width: 32, depth: 3, parallel_size: 1 });
    const loaded = fromPretrained<Module>(dir).eval();
    assert.ok(loaded.getSubmodule('bert.encoder.layer.1.mlp') instanceof FFFLayer);
    expectClose(noGrad(() => fwd(loaded, clsBatch).logits), evalLogits, { atol: 0, rtol: 0 }, 'reloaded logits');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('GPT-2 and Llama: every block by default; parallel trees; gradients reach the FFF', () => {
  for (const m of [tinyGpt2(), tinyLlama()] as Module[]) {
    const task: compress.TaskData = {
      name: 'lm', metric: 'loss', greaterIsBetter: false, nextBatch: () => ({ inputIds: ids, labels: ids }),
      sampler: { state: () => 0, setState: () => undefined }, evaluate: () => 0, calibration: () => [], latencyInputs: () => ({ inputIds: ids }), evalArgs: [],
    };
    runRecipe(m, { train: { steps: 2, lr: 1e-3, warmup: 0, batch_size: 3 }, steps: [{ method: 'fff.ultrafast', depth: 2, parallel_size: 2 }] }, { task });
    for (const b of anatomy(m).blocks) assert.equal(b.mlp!.module, 'FFFLayer');
    const f = m.getSubmodule(`${anatomy(m).blocks[0]!.path}.mlp`) as FFFLayer;
    assert.equal(f.parallelSize, 2);
    m.train();
    f.linear_in.weight.grad = null;
    fwd(m, { inputIds: ids, labels: ids }).loss!.backward();
    assert.ok(f.linear_in.weight.grad, `${m.constructor.name}: linear_in gets a gradient`);
  }
});

test('option checks', () => {
  const m = tinyBert();
  const task = { name: 'x', metric: 'loss', greaterIsBetter: false, nextBatch: () => clsBatch, sampler: { state: () => 0, setState: () => undefined }, evaluate: () => 0, calibration: () => [], latencyInputs: () => ({ inputIds: ids }), evalArgs: [] } as compress.TaskData;
  const runRecipe = (m: Module, steps: unknown) => compress.runRecipe(m, steps, { task });
  expectThrows(() => runRecipe(m, [{ method: 'fff.ultrafast', depth: -1 }]), "option 'depth' must be an integer in [0, 20]");
  expectThrows(() => runRecipe(m, [{ method: 'fff.ultrafast', parallel_size: 0 }]), "option 'parallel_size' must be an integer >= 1");
  expectThrows(() => runRecipe(m, [{ method: 'fff.ultrafast', init: 'distill' }]), 'init');
  expectThrows(() => runRecipe(m, [{ method: 'fff.ultrafast', targets: ['**.nothing'] }]), "targets glob '**.nothing' matches no module");
  assert.ok(compress.methodNames().includes('fff.ultrafast'));
});
