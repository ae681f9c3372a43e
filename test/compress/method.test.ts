// The Method interface, recipes, the staged runner, and module-name globs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GPT2LMHeadModel, Generator, Tensor, compress, gpt2Config, manualSeed, noGrad } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { expectThrows } from '../harness/expect.ts';

const { matchesAny, methodNames, runRecipe, selectModules, quant, registerMethod } = compress;

test('globs over checkpoint names: * is one segment, ** any number, re: a regular expression', () => {
  assert.ok(matchesAny('bert.encoder.layer.3.attention.self.query', ['bert.encoder.layer.*.attention.**']));
  assert.ok(matchesAny('bert.encoder.layer.3.output.dense', ['**.dense']));
  assert.ok(!matchesAny('bert.encoder.layer.3.output.dense', ['bert.*.dense']));
  assert.ok(matchesAny('transformer.h.11.mlp.c_fc', ['transformer.h.1*.mlp.*']));
  assert.ok(matchesAny('lm_head', ['re:lm_.*']));
  assert.ok(!matchesAny('xlm_head', ['re:lm_.*']));
});

function tinyGpt2(seed = 3): GPT2LMHeadModel {
  manualSeed(seed);
  return new GPT2LMHeadModel(gpt2Config({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 })).eval();
}

/** A small deterministic language-modelling task over random token blocks (what a training stage consumes). */
function synthTask(): compress.TaskData {
  const g = new Generator(11);
  const batches = Array.from({ length: 8 }, () => Tensor.randint(0, 64, [4, 16], { dtype: 'int32', generator: g }));
  let i = 0;
  return {
    name: 'synthetic',
    metric: 'loss',
    greaterIsBetter: false,
    nextBatch: () => {
      const x = batches[i++ % batches.length]!;
      return { inputIds: x, labels: x };
    },
    sampler: { state: () => i, setState: (s: number) => void (i = s) },
    evaluate: (m: Module) => noGrad(() => (m as GPT2LMHeadModel).forward({ inputIds: batches[0]!, labels: batches[0]! }).loss!.item()),
    calibration: () => batches.slice(0, 2).map((x) => ({ inputIds: x })),
    latencyInputs: (b: number) => ({ inputIds: batches[0]!.narrow(0, 0, Math.min(b, 4)) }),
    evalArgs: [],
  };
}

const quantized = (m: Module) => selectModules(m, { targets: ['**'], types: [quant.QuantLinear] }).map(([n]) => n);
const codesOf = (m: Module, name: string) => Array.from((m.getSubmodule(name) as InstanceType<typeof quant.QuantLinear>).qweight.codes);

test('a recipe applies quant.rtn to the targeted modules and reports bits per weight', () => {
  const m = tinyGpt2();
  const r = runRecipe(m, [{ method: 'quant.rtn', scheme: 'int4', granularity: 'group:16', targets: ['transformer.h.*.mlp.*'] }]);
  assert.deepEqual(quantized(m), ['transformer.h.0.mlp.c_fc', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.mlp.c_fc', 'transformer.h.1.mlp.c_proj']);
  assert.equal(r.steps[0]!.method, 'quant.rtn');
  assert.equal(r.steps[0]!.kind, 'one-shot');
  // 4-bit codes plus a float32 scale and a uint8 zero point per 16 weights
  assert.equal(r.steps[0]!.bits_per_weight, 4 + (32 + 8) / 16);
  const step = (r.recipe.steps as Record<string, unknown>[])[0]!;
  assert.equal(step.scheme, 'int4');
  assert.equal(step.embeddings, true); // defaults are written out
  const ids = Tensor.from(Int32Array.from([1, 2, 3]), { shape: [1, 3] });
  assert.equal(noGrad(() => m.forward({ inputIds: ids }).logits).shape.join(), '1,3,64');
});

test('recipe errors name the step, the method and the option, before any work', () => {
  assert.ok(methodNames().includes('quant.gptq') && methodNames().includes('quant.qat'));
  const m = tinyGpt2();
  expectThrows(() => runRecipe(m, [{ method: 'quant.nope' }]), "recipe: step 1: unknown method 'quant.nope' (known: ");
  expectThrows(() => runRecipe(m, [{ method: 'quant.rtn', sceme: 'int8' }]), "recipe: step 1 (quant.rtn): unknown option 'sceme' (options: scheme, bits, granularity");
  expectThrows(() => runRecipe(m, [{ method: 'quant.rtn', bits: '4' }]), `recipe: step 1 (quant.rtn): option 'bits' expects integer, got "4"`);
  expectThrows(() => runRecipe(m, [{ method: 'quant.rtn', scheme: 'int9' }]), "option 'scheme' expects one of 'int8', 'int8-dynamic'");
  expectThrows(() => runRecipe(m, [{ method: 'quant.rtn' }, { method: 'quant.rtn', targets: ['**.c_fcc'] }]), "recipe: step 2 (quant.rtn): targets glob '**.c_fcc' matches no module of GPT2LMHeadModel");
  expectThrows(() => runRecipe(m, [{ method: 'quant.gptq' }]), 'quant.gptq needs calibration data');
  expectThrows(() => runRecipe(m, [{ method: 'quant.qat' }]), 'recipe: step 1 (quant.qat) trains the model and needs a task');
  expectThrows(() => runRecipe(m, { steps: [{ method: 'quant.rtn' }], trian: {} }), "recipe: unknown field 'trian'");
  expectThrows(() => runRecipe(m, { steps: [{ method: 'quant.rtn' }], train: { stpes: 3 } }), "recipe: train: unknown field 'stpes'");
  expectThrows(() => runRecipe(m, [{ method: 'quant.rtn', scheme: 'int8', bits: 4 }]), "option 'bits' applies to scheme int4 only");
  expectThrows(() => runRecipe(m, [{ method: 'quant.rtn', scheme: 'int4', granularity: 'group:7' }]), 'the group size must be even');
  // nothing was changed by the failed recipes
  assert.deepEqual(quantized(m), []);
});

test('a trained step followed by a one-shot step: the one-shot step sees the trained weights', () => {
  const train = { steps: 3, lr: 1e-2, warmup: 0, batch_size: 4 };
  const chained = tinyGpt2();
  runRecipe(chained, { train, steps: [{ method: 'quant.qat', targets: ['transformer.h.*.mlp.*'] }, { method: 'quant.rtn', targets: ['transformer.h.*.attn.*'], embeddings: false }] }, { task: synthTask() });
  // the same training alone, then RTN of the attention weights it left
  const alone = tinyGpt2();
  runRecipe(alone, { train, steps: [{ method: 'quant.qat', targets: ['transformer.h.*.mlp.*'] }] }, { task: synthTask() });
  const untrained = tinyGpt2();
  for (const m of [alone, untrained]) runRecipe(m, [{ method: 'quant.rtn', targets: ['transformer.h.*.attn.*'], embeddings: false }]);
  const name = 'transformer.h.0.attn.c_attn';
  assert.deepEqual(codesOf(chained, name), codesOf(alone, name));
  assert.notDeepEqual(codesOf(chained, name), codesOf(untrained, name)); // training moved the attention weights first
});

test('a one-shot step followed by a trained step: the stage trains the transformed model', () => {
  const task = synthTask();
  const m = tinyGpt2();
  const r = runRecipe(m, { train: { steps: 2, lr: 1e-2, warmup: 0 }, steps: [{ method: 'quant.rtn', targets: ['transformer.h.*.mlp.*'], embeddings: false }, { method: 'quant.qat', targets: ['transformer.h.*.attn.*'] }] }, { task });
  assert.deepEqual(r.steps.map((s) => [s.method, s.kind, s.stage]), [['quant.rtn', 'one-shot', 1], ['quant.qat', 'trained', 2]]);
  // the first training loss is the loss of the RTN-quantized model (with fake-quantized attention), not of the float one
  const expected = tinyGpt2();
  runRecipe(expected, [{ method: 'quant.rtn', targets: ['transformer.h.*.mlp.*'], embeddings: false }]);
  quant.prepareQat(expected, { scheme: 'int8', targets: ['transformer.h.*.attn.*'] });
  const batch = synthTask().nextBatch();
  const want = noGrad(() => expected.forward(batch).loss!.item());
  const float = noGrad(() => tinyGpt2().forward(batch).loss!.item());
  const got = r.history[0]![0]!.parts!.task!;
  assert.ok(Math.abs(got - want) < 1e-6, `first-step loss ${got} vs the transformed model's ${want}`);
  assert.ok(Math.abs(got - float) > 1e-5, 'the float model would give another loss');
  assert.equal(quantized(m).length, 8); // 4 RTN + 4 converted QAT layers
});

// A trained method with everything a method may contribute: a parameter group trained by gradient ascent
// (a Lagrange multiplier, constant lr), a named loss, hooks, and state that must survive a resume.
interface LagrangeState {
  afterSteps: number;
  beforeSteps: number;
}
const lagrangeRuns: { lambda: Tensor; st: LagrangeState }[] = [];
registerMethod<{ target: number }>({
  name: 'test.lagrange',
  kind: 'trained',
  description: 'test method: pushes mean(w²) of the first layer toward a target with a Lagrange multiplier',
  defaults: { target: 0.01 },
  apply: (model, cfg) => {
    const w = (model.getSubmodule('transformer.h.0.mlp.c_fc') as unknown as { weight: Tensor }).weight;
    const lambda = Tensor.zeros([1], { requiresGrad: true });
    const st: LagrangeState = { afterSteps: 0, beforeSteps: 0 };
    lagrangeRuns.push({ lambda, st });
    return {
      params: () => [{ name: 'lambda', params: [['lambda', lambda]], lr: 0.05, maximize: true, fixedLr: true }],
      losses: () => ({ lagrangian: lambda.mul(w.pow(2).mean().sub(cfg.target)).sum() }),
      beforeStep: () => void st.beforeSteps++,
      afterOptimizerStep: () => void st.afterSteps++,
      state: () => ({ ...st }),
      setState: (s) => Object.assign(st, s as LagrangeState),
      report: () => ({ lambda: lambda.item() }),
    };
  },
});

test('method parameters train by ascent, losses are logged by full id, hooks run, and a resume mid-stage is bit-exact', () => {
  const recipe = (steps: number) => ({ train: { steps, lr: 1e-2, warmup: 0, schedule: 'constant', save_every: 2 }, steps: [{ method: 'test.lagrange', target: 0.01, weight: 2 }] });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-runner-'));
  try {
    const straight = tinyGpt2();
    const a = runRecipe(straight, recipe(6), { task: synthTask(), checkpointDir: path.join(tmp, 'a') });
    const runA = lagrangeRuns.at(-1)!;
    assert.deepEqual(Object.keys(a.history[0]![0]!.parts!).sort(), ['task', 'test.lagrange.lagrangian']);
    assert.deepEqual(runA.st, { afterSteps: 6, beforeSteps: 6 });
    // ascent on λ·(mean(w²) − target): λ moves in the sign of the constraint violation
    const violation = (straight.getSubmodule('transformer.h.0.mlp.c_fc') as unknown as { weight: Tensor }).weight.pow(2).mean().item() - 0.01;
    assert.equal(Math.sign(runA.lambda.item()), Math.sign(violation));
    assert.equal(a.steps[0]!.lambda, runA.lambda.item());
    const log = fs.readFileSync(path.join(tmp, 'a', 'stage-1', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(log.length, 6);
    assert.ok(typeof log[5].parts['test.lagrange.lagrangian'] === 'number');

    // 4 steps, then a new process-like start (fresh model, fresh method) resumes to 6
    runRecipe(tinyGpt2(), recipe(4), { task: synthTask(), checkpointDir: path.join(tmp, 'b') });
    const resumed = tinyGpt2();
    runRecipe(resumed, recipe(6), { task: synthTask(), checkpointDir: path.join(tmp, 'b') });
    const runB = lagrangeRuns.at(-1)!;
    assert.equal(runB.lambda.item(), runA.lambda.item());
    assert.deepEqual(runB.st, { afterSteps: 6, beforeSteps: 6 }); // 4 restored from the checkpoint + 2 more
    for (const [k, t] of straight.stateDict()) assert.deepEqual(Array.from(resumed.stateDict().get(k)!.data), Array.from(t.data), k);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

registerMethod<{ from: number }>({
  name: 'test.gate',
  kind: 'trained',
  description: 'test method: a Lagrange multiplier like test.lagrange, eligible for the best state from step `from` on',
  defaults: { from: 0 },
  apply: (model, cfg) => {
    const w = (model.getSubmodule('transformer.h.0.mlp.c_fc') as unknown as { weight: Tensor }).weight;
    const lambda = Tensor.zeros([1], { requiresGrad: true });
    let step = 0;
    lagrangeRuns.push({ lambda, st: { afterSteps: 0, beforeSteps: 0 } });
    return {
      params: () => [{ name: 'lambda', params: [['lambda', lambda]], lr: 0.05, maximize: true, fixedLr: true }],
      losses: () => ({ lagrangian: lambda.mul(w.pow(2).mean().sub(0.01)).sum() }),
      afterOptimizerStep: (s) => void (step = s),
      bestEligible: () => step >= cfg.from,
    };
  },
});

test('train.eval_every: the stage ends on its best eligible evaluation, model and method parameters both restored', () => {
  // scripted dev scores (lower is better) at steps 2, 4, 6, 8: the best, 0.1 at step 2, is not eligible (from: 3)
  const scores = [0.1, 0.5, 0.3, 0.4];
  const logs: string[] = [];
  const task = { ...synthTask(), evaluate: () => scores.shift()! };
  const recipe = (steps: number, evalEvery: number) => ({ train: { steps, lr: 1e-2, warmup: 0, schedule: 'constant', eval_every: evalEvery }, steps: [{ method: 'test.gate', from: 3 }] });
  const m = tinyGpt2();
  const r = runRecipe(m, recipe(8, 2), { task, log: (l) => logs.push(l) });
  const lambda = lagrangeRuns.at(-1)!.lambda.item();
  assert.deepEqual(r.history[0]!.filter((e) => e.eval).map((e) => [e.step, e.eval!.metric, e.eval!.eligible]), [[2, 0.1, 0], [4, 0.5, 1], [6, 0.3, 1], [8, 0.4, 1]]);
  assert.ok(logs.includes('stage 1: ends on the best eligible evaluation: step 6, dev loss 0.3000'), logs.join('\n'));
  assert.ok(logs.includes('stage 1: step 2: dev loss 0.1000 (not eligible for best)'));
  // the same recipe stopped at step 6: every tensor, the method's λ included, equals the restored state
  const six = tinyGpt2();
  runRecipe(six, recipe(6, 0), { task: synthTask() });
  assert.equal(lambda, lagrangeRuns.at(-1)!.lambda.item());
  for (const [k, t] of six.stateDict()) assert.deepEqual(Array.from(m.stateDict().get(k)!.data), Array.from(t.data), k);
  // nothing eligible: the stage keeps its last step, and says so
  const logs2: string[] = [];
  runRecipe(tinyGpt2(), { ...recipe(4, 2), steps: [{ method: 'test.gate', from: 99 }] }, { task: { ...synthTask(), evaluate: () => 1 }, log: (l) => logs2.push(l) });
  assert.ok(logs2.includes('stage 1: no evaluation was eligible for best (eval_every 2); the stage ends on its last step'), logs2.join('\n'));
});

test('train.eval_every with checkpoints: a resumed stage still ends on the best state saved before the restart', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-best-'));
  try {
    const recipe = (steps: number) => ({ train: { steps, lr: 1e-2, warmup: 0, schedule: 'constant', eval_every: 2 }, steps: [{ method: 'test.gate', from: 0 }] });
    // first process: dev loss 0.5, 0.3, 0.4 at steps 2, 4, 6 (best: step 4), then the recipe grows to 8 steps and a
    // second process resumes from checkpoint-6 and scores 0.45 at step 8: the best is still step 4's state
    const scores = [0.5, 0.3, 0.4, 0.45];
    const task = () => ({ ...synthTask(), evaluate: () => scores.shift()! });
    runRecipe(tinyGpt2(), recipe(6), { task: task(), checkpointDir: tmp });
    assert.ok(fs.existsSync(path.join(tmp, 'stage-1', 'best-state.safetensors')));
    const logs: string[] = [];
    const resumed = tinyGpt2();
    runRecipe(resumed, recipe(8), { task: task(), checkpointDir: tmp, log: (l) => logs.push(l) });
    assert.ok(logs.includes('stage 1: resumed with its best eligible evaluation so far: step 4, dev loss 0.3000'), logs.join('\n'));
    assert.ok(logs.includes('stage 1: ends on the best eligible evaluation: step 4, dev loss 0.3000'), logs.join('\n'));
    const lambda = lagrangeRuns.at(-1)!.lambda.item();
    const four = tinyGpt2();
    runRecipe(four, recipe(4), { task: synthTask() });
    assert.equal(lambda, lagrangeRuns.at(-1)!.lambda.item());
    for (const [k, t] of four.stateDict()) assert.deepEqual(Array.from(resumed.stateDict().get(k)!.data), Array.from(t.data), k);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('quant.qat trains through fake-quant layers and finalizes to integers', () => {
  const m = tinyGpt2();
  let sawFake = 0;
  const r = runRecipe(m, { train: { steps: 1, warmup: 0 }, steps: [{ method: 'quant.qat', scheme: 'int8' }] }, {
    task: synthTask(),
    onLog: () => void (sawFake = selectModules(m, { targets: ['**'], types: [quant.FakeQuantLinear] }).length),
  });
  assert.equal(sawFake, 8);
  assert.equal(selectModules(m, { targets: ['**'], types: [quant.FakeQuantLinear] }).length, 0);
  assert.equal(quantized(m).length, 9); // 8 layers + the tied head
  // 8 layers, wte and wpe (RTN after the stage); the tied head shares wte's codes and is counted once with it
  assert.equal(r.steps[0]!.quantized_modules, 10);
});
