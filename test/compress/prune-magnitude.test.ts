// prune.magnitude and prune.gradual: torch.nn.utils.prune's L1 rule (amount rounding, tie order), global vs per-layer
// scope, masks that survive optimizer steps and checkpoints, Zhu & Gupta's schedule, and SparseLinear's storage
// (save → fromPretrained → the same outputs from a smaller file).
//
// Tie order: torchSmallestK ports libstdc++'s std::partial_sort / std::nth_element as torch.topk's CPU loop calls
// them; it was cross-checked against g++ 12's own std::nth_element / std::partial_sort on 400 random tie-heavy
// vectors (n up to 3000, both paths) with identical index sets. The hand cases below are the ones worked by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BertForSequenceClassification, GPT2LMHeadModel, Generator, Tensor, bertConfig, compress, fromPretrained, gpt2Config, manualSeed, noGrad, savePretrained } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { Conv1D, Linear } from '../../src/nn/layers.ts';
import { modelSize } from '../../src/eval/size.ts';

const { prune, runRecipe, selectModules } = compress;

test('torch amount rounding: round(amount · n), half to even as Python', () => {
  assert.equal(prune.nparamsToPrune(0.5, 5), 2); // round(2.5) = 2
  assert.equal(prune.nparamsToPrune(0.3, 5), 2); // round(1.5) = 2
  assert.equal(prune.nparamsToPrune(0.7, 5), 4); // round(3.5) = 4
  assert.equal(prune.nparamsToPrune(0.1, 5), 0); // round(0.5) = 0
  assert.equal(prune.nparamsToPrune(0.9, 10), 9);
});

test('l1_unstructured on small tensors (hand-computed): the smallest |w| go, ties as torch.topk resolves them', () => {
  assert.deepEqual(Array.from(prune.l1UnstructuredMask(Float32Array.from([0.5, -0.1, 0.3, 0.2]), 0.5)), [1, 0, 1, 0]);
  assert.deepEqual(Array.from(prune.l1UnstructuredMask(Float32Array.from([-3, 1, -2, 4, 0.5]), 0.5)), [1, 0, 1, 1, 0]); // k = round(2.5) = 2
  // nth_element path (64·k > n): the median-of-three pivot moves index 2 to the front, so 2 and 3 are pruned
  assert.deepEqual(Array.from(prune.l1UnstructuredMask(Float32Array.from([1, 1, 1, 1]), 0.5)), [1, 1, 0, 0]);
  // partial_sort path (64·k ≤ n): the heap of the first k is never displaced by an equal value, so 0 and 1 go
  const ones = prune.l1UnstructuredMask(new Float32Array(128).fill(1), 2 / 128);
  assert.deepEqual([...ones.keys()].filter((i) => ones[i] === 0), [0, 1]);
  // a tie straddling the threshold, |1| = |−1|: the pivot (index 1) ends in the kept half's boundary and the final
  // insertion sort puts it second, so torch prunes 0.5 and the 1 at index 1, keeping −1
  assert.deepEqual(Array.from(prune.l1UnstructuredMask(Float32Array.from([0.5, 1, -1, 2]), 0.5)), [0, 0, 1, 1]);
  assert.deepEqual(Array.from(prune.l1UnstructuredMask(Float32Array.from([0.5, 1, -1, 2]), 0)), [1, 1, 1, 1]);
});

function tinyBert(seed = 5): BertForSequenceClassification {
  manualSeed(seed);
  return new BertForSequenceClassification(bertConfig({ vocab_size: 50, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, max_position_embeddings: 16, num_labels: 2 })).eval();
}
function tinyGpt2(seed = 3): GPT2LMHeadModel {
  manualSeed(seed);
  return new GPT2LMHeadModel(gpt2Config({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 })).eval();
}
const ids = Tensor.from(Int32Array.from([2, 7, 9, 11, 3, 4, 5, 1]), { shape: [2, 4] });
const bertLogits = (m: Module) => Array.from(noGrad(() => (m as BertForSequenceClassification).forward({ inputIds: ids }).logits).data);
const gptLogits = (m: Module) => Array.from(noGrad(() => (m as GPT2LMHeadModel).forward({ inputIds: ids }).logits).data);
const zeros = (d: ArrayLike<number>) => Array.from(d).filter((v) => v === 0).length;
const sparseNames = (m: Module) => selectModules(m, { targets: ['**'], types: [prune.SparseLinear] }).map(([n]) => n);

test('prune.magnitude: default targets are the blocks\' Linear layers; layer scope prunes round(s·n) of each; global one threshold', () => {
  const m = tinyBert();
  const names = prune.pruneTargets(m, null, null).map(([n]) => n);
  assert.equal(names.length, 12); // q, k, v, attention.output, intermediate, output × 2 layers
  assert.ok(names.every((n) => n.startsWith('bert.encoder.layer.')), names.join());
  // layer scope, dense storage: each layer exactly round(0.7·n) zeros
  const d = tinyBert();
  runRecipe(d, [{ method: 'prune.magnitude', sparsity: 0.7, scope: 'layer', storage: 'dense' }]);
  for (const n of names) {
    const w = (d.getSubmodule(n) as Linear).weight.data;
    assert.equal(zeros(w), prune.nparamsToPrune(0.7, w.length), n);
  }
  assert.equal(zeros((d.getSubmodule('classifier') as Linear).weight.data), 0);
  // global: round(0.7·Σn) zeros in all, and every kept |w| ≥ every pruned original |w|
  const gm = tinyBert();
  const before = names.map((n) => Float32Array.from((gm.getSubmodule(n) as Linear).weight.data));
  const r = runRecipe(gm, [{ method: 'prune.magnitude', sparsity: 0.7, scope: 'global', storage: 'dense' }]);
  const after = names.map((n) => (gm.getSubmodule(n) as Linear).weight.data);
  const total = before.reduce((a, w) => a + w.length, 0);
  assert.equal(after.reduce((a, w) => a + zeros(w), 0), prune.nparamsToPrune(0.7, total));
  let maxPruned = 0;
  let minKept = Infinity;
  before.forEach((w, i) => w.forEach((v, j) => (after[i]![j] === 0 ? (maxPruned = Math.max(maxPruned, Math.abs(v))) : (minKept = Math.min(minKept, Math.abs(v))))));
  assert.ok(maxPruned <= minKept, `${maxPruned} <= ${minKept}`);
  assert.equal(r.steps[0]!.pruned_weights, prune.nparamsToPrune(0.7, total));
  // global is not per layer: the layers end with different sparsities
  assert.ok(new Set(after.map((w) => zeros(w))).size > 1);
});

test('prune.magnitude: stored sparse, the model computes what the masked dense model computes; GPT-2 Conv1D too', () => {
  for (const [make, logits] of [[tinyBert, bertLogits], [tinyGpt2, gptLogits]] as const) {
    const dense = make();
    runRecipe(dense, [{ method: 'prune.magnitude', sparsity: 0.8, storage: 'dense' }]);
    const sparse = make();
    const r = runRecipe(sparse, [{ method: 'prune.magnitude', sparsity: 0.8 }]);
    assert.equal(sparseNames(sparse).length, r.steps[0]!.sparse_layers);
    const a = logits(dense);
    const b = logits(sparse);
    a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-4 * (1 + Math.abs(v)), `${make.name} logit ${i}: ${v} vs ${b[i]}`));
  }
  // a Conv1D's mask is computed on its own [in, out] layout and stored transposed
  const g = tinyGpt2();
  const c = g.getSubmodule('transformer.h.0.mlp.c_fc') as Conv1D;
  const w = Float32Array.from(c.weight.data);
  runRecipe(g, [{ method: 'prune.magnitude', sparsity: 0.5, scope: 'layer', targets: ['transformer.h.0.mlp.c_fc'] }]);
  const s = g.getSubmodule('transformer.h.0.mlp.c_fc') as InstanceType<typeof prune.SparseLinear>;
  assert.equal(s.origin, 'conv1d');
  const mask = prune.l1UnstructuredMask(w, 0.5);
  const dd = s.dense().data; // [out, in]
  const [I, O] = c.weight.shape as [number, number];
  for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) assert.equal(dd[o * I + i], mask[i * O + o] ? w[i * O + o] : 0);
});

test('errors before any work: sparsity 1.0 names the option; a glob matching nothing names the glob', () => {
  const m = tinyBert();
  const before = bertLogits(m);
  assert.throws(() => runRecipe(m, [{ method: 'prune.magnitude', sparsity: 1.0 }]), /option 'sparsity' must be a fraction in \[0, 1\), got 1/);
  assert.throws(() => runRecipe(m, [{ method: 'prune.magnitude', sparsity: -0.1 }]), /option 'sparsity'/);
  assert.throws(() => runRecipe(m, [{ method: 'prune.magnitude', targets: ['bert.nothing.*'] }]), /targets glob 'bert\.nothing\.\*' matches no module/);
  assert.throws(() => runRecipe(m, [{ method: 'prune.magnitude', targets: ['bert.embeddings.LayerNorm'] }]), /option 'targets' leaves no Linear/);
  assert.throws(() => runRecipe(m, [{ method: 'prune.gradual', final_sparsity: 1 }], { task: {} as never }), /option 'final_sparsity'/);
  assert.deepEqual(bertLogits(m), before);
  assert.equal(sparseNames(m).length, 0);
});

test('Zhu & Gupta schedule: s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³; masks every Δt steps up to the end', () => {
  const s = prune.gradualSchedule({ initial_sparsity: 0, final_sparsity: 0.8, start_step: 0, end_step: 100, n: null, frequency: 10, scope: 'global', targets: null, ignore: null, storage: 'sparse' }, 200);
  assert.equal(prune.sparsityAt(0, s), 0);
  assert.ok(Math.abs(prune.sparsityAt(50, s) - 0.7) < 1e-12); // 0.8 − 0.8·0.5³
  assert.ok(Math.abs(prune.sparsityAt(25, s) - (0.8 - 0.8 * 0.75 ** 3)) < 1e-12);
  assert.equal(prune.sparsityAt(100, s), 0.8);
  assert.equal(prune.sparsityAt(150, s), 0.8);
  const s2 = prune.gradualSchedule({ initial_sparsity: 0.2, final_sparsity: 0.6, start_step: 10, end_step: null, n: 4, frequency: 5, scope: 'layer', targets: null, ignore: null, storage: 'dense' }, 50);
  assert.equal(s2.end, 30);
  assert.equal(prune.sparsityAt(9, s2), 0);
  assert.equal(prune.sparsityAt(10, s2), 0.2);
  assert.ok(Math.abs(prune.sparsityAt(20, s2) - (0.6 - 0.4 * 0.125)) < 1e-12);
  assert.deepEqual([...Array(40).keys()].filter((t) => prune.isPruningStep(t, s2)), [10, 15, 20, 25, 30]);
  assert.throws(() => prune.gradualSchedule({ ...s2cfg(), end_step: 60 }, 50), /option 'end_step': the schedule ends at step 60, past the stage's 50 training steps/);
  assert.throws(() => prune.gradualSchedule({ ...s2cfg(), end_step: 20, n: 2 }, 50), /'end_step' and 'n' both set/);
});
const s2cfg = () => ({ initial_sparsity: 0, final_sparsity: 0.5, start_step: 0, end_step: null as number | null, n: null as number | null, frequency: 5, scope: 'global' as const, targets: null, ignore: null, storage: 'dense' as const });

test('prune.gradual: pruned weights stay exactly zero through optimizer steps; state() restores the masks exactly', () => {
  const m = tinyGpt2();
  const cfg = { ...prune.pruneGradualMethod.defaults, final_sparsity: 0.6, end_step: 4, frequency: 2, storage: 'dense' as const };
  const run = prune.pruneGradualMethod.apply(m, cfg, { totalSteps: 6 }) as compress.MethodRun;
  const targets = prune.pruneTargets(m, null, null);
  const g = new Generator(4);
  const noise = () => targets.forEach(([, l]) => { const d = l.weight.data as Float32Array; for (let i = 0; i < d.length; i++) d[i] += 0.01 * g.normal(); }); // an "optimizer step" moving every weight
  const total = targets.reduce((a, [, l]) => a + l.weight.numel, 0);
  const nz = () => targets.reduce((a, [, l]) => a + zeros(l.weight.data), 0);
  for (let t = 0; t < 6; t++) {
    run.beforeStep!(t);
    noise();
    run.afterOptimizerStep!(t + 1);
    const expect = prune.nparamsToPrune(prune.sparsityAt(Math.min(t - (t % 2), 4), prune.gradualSchedule(cfg, 6)), total);
    assert.equal(nz(), expect, `step ${t}`);
  }
  // resume: a fresh run on a copy of the weights with setState keeps the same pruned positions
  const st = JSON.parse(JSON.stringify(run.state!()));
  const m2 = tinyGpt2();
  const run2 = prune.pruneGradualMethod.apply(m2, cfg, { totalSteps: 6 }) as compress.MethodRun;
  run2.setState!(st);
  const t2 = prune.pruneTargets(m2, null, null);
  t2.forEach(([, l], i) => { const a = targets[i]![1].weight.data; const b = l.weight.data; for (let j = 0; j < a.length; j++) assert.equal(b[j] === 0, a[j] === 0, `${i}:${j}`); });
  run.finalize!();
  assert.equal(run.report!().pruned_weights, prune.nparamsToPrune(0.6, total));
});

test('prune.gradual in a recipe: trains, ends at final_sparsity, stored sparse', () => {
  const m = tinyGpt2();
  const g = new Generator(11);
  const batches = Array.from({ length: 4 }, () => Tensor.randint(0, 64, [2, 8], { dtype: 'int32', generator: g }));
  let i = 0;
  const task = {
    name: 'synthetic', metric: 'loss', greaterIsBetter: false,
    nextBatch: () => { const x = batches[i++ % batches.length]!; return { inputIds: x, labels: x }; },
    sampler: { state: () => i, setState: (s: number) => void (i = s) },
    evaluate: () => 0, calibration: () => [], latencyInputs: () => ({ inputIds: batches[0]! }), evalArgs: [],
  } as unknown as compress.TaskData;
  const r = runRecipe(m, { train: { steps: 6, lr: 1e-3, batch_size: 2 }, steps: [{ method: 'prune.gradual', final_sparsity: 0.75, end_step: 4, frequency: 2 }] }, { task });
  assert.equal(r.steps[0]!.method, 'prune.gradual');
  assert.ok(Math.abs((r.steps[0]!.sparsity as number) - 0.75) < 1e-3, String(r.steps[0]!.sparsity));
  assert.equal(sparseNames(m).length, 8);
});

test('SparseLinear: save → fromPretrained gives identical outputs from a smaller file; bitmask or CSR by density', () => {
  for (const sparsity of [0.9, 0.97]) {
    const m = tinyBert();
    const bytes0 = modelSize(m).bytes;
    runRecipe(m, [{ method: 'prune.magnitude', sparsity, scope: 'layer' }]);
    const formats = new Set(sparseNames(m).map((n) => (m.getSubmodule(n) as InstanceType<typeof prune.SparseLinear>).format));
    // 90 %: the bitmask is smaller everywhere; 97 %: CSR wins where N·K/8 outweighs 4·(N+1) + 2·nnz (the [32, 64] layers)
    if (sparsity === 0.9) assert.deepEqual([...formats], ['bitmask']);
    else assert.ok(formats.has('csr'), [...formats].join());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prune-'));
    try {
      savePretrained(m as never, dir);
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      assert.equal(cfg.compression_config.modules['bert.encoder.layer.0.attention.self.query'].type, 'sparse_linear');
      const loaded = fromPretrained<BertForSequenceClassification>(dir).eval();
      assert.deepEqual(bertLogits(loaded), bertLogits(m));
      assert.equal(modelSize(loaded).bytes, modelSize(m).bytes);
      const file = fs.statSync(path.join(dir, 'model.safetensors')).size;
      assert.ok(modelSize(m).bytes < bytes0 && file < bytes0, `${file} / ${modelSize(m).bytes} vs dense ${bytes0}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  // storedSize: the bitmask layer's bytes are N·K/8 + 4·nnz (+ bias)
  const s = prune.SparseLinear.fromLinear(Linear.fromWeights(Tensor.from(Float32Array.from([0, 1, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 4]), { shape: [2, 8] })), 'bitmask');
  assert.deepEqual(modelSize(s), { parameters: 4, bytes: 2 + 16 });
  assert.deepEqual(Array.from(noGrad(() => s.forward(Tensor.from(Float32Array.from([1, 1, 1, 1, 1, 1, 1, 1]), { shape: [1, 8] }))).data), [3, 7]);
});

test('storage sparse_int8: per-row int8 codes of the nonzeros, 1 byte each; reloads bit-identically; outputs within the int8 error', () => {
  // hand-checked: row 0 nonzeros [1, −2.54] → scale 2.54/127 = 0.02, codes [50, −127]; row 1 [4] → codes [127]
  const w = Tensor.from(Float32Array.from([0, 1, 0, -2.54, 0, 0, 4, 0]), { shape: [2, 4] });
  const q = prune.SparseLinear.fromLinear(Linear.fromWeights(w), 'csr', 'int8');
  assert.deepEqual(Array.from(q.getBuffer('weight_codes')!.data), [50, -127, 127]);
  assert.deepEqual(Array.from(q.getBuffer('weight_scale')!.data), [Math.fround(Math.fround(2.54) / 127), Math.fround(4 / 127)]);
  assert.equal(q.getBuffer('weight_values'), undefined);
  // bytes: row_ptr 4·3 + columns 2·3 + codes 3 + scales 4·2 (+ no bias)
  assert.deepEqual(modelSize(q), { parameters: 3, bytes: 12 + 6 + 3 + 8 });
  assert.equal(prune.sparseBytes('csr', 2, 4, 3, 'int8'), 29);
  const y = Array.from(noGrad(() => q.forward(Tensor.from(Float32Array.from([1, 1, 1, 1]), { shape: [1, 4] }))).data);
  const sc = Math.fround(Math.fround(2.54) / 127);
  assert.deepEqual(y, [Math.fround(Math.fround(50 * sc) + Math.fround(-127 * sc)), Math.fround(127 * Math.fround(4 / 127))]);

  // a pruned BERT: ~¼ of the float sparse bytes for the values, logits within the int8 error, save → load identical
  const f = tinyBert();
  const i8 = tinyBert();
  runRecipe(f, [{ method: 'prune.magnitude', sparsity: 0.9, scope: 'layer' }]);
  runRecipe(i8, [{ method: 'prune.magnitude', sparsity: 0.9, scope: 'layer', storage: 'sparse_int8' }]);
  const layer = i8.getSubmodule('bert.encoder.layer.0.intermediate.dense') as InstanceType<typeof prune.SparseLinear>;
  assert.equal(layer.values, 'int8');
  const [lf, li] = [bertLogits(f), bertLogits(i8)];
  const err = Math.max(...lf.map((v, i) => Math.abs(v - li[i]!)));
  assert.ok(err > 0 && err < 0.02, `max |Δlogit| ${err}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prune-i8-'));
  try {
    savePretrained(i8 as never, dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.compression_config.modules['bert.encoder.layer.0.intermediate.dense'].values, 'int8');
    const loaded = fromPretrained<BertForSequenceClassification>(dir).eval();
    assert.deepEqual(bertLogits(loaded), li);
    assert.equal(modelSize(loaded).bytes, modelSize(i8).bytes);
    // every sparse layer: 3 bytes fewer per nonzero (1 instead of 4), 4 more per row (its scale)
    for (const n of sparseNames(f)) {
      const [a, b] = [f.getSubmodule(n), i8.getSubmodule(n)] as InstanceType<typeof prune.SparseLinear>[];
      assert.equal(b!.nnz, a!.nnz);
      assert.equal(modelSize(b!).bytes, modelSize(a!).bytes - 3 * a!.nnz + 4 * a!.outFeatures, n);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink compress with recipes/quick-prune-magnitude.json (on stories260K, a few lines of text): smaller, eval reproduces it', () => {
  const root = path.resolve(import.meta.dirname, '../..');
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), ...args], { encoding: 'utf8', cwd: root });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prune-cli-'));
  try {
    const text = path.join(dir, 'text.txt');
    fs.writeFileSync(text, fs.readFileSync(path.join(root, 'data/tinystories-samples/stories260K-samples.txt'), 'utf8').split('\n').slice(0, 4).join('\n'));
    const out = path.join(dir, 'out');
    const r = run('compress', 'data/models/stories260K', '--recipe', 'recipes/quick-prune-magnitude.json', '-o', out, '--task', `ppl:${text}`, '--json');
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.steps[0].method, 'prune.magnitude');
    assert.equal(rep.recipe.steps[0].sparsity, 0.5);
    assert.ok(Math.abs(rep.steps[0].sparsity - 0.5) < 1e-4, String(rep.steps[0].sparsity));
    assert.ok(rep.after.params < rep.before.params && rep.after.bytes < rep.before.bytes, `${rep.before.bytes} → ${rep.after.bytes}`);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.ok(Object.values(cfg.compression_config.modules).every((e) => (e as { type: string }).type === 'sparse_linear'));
    const e = run('eval', out, '-t', 'ppl', '--text', text, '--block-size', '64', '--json');
    assert.equal(e.status, 0, e.stderr);
    const ev = JSON.parse(e.stdout);
    assert.ok(Math.abs(ev.score - rep.after.metric) < 1e-5 * rep.after.metric, `eval ${ev.score} vs report ${rep.after.metric}`);
    assert.equal(ev.bytes, rep.after.bytes);
    // a recipe mistake fails before any work and writes nothing
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ steps: [{ method: 'prune.magnitude', sparsity: 1 }] }));
    const b = run('compress', 'data/models/stories260K', '--recipe', bad, '-o', path.join(dir, 'never'), '--task', `ppl:${text}`);
    assert.equal(b.status, 1);
    assert.match(b.stderr, /option 'sparsity' must be a fraction in \[0, 1\), got 1/);
    assert.ok(!fs.existsSync(path.join(dir, 'never')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
