// CoFi's hard-concrete L0 module (src/compress/cofi/l0.ts) against the `cofi` method fixture, made by
// princeton-nlp/CoFiPruning models/l0_module.py (L0Module) at da855a8: scores, training samples from given noise,
// inference masks and their expected zero counts, expected sizes with and without hidden dims, prunable/full sizes,
// the Lagrangian at four steps and its gradients wrt λ₁, λ₂ and every log α, and calculate_model_size.
// Every fixture tensor and scalar is compared: one this file does not produce fails the coverage test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { methodFixture } from '../harness/fixtures.ts';
import { expectClose, expectEqual, expectThrows } from '../harness/expect.ts';
import { Generator, Tensor } from '../../src/index.ts';
import {
  L0Masks, L0_TYPES, LOG_ALPHA_MAX, LOG_ALPHA_MIN, calculateModelSize, typesFromPruningType, type L0Type, type ModelSizeInfo,
} from '../../src/compress/cofi/l0.ts';

const fx = methodFixture('cofi');
const idx = fx.index as unknown as {
  notes: string[];
  scalars_float64: Record<string, number>;
  model_size: Record<string, number | number[]>;
};

// the fixture's config (its first note spells it out)
const CFG = { layers: 2, heads: 4, hidden: 64, intermediate: 128 };
const HP = { droprateInit: 0.5, temperature: 2 / 3, lagrangianWarmup: 100, startSparsity: 0, targetSparsity: 0.6, magicalNumber: 0.8 };
const PRUNING_TYPE = 'structured_heads+structured_mlp+hidden+layer';
const STEPS = [0, 30, 100, 250];

test('the fixture config is the one this test builds', () => {
  const n = idx.notes.join('\n');
  assert.ok(n.includes('hidden 64, intermediate 128, heads 4, layers 2'), n);
  assert.ok(n.includes(`'pruning_type': '${PRUNING_TYPE}'`) && n.includes("'magical_number': 0.8") && n.includes("'lagrangian_warmup': 100"), n);
  assert.ok(n.includes("'target_sparsity': 0.6") && n.includes("'start_sparsity': 0.0") && n.includes("'temperature': 0.6666666666666666"), n);
  assert.ok(n.includes("types in order: ['head', 'intermediate', 'hidden', 'mlp', 'head_layer']"), n);
  assert.deepEqual(typesFromPruningType(PRUNING_TYPE), ['head', 'intermediate', 'hidden', 'mlp', 'head_layer']);
});

/** A module with the fixture's log α and λ. */
function fixtureModule(): L0Masks {
  const m = new L0Masks({ ...CFG, ...HP, types: typesFromPruningType(PRUNING_TYPE) }, { generator: new Generator(0) });
  for (const t of L0_TYPES) m.logAlpha(t).copy_(fx.t(`log_alpha.${t}`));
  m.lambda_1.copy_(fx.t('lambda_1'));
  m.lambda_2.copy_(fx.t('lambda_2'));
  return m;
}

/**
 * Everything the module computes, by fixture name (tensors and float64 scalars share names). Tolerances (measured:
 * every difference is ≤ 1–2 fp32 ulp): elementwise fp32 formulas (scores, soft inference masks) rtol 1e-6; training
 * samples also atol 1e-7, since y·1.2 − 0.1 cancels near 0 and 1 ulp of y·1.2 (3e-8) is then a large relative
 * error; sums (expected sizes, Σ score per group, sparsities, losses, gradients) follow another fp32 summation
 * order than torch, 1 ulp of the total, and s − t (≈ 0.1) turns the 1-ulp error of s (6e-8) into ~6e-7 relative
 * in the loss and ~1.1e-6 in ∂L/∂λ₂ = (s − t)², so rtol 2e-6; inputs, parameter counts and the zero pattern of
 * the inference masks are exact.
 */
type Want = { got: Tensor | number; rtol: number; atol?: number };
function computeAll(): Map<string, Want> {
  const m = fixtureModule();
  const out = new Map<string, Want>();
  const put = (k: string, got: Tensor | number, rtol: number, atol = 0) => out.set(k, { got, rtol, atol });
  // inputs round-trip (they were loaded into the parameters)
  for (const t of L0_TYPES) put(`log_alpha.${t}`, m.logAlpha(t).detach(), 0);
  put('lambda_1', m.lambda_1.detach(), 0);
  put('lambda_2', m.lambda_2.detach(), 0);
  put('prunable_model_size', m.prunableModelSize, 0);
  put('full_model_size', m.fullModelSize, 0);
  for (const t of L0_TYPES) put(`score.${t}`, m.score(t).detach(), 1e-6, 1e-12);
  // training samples from the fixture's noise
  const eps = Object.fromEntries(L0_TYPES.map((t) => [t, fx.t(`sample.eps.${t}`)]));
  const z = m.sample(eps);
  for (const t of L0_TYPES) {
    put(`sample.eps.${t}`, eps[t]!, 0);
    put(`sample.${t}_z`, z[t]!.detach(), 1e-6, 1e-7);
  }
  const det = m.deterministic();
  for (const t of L0_TYPES) {
    put(`det.${t}_z`, det.masks[t]!, 1e-6);
    put(`det.expected_num_zeros.${t}`, det.expectedNumZeros[t]!, 2e-6, 1e-5);
  }
  put('expected_size_with_hidden', m.expectedSize({ withHidden: true }).detach(), 2e-6);
  put('expected_size_without_hidden', m.expectedSize({ withHidden: false }).detach(), 2e-6);
  for (const s of STEPS) {
    for (const p of m.parameters()) p.zeroGrad();
    const r = m.lagrangian(s);
    put(`lagrangian.step${s}.loss`, r.loss.detach(), 2e-6, 1e-9);
    put(`lagrangian.step${s}.expected_sparsity`, r.expectedSparsity.detach(), 2e-6);
    put(`lagrangian.step${s}.target_sparsity`, r.targetSparsity, 1e-7);
    if (s === 30) {
      r.loss.backward();
      for (const t of L0_TYPES) put(`lagrangian.step30.grad.log_alpha.${t}`, m.logAlpha(t).grad!, 2e-6, 1e-12);
      put('lagrangian.step30.grad.lambda_1', m.lambda_1.grad!, 2e-6);
      put('lagrangian.step30.grad.lambda_2', m.lambda_2.grad!, 2e-6);
    }
  }
  return out;
}
const computed = computeAll();

/** Compare got with want after reshaping to want's element count (the fixture keeps upstream's broadcast shapes). */
function check(name: string, want: Tensor | number, w: Want): void {
  const g = typeof w.got === 'number' ? [w.got] : w.got.toArray();
  const v = typeof want === 'number' ? [want] : want.toArray();
  expectClose(Array.from(g, Number), Array.from(v, Number), { rtol: w.rtol, atol: w.atol ?? 0 }, name);
}

test('every fixture tensor and scalar is produced here (none skipped)', () => {
  const missing = [...fx.tensors.keys(), ...Object.keys(idx.scalars_float64)].filter((k) => !computed.has(k));
  assert.deepEqual(missing, []);
  assert.ok(fx.tensors.size >= 50, `only ${fx.tensors.size} fixture tensors`);
});

for (const name of [...fx.tensors.keys()].sort())
  test(`tensor ${name} (${fx.index.tensors[name]?.description || 'value'})`, () => {
    const w = computed.get(name);
    assert.ok(w, `not computed: ${name}`);
    const want = fx.t(name);
    if (typeof w.got !== 'number') assert.equal(w.got.numel, want.numel, `${name}: ${w.got.numel} elements, fixture has ${want.numel}`);
    else assert.equal(want.numel, 1, `${name}: scalar here, fixture shape [${want.shape}]`);
    check(name, want, w);
  });

test('float64 scalars', () => {
  for (const [name, v] of Object.entries(idx.scalars_float64)) {
    const w = computed.get(name);
    assert.ok(w, `not computed: ${name}`);
    check(`scalar ${name}`, v, w);
  }
});

test('inference masks: zeros where upstream has them, soft values elsewhere', () => {
  const { masks } = fixtureModule().deterministic();
  for (const t of L0_TYPES) expectEqual(masks[t]!.ne(0), fx.t(`det.${t}_z`).reshape(masks[t]!.shape).ne(0), `det.${t}_z zero pattern`);
  // the kept gates are σ(log α / β · 0.8), not 1
  assert.ok((masks.hidden!.toArray() as Float32Array).some((v) => v > 0 && v < 1));
});

test('calculate_model_size of the inference masks matches every entry of the fixture', () => {
  const m = fixtureModule();
  const info = m.modelSize();
  const KEY: Record<string, keyof ModelSizeInfo> = {
    head_layers: 'headLayers', mlp_layers: 'mlpLayers', hidden_dims: 'hiddenDims', intermediate_dims: 'intermediateDims',
    head_nums: 'headNums', pruned_params: 'prunedParams', remaining_params: 'remainingParams', pruned_model_sparsity: 'prunedModelSparsity',
  };
  assert.deepEqual(Object.keys(idx.model_size).sort(), Object.keys(KEY).sort());
  for (const [k, want] of Object.entries(idx.model_size)) assert.deepEqual(info[KEY[k]!], want, k);
  // upstream's broadcast mask shapes count the same
  const det = m.deterministic().masks;
  const broadcast = {
    ...det,
    head: det.head!.reshape([2, 1, 4, 1, 1]),
    intermediate: det.intermediate!.reshape([2, 1, 1, 128]),
  };
  assert.deepEqual(calculateModelSize(broadcast, { ...CFG, prunableModelSize: m.prunableModelSize }), info);
  // all kept: weight matrices only, so a small positive sparsity (66688 vs 65536)
  const full = calculateModelSize({}, { ...CFG, prunableModelSize: m.prunableModelSize });
  assert.equal(full.remainingParams, 8 * 64 * 16 * 4 + 256 * 64 * 2);
});

test('clampLogAlpha clamps every log α to [log 1e-2, log 1e2] and leaves λ alone', () => {
  const m = fixtureModule();
  assert.ok(Math.abs(LOG_ALPHA_MIN - Math.log(0.01)) < 1e-15 && Math.abs(LOG_ALPHA_MAX - Math.log(100)) < 1e-15);
  for (const t of L0_TYPES) {
    const la = m.logAlpha(t);
    const n = la.numel;
    la.copy_(Tensor.from(Float32Array.from({ length: n }, (_, i) => [-50, -4.7, -1, 0, 3, 4.7, 10, 1e9][i % 8]!), { shape: la.shape }));
  }
  m.lambda_1.fill_(7);
  m.clampLogAlpha();
  for (const t of L0_TYPES) {
    const v = m.logAlpha(t).toArray();
    const want = Array.from({ length: v.length }, (_, i) => Math.fround(Math.min(LOG_ALPHA_MAX, Math.max(LOG_ALPHA_MIN, [-50, -4.7, -1, 0, 3, 4.7, 10, 1e9][i % 8]!))));
    expectEqual(v, want, `clamped ${t}`);
    assert.ok(m.logAlpha(t).requiresGrad && m.logAlpha(t).isLeaf);
  }
  assert.equal(m.lambda_1.item(), 7);
});

test('initialisation as upstream: mean 10 except intermediate (log(1−p) − log p), std 0.01, λ = 0', () => {
  const m = new L0Masks({ layers: 3, heads: 4, hidden: 256, intermediate: 512, types: L0_TYPES, droprateInit: 0.3 }, { generator: new Generator(5) });
  for (const t of L0_TYPES) {
    const v = Array.from(m.logAlpha(t).toArray());
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const want = t === 'intermediate' ? Math.log(0.7) - Math.log(0.3) : 10;
    assert.ok(Math.abs(mean - want) < 0.01, `${t} mean ${mean}`);
    assert.ok(v.every((x) => Math.abs(x - want) < 0.06), `${t} spread`);
  }
  assert.equal(m.lambda_1.item(), 0);
  assert.equal(m.lambda_2.item(), 0);
  assert.deepEqual(m.namedParameters().map(([k]) => k), ['head_loga', 'int_loga', 'hidden_loga', 'intlayer_loga', 'headlayer_loga', 'lambda_1', 'lambda_2']);
  // seeded: same generator seed, same log α
  const m2 = new L0Masks({ layers: 3, heads: 4, hidden: 256, intermediate: 512, types: L0_TYPES, droprateInit: 0.3 }, { generator: new Generator(5) });
  for (const t of L0_TYPES) expectEqual(m2.logAlpha(t).detach(), m.logAlpha(t).detach(), t);
});

test('sampling with a seeded Generator is deterministic, in [0, 1], and differentiable in log α', () => {
  const m = fixtureModule();
  const a = m.sample({}, new Generator(123));
  const b = m.sample({}, new Generator(123));
  const c = m.sample({}, new Generator(124));
  let differs = false;
  for (const t of L0_TYPES) {
    expectEqual(a[t]!.detach(), b[t]!.detach(), `sample ${t}`);
    assert.deepEqual(a[t]!.shape, m.logAlpha(t).shape);
    assert.ok(Array.from(a[t]!.toArray()).every((v) => v >= 0 && v <= 1));
    if (Array.from(a[t]!.toArray()).some((v, i) => v !== c[t]!.toArray()[i])) differs = true;
  }
  assert.ok(differs, 'another seed gives other samples');
  a.intermediate!.sum().backward();
  assert.ok(m.int_loga!.grad && Array.from(m.int_loga!.grad.toArray()).some((v) => v !== 0));
});

test('target sparsity ramps over the warmup, and is the target itself without one', () => {
  const m = fixtureModule();
  assert.equal(m.targetSparsityAt(0), 0);
  assert.equal(m.targetSparsityAt(50), 0.3);
  assert.equal(m.targetSparsityAt(1000), 0.6);
  const m0 = new L0Masks({ ...CFG, types: ['head', 'intermediate'], targetSparsity: 0.4 });
  assert.equal(m0.targetSparsityAt(0), 0.4);
});

test('bad configs get one clear error each', () => {
  expectThrows(() => new L0Masks({ ...CFG, types: ['hidden'] }), 'gate nothing prunable');
  expectThrows(() => new L0Masks({ ...CFG, types: ['head', 'bogus' as L0Type] }), "unknown mask type 'bogus'");
  expectThrows(() => new L0Masks({ ...CFG, heads: 5, types: ['head'] }), 'not divisible');
  expectThrows(() => new L0Masks({ ...CFG, types: ['head'] }).logAlpha('hidden'), "no 'hidden' gates");
  expectThrows(() => typesFromPruningType('structured_heads+foo'), "unknown part 'foo'");
});
