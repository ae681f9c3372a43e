// distill.tinybert: the losses against upstream TinyBERT's own code (fixture methods/tinybert: every tensor), their
// gradients by finite differences, the mask rule on Shrink's BERT scores, the layer mapping and the method's stages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, compress, noGrad } from '../../src/index.ts';
import { Linear } from '../../src/nn/layers.ts';
import type { Module } from '../../src/nn/module.ts';
import type { ForwardOptions, ModelInputs, ModelOutput } from '../../src/models/outputs.ts';
import { expectClose, expectThrows } from '../harness/expect.ts';
import { methodFixture } from '../harness/fixtures.ts';
import { f64, gradcheck } from '../harness/gradcheck.ts';
import { cyclicTask, randomClsBatches } from '../harness/tasks.ts';
import { tinyBert } from '../harness/tiny-models.ts';

const { distill, runRecipe } = compress;
type Fwd = Module & { forward(i: ModelInputs, o?: ForwardOptions): ModelOutput };

test('TinyBERT losses equal upstream task_distill.py on the fixture (every tensor)', () => {
  const fx = methodFixture('tinybert');
  const checked = new Set<string>();
  const get = (n: string) => {
    checked.add(n);
    return fx.t(n);
  };
  const tol = { atol: 1e-5, rtol: 1e-5 };
  const sAtt = [0, 1].map((i) => get(`student_att.${i}`));
  const tAtt = [0, 1, 2, 3].map((i) => get(`teacher_att.${i}`));
  const sRep = [0, 1, 2].map((i) => get(`student_rep.${i}`));
  const tRep = [0, 1, 2, 3, 4].map((i) => get(`teacher_rep.${i}`));
  const fit = Linear.fromWeights(get('fit_dense.weight'), get('fit_dense.bias'));
  assert.equal(sAtt.length, fx.names('student_att.').length);
  assert.equal(tAtt.length, fx.names('teacher_att.').length);
  assert.equal(sRep.length, fx.names('student_rep.').length);
  assert.equal(tRep.length, fx.names('teacher_rep.').length);

  // the inputs carry upstream's (1 − mask)·−10000 on the masked keys: the rule zeroes exactly those
  const mask = get('attention_mask');
  const m = mask.toArray();
  const [B, Tn] = mask.shape as [number, number];
  for (const a of [...sAtt, ...tAtt]) {
    const z = distill.zeroMaskedScores(a).toFloat32Array();
    const raw = a.toFloat32Array();
    for (let i = 0; i < z.length; i++) {
      const key = i % Tn;
      const b = Math.floor(i / (a.numel / B));
      if (m[b * Tn + key] === 0) assert.equal(z[i], 0);
      else assert.equal(z[i], raw[i]);
    }
  }

  const proj = distill.projectStates(sRep, fit);
  proj.forEach((p, i) => expectClose(p, get(`student_rep_projected.${i}`), tol, `student_rep_projected.${i}`));
  assert.equal(proj.length, fx.names('student_rep_projected.').length);

  const l = distill.tinybertIntermediateLosses({ scores: sAtt, states: sRep }, { scores: tAtt, states: tRep }, fit);
  const scalars = fx.index.scalars_float64 as Record<string, number>;
  const scalar = (name: string, got: Tensor) => {
    expectClose(got, get(name), tol, name);
    expectClose([got.item()], [scalars[name]!], tol, `${name} (float64 scalar)`);
    checked.add(`scalar:${name}`);
  };
  scalar('att_loss', l.att!);
  scalar('rep_loss', l.rep);
  scalar('intermediate_loss', l.total);
  // the parts sum to upstream's rep_loss: embedding state 0 + hidden states 1..L
  expectClose([l.embedding.add(l.hidden!).item()], [scalars.rep_loss!], tol, 'embedding + hidden');

  const s = get('student_logits');
  const t = get('teacher_logits');
  scalar('cls_loss.T1', distill.tinybertPredictionLoss(s, t, 1));
  scalar('cls_loss.T2', distill.tinybertPredictionLoss(s, t, 2));
  scalar('soft_cross_entropy.raw', distill.tinybertPredictionLoss(s, t));

  // nothing in the fixture is left unchecked: every tensor of the index and of the file, every float64 scalar
  for (const n of Object.keys(fx.index.tensors)) assert.ok(checked.has(n), `fixture tensor '${n}' is not checked`);
  for (const n of fx.tensors.keys()) assert.ok(checked.has(n), `fixture file tensor '${n}' is not checked`);
  for (const n of Object.keys(scalars)) assert.ok(checked.has(`scalar:${n}`), `fixture scalar '${n}' is not checked`);
});

test('layer mapping: student attention m ↔ teacher m·k + k − 1, hidden state m ↔ m·k', () => {
  assert.equal(distill.layersPerBlock(12, 4), 3);
  assert.deepEqual([0, 1, 2, 3].map((m) => distill.teacherAttentionLayer(m, 3)), [2, 5, 8, 11]);
  assert.deepEqual([0, 1, 2, 3, 4].map((m) => distill.teacherHiddenState(m, 3)), [0, 3, 6, 9, 12]);
  expectThrows(() => distill.layersPerBlock(6, 4), "the teacher's 6 layers are not a multiple of the student's 4");
  // a teacher layer outside the mapping does not move the loss
  const g = new Generator(2);
  const s = [Tensor.randn([1, 2, 3, 3], { generator: g })];
  const t = [Tensor.randn([1, 2, 3, 3], { generator: g }), Tensor.randn([1, 2, 3, 3], { generator: g })];
  const a = distill.tinybertAttentionLoss(s, t)!.item();
  const b = distill.tinybertAttentionLoss(s, [Tensor.randn([1, 2, 3, 3], { generator: g }), t[1]!])!.item();
  assert.equal(a, b);
});

test('gradients of the TinyBERT losses match finite differences (float64)', () => {
  const g = new Generator(9);
  // scores away from the −100 threshold, plus masked entries that must get no gradient
  const sc = () => {
    const x = f64([2, 2, 3, 3], g, -3, 3);
    const d = x.data as Float64Array;
    for (let i = 2; i < d.length; i += 3) d[i] = -1e4 + d[i]!;
    return x;
  };
  const s0 = sc();
  const s1 = sc();
  const t = [0, 1, 2, 3].map(() => sc().detach());
  gradcheck('tinybert attention', (a, b) => distill.tinybertAttentionLoss([a!, b!], t)!, [s0, s1]);
  s0.grad = null;
  distill.tinybertAttentionLoss([s0, s1], t)!.backward();
  const gr = s0.grad!.toArray();
  for (let i = 2; i < gr.length; i += 3) assert.equal(gr[i], 0, 'a masked score gets no gradient');

  const states = [0, 1, 2].map(() => f64([2, 3, 4], g));
  const tStates = [0, 1, 2, 3, 4].map(() => f64([2, 3, 6], g).detach());
  const w = f64([6, 4], g);
  const bias = f64([6], g);
  const lin = Linear.fromWeights(w.detach(), bias.detach());
  gradcheck(
    'tinybert hidden via fit_dense',
    (a, b, c, ww, bb) => {
      lin.weight = ww!;
      lin.bias = bb!;
      const terms = distill.tinybertHiddenTerms([a!, b!, c!], tStates, lin);
      return terms.reduce((x, y) => x.add(y));
    },
    [...states, w, bias],
  );
  const logits = f64([3, 4], g);
  const tl = f64([3, 4], g).detach();
  gradcheck('tinybert prediction T=2', (x) => distill.tinybertPredictionLoss(x!, tl, 2), [logits]);
});

test("Shrink BERT's attention scores (finfo.min on padding) give the same loss as upstream's −10000 masks", () => {
  const m = tinyBert(4) as unknown as Fwd;
  const g = new Generator(3);
  const inputIds = Tensor.randint(1, 50, [2, 5], { dtype: 'int32', generator: g });
  const attentionMask = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]), { shape: [2, 5] });
  const out = noGrad(() => m.forward({ inputIds, attentionMask }, { outputAttentionScores: true }));
  const ours = out.attentionScores![0]!;
  // upstream's representation of the same scores: raw q·kᵀ/√d with −10000 on the padded keys
  const raw = noGrad(() => m.forward({ inputIds }, { outputAttentionScores: true })).attentionScores![0]!;
  const ext = Tensor.from(Float32Array.from([0, 0, 0, 0, 0, 0, 0, 0, -10000, -10000]), { shape: [2, 1, 1, 5] });
  // the unmasked forward differs from the masked one in the rows of the real tokens only through the padded keys,
  // so compare layer 0 (its scores see the same embeddings)
  const upstream = raw.add(ext);
  expectClose(distill.zeroMaskedScores(ours), distill.zeroMaskedScores(upstream), { atol: 1e-5, rtol: 1e-5 }, 'zeroed scores');
});

test('distill.tinybert stages through the runner: intermediate (fit_dense group, att/embedding/hidden) then prediction', () => {
  const teacher = tinyBert(1) as unknown as Fwd; // 2 layers, hidden 32, 4 heads
  const model = tinyBert(1);
  const task = cyclicTask(randomClsBatches(5, 4, 4, 6, 50, 3, (b, t) => t < 4 || b >= 2));
  const r = runRecipe(
    model,
    {
      train: { steps: 3, lr: 1e-3, warmup: 0 },
      steps: [
        { method: 'distill.tinybert', stage: 'intermediate', student: { layers: 1, hidden: 16, heads: 4, intermediate: 20 }, train: { task_weight: 0, schedule: 'constant', warmup: 0 } },
        { method: 'distill.tinybert', stage: 'prediction', temperature: 2, train: { task_weight: 0, warmup: 0.5 } },
      ],
    },
    { task, teacher: () => teacher },
  );
  assert.equal(r.history.length, 2, 'two training stages');
  const parts0 = Object.keys(r.history[0]![0]!.parts ?? {});
  assert.deepEqual(parts0.sort(), ['distill.tinybert.att', 'distill.tinybert.embedding', 'distill.tinybert.hidden']);
  assert.deepEqual(Object.keys(r.history[1]![0]!.parts ?? {}), ['distill.tinybert.pred']);
  assert.equal(r.steps[0]!.fit_dense, '16→32');
  assert.equal(r.steps[0]!.student_layers, 1);
  assert.equal(r.steps[0]!.student_hidden, 16);
  assert.ok((r.steps[1]!.params_ratio as number) === 1);
  assert.ok(!model.stateDict().has('fit_dense.weight'), 'fit_dense is not part of the student');
  // a student whose head count differs from the teacher's cannot be compared on attention maps
  expectThrows(
    () => runRecipe(tinyBert(1), { train: { steps: 1, task_weight: 0 }, steps: [{ method: 'distill.tinybert', student: { layers: 1, hidden: 16, heads: 2 } }] }, { task, teacher: () => teacher }),
    'the attention loss needs the same heads',
  );
  expectThrows(() => runRecipe(tinyBert(1), { train: { steps: 1 }, steps: [{ method: 'distill.tinybert', stage: 'final' }] }, { task }), "option 'stage' expects one of 'general', 'intermediate', 'prediction'");
});
