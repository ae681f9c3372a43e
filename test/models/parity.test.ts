// Hugging Face parity per named tensor: BERT (MLM, classification), GPT-2, Llama (MHA and GQA) against
// transformers v4.36.2 on the fixtures' weights and inputs — every hidden state, attention matrix, logit, the loss,
// the loss gradient of every parameter, and (Llama) the RoPE tables and position ids HF used. Tolerances: fixtures
// README (fp32 vs fp64 noise floor ×10).
//
// Nothing may go missing silently: per fixture, a top-level test checks that the folder exists and that the counts
// match (every tensor of expected.safetensors is an input or compared, every tensor the index lists is in the file,
// the grad.* set equals the model's named parameters, one out.hidden_states / out.attentions entry per model output).
// A fixture that cannot be loaded or run is a failing test, not an exit code with "# fail 0". The last test runs
// this file on a broken copy of the fixtures and checks that the run fails.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fromPretrained } from '../../src/models/registry.ts';
import { LlamaModel } from '../../src/models/llama/modeling.ts';
import { SafetensorsFile, loadSafetensors, saveSafetensors } from '../../src/io/safetensors.ts';
import type { Module } from '../../src/nn/module.ts';
import type { ModelOutput, ModelInputs, ForwardOptions } from '../../src/models/outputs.ts';
import { Tensor } from '../../src/index.ts';
import { FIXTURES, modelFixture, type Fixture } from '../harness/fixtures.ts';
import { expectClose, expectEqual } from '../harness/expect.ts';

type Model = Module & { forward(i: ModelInputs, o?: ForwardOptions): ModelOutput };

const MODELS = ['bert_mlm', 'bert_cls', 'gpt2', 'llama', 'llama_gqa'];
/** Fixture inputs fed to the model (consumed, not compared). */
const INPUTS = new Set(['inputs.input_ids', 'inputs.attention_mask', 'inputs.token_type_ids', 'inputs.labels']);

function tolFor(name: string, want: Tensor, nearZero: boolean) {
  if (name === 'out.loss') return { atol: 1e-6, rtol: 1e-5 };
  if (name.startsWith('out.attentions')) return { atol: 1e-5, rtol: 1e-4 };
  if (name.startsWith('grad.')) {
    const mx = Math.max(1e-12, ...Array.from(want.toFloat32Array(), Math.abs));
    return nearZero ? { atol: 1e-6, rtol: 0 } : { atol: Math.max(1e-6, 1e-4 * mx), rtol: 1e-3 };
  }
  return { atol: 1e-4, rtol: 1e-3 };
}

/**
 * The RoPE tables [max_position_embeddings, head_dim] a Llama model rotates with, or null for models without RoPE.
 * LlamaModel keeps them in a private field `rope` (no public accessor), read here through a cast.
 */
function ropeOf(model: Model): { cos: Tensor; sin: Tensor } | null {
  const inner = (model as { model?: unknown }).model;
  if (!(inner instanceof LlamaModel)) return null;
  const rope = (inner as unknown as { rope?: { cos?: unknown; sin?: unknown } }).rope;
  if (!(rope?.cos instanceof Tensor) || !(rope.sin instanceof Tensor))
    throw new Error('LlamaModel no longer keeps its RoPE tables in `rope` {cos, sin}: update ropeOf() in this test');
  return { cos: rope.cos, sin: rope.sin };
}

/** One fixture loaded and run: forward with hidden states and attentions, loss backward. */
interface Run {
  fx: Fixture;
  model: Model;
  inputs: ModelInputs;
  out: ModelOutput;
  params: Map<string, Tensor>;
  rope: { cos: Tensor; sin: Tensor } | null;
}

function setup(name: string): Run {
  const fx = modelFixture(name);
  const model = fromPretrained<Model>(fx.dir);
  const inputs: ModelInputs = {
    inputIds: fx.t('inputs.input_ids'),
    attentionMask: fx.t('inputs.attention_mask'),
    tokenTypeIds: fx.tensors.get('inputs.token_type_ids') ?? null,
    labels: fx.t('inputs.labels'),
  };
  const out = model.forward(inputs, { outputHiddenStates: true, outputAttentions: true });
  assert.ok(out.loss, `${name}: the model returned no loss for labelled inputs`);
  out.loss.backward();
  return { fx, model, inputs, out, params: new Map(model.namedParameters()), rope: ropeOf(model) };
}

/**
 * What checks each fixture tensor, by name: a comparison against the model, or null for an input that is fed to it.
 * Names that nothing checks are absent (the counts test reports them).
 */
function plan(r: Run): Map<string, (() => void) | null> {
  const { fx, out, params, rope, model, inputs } = r;
  const label = path.basename(fx.dir);
  const checks = new Map<string, (() => void) | null>();
  const pick = (n: string): Tensor => {
    if (n === 'out.loss') return out.loss!;
    if (n === 'out.logits') return out.logits;
    const [, kind, i] = n.split('.');
    const list = kind === 'hidden_states' ? out.hiddenStates : out.attentions;
    assert.ok(list, `${n}: model returned no ${kind}`);
    assert.ok(Number(i) < list.length, `${n}: model returned ${list.length} entries`);
    const t = list[Number(i)];
    assert.ok(t, `${n}: model returned null (attention pruned away?)`);
    return t;
  };
  for (const n of fx.tensors.keys()) {
    if (INPUTS.has(n)) checks.set(n, null);
    else if (n === 'out.loss' || n === 'out.logits' || /^out\.(hidden_states|attentions)\.\d+$/.test(n))
      checks.set(n, () => {
        const want = fx.t(n);
        expectClose(pick(n), want, tolFor(n, want, false), `${label} ${n}`);
      });
    else if (n.startsWith('grad.'))
      checks.set(n, () => {
        const p = params.get(n.slice(5));
        assert.ok(p, `no parameter ${n.slice(5)}`);
        assert.ok(p.grad, `${n.slice(5)} has no gradient`);
        const want = fx.t(n);
        expectClose(p.grad, want, tolFor(n, want, !!fx.index.tensors[n]?.near_zero_in_exact_arithmetic), `${label} ${n}`);
      });
    else if ((n === 'internal.rope_cos' || n === 'internal.rope_sin') && rope)
      checks.set(n, () => {
        // HF's cache rows 0..T-1 against the model's own float32 tables (both built in float32 at init)
        const want = fx.t(n);
        const table = n === 'internal.rope_cos' ? rope.cos : rope.sin;
        assert.equal(want.ndim, 2, `${n}: expected [positions, head_dim], got [${want.shape}]`);
        assert.equal(table.shape[1], want.shape[1], `${n}: head_dim ${want.shape[1]}, model table [${table.shape}]`);
        assert.ok(want.shape[0]! <= table.shape[0]!, `${n}: ${want.shape[0]} positions, model table has ${table.shape[0]}`);
        // observed: at most 1 float32 ulp (torch's float32 cos/sin vs Math.cos/sin rounded to float32)
        expectClose(table.narrow(0, 0, want.shape[0]!), want, { atol: 2.5e-7, rtol: 0 }, `${label} ${n}`);
      });
    else if (n === 'internal.position_ids')
      checks.set(n, () => {
        // the positions HF used, passed explicitly, reproduce the default forward exactly
        const again = model.forward({ ...inputs, labels: null, positionIds: fx.t(n) });
        expectEqual(again.logits, out.logits, `${label} logits with ${n}`);
      });
  }
  return checks;
}

for (const name of MODELS) {
  let run: Run | null = null;
  let setupError: unknown = null;
  try {
    run = setup(name);
  } catch (e) {
    setupError = e;
  }

  test(`${name}: fixture folder present; every expected tensor compared; grad.* = named parameters`, () => {
    if (setupError) throw setupError;
    const r = run!;
    const { fx, out, params } = r;
    const problems: string[] = [];
    /** One line per non-empty list: every problem is reported, not only the first. */
    const expectNone = (what: string, names: string[]) => {
      if (names.length) problems.push(`${what} (${names.length}): ${names.join(', ')}`);
    };
    const inFile = [...fx.tensors.keys()].sort();
    const indexed = Object.keys(fx.index.tensors ?? {}).sort();
    expectNone('tensors expected.json lists but expected.safetensors lacks', indexed.filter((n) => !fx.tensors.has(n)));
    expectNone('tensors in expected.safetensors that expected.json does not describe', inFile.filter((n) => !indexed.includes(n)));
    const checks = plan(r);
    expectNone('expected tensors no test compares', inFile.filter((n) => !checks.has(n)));
    const grads = fx.names('grad.').map((n) => n.slice(5));
    const named = [...params.keys()].sort();
    expectNone(`parameters without a grad.* entry (${grads.length} grad.* entries, ${named.length} parameters)`, named.filter((p) => !grads.includes(p)));
    expectNone('grad.* entries that are not parameters of the model', grads.filter((g) => !params.has(g)));
    if (!out.hiddenStates?.length || !out.attentions?.length) problems.push('the model returned no hidden states or attentions');
    const required = [
      'out.loss',
      'out.logits',
      ...(out.hiddenStates ?? []).map((_, i) => `out.hidden_states.${i}`),
      ...(out.attentions ?? []).map((_, i) => `out.attentions.${i}`),
      ...(r.rope ? ['internal.rope_cos', 'internal.rope_sin'] : []),
    ];
    expectNone('model outputs without an expected tensor', required.filter((n) => !fx.tensors.has(n)));
    expectNone('expected outputs the model does not produce', fx.names('out.').filter((n) => !required.includes(n)));
    const compared = [...checks.values()].filter((c) => c !== null).length;
    if (problems.length) throw new Error(`${fx.dir}: ${inFile.length} expected tensors, ${compared} compared:\n${problems.join('\n')}`);
    assert.equal(compared, inFile.length - fx.names('inputs.').length, 'every tensor but the inputs is compared');
  });

  if (run) {
    const r = run;
    describe(`${name} vs Hugging Face`, () => {
      test('saved keys match model.safetensors', () => {
        const keys = r.fx.index.model_safetensors_keys;
        assert.ok(Array.isArray(keys) && keys.length > 0, `${r.fx.dir}/expected.json: model_safetensors_keys must be a non-empty list`);
        assert.deepEqual([...r.model.stateDict({ forSave: true }).keys()].sort(), [...(keys as string[])].sort());
      });
      for (const [n, check] of plan(r)) if (check) test(n, check);
    });
  }
}

test('BertForMaskedLM predictOnlyLabelled gives the same loss and gradients', () => {
  const fx = modelFixture('bert_mlm');
  const inputs = { inputIds: fx.t('inputs.input_ids'), attentionMask: fx.t('inputs.attention_mask'), tokenTypeIds: fx.t('inputs.token_type_ids'), labels: fx.t('inputs.labels') };
  const a = fromPretrained<Model>(fx.dir);
  const b = fromPretrained<Model & { forward(i: ModelInputs, o?: ForwardOptions & { predictOnlyLabelled?: boolean }): ModelOutput }>(fx.dir);
  const la = a.forward(inputs).loss!;
  const lb = b.forward(inputs, { predictOnlyLabelled: true }).loss!;
  expectClose(lb, la, { atol: 1e-6, rtol: 1e-5 }, 'loss');
  la.backward();
  lb.backward();
  const gb = new Map(b.namedParameters());
  for (const [n, p] of a.namedParameters()) expectClose(gb.get(n)!.grad!, p.grad!, { atol: 1e-6, rtol: 1e-4 }, `grad ${n}`);
});

/** Rewrite `<dir>/expected.safetensors` without the tensors `drop` selects (and, with `index`, drop them from expected.json). */
function removeTensors(dir: string, drop: (n: string) => boolean, index: boolean): void {
  const p = path.join(dir, 'expected.safetensors');
  const f = SafetensorsFile.open(p);
  const i64 = new Set(f.keys().filter((k) => f.info(k).dtype === 'I64'));
  f.close();
  const { tensors, metadata } = loadSafetensors(p);
  for (const k of [...tensors.keys()]) if (drop(k)) tensors.delete(k);
  saveSafetensors(p, tensors, metadata, { int64Names: i64 });
  if (index) {
    const j = path.join(dir, 'expected.json');
    const idx = JSON.parse(fs.readFileSync(j, 'utf8'));
    for (const k of Object.keys(idx.tensors)) if (drop(k)) delete idx.tensors[k];
    fs.writeFileSync(j, JSON.stringify(idx));
  }
}

// The child run (on the broken copy) does not recurse.
if (!process.env.SHRINK_PARITY_BROKEN_CHILD)
  test('a broken fixture set fails the run: missing folder, tensor, grad.* set, RoPE table', () => {
    const broken = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-broken-fixtures-'));
    try {
      fs.cpSync(FIXTURES, broken, { recursive: true });
      fs.rmSync(path.join(broken, 'bert_cls'), { recursive: true });
      removeTensors(path.join(broken, 'gpt2'), (n) => n === 'out.hidden_states.2', false); // file only: the index still lists it
      removeTensors(path.join(broken, 'llama'), (n) => n.startsWith('grad.') || n === 'internal.rope_cos', true); // an override set without grads
      removeTensors(path.join(broken, 'llama_gqa'), (n) => n === 'grad.model.norm.weight', true);
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', import.meta.filename], {
        cwd: path.resolve(import.meta.dirname, '../..'),
        encoding: 'utf8',
        // without the parent runner's NODE_TEST_CONTEXT the child reports its own TAP summary
        env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), SHRINK_FIXTURES: broken, SHRINK_PARITY_BROKEN_CHILD: '1' },
      });
      const log = r.stdout + r.stderr;
      assert.notEqual(r.status, 0, 'the run on a broken fixture set must fail');
      const fails = Number(/^# fail (\d+)$/m.exec(log)?.[1]);
      assert.ok(fails >= 4, `summary must count the failures, got '# fail ${fails}'\n${log.slice(-3000)}`);
      const failed = (model: string) => {
        const m = new RegExp(`^not ok \\d+ - ${model}: fixture folder present`, 'm').exec(log);
        assert.ok(m, `${model}: its counts test must fail\n${log.slice(-3000)}`);
        return log.slice(m.index, m.index + 4000);
      };
      assert.ok(failed('bert_cls').includes(`fixture folder ${path.join(broken, 'bert_cls')} is missing`), failed('bert_cls'));
      assert.ok(failed('gpt2').includes('tensors expected.json lists but expected.safetensors lacks (1): out.hidden_states.2'), failed('gpt2'));
      const llama = failed('llama');
      assert.ok(llama.includes('parameters without a grad.* entry (0 grad.* entries, 21 parameters) (21)'), llama);
      assert.ok(llama.includes('model outputs without an expected tensor (1): internal.rope_cos'), llama);
      assert.ok(failed('llama_gqa').includes('(19 grad.* entries, 20 parameters) (1): model.norm.weight'), failed('llama_gqa'));
      assert.match(log, /^ok \d+ - bert_mlm: fixture folder present/m, 'an intact fixture still passes');
    } finally {
      fs.rmSync(broken, { recursive: true, force: true });
    }
  });
