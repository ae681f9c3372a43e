// prune.cofi: where the masks multiply (against a plain forward and a hand-computed LayerNorm over kept dims),
// the exact fold + physical pruning, the version-4 layer alignment, and a whole recipe through the runner with a
// teacher, saved and reloaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BertForSequenceClassification, Generator, Tensor, compress, manualSeed, noGrad } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { expectClose, expectThrows } from '../harness/expect.ts';
import { tinyBert } from '../harness/tiny-models.ts';
import { cyclicTask, randomClsBatches } from '../harness/tasks.ts';
import { roundTrip } from '../harness/roundtrip.ts';
import { installMasks, maskedLayerNorm, type CofiZ } from '../../src/compress/cofi/masked.ts';
import { foldAndPrune } from '../../src/compress/cofi/finalize.ts';
import { defaultTeacherLayers, layerDistillLoss } from '../../src/compress/cofi/distill.ts';
import { encoderParams } from '../../src/compress/cofi/method.ts';
import { LayerNorm } from '../../src/nn/layers.ts';

const { runRecipe } = compress;
const g = new Generator(3);
const ids = Tensor.randint(1, 50, [3, 7], { dtype: 'int32', generator: g });
const mask = Tensor.from([
  [1, 1, 1, 1, 1, 1, 1],
  [1, 1, 1, 1, 1, 0, 0],
  [1, 1, 1, 0, 0, 0, 0],
]);
const inputs = { inputIds: ids, attentionMask: mask };
const logits = (m: Module) => noGrad(() => (m as BertForSequenceClassification).forward(inputs).logits);

/** Soft masks in (0, 1] with some exact zeros (what deterministic masks look like). */
function someMasks(zeros: { head?: number[]; headLayer?: number[]; intermediate?: number[]; mlp?: number[]; hidden?: number[] }): CofiZ {
  const soft = (n: number, zero: number[] = []) => Tensor.from(Float32Array.from({ length: n }, (_, i) => (zero.includes(i) ? 0 : 0.6 + 0.4 * g.random())));
  return {
    head: soft(8, zeros.head).reshape([2, 4]),
    headLayer: soft(2, zeros.headLayer),
    intermediate: soft(48, zeros.intermediate).reshape([2, 24]),
    mlp: soft(2, zeros.mlp),
    hidden: soft(32, zeros.hidden),
  };
}

test('masks of ones change nothing; masks are removed cleanly', () => {
  const m = tinyBert();
  const plain = logits(m);
  const ones: CofiZ = { head: Tensor.ones([2, 4]), headLayer: Tensor.ones([2]), intermediate: Tensor.ones([2, 24]), mlp: Tensor.ones([2]), hidden: Tensor.ones([32]) };
  const h = installMasks(m, () => ones);
  expectClose(logits(m), plain, { atol: 1e-5, rtol: 0 }, 'all-ones masks');
  h.remove();
  assert.ok(!Object.hasOwn(m.bert.embeddings.LayerNorm, 'forward'));
  expectClose(logits(m), plain, { atol: 0 }, 'after remove');
});

test('LayerNorm over the kept dims: statistics of the kept dims only, dropped dims pass through', () => {
  manualSeed(1);
  const ln = new LayerNorm([6], { eps: 1e-5 });
  noGrad(() => {
    ln.weight!.copy_(Tensor.from([1, 2, 3, 4, 5, 6]));
    ln.bias!.copy_(Tensor.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]));
  });
  const x = Tensor.from([[1, -2, 3, 0.5, 7, -1]]);
  const z = Tensor.from([1, 0, 0.5, 0, 1, 1]);
  const out = maskedLayerNorm(ln, x, z).toArray();
  const kept = [0, 2, 4, 5];
  const xs = kept.map((i) => [1, -2, 3, 0.5, 7, -1][i]!);
  const mean = xs.reduce((a, b) => a + b) / 4;
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / 4;
  const want = [1, -2, 3, 0.5, 7, -1].map((xi, i) => (kept.includes(i) ? ((xi - mean) / Math.sqrt(v + 1e-5)) * (i + 1) + 0.1 * (i + 1) : xi));
  expectClose(out, Float32Array.from(want), { atol: 1e-5 }, 'masked LayerNorm');
});

test('fold + prune is exact: the pruned model computes what the masked one does', () => {
  const cases: Parameters<typeof someMasks>[0][] = [
    { head: [1, 6], intermediate: [0, 3, 5, 30, 31], hidden: [2, 9, 17] },
    { headLayer: [1], mlp: [0], hidden: [0, 31] }, // whole sub-blocks pruned away
    { head: [0, 1, 2, 3] }, // every head of layer 0 zeroed while its MHA gate is not
  ];
  for (const [k, zeros] of cases.entries()) {
    const m = tinyBert();
    const z = someMasks(zeros);
    const h = installMasks(m, () => z);
    const masked = logits(m);
    h.remove();
    const counts = foldAndPrune(m, z);
    if (k === 2) {
      // the masked layer still adds its output bias; upstream's pruned model drops the sub-block (documented difference)
      assert.deepEqual(counts.attentionRemoved, [0]);
      continue;
    }
    expectClose(logits(m), masked, { atol: 2e-5, rtol: 0 }, `case ${k}`);
    if (k === 0) {
      assert.deepEqual(counts.heads, [3, 3]);
      assert.deepEqual(counts.ffn, [21, 22]);
      assert.equal(counts.hidden, 29);
      assert.equal(m.bert.embeddings.word_embeddings.weight.shape[1], 29);
    }
    if (k === 1) {
      assert.deepEqual(counts.attentionRemoved, [1]);
      assert.deepEqual(counts.mlpRemoved, [0]);
      assert.equal(m.bert.encoder.layer[1]!.attention, null);
    }
  }
});

test('a pruned model saves as a folder that fromPretrained rebuilds with the same outputs', () => {
  const m = tinyBert();
  const z = someMasks({ head: [1, 6], headLayer: [], intermediate: [0, 3, 5, 30, 31], mlp: [1], hidden: [2, 9, 17] });
  foldAndPrune(m, z);
  const back = roundTrip(m).loaded;
  expectClose(logits(back.eval()), logits(m), { atol: 0 }, 'reloaded');
  assert.equal(back.numParameters(), m.numParameters());
});

test('version-4 alignment: teacher layers walk down, each taking the lowest-loss student layer below the last pick', () => {
  assert.deepEqual(defaultTeacherLayers(12), [2, 5, 8, 11]);
  assert.deepEqual(defaultTeacherLayers(6), [2, 5]);
  assert.deepEqual(defaultTeacherLayers(2), [1]);
  const base = Tensor.from([[[0, 0]]]);
  const at = (v: number) => base.add(v);
  // teacher layers are constants 0..3; student layers hold 3, 0.1, 2, 2.9: MSE = (t - s)^2
  const teacher = [0, 1, 2, 3].map(at);
  const student = [3, 0.1, 2, 2.9].map(at);
  const id = (x: Tensor) => x;
  let r = layerDistillLoss(teacher, student, id, [1, 3], null);
  // teacher 3 → student 0 (loss 0) is the global best, but the walk starts at the last teacher layer: 3 picks s0,
  // then teacher 1 has nothing below s0 → no pair
  assert.deepEqual(r.alignment, [-1, 0]);
  r = layerDistillLoss(teacher, student, id, [1, 3], [false, true, true, true]);
  // s0 is dead: teacher 3 → s3 (0.01), teacher 1 → lowest below 3: s1 (0.81) vs s2 (1) → s1
  assert.deepEqual(r.alignment, [1, 3]);
  expectClose([r.loss.item()], [0.81 + 0.01], { atol: 1e-6 }, 'sum of the chosen MSEs');
});

test('prune.cofi through the runner: trains with a teacher, reaches the target, removes parameters, reloads', () => {
  const model = tinyBert(5);
  const teacher = tinyBert(5);
  const task = cyclicTask(randomClsBatches(9, 4, 8, 7, 50, 3));
  const before = encoderParams(model);
  const r = runRecipe(
    model,
    { train: { steps: 60, lr: 1e-3, warmup: 0, task_weight: 0 }, steps: [{ method: 'prune.cofi', target_sparsity: 0.5, prepruning_steps: 5, lagrangian_warmup: 0.3, reg_lr: 0.1 }, { method: 'finetune', train: { steps: 3, task_weight: 1 } }] },
    { task, teacher: () => teacher },
  );
  assert.deepEqual(r.steps.map((s) => [s.method, s.stage]), [['prune.cofi', 1], ['finetune', 2]]);
  const rep = r.steps[0]!;
  const parts = Object.keys(r.history[0]!.at(-1)!.parts ?? {}).sort();
  assert.deepEqual(parts, ['prune.cofi.lagrangian', 'prune.cofi.layer_distill', 'prune.cofi.pred_distill']);
  assert.ok(!r.history[0]![0]!.parts!['prune.cofi.lagrangian'] || r.history[0]![0]!.parts!['prune.cofi.lagrangian'] === 0);
  const after = encoderParams(model);
  assert.ok(after < before, `encoder params ${before} → ${after}`);
  assert.equal(rep.encoder_params_after, after);
  assert.ok((rep.expected_sparsity as number) > 0.2, `expected sparsity ${rep.expected_sparsity}`);
  assert.equal(r.history[1]!.length, 3);
  expectClose(logits(roundTrip(model).loaded.eval()), logits(model.eval()), { atol: 0 }, 'reloaded');
});

test('prune.cofi refuses what it cannot prune, naming the option', () => {
  const m = tinyBert();
  const check = (opts: Record<string, unknown>) => {
    const steps = compress.resolveSteps(compress.parseRecipe([{ method: 'prune.cofi', ...opts }]), m);
    steps[0]!.method.check!(m, steps[0]!.cfg, {});
  };
  expectThrows(() => check({ target_sparsity: 1.2 }), "prune.cofi: option 'target_sparsity' must be in (0, 1), got 1.2");
  expectThrows(() => check({ sparsity_epsilon: -0.1 }), "prune.cofi: option 'sparsity_epsilon' must be in [0, 1), got -0.1");
  expectThrows(() => check({ pruning_type: ['heads'] }), "prune.cofi: option 'pruning_type': unknown gate 'heads'");
  expectThrows(() => check({ distill_layers: [5] }), "prune.cofi: option 'distill_layers': layer 5 is out of range (the teacher has 2 layers)");
  m.bert.pruneHeads({ 0: [1] });
  expectThrows(() => check({}), 'prune.cofi: layer 0 is already pruned or replaced');
});
