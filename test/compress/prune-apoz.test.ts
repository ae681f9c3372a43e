// prune.apoz (Network Trimming): APoZ / small-magnitude / mean-|a| scores on hand-set activations, physical FFN
// slicing for BERT, GPT-2 (Conv1D) and Llama (gated) equal to masking the same neurons, reloads, the iterated
// apoz → finetune → apoz chain, and errors before any work.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BertForSequenceClassification, Generator, Tensor, bertConfig, compress, manualSeed, noGrad,
} from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import type { Linear, Conv1D } from '../../src/nn/layers.ts';
import { captureActivations, registerForwardPreHook, type HookHandle } from '../../src/nn/hooks.ts';
import type { ModelInputs, ModelOutput, ForwardOptions } from '../../src/models/outputs.ts';
import { anatomy } from '../../src/models/anatomy.ts';
import { activationStats, ffnUnits } from '../../src/compress/prune/importance.ts';
import '../../src/compress/prune/index.ts';
import { expectClose, expectThrows } from '../harness/expect.ts';
import { tinyGpt2, tinyLlama } from '../harness/tiny-models.ts';
import { roundTrip } from '../harness/roundtrip.ts';

const { runRecipe } = compress;
type Fwd = Module & { forward(i: ModelInputs, o?: ForwardOptions): ModelOutput };

const g = new Generator(23);
const ids = Tensor.randint(1, 40, [3, 6], { dtype: 'int32', generator: g });
const attn = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0]), { shape: [3, 6] });
const clsBatch = { inputIds: ids, attentionMask: attn };
const lmBatch = { inputIds: ids };
const calib = (b: Record<string, Tensor>) => () => [b, b];

/**
 * A one-layer ReLU BERT whose FFN neurons 0–3 ignore their input (weights 0, biases -1, 2, 0, 0.005: activations
 * 0, 2, 0, 0.005 everywhere) and whose neurons 4–7 read hidden feature k = 0–3 (relu(x_k)).
 */
function handSetBert(): BertForSequenceClassification {
  manualSeed(4);
  const m = new BertForSequenceClassification(bertConfig({ vocab_size: 50, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 8, hidden_act: 'relu', max_position_embeddings: 16, num_labels: 2 })).eval();
  const d = m.bert.encoder.layer[0]!.intermediate!.dense;
  noGrad(() => {
    d.weight.data.fill(0);
    for (let k = 0; k < 4; k++) d.weight.data[(4 + k) * 16 + k] = 1;
    d.bias!.data.set([-1, 2, 0, 0.005, 0, 0, 0, 0]);
  });
  return m;
}

describe('activation scores', () => {
  test('APoZ, |a| ≤ eps and mean |a| per neuron, padding left out: hand-set neurons and a check against the captured inputs', () => {
    const m = handSetBert();
    const ffns = ffnUnits(m);
    const [s] = activationStats(m, ffns, [clsBatch], 0.01);
    // non-padding positions: 6 + 4 + 3
    assert.equal(s!.count, 13);
    assert.deepEqual(Array.from(s!.nonPositive.subarray(0, 4)), [1, 0, 1, 0]);
    assert.deepEqual(Array.from(s!.small.subarray(0, 4)), [1, 0, 1, 1]);
    expectClose(Array.from(s!.meanAbs.subarray(0, 4)), [0, 2, 0, 0.005], { atol: 1e-7 }, 'mean |a|');
    // neurons 4–7 are relu(x_k): count x_k ≤ 0 over the real tokens of the FFN input
    const x = captureActivations(m, ['bert.encoder.layer.0.intermediate.dense'], 'input', () => noGrad(() => void m.forward(clsBatch))).get('bert.encoder.layer.0.intermediate.dense')![0]!.toArray();
    const mask = attn.toArray();
    for (let k = 0; k < 4; k++) {
      let zeros = 0;
      let abs = 0;
      for (let p = 0; p < 18; p++)
        if (mask[p]) {
          const v = Math.max(0, x[p * 16 + k]!);
          if (v <= 0) zeros++;
          abs += v;
        }
      assert.equal(s!.nonPositive[4 + k], zeros / 13, `neuron ${4 + k}`);
      expectClose([s!.meanAbs[4 + k]!], [abs / 13], { atol: 1e-6 }, `mean |a| of neuron ${4 + k}`);
    }
  });

  test('prune.apoz removes the neurons with the most zeros; the criterion used is reported (ReLU: apoz, GELU: apoz_eps)', () => {
    const m = handSetBert();
    const r = runRecipe(m, [{ method: 'prune.apoz', sparsity: 0.25 }], { calibration: calib(clsBatch) });
    assert.equal(r.steps[0]!.criterion, 'apoz');
    assert.equal(r.steps[0]!.ffn_after, '6');
    assert.equal(r.steps[0]!.criterion_removed, 1);
    // neurons 0 and 2 (always zero) are gone: the remaining biases are 2, 0.005, 0, 0, 0, 0
    expectClose(Array.from(m.bert.encoder.layer[0]!.intermediate!.dense.bias!.toArray()), [2, 0.005, 0, 0, 0, 0], { atol: 0 }, 'kept biases');
    assert.deepEqual(m.bert.encoder.layer[0]!.output.dense!.weight.shape, [16, 6]);
    // apoz_eps also counts the tiny neuron 3 (0.005 ≤ 0.01) as zero
    const e = handSetBert();
    const re = runRecipe(e, [{ method: 'prune.apoz', sparsity: 0.375, criterion: 'apoz_eps' }], { calibration: calib(clsBatch) });
    assert.equal(re.steps[0]!.criterion, 'apoz_eps');
    expectClose(Array.from(e.bert.encoder.layer[0]!.intermediate!.dense.bias!.toArray()).slice(0, 1), [2], { atol: 0 }, 'neuron 1 kept first');
    assert.equal(e.bert.encoder.layer[0]!.intermediate!.dense.bias!.shape[0], 5);
    const gelu = tinyGpt2();
    assert.equal(runRecipe(gelu, [{ method: 'prune.apoz', sparsity: 0.5 }], { calibration: calib(lmBatch) }).steps[0]!.criterion, 'apoz_eps');
    const mean = tinyGpt2();
    assert.equal(runRecipe(mean, [{ method: 'prune.apoz', sparsity: 0.5, criterion: 'mean_abs' }], { calibration: calib(lmBatch) }).steps[0]!.criterion, 'mean_abs');
  });
});


/** Forward with FFN neurons zeroed at the down projection's input. */
function maskedForward(model: Module, batch: ModelInputs, neuronsOff: number[][]): ModelOutput {
  const handles: HookHandle[] = [];
  try {
    anatomy(model).blocks.forEach((b, i) => {
      const mk = new Float32Array(b.mlp!.intermediate!).fill(1);
      for (const j of neuronsOff[i]!) mk[j] = 0;
      const t = Tensor.from(mk);
      handles.push(registerForwardPreHook(model.getSubmodule(b.mlp!.down!), (_m, inputs) => [(inputs[0] as Tensor).mul(t)]));
    });
    return noGrad(() => (model as Fwd).forward(batch));
  } finally {
    for (const h of handles) h.remove();
  }
}
/** Original output features kept in a sliced layer, found by exact match of their weights. */
function keptOut(orig: Linear | Conv1D, pruned: Linear | Conv1D): number[] {
  const rows = (l: Linear | Conv1D) => {
    const w = (l.constructor.name === 'Conv1D' ? l.weight.transpose(0, 1) : l.weight).contiguous();
    const [r, c] = w.shape as [number, number];
    const d = w.toArray();
    const b = l.bias?.toArray();
    return Array.from({ length: r }, (_, i) => `${Array.from(d.subarray(i * c, (i + 1) * c)).join(',')}|${b ? b[i] : ''}`);
  };
  const o = rows(orig);
  return rows(pruned).map((r) => o.indexOf(r));
}
const TOL = { atol: 2e-5, rtol: 1e-4 };

describe('physically smaller FFNs equal the same neurons masked, and reload identically', () => {
  for (const [name, make, up, batch, n] of [
    ['GPT-2 (Conv1D c_fc / c_proj)', tinyGpt2, (m: Module, i: number) => m.getSubmodule(`transformer.h.${i}.mlp.c_fc`), lmBatch, 24],
    ['Llama (gate / up / down)', tinyLlama, (m: Module, i: number) => m.getSubmodule(`model.layers.${i}.mlp.up_proj`), lmBatch, 20],
    ['BERT (intermediate.dense / output.dense)', () => handSetBert(), (m: Module, i: number) => m.getSubmodule(`bert.encoder.layer.${i}.intermediate.dense`), clsBatch, 8],
  ] as const)
    test(name, () => {
      const orig = (make as () => Module)();
      const m = (make as () => Module)();
      runRecipe(m, [{ method: 'prune.apoz', sparsity: 0.5, criterion: 'mean_abs' }], { calibration: calib(batch) });
      const blocks = anatomy(m).blocks;
      const off = blocks.map((b, i) => {
        assert.equal(b.mlp!.intermediate, n / 2);
        const keep = keptOut(up(orig, i) as Linear, up(m, i) as Linear);
        assert.ok(keep.every((k) => k >= 0));
        return Array.from({ length: n }, (_, j) => j).filter((j) => !keep.includes(j));
      });
      if (name.startsWith('Llama')) {
        const keep = keptOut(orig.getSubmodule('model.layers.0.mlp.gate_proj') as Linear, m.getSubmodule('model.layers.0.mlp.gate_proj') as Linear);
        assert.deepEqual(keep.filter((k) => !off[0]!.includes(k)), keep, 'gate rows follow up rows');
      }
      const got = noGrad(() => (m as Fwd).forward(batch).logits);
      expectClose(got, maskedForward(orig, batch, off).logits, TOL, 'logits');
      assert.deepEqual(Array.from(noGrad(() => (roundTrip(m).loaded as Fwd).forward(batch).logits).toArray()), Array.from(got.toArray()));
    });
});

test('iterated Network Trimming is the recipe chain apoz → finetune → apoz', () => {
  const m = tinyGpt2();
  let i = 0;
  const task: compress.TaskData = {
    name: 'synthetic', metric: 'loss', greaterIsBetter: false,
    nextBatch: () => (i++, { inputIds: ids, labels: ids }),
    sampler: { state: () => i, setState: (s: number) => void (i = s) },
    evaluate: () => 0,
    calibration: () => [lmBatch],
    latencyInputs: () => lmBatch,
    evalArgs: [],
  };
  const r = runRecipe(m, { train: { steps: 2, warmup: 0 }, steps: [{ method: 'prune.apoz', sparsity: 0.5 }, { method: 'finetune' }, { method: 'prune.apoz', sparsity: 0.5 }] }, { task });
  assert.deepEqual(r.steps.map((s) => s.ffn_after ?? s.method), ['12/12', 'finetune', '6/6']);
  assert.deepEqual(anatomy(m).blocks.map((b) => b.mlp!.intermediate), [6, 6]);
});

test('errors before any work: sparsity out of range, no calibration data, a glob that matches nothing, an unknown criterion', () => {
  const m = tinyGpt2();
  const params = m.numParameters();
  const c = { calibration: calib(lmBatch) };
  expectThrows(() => runRecipe(m, [{ method: 'prune.apoz', sparsity: 1 }], c), "prune.apoz: option 'sparsity' must be a fraction in [0, 1), got 1");
  expectThrows(() => runRecipe(m, [{ method: 'prune.apoz', sparsity: -0.5 }], c), "option 'sparsity' must be a fraction in [0, 1)");
  expectThrows(() => runRecipe(m, [{ method: 'prune.apoz' }]), 'prune.apoz needs calibration data');
  expectThrows(() => runRecipe(m, [{ method: 'prune.apoz', targets: ['transformer.h.9.**'] }], c), "targets glob 'transformer.h.9.**' matches no module");
  expectThrows(() => runRecipe(m, [{ method: 'prune.apoz', criterion: 'apz' }], c), "option 'criterion' expects one of 'auto', 'apoz', 'apoz_eps', 'mean_abs'");
  expectThrows(() => runRecipe(m, [{ method: 'prune.apoz', targets: ['transformer.wte'] }], c), 'prune.apoz: no dense or gated FFN is targeted');
  assert.equal(m.numParameters(), params);
  // targets pick layers
  runRecipe(m, [{ method: 'prune.apoz', sparsity: 0.5, targets: ['transformer.h.1.mlp.*'] }], c);
  assert.deepEqual(anatomy(m).blocks.map((b) => b.mlp!.intermediate), [24, 12]);
});
