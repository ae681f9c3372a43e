// distill.kd: the KL term against a hand computation, T² scaling, ignored / padded / shifted token positions,
// gradients, students (own layers, a config, as is), and a tiny KD recipe end-to-end through the runner: the student
// is really smaller, reloads with fromPretrained, and the loss terms are reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, compress, noGrad } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import type { ForwardOptions, ModelInputs, ModelOutput } from '../../src/models/outputs.ts';
import { anatomy } from '../../src/models/anatomy.ts';
import { expectClose, expectThrows } from '../harness/expect.ts';
import { f64, gradcheck } from '../harness/gradcheck.ts';
import { cyclicTask, randomClsBatches } from '../harness/tasks.ts';
import { tinyBert, tinyGpt2 } from '../harness/tiny-models.ts';
import { roundTrip } from '../harness/roundtrip.ts';

const { distill, runRecipe } = compress;
type Fwd = Module & { forward(i: ModelInputs, o?: ForwardOptions): ModelOutput };
const params = (m: Module) => m.parameters().reduce((n, p) => n + p.numel, 0);

const softmax = (z: number[]) => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b);
  return e.map((v) => v / s);
};
/** T²·KL(softmax(t/T) ‖ softmax(s/T)) of one row, by hand. */
const klRow = (s: number[], t: number[], T: number) => {
  const p = softmax(t.map((v) => v / T));
  const q = softmax(s.map((v) => v / T));
  return T * T * p.reduce((a, pi, i) => a + pi * (Math.log(pi) - Math.log(q[i]!)), 0);
};

test('KD loss: T²·KL(teacher ‖ student) per row, mean over rows, against a hand computation', () => {
  const s = [[1, 2, 0.5], [0, -1, 3]];
  const t = [[0.3, -1, 2], [2, 2, -0.5]];
  const st = Tensor.from(Float32Array.from(s.flat()), { shape: [2, 3] });
  const tt = Tensor.from(Float32Array.from(t.flat()), { shape: [2, 3] });
  for (const T of [1, 2, 4]) {
    const want = (klRow(s[0]!, t[0]!, T) + klRow(s[1]!, t[1]!, T)) / 2;
    expectClose([distill.kdLoss(st, tt, { temperature: T }).item()], [want], { atol: 1e-6, rtol: 1e-5 }, `T=${T}`);
  }
  // T² scaling: the loss at T is T² times the KL of the logits divided by T
  const T = 3;
  const plain = distill.kdLoss(st.div(T), tt.div(T), { temperature: 1 }).item();
  expectClose([distill.kdLoss(st, tt, { temperature: T }).item()], [T * T * plain], { atol: 1e-6, rtol: 1e-5 }, 'T² scaling');
  // identical logits: zero
  assert.ok(Math.abs(distill.kdLoss(tt, tt, { temperature: 2 }).item()) < 1e-6);
  expectThrows(() => distill.kdLoss(st, tt.narrow(1, 0, 2), { temperature: 1 }), 'must share the label set');
});

test('token-level KD leaves out padding and ignored labels; a causal LM is scored at the position before each label', () => {
  const g = new Generator(4);
  const B = 2;
  const T = 4;
  const V = 5;
  const s = Tensor.randn([B, T, V], { generator: g });
  const t = Tensor.randn([B, T, V], { generator: g });
  const labels = Tensor.from(Int32Array.from([3, -100, 1, 2, 0, 4, -100, -100]), { shape: [B, T] });
  const mask = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 0]), { shape: [B, T] });
  const row = (x: Tensor, r: number) => Array.from(x.reshape([B * T, V]).select(0, r).toFloat32Array());
  const mean = (rows: number[]) => rows.reduce((a, r) => a + klRow(row(s, r), row(t, r), 2), 0) / rows.length;

  // masked LM: label at t itself
  assert.deepEqual(distill.kdRows(B, T, { lm: 'masked', labels, attentionMask: mask }), [0, 2, 3, 4, 5]);
  expectClose([distill.kdLoss(s, t, { temperature: 2, lm: 'masked', labels, attentionMask: mask }).item()], [mean([0, 2, 3, 4, 5])], { atol: 1e-6, rtol: 1e-5 }, 'masked');
  // 'all': every non-padding position
  assert.deepEqual(distill.kdRows(B, T, { lm: 'masked', positions: 'all', labels, attentionMask: mask }), [0, 1, 2, 3, 4, 5, 6]);
  // causal LM: position t scores label t+1; the last position never counts
  assert.deepEqual(distill.kdRows(B, T, { lm: 'causal', labels, attentionMask: mask }), [1, 2, 4]);
  expectClose([distill.kdLoss(s, t, { temperature: 2, lm: 'causal', labels, attentionMask: mask }).item()], [mean([1, 2, 4])], { atol: 1e-6, rtol: 1e-5 }, 'causal');

  // changing the logits at a left-out position changes nothing
  const s2 = s.clone();
  (s2.data as Float32Array).fill(7, 1 * V, 2 * V); // row 1: label −100
  (s2.data as Float32Array).fill(-3, 7 * V, 8 * V); // row 7: padding
  assert.equal(distill.kdLoss(s2, t, { temperature: 2, lm: 'masked', labels, attentionMask: mask }).item(), distill.kdLoss(s, t, { temperature: 2, lm: 'masked', labels, attentionMask: mask }).item());
  // no position counts: a zero that still backpropagates
  const none = Tensor.full([B, T], -100, { dtype: 'int32' });
  assert.equal(distill.kdLoss(s, t, { temperature: 2, lm: 'masked', labels: none }).item(), 0);
});

test('KD loss gradients match finite differences (float64, rows and tokens)', () => {
  const g = new Generator(8);
  const t2 = f64([3, 4], g).detach();
  gradcheck('kd rows T=2', (x) => distill.kdLoss(x!, t2, { temperature: 2 }), [f64([3, 4], g)]);
  const t3 = f64([2, 3, 4], g).detach();
  const labels = Tensor.from(Int32Array.from([1, -100, 2, 0, 3, -100]), { shape: [2, 3] });
  gradcheck('kd tokens causal T=3', (x) => distill.kdLoss(x!, t3, { temperature: 3, lm: 'causal', labels }), [f64([2, 3, 4], g)]);
});

/** A synthetic 3-class task over random token sequences with some padding. */
function clsTask(): compress.TaskData {
  return cyclicTask(randomClsBatches(21, 4, 4, 6, 50, 3, (b, t) => t < 4 || b >= 2));
}


test('a KD recipe end-to-end through the runner: smaller students, reported loss terms, reload', () => {
  const teacher = tinyBert(1);
  const probe = clsTask().nextBatch();
  for (const [label, opts, layers, hidden] of [
    ['own layers', { keep_layers: [1] }, 1, 32],
    ['every k-th', { layers: 1 }, 1, 32],
    ['config', { student: { layers: 1, hidden: 16, heads: 2, intermediate: 12 } }, 1, 16],
  ] as const) {
    const model = tinyBert(1);
    const before = params(model);
    const lastLayer = label === 'own layers' ? model.bert.encoder.layer[1]!.attention!.self!.query.weight.clone() : null;
    const r = runRecipe(model, { train: { steps: 3, lr: 1e-3, warmup: 0, task_weight: 0 }, steps: [{ method: 'distill.kd', temperature: 2, alpha: 0.5, ...opts }] }, { task: clsTask(), teacher: () => teacher });
    const a = anatomy(model);
    assert.equal(a.blocks.length, layers, label);
    assert.equal(a.hiddenSize, hidden, label);
    assert.ok(params(model) < before, `${label}: ${params(model)} < ${before}`);
    assert.equal(r.steps[0]!.student_params, params(model));
    assert.equal(model.config.num_hidden_layers, layers);
    if (lastLayer) assert.equal(model.bert.encoder.layer[0]!.attention!.self!.query.weight.shape.join(','), lastLayer.shape.join(','));
    const parts = r.history[0]!.map((e) => Object.keys(e.parts ?? {}).sort().join(','));
    assert.ok(parts.every((p) => p === 'distill.kd.kd,distill.kd.task'), `${label}: ${parts}`);
    for (const e of r.history[0]!) assert.ok(Number.isFinite(e.parts!['distill.kd.kd']!) && e.parts!['distill.kd.kd']! >= 0);
    const back = roundTrip(model).loaded;
    model.eval();
    back.eval();
    expectClose(noGrad(() => back.forward(probe).logits), noGrad(() => model.forward(probe).logits), { atol: 1e-6, rtol: 1e-5 }, `${label}: reloaded logits`);
  }
  // the model as it comes, with the task mixed by the recipe (alpha null): KD term only from the step
  const asIs = tinyBert(2);
  const r = runRecipe(asIs, { train: { steps: 2, warmup: 0 }, steps: [{ method: 'distill.kd', alpha: null }] }, { task: clsTask(), teacher: () => teacher });
  assert.deepEqual(Object.keys(r.history[0]![0]!.parts!).sort(), ['distill.kd.kd', 'task']);
  assert.equal(r.steps[0]!.params_ratio, 1);
});

test('token-level KD through the runner on a causal LM with every other layer kept', () => {
  const teacher = tinyGpt2(3) as unknown as Fwd;
  const model = tinyGpt2(3);
  const g = new Generator(6);
  const x = Tensor.randint(0, 40, [2, 8], { dtype: 'int32', generator: g });
  const task: compress.TaskData = { ...clsTask(), nextBatch: () => ({ inputIds: x, labels: x }), calibration: () => [{ inputIds: x }] };
  const r = runRecipe(model, { train: { steps: 2, warmup: 0, task_weight: 0 }, steps: [{ method: 'distill.kd', layers: 1, alpha: 1, temperature: 1 }] }, { task, teacher: () => teacher });
  assert.equal(anatomy(model).blocks.length, 1);
  assert.equal(model.config.n_layer, 1);
  assert.deepEqual(Object.keys(r.history[0]![0]!.parts!), ['distill.kd.kd']);
  const back = roundTrip(model).loaded;
  expectClose(noGrad(() => back.forward({ inputIds: x }).logits), noGrad(() => model.eval().forward({ inputIds: x }).logits), { atol: 1e-6, rtol: 1e-5 }, 'gpt2 reload');
});

test('distill.kd errors come before any work', () => {
  const task = clsTask();
  const m = tinyBert(1);
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'distill.kd', alpha: 0.5 }] }, { task, teacher: () => tinyBert(1) }), 'set train.task_weight to 0');
  // the stage's task_weight is checked with the stage's settings before an earlier step of the same stage applies
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'fff.ultrafast', depth: 1 }, { method: 'distill.kd', alpha: 0.5 }] }, { task, teacher: () => tinyBert(1) }), 'set train.task_weight to 0');
  assert.deepEqual(anatomy(m).blocks.map((b) => b.mlp!.kind), ['dense', 'dense'], 'no step applied');
  expectThrows(() => runRecipe(m, { train: { steps: 1, task_weight: 0 }, steps: [{ method: 'distill.kd', alpha: 0.5, train: { task_weight: 1 } }] }, { task, teacher: () => tinyBert(1) }), 'set train.task_weight to 0');
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'distill.kd', temperature: 0 }] }, { task }), "option 'temperature' must be > 0");
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'distill.kd', alpha: 1.5 }] }, { task }), "option 'alpha' must be in [0, 1]");
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'distill.kd', keep_layers: [2] }] }, { task }), "'keep_layers': 2 is not a layer index of the model (0..1)");
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'distill.kd', keep_layers: [1, 0] }] }, { task }), 'strictly increasing');
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'distill.kd', layers: 1, keep_layers: [0] }] }, { task }), "at most one of 'keep_layers', 'layers' and 'student'");
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'distill.kd', student: { hidden: 30, heads: 4 } }] }, { task }), 'student.hidden 30 is not a multiple of student.heads 4');
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'distill.kd', student: { width: 3 } }] }, { task }), "student: unknown field 'width'");
  expectThrows(() => runRecipe(m, { train: { steps: 1 }, steps: [{ method: 'distill.kd', teacher: '/nonexistent/x' }] }, { task }), "option 'teacher': /nonexistent/x is not a model folder");
  assert.equal(anatomy(m).blocks.length, 2, 'nothing was changed');
});
