// Fast feedforward layers against the reference fixture methods/fff (upstream modules run unchanged in torch):
// UltraFastBERT's training FFF (masked dense form, parallel_size 2), its fff_bmm inference form (CMM, no bias,
// ≥ 0), fastfeedforward v0.2.1's FFF (eval hard path without b2s, hard and soft training forwards), visited nodes
// of each; plus a float64 gradient check of the masked form and the hardening loss.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, noGrad, collectAuxLosses } from '../../src/index.ts';
import { FFFLayer, FFFLeafLayer, fffMasked } from '../../src/compress/fff/layer.ts';
import { cmmForward, cmmPaths, cmmReference, fffDescend, fffVisitedMask, type CmmPath } from '../../src/compress/fff/cmm.ts';
import { methodFixture } from '../harness/fixtures.ts';
import { expectClose, expectEqual } from '../harness/expect.ts';
import { gradcheck, f64 } from '../harness/gradcheck.ts';

const fx = methodFixture('fff');
const TOL = { atol: 1e-5, rtol: 1e-4 };
const ints = (t: Tensor) => Array.from(t.toArray() as ArrayLike<number>, Number);
const set = (p: Tensor, v: Tensor) => noGrad(() => (p.data as Float32Array).set(v.toFloat32Array()));

test('fixture: every tensor the notes describe is present', () => {
  for (const n of Object.keys(fx.index.tensors)) fx.t(n); // throws naming a missing tensor
  assert.deepEqual(fx.names('').sort(), Object.keys(fx.index.tensors).sort());
});

describe('UltraFastBERT FFF (fixture ufb: K = O = 16, depth 3, parallel 2)', () => {
  const x = fx.t('x');
  const layer = () => {
    const l = new FFFLayer(16, 16, 3, { parallelSize: 2 });
    set(l.linear_in.weight, fx.t('ufb.linear_in.weight'));
    set(l.linear_in.bias!, fx.t('ufb.linear_in.bias'));
    set(l.linear_out.weight, fx.t('ufb.linear_out.weight'));
    return l;
  };

  test('training (masked dense) forward = ufb.y; visited nodes and decision map', () => {
    const l = layer().train();
    expectClose(l.forward(x), fx.t('ufb.y'), TOL, 'ufb.y (masked)');
    const nodes = l.route(x);
    assert.deepEqual(Array.from(nodes), ints(fx.t('ufb.visited_nodes')));
    expectEqual(fffVisitedMask(nodes, 24, 2, 3), fx.t('ufb.decision_map').toFloat32Array(), 'ufb.decision_map');
    // row 5 is zeros: both roots' logits are exactly 0 (bias 0), and > 0 is false: left (node 1); below, the biases decide
    assert.deepEqual([nodes[5 * 8 + 1], nodes[5 * 8 + 5]], [1, 1]);
  });

  test('eval forward (CMM: TypeScript reference and every native path) = ufb.y, same nodes', () => {
    const l = layer().eval();
    const w = l.cmmWeights();
    const ref = new Float32Array(24 * 16);
    const nodes = new Int32Array(24 * 2 * 4);
    cmmReference(w, x.toFloat32Array(), 24, ref, nodes);
    expectClose(ref, fx.t('ufb.y').toFloat32Array(), TOL, 'ufb.y (cmmReference)');
    assert.deepEqual(Array.from(nodes), ints(fx.t('ufb.visited_nodes')));
    expectClose(noGrad(() => l.forward(x)), fx.t('ufb.y'), TOL, 'ufb.y (eval forward)');
    for (const p of cmmPaths() as CmmPath[]) {
      const out = new Float32Array(24 * 16);
      const nn = new Int32Array(24 * 2 * 4);
      cmmForward(w, x.toFloat32Array(), 24, out, { path: p, nodes: nn });
      expectClose(out, fx.t('ufb.y').toFloat32Array(), TOL, `ufb.y (native ${p})`);
      assert.deepEqual(Array.from(nn), ints(fx.t('ufb.visited_nodes')), `nodes (native ${p})`);
    }
  });

  test('eval with gradients needed falls back to the masked form (same numbers, gradients flow)', () => {
    const l = layer().eval();
    const y = l.forward(x);
    expectClose(y, fx.t('ufb.y'), TOL, 'ufb.y (eval, grad)');
    y.sum().backward();
    assert.ok(l.linear_in.weight.grad, 'linear_in gets a gradient');
  });
});

describe('fff_bmm inference form (fixture bmm: no node bias, go right iff score >= 0)', () => {
  const x = fx.t('x').toFloat32Array();
  const w = { K: 16, O: 16, depth: 3, P: 1, w1: fx.t('bmm.w1s').toFloat32Array(), b1: null, w2t: fx.t('bmm.w2s').toFloat32Array(), strict: false };
  const want = fx.t('bmm.y').toFloat32Array();
  const wantNodes = ints(fx.t('bmm.visited_nodes'));

  test('cmmReference = bmm.y and bmm.visited_nodes (row 5: zeros go right all the way)', () => {
    const out = new Float32Array(24 * 16);
    const nodes = new Int32Array(24 * 4);
    cmmReference(w, x, 24, out, nodes);
    expectClose(out, want, TOL, 'bmm.y');
    assert.deepEqual(Array.from(nodes), wantNodes);
    assert.deepEqual(Array.from(nodes.subarray(20, 24)), [0, 2, 6, 14]);
  });

  for (const p of ['avx512', 'avx2', 'portable'] as const)
    test(`native ${p} = bmm.y`, { skip: cmmPaths().includes(p) ? false : `native path ${p} not available here (addon missing, CPU or SHRINK_ISA)` }, () => {
      const out = new Float32Array(24 * 16);
      const nodes = new Int32Array(24 * 4);
      cmmForward(w, x, 24, out, { path: p, nodes });
      expectClose(out, want, TOL, `bmm.y (${p})`);
      assert.deepEqual(Array.from(nodes), wantNodes);
    });

  test('the two decisions differ on the zero row only', () => {
    const logitsZero = new Float32Array(15); // x = 0, no bias: every logit 0
    assert.deepEqual(Array.from(fffDescend(logitsZero, 1, 1, 3, false)), [0, 2, 6, 14]);
    assert.deepEqual(Array.from(fffDescend(logitsZero, 1, 1, 3, true)), [0, 1, 3, 7]);
  });
});

describe('fastfeedforward v0.2.1 FFF (fixture ff: input 16, leaf width 8, output 16, depth 3, ReLU)', () => {
  const x = fx.t('x');
  const layer = () => {
    const l = new FFFLeafLayer(16, 8, 16, 3, { activation: 'relu' });
    for (const k of ['w1s', 'b1s', 'w2s', 'b2s', 'node_weights', 'node_biases'] as const) set(l[k], fx.t(`ff.${k}`));
    return l;
  };

  test('eval forward = ff.y_eval (hard path, no b2s as upstream); ff.visited_nodes, ff.leaf', () => {
    const l = layer().eval();
    expectClose(noGrad(() => l.forward(x)), fx.t('ff.y_eval'), TOL, 'ff.y_eval');
    const r = l.route(x);
    assert.deepEqual(Array.from(r.nodes), ints(fx.t('ff.visited_nodes')));
    assert.deepEqual(Array.from(r.leaves), ints(fx.t('ff.leaf')));
  });

  test('training forward, hard decisions = ff.y_train_hard; soft = ff.y_train_soft', () => {
    const l = layer().eval();
    expectClose(noGrad(() => l.trainingForward(x, { hard: true })), fx.t('ff.y_train_hard'), TOL, 'ff.y_train_hard');
    expectClose(noGrad(() => l.trainingForward(x)), fx.t('ff.y_train_soft'), TOL, 'ff.y_train_soft');
  });

  test('training mode: soft forward, hardening loss recorded with addAuxLoss, gradients reach the nodes', () => {
    const l = layer().train();
    const y = l.forward(x);
    expectClose(y, fx.t('ff.y_train_soft'), TOL, 'ff.y_train_soft (train mode)');
    const aux = collectAuxLosses(l);
    const h = aux.get('hardening');
    assert.ok(h, `hardening loss recorded (got ${[...aux.keys()]})`);
    assert.ok(h.item() > 0 && h.item() <= Math.LN2 + 1e-6, `entropy in (0, ln 2], got ${h.item()}`);
    y.sum().add(h).backward();
    assert.ok(l.node_weights.grad && l.w1s.grad, 'nodes and leaves get gradients');
  });
});

test('gradcheck (float64): masked UltraFastBERT form wrt x, linear_in, linear_out', () => {
  const g = new Generator(4);
  const [M, K, O, D, P] = [5, 6, 4, 2, 2];
  const N = 7;
  const x = f64([M, K], g);
  const w1 = f64([P * N, K], g);
  const b1 = f64([P * N], g, -0.3, 0.3);
  const w2 = f64([O, P * N], g);
  gradcheck('fffMasked', (a, b, c, d) => fffMasked(a, b, c, d, D, P), [x, w1, b1, w2], { atol: 1e-6, rtol: 1e-4 });
  // unvisited nodes get no gradient
  const nodes = fffDescend(noGrad(() => x.matmul(w1.transpose(0, 1)).add(b1)).toArray(), M, P, D, true);
  const used = new Set<number>();
  for (let m = 0; m < M; m++) for (let p = 0; p < P; p++) for (let d = 0; d <= D; d++) used.add(p * N + nodes[(m * P + p) * (D + 1) + d]!);
  w2.grad = null;
  fffMasked(x, w1, b1, w2, D, P).sum().backward();
  const gw2 = w2.grad!.toArray();
  for (let o = 0; o < O; o++) for (let n = 0; n < P * N; n++) if (!used.has(n)) assert.equal(gw2[o * P * N + n], 0, `node ${n} unvisited: zero gradient`);
});
