// The MoE layer (src/compress/moe/layer.ts) against the `moe` method fixture: transformers v4.36.2's
// switch_transformers (router_z_loss_func, load_balancing_loss_func, SwitchTransformersTop1Router, SparseMLP) and
// nllb_moe (load_balancing_loss_func, NllbMoeTop2Router in four variants, NllbMoeSparseMLP in eval) on the same
// weights and inputs. Every fixture tensor and scalar is compared: one this file does not produce fails the
// coverage test. Then gradient checks of the layer (top-1 and top-2) and of both losses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { methodFixture } from '../harness/fixtures.ts';
import { expectClose, expectEqual } from '../harness/expect.ts';
import { gradcheck, f64 } from '../harness/gradcheck.ts';
import { Generator, Tensor, noGrad } from '../../src/index.ts';
import { Linear } from '../../src/nn/layers.ts';
import { collectAuxLosses } from '../../src/nn/hooks.ts';
import {
  MoEExpert, MoELayer, ROUTING_DEFAULTS, combineWeights, firstChoiceMask, loadBalancingLoss, route, routerZLoss, type RoutingOptions,
} from '../../src/compress/moe/layer.ts';

const fx = methodFixture('moe');
const idx = fx.index as unknown as { notes: string[]; scalars_float64: Record<string, number> };
const E = 4;

test('the fixture config is the one this test builds', () => {
  const n = idx.notes.join('\n');
  assert.ok(n.includes('num_experts=4, expert_capacity=5 per group'), n);
  assert.ok(n.includes('expert_capacity=10') && n.includes("second_expert_policy='all'") && n.includes('locations2 += sum(top_1_mask)'), n);
});

const lin = (w: Tensor, b: Tensor | null = null) => Linear.fromWeights(w, b);
function experts(bias: boolean): MoEExpert[] {
  return Array.from({ length: E }, (_, e) =>
    new MoEExpert(
      lin(fx.t(`top1.expert_${e}.wi`), bias ? fx.t(`top2_mlp.expert_${e}.fc1_bias`) : null),
      lin(fx.t(`top1.expert_${e}.wo`), bias ? fx.t(`top2_mlp.expert_${e}.fc2_bias`) : null),
      'relu',
    ),
  );
}
const asInt = (a: ArrayLike<number>, shape: number[]) => Tensor.from(Int32Array.from(a), { shape, dtype: 'int32' });

type Want = { got: Tensor | number; rtol: number; atol: number };

/**
 * Everything by fixture name. Tolerances: fp32 matmuls and softmax sum in another order than torch: outputs and
 * logits rtol 1e-5 / atol 1e-6; losses (a sum of ~64 fp32 terms) rtol 1e-5; masks, indices and inputs exact.
 */
function computeAll(): Map<string, Want> {
  const out = new Map<string, Want>();
  const put = (k: string, got: Tensor | number, rtol = 1e-5, atol = 1e-6) => out.set(k, { got, rtol, atol });
  const exact = (k: string, got: Tensor | number) => put(k, got, 0, 0);

  // ---- loss functions on given logits
  const L = fx.t('loss.router_logits');
  exact('loss.router_logits', L);
  put('loss.z_loss', routerZLoss(L));
  const P = L.softmax(-1);
  put('loss.router_probs', P);
  const top1 = P.argmax(-1);
  exact('loss.top1_index', top1);
  put('loss.load_balancing_top1', loadBalancingLoss(P, top1));
  put('loss.nllb_load_balancing_top1', loadBalancingLoss(P, top1));
  const top2 = L.topk(2, -1).indices;
  exact('loss.top2_indices', top2);
  put('loss.load_balancing_top2', loadBalancingLoss(P, top2));

  // ---- Switch top-1 sparse MLP (HF v4.36.2: dropped tokens pass p_max · x)
  const h = fx.t('top1.hidden_states');
  exact('top1.hidden_states', h);
  exact('top1.router_weight', fx.t('top1.router_weight'));
  for (let e = 0; e < E; e++) for (const w of ['wi', 'wo']) exact(`top1.expert_${e}.${w}`, fx.t(`top1.expert_${e}.${w}`));
  const sw = new MoELayer(lin(fx.t('top1.router_weight')), experts(false), { topK: 1, capacity: 5, dropped: 'scaled_input', balanceIndices: 'after_capacity' });
  sw.train();
  const y = sw.forward(h);
  const aux = collectAuxLosses(sw);
  const r = sw._last!;
  const [G, S] = [2, 16];
  put('top1.router_logits', noGrad(() => sw.routerLogits(h.reshape([G * S, 16])).reshape([G, S, E])));
  exact('top1.router_mask', asInt(firstChoiceMask(r), [G, S, E]));
  put('top1.router_prob_max', r.gates!.reshape([G, S, 1]));
  exact('top1.dropped', Tensor.from(Uint8Array.from(r.kept, (v) => 1 - v), { shape: [G, S], dtype: 'uint8' }));
  const afterCap = Int32Array.from({ length: G * S }, (_, t) => (r.kept[t] ? r.choice[t]! : 0));
  exact('top1.expert_index_after_capacity', asInt(afterCap, [G, S]));
  put('top1.output', y);
  put('top1.model_z_loss', aux.get('z_loss')!);
  put('top1.model_aux_loss', aux.get('balance_loss')!);

  // ---- NLLB top-2 router variants (router.train(), capacity 10)
  const h2 = fx.t('top2.hidden_states');
  exact('top2.hidden_states', h2);
  const pad = fx.t('top2.padding_mask');
  exact('top2.padding_mask', pad);
  const L2 = noGrad(() => h2.reshape([32, 16]).matmul(fx.t('top1.router_weight').t()));
  put('top2.router_logits', L2);
  const base: RoutingOptions = { ...ROUTING_DEFAULTS, numExperts: E, topK: 2, capacity: 10 };
  const variants: Record<string, [Partial<RoutingOptions>, ArrayLike<number> | null]> = {
    default: [{}, null],
    batch_prioritized: [{ batchPrioritized: true }, null],
    normalize_before_dropping: [{ normalizeBeforeDropping: true }, null],
    padding: [{}, pad.toArray() as ArrayLike<number>],
  };
  for (const [name, [o, padding]] of Object.entries(variants)) {
    const rv = route(L2.reshape([1, 32, E]), { ...base, ...o }, { training: true, padding });
    exact(`top2.${name}.top_1_mask`, asInt(firstChoiceMask(rv), [32, E]));
    put(`top2.${name}.gates`, combineWeights(rv));
    if (name === 'default') {
      exact('top2.top1_index', asInt(Int32Array.from({ length: 32 }, (_, t) => rv.choice[2 * t]!), [32]));
      exact('top2.top2_index', asInt(Int32Array.from({ length: 32 }, (_, t) => rv.choice[2 * t + 1]!), [32]));
    }
  }

  // ---- NLLB sparse MLP in eval: capacity ceil(0.25 · 32) = 8, moe_token_dropout 0.2 scales outputs by 0.8
  for (let e = 0; e < E; e++) for (const b of ['fc1_bias', 'fc2_bias']) exact(`top2_mlp.expert_${e}.${b}`, fx.t(`top2_mlp.expert_${e}.${b}`));
  const nl = new MoELayer(lin(fx.t('top1.router_weight')), experts(true), { topK: 2, capacity: Math.ceil(0.25 * 32), groups: 'all', tokenDropout: 0.2 });
  nl.eval();
  const y2 = nl.forward(h2);
  const r2 = nl._last!;
  put('top2_mlp.output', y2);
  put('top2_mlp.gates', combineWeights(r2));
  exact('top2_mlp.top1_expert_index', asInt(Int32Array.from({ length: 32 }, (_, t) => (r2.kept[2 * t] ? r2.choice[2 * t]! : 0)), [32]));
  exact('top2_mlp.expert_capacity', r2.capacity);
  return out;
}

const got = computeAll();

test('every fixture tensor and scalar is produced', () => {
  const names = new Set([...fx.tensors.keys(), ...Object.keys(idx.scalars_float64)]);
  const missing = [...names].filter((n) => !got.has(n));
  assert.deepEqual(missing, [], `not compared: ${missing.join(', ')}`);
});

for (const name of [...fx.tensors.keys()].sort())
  test(`fixture ${name}`, () => {
    const w = got.get(name);
    assert.ok(w, `${name} is not produced`);
    const want = fx.t(name);
    const g = typeof w.got === 'number' ? Tensor.from([w.got]).reshape(want.shape) : w.got;
    if (w.rtol === 0 && w.atol === 0) expectEqual(g.to('float64'), want.to('float64'), name);
    else expectClose(g, want, { rtol: w.rtol, atol: w.atol }, name);
  });

for (const [name, v] of Object.entries(idx.scalars_float64))
  test(`scalar ${name}`, () => {
    const w = got.get(name)!;
    const g = typeof w.got === 'number' ? w.got : w.got.item();
    assert.ok(Math.abs(g - v) <= Math.max(w.atol, 1e-6) + 1e-5 * Math.abs(v), `${name}: got ${g}, want ${v}`);
  });

// ---------------------------------------------------------------- behaviour and gradients

function f64Layer(topK: number, opts: Partial<RoutingOptions> & Record<string, unknown> = {}, gen = new Generator(3)): MoELayer {
  const mk = (i: number, o: number, bias: boolean) => Linear.fromWeights(f64([o, i], gen, -0.5, 0.5), bias ? f64([o], gen, -0.1, 0.1) : null);
  const ex = Array.from({ length: 3 }, () => new MoEExpert(mk(5, 6, true), mk(6, 5, true), 'gelu'));
  return new MoELayer(mk(5, 3, false), ex, { topK, capacity: 3, ...opts });
}

test('gradcheck: top-1 layer (input, router, experts), drops included', () => {
  const m = f64Layer(1, { capacity: 1 });
  m.eval();
  const x = f64([2, 4, 5], new Generator(7));
  const params = m.parameters();
  gradcheck('moe top1', (xx) => m.forward(xx), [x, ...params]);
  assert.ok(m._last!.kept.some((v) => v === 0), 'capacity 1 drops a token');
});

test('gradcheck: top-2 layer with renormalised gates', () => {
  const m = f64Layer(2, { groups: 'all' });
  m.eval();
  const x = f64([1, 6, 5], new Generator(8));
  gradcheck('moe top2', (xx) => m.forward(xx), [x, ...m.parameters()]);
});

test('gradcheck: z-loss and load-balancing loss', () => {
  const L = f64([2, 5, 4], new Generator(9), -2, 2);
  gradcheck('z loss', (l) => routerZLoss(l), [L]);
  const idx2 = L.topk(2, -1).indices;
  gradcheck('balance loss', (l) => loadBalancingLoss(l.softmax(-1), idx2), [L]);
});

test('aux losses are recorded while training only, and dropped tokens get zero output by default', () => {
  const m = f64Layer(1, { capacity: 1 });
  m.train();
  const x = f64([1, 6, 5], new Generator(10));
  const y = m.forward(x);
  const aux = collectAuxLosses(m);
  assert.deepEqual([...aux.keys()].sort(), ['balance_loss', 'z_loss']);
  const r = m._last!;
  const yd = y.reshape([6, 5]).toArray();
  for (let t = 0; t < 6; t++) if (!r.kept[t]) for (let d = 0; d < 5; d++) assert.equal(yd[t * 5 + d], 0);
  m.eval();
  m.forward(x);
  assert.equal(collectAuxLosses(m).size, 0);
});

test('capacity: round(CF·tokens/E) with a minimum; CF <= 0 is unlimited; all first choices before second ones', () => {
  const o: RoutingOptions = { ...ROUTING_DEFAULTS, numExperts: 4, topK: 2 };
  const logits = Tensor.zeros([1, 40, 4]).add(Tensor.from([3, 2, 0, 0]));
  const r = route(logits, { ...o, capacityFactor: 1.25, minCapacity: 4 }, { training: true });
  assert.equal(r.capacity, Math.round((1.25 * 40) / 4));
  // every token picks expert 0 first, 1 second: expert 0 holds the first 13 tokens, expert 1 the first 13 second choices
  let k0 = 0, k1 = 0;
  for (let t = 0; t < 40; t++) { k0 += r.kept[2 * t]!; k1 += r.kept[2 * t + 1]!; }
  assert.deepEqual([k0, k1], [13, 13]);
  assert.equal(route(logits, { ...o, capacityFactor: 0.05, minCapacity: 4 }, { training: true }).capacity, 4);
  assert.equal(route(logits, { ...o, evalCapacityFactor: 0 }, { training: false }).capacity, Infinity);
});
