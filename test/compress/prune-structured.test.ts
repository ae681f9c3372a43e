// prune.structured: Michel et al.'s head-gradient importance against finite differences, physically pruned
// BERT / GPT-2 / grouped-query Llama equal to the unpruned model with the same heads and neurons masked, reloads,
// errors before any work, and the plain `finetune` training step.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator, Tensor, compress, noGrad,
} from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import type { Linear, Conv1D } from '../../src/nn/layers.ts';
import { registerForwardPreHook, type HookHandle } from '../../src/nn/hooks.ts';
import type { ModelInputs, ModelOutput, ForwardOptions } from '../../src/models/outputs.ts';
import { anatomy } from '../../src/models/anatomy.ts';
import { attentionUnits, ffnUnits, gradientImportance } from '../../src/compress/prune/importance.ts';
import '../../src/compress/prune/index.ts';
import { expectClose, expectThrows } from '../harness/expect.ts';
import { tinyBert, tinyGpt2, tinyLlama } from '../harness/tiny-models.ts';
import { roundTrip } from '../harness/roundtrip.ts';

const { runRecipe } = compress;
type Fwd = Module & { forward(i: ModelInputs, o?: ForwardOptions): ModelOutput };


const g = new Generator(17);
const ids = Tensor.randint(1, 40, [3, 6], { dtype: 'int32', generator: g });
const attn = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0]), { shape: [3, 6] });
const clsBatch = { inputIds: ids, attentionMask: attn, labels: Tensor.from(Int32Array.from([0, 2, 1])) };
const lmBatch = { inputIds: ids, labels: ids };
const calib = (b: Record<string, Tensor>) => () => [b, b];

/** Forward with heads zeroed through headMask and FFN neurons zeroed at the down projection's input. */
function maskedForward(model: Module, batch: ModelInputs, headsOff: number[][], neuronsOff: number[][]): ModelOutput {
  const a = anatomy(model);
  const handles: HookHandle[] = [];
  try {
    a.blocks.forEach((b, i) => {
      if (!b.mlp || !neuronsOff[i]?.length) return;
      const m = new Float32Array(b.mlp.intermediate!).fill(1);
      for (const j of neuronsOff[i]!) m[j] = 0;
      const mt = Tensor.from(m);
      handles.push(registerForwardPreHook(model.getSubmodule(b.mlp.down!), (_m, inputs) => [(inputs[0] as Tensor).mul(mt)]));
    });
    const headMask = a.blocks.map((b, i) => {
      if (!b.attention) return null;
      const m = new Float32Array(b.attention.numHeads).fill(1);
      for (const h of headsOff[i] ?? []) m[h] = 0;
      return Tensor.from(m);
    });
    return noGrad(() => (model as Fwd).forward(batch, { headMask }));
  } finally {
    for (const h of handles) h.remove();
  }
}

/** Which rows of `orig` (out features; Conv1D columns) survive in `pruned`, by exact match. */
function keptOut(orig: Linear | Conv1D, pruned: Linear | Conv1D, width = 1): number[] {
  const conv = orig.constructor.name === 'Conv1D';
  const rows = (l: Linear | Conv1D) => {
    const w = (conv ? l.weight.transpose(0, 1) : l.weight).contiguous();
    const [r, c] = w.shape as [number, number];
    const d = w.toArray();
    return Array.from({ length: r / width }, (_, i) => Array.from(d.subarray(i * width * c, (i + 1) * width * c)).join(','));
  };
  const o = rows(orig);
  return rows(pruned).map((r) => {
    const i = o.indexOf(r);
    assert.ok(i >= 0, 'a pruned row is not an original row');
    return i;
  });
}
const off = (n: number, keep: number[]) => Array.from({ length: n }, (_, i) => i).filter((i) => !keep.includes(i));

const TOL = { atol: 2e-5, rtol: 1e-4 };
const lossOf = (m: Module, b: ModelInputs, o: ForwardOptions = {}) => noGrad(() => (m as Fwd).forward(b, o).loss!.item());

describe('gradient importance (Michel et al.)', () => {
  test('|∂L/∂head mask| equals a central finite difference of the loss, per head and per neuron (tiny BERT)', () => {
    const m = tinyBert();
    const att = attentionUnits(m);
    const ffns = ffnUnits(m);
    const gi = gradientImportance(m, att, ffns, [clsBatch]);
    assert.equal(gi.labels, 'task');
    const d = 1e-2;
    for (const [li, layer] of [0, 1].entries())
      for (let h = 0; h < 4; h++) {
        const mk = (s: number) => [0, 1].map((l) => Tensor.from(Float32Array.from([0, 1, 2, 3], (k) => (l === layer && k === h ? 1 + s : 1))));
        const fd = (lossOf(m, clsBatch, { headMask: mk(d) }) - lossOf(m, clsBatch, { headMask: mk(-d) })) / (2 * d);
        assert.ok(Math.abs(gi.heads[li]![h]! - Math.abs(fd)) <= 2e-5 + 2e-2 * Math.abs(fd), `layer ${layer} head ${h}: grad ${gi.heads[li]![h]} vs finite difference ${fd}`);
      }
    // neurons: scale one neuron's activation through a pre-hook on output.dense
    for (const j of [0, 5, 17]) {
      const at = (s: number) => {
        const mask = Tensor.from(Float32Array.from({ length: 24 }, (_, k) => (k === j ? 1 + s : 1)));
        const h = registerForwardPreHook(m.getSubmodule('bert.encoder.layer.1.output.dense'), (_m, inputs) => [(inputs[0] as Tensor).mul(mask)]);
        try {
          return lossOf(m, clsBatch);
        } finally {
          h.remove();
        }
      };
      const fd = (at(d) - at(-d)) / (2 * d);
      assert.ok(Math.abs(gi.neurons[1]![j]! - Math.abs(fd)) <= 2e-5 + 2e-2 * Math.abs(fd), `neuron ${j}: grad ${gi.neurons[1]![j]} vs finite difference ${fd}`);
    }
    // scores add over batches; parameter gradients are left alone
    const two = gradientImportance(m, att, ffns, [clsBatch, clsBatch]);
    expectClose(Array.from(two.heads[0]!), Array.from(gi.heads[0]!, (v) => 2 * v), { atol: 1e-6, rtol: 1e-4 }, 'two batches');
    for (const p of m.parameters()) assert.equal(p.grad, null);
  });

  test('without labels: next tokens for causal LMs, predicted classes for classifiers', () => {
    assert.equal(gradientImportance(tinyGpt2(), [], [], [{ inputIds: ids }]).labels, 'next-token');
    const m = tinyBert();
    const unlabelled = { inputIds: ids, attentionMask: attn };
    const gi = gradientImportance(m, attentionUnits(m), ffnUnits(m), [unlabelled]);
    assert.equal(gi.labels, 'predicted');
    const predicted = Tensor.from(Int32Array.from([0, 1, 2], (i) => { const l = noGrad(() => m.forward(unlabelled).logits).toArray(); let b = 0; for (let c = 1; c < 3; c++) if (l[i * 3 + c]! > l[i * 3 + b]!) b = c; return b; }));
    const want = gradientImportance(m, attentionUnits(m), ffnUnits(m), [{ ...unlabelled, labels: predicted }]);
    expectClose(Array.from(gi.neurons[1]!), Array.from(want.neurons[1]!), { atol: 0 }, 'the same as with the predicted labels');
  });
});

describe('physically pruned models equal the unpruned model with the same heads and neurons masked', () => {
  test('BERT: 50 % heads and neurons by gradient; uniform widths save as plain HF fields and reload identically', () => {
    const orig = tinyBert();
    const m = tinyBert();
    const r = runRecipe(m, [{ method: 'prune.structured', heads: 0.5, neurons: 0.5 }], { calibration: calib(clsBatch) });
    const rep = r.steps[0]!;
    assert.equal(rep.heads_after, '2/2');
    assert.equal(rep.ffn_after, '12/12');
    assert.equal(rep.labels, 'task');
    const headsOff = m.bert.encoder.layer.map((l) => [...l.attention!.prunedHeads]);
    const neuronsOff = m.bert.encoder.layer.map((l, i) => off(24, keptOut(orig.bert.encoder.layer[i]!.intermediate!.dense, l.intermediate!.dense)));
    assert.deepEqual(neuronsOff.map((n) => n.length), [12, 12]);
    // the pruned heads are the least important by gradient
    const gi = gradientImportance(orig, attentionUnits(orig), ffnUnits(orig), [clsBatch, clsBatch]);
    gi.heads.forEach((s, li) => {
      const order = [0, 1, 2, 3].sort((a, b) => s[a]! - s[b]! || a - b).slice(0, 2).sort();
      assert.deepEqual(headsOff[li]!.sort(), order, `layer ${li}`);
    });
    const want = maskedForward(orig, clsBatch, headsOff, neuronsOff);
    const got = noGrad(() => m.forward(clsBatch));
    expectClose(got.logits, want.logits, TOL, 'logits');
    expectClose(got.loss!, want.loss!, TOL, 'loss');
    const { loaded, config } = roundTrip(m);
    assert.equal(config.intermediate_size, 12);
    assert.deepEqual(config.pruned_heads, Object.fromEntries(headsOff.map((h, i) => [String(i), h.sort()])));
    assert.equal(config.compression_config, undefined);
    assert.deepEqual(Array.from(noGrad(() => loaded.forward(clsBatch).logits).toArray()), Array.from(got.logits.toArray()));
  });

  test('GPT-2 (fused c_attn, Conv1D FFN), weight norms, global scope', () => {
    const orig = tinyGpt2();
    const m = tinyGpt2();
    const r = runRecipe(m, [{ method: 'prune.structured', heads: 0.5, neurons: 0.25, head_importance: 'weight_norm', neuron_importance: 'weight_norm', scope: 'global' }]);
    assert.equal(r.steps[0]!.heads_removed, 4);
    assert.equal(r.steps[0]!.neurons_removed, 12);
    const headsOff = m.transformer.h.map((b) => [...b.attn!.prunedHeads]);
    assert.ok(headsOff.every((h) => h.length <= 3));
    const neuronsOff = m.transformer.h.map((b, i) => off(24, keptOut((orig.transformer.h[i]!.mlp as never as { c_fc: Conv1D }).c_fc, (b.mlp as never as { c_fc: Conv1D }).c_fc)));
    const want = maskedForward(orig, lmBatch, headsOff, neuronsOff);
    const got = noGrad(() => m.forward(lmBatch));
    expectClose(got.logits, want.logits, TOL, 'logits');
    const { loaded } = roundTrip(m);
    assert.deepEqual(Array.from(noGrad(() => loaded.forward(lmBatch).logits).toArray()), Array.from(got.logits.toArray()));
  });

  test('grouped-query Llama: whole KV groups go (their query heads with their k/v head), gated FFN sliced', () => {
    const orig = tinyLlama();
    const m = tinyLlama();
    const r = runRecipe(m, [{ method: 'prune.structured', heads: 0.5, neurons: 0.5 }], { calibration: calib(lmBatch) });
    assert.equal(r.steps[0]!.heads_after, '2/2');
    assert.equal(r.steps[0]!.labels, 'task');
    const hd = 8;
    const headsOff = m.model.layers.map((l, i) => {
      const a = l.self_attn!;
      assert.equal(a.numKvHeads, 1);
      assert.deepEqual(a.k_proj.weight.shape, [hd, 32]);
      assert.deepEqual(a.o_proj.weight.shape, [32, 2 * hd]);
      const group = keptOut(orig.model.layers[i]!.self_attn!.k_proj, a.k_proj, hd)[0]!;
      assert.deepEqual(keptOut(orig.model.layers[i]!.self_attn!.q_proj, a.q_proj, hd), [2 * group, 2 * group + 1]);
      return off(4, [2 * group, 2 * group + 1]);
    });
    const neuronsOff = m.model.layers.map((l, i) => {
      const mlp = l.mlp as never as { up_proj: Linear; gate_proj: Linear };
      const o = orig.model.layers[i]!.mlp as never as { up_proj: Linear; gate_proj: Linear };
      const keep = keptOut(o.up_proj, mlp.up_proj);
      assert.deepEqual(keptOut(o.gate_proj, mlp.gate_proj), keep);
      return off(20, keep);
    });
    const want = maskedForward(orig, lmBatch, headsOff, neuronsOff);
    const got = noGrad(() => m.forward(lmBatch));
    expectClose(got.logits, want.logits, TOL, 'logits');
    const { loaded } = roundTrip(m);
    assert.equal(loaded.model.layers[0]!.self_attn!.numKvHeads, 1);
    assert.deepEqual(Array.from(noGrad(() => loaded.forward(lmBatch).logits).toArray()), Array.from(got.logits.toArray()));
  });

  test('whole sub-blocks: by index, by importance, and every head with allow_layer_removal → null (identity); reloads', () => {
    const m = tinyBert();
    const r = runRecipe(m, [{ method: 'prune.structured', drop_mlp: [0], layers: 1, heads: 0.9, allow_layer_removal: true, min_heads_per_layer: 0, scope: 'per_layer' }], { calibration: calib(clsBatch) });
    const blocks = anatomy(m).blocks;
    assert.equal(blocks[0]!.mlp, null);
    assert.ok(blocks.every((b) => b.attention === null || b.attention.numHeads === 0 || b.attention === null));
    assert.equal(r.steps[0]!.heads_after, '0/0');
    assert.equal(String(r.steps[0]!.mlp_removed).split(',').length + (r.steps[0]!.attention_removed === 'none' ? 0 : String(r.steps[0]!.attention_removed).split(',').length), 2);
    const got = noGrad(() => m.forward(clsBatch).logits);
    const { loaded } = roundTrip(m);
    assert.deepEqual(Array.from(noGrad(() => loaded.forward(clsBatch).logits).toArray()), Array.from(got.toArray()));
  });
});

describe('errors before any work', () => {
  test('fractions out of range, every head of a layer, no calibration, globs matching nothing', () => {
    const m = tinyBert();
    const params = m.numParameters();
    const c = { calibration: calib(clsBatch) };
    expectThrows(() => runRecipe(m, [{ method: 'prune.structured', heads: 1 }], c), "option 'heads' must be a fraction in [0, 1), got 1");
    expectThrows(() => runRecipe(m, [{ method: 'prune.structured', neurons: -0.1 }], c), "option 'neurons' must be a fraction in [0, 1)");
    expectThrows(() => runRecipe(m, [{ method: 'prune.structured', heads: 0.9 }], c), "option 'heads' 0.9 removes every head of layer 0 (4 heads); set allow_layer_removal: true");
    expectThrows(() => runRecipe(m, [{ method: 'prune.structured', heads: 0.5, min_heads_per_layer: 0 }], c), "min_heads_per_layer' 0 lets a layer lose every head; set allow_layer_removal: true");
    expectThrows(() => runRecipe(m, [{ method: 'prune.structured', heads: 0.5 }]), 'prune.structured needs calibration data');
    expectThrows(() => runRecipe(m, [{ method: 'prune.structured', heads: 0.5, targets: ['**.nothing'] }], c), "targets glob '**.nothing' matches no module");
    expectThrows(() => runRecipe(m, [{ method: 'prune.structured', drop_mlp: [5] }], c), "option 'drop_mlp': block 5 is out of range");
    expectThrows(() => runRecipe(m, [{ method: 'prune.structured', head_importance: 'taylor' }], c), "option 'head_importance' expects one of 'gradient', 'weight_norm'");
    // a later step's error stops the earlier steps too
    expectThrows(() => runRecipe(m, [{ method: 'prune.structured', heads: 0.5, head_importance: 'weight_norm' }, { method: 'prune.structured', heads: 1.5 }]), "prune.structured: option 'heads' must be a fraction in [0, 1), got 1.5");
    assert.equal(m.numParameters(), params);
  });

  test('targets restrict pruning to the matching layers', () => {
    const m = tinyBert();
    runRecipe(m, [{ method: 'prune.structured', heads: 0.5, neurons: 0.5, head_importance: 'weight_norm', neuron_importance: 'weight_norm', targets: ['bert.encoder.layer.1.**'] }]);
    assert.equal(anatomy(m).blocks[0]!.attention!.numHeads, 4);
    assert.equal(anatomy(m).blocks[0]!.mlp!.intermediate, 24);
    assert.equal(anatomy(m).blocks[1]!.attention!.numHeads, 2);
    assert.equal(anatomy(m).blocks[1]!.mlp!.intermediate, 12);
  });
});

test('finetune: a plain training stage after pruning trains the pruned model on the task loss', () => {
  const m = tinyGpt2();
  const batches = [lmBatch, { inputIds: ids.narrow(0, 0, 2), labels: ids.narrow(0, 0, 2) }];
  let i = 0;
  const task: compress.TaskData = {
    name: 'synthetic', metric: 'loss', greaterIsBetter: false,
    nextBatch: () => batches[i++ % batches.length]!,
    sampler: { state: () => i, setState: (s: number) => void (i = s) },
    evaluate: (mm: Module) => lossOf(mm, lmBatch),
    calibration: () => [{ inputIds: ids }],
    latencyInputs: () => ({ inputIds: ids }),
    evalArgs: [],
  };
  const before = lossOf(m, lmBatch);
  const r = runRecipe(m, { train: { steps: 6, lr: 1e-2, warmup: 0, batch_size: 3 }, steps: [{ method: 'prune.structured', heads: 0.5, neurons: 0.5 }, { method: 'finetune' }] }, { task });
  assert.deepEqual(r.steps.map((s) => [s.method, s.kind]), [['prune.structured', 'one-shot'], ['finetune', 'trained']]);
  assert.equal(r.steps[1]!.params, m.numParameters());
  assert.equal(r.steps[0]!.labels, 'next-token');
  assert.equal(anatomy(m).blocks[0]!.attention!.numHeads, 2);
  const after = lossOf(m, lmBatch);
  assert.ok(after < before, `fine-tuning lowered the loss: ${before} → ${after}`);
  assert.ok(compress.methodNames().includes('finetune'));
});
