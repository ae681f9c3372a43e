// share.lowrank: the Jacobi SVD (orthonormal factors, exact at full rank, truncation error = tail singular mass),
// activation-aware (SVD-LLM whitening) beating plain SVD on output error for correlated inputs, the method on a
// tiny BERT / GPT-2, save/reload bit-exact, and option errors naming the option.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, compress, noGrad } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { Linear } from '../../src/nn/layers.ts';
import type { ModelInputs, ModelOutput } from '../../src/models/outputs.ts';
import { svd, matmul64, transpose } from '../../src/compress/share/linalg.ts';
import { LowRankLinear, breakEvenRank, chooseRank, factorize, residual } from '../../src/compress/share/lowrank.ts';
import { quadForm } from '../../src/compress/share/common.ts';
import { expectThrows } from '../harness/expect.ts';
import { tinyBert, tinyGpt2 } from '../harness/tiny-models.ts';
import { roundTrip } from '../harness/roundtrip.ts';

const { runRecipe } = compress;
type Fwd = Module & { forward(i: ModelInputs): ModelOutput };

function randMat(m: number, n: number, g: Generator): Float64Array {
  const a = new Float64Array(m * n);
  for (let i = 0; i < a.length; i++) a[i] = g.random() * 2 - 1;
  return a;
}
const fro2 = (a: Float64Array) => a.reduce((s, x) => s + x * x, 0);

describe('Jacobi SVD', () => {
  for (const [m, n] of [[40, 25], [25, 40], [33, 33], [1, 7]] as const) {
    test(`[${m}×${n}]: orthonormal factors, exact reconstruction, descending singular values`, () => {
      const g = new Generator(m * 100 + n);
      const A = randMat(m, n, g);
      const d = svd(A, m, n);
      const p = Math.min(m, n);
      assert.equal(d.p, p);
      const UtU = matmul64(transpose(d.U, m, p), d.U, p, m, p);
      const VtV = matmul64(transpose(d.V, n, p), d.V, p, n, p);
      for (let i = 0; i < p; i++)
        for (let j = 0; j < p; j++) {
          assert.ok(Math.abs(UtU[i * p + j]! - (i === j ? 1 : 0)) < 1e-10, `UᵀU[${i},${j}] = ${UtU[i * p + j]}`);
          assert.ok(Math.abs(VtV[i * p + j]! - (i === j ? 1 : 0)) < 1e-10, `VᵀV[${i},${j}] = ${VtV[i * p + j]}`);
        }
      for (let i = 1; i < p; i++) assert.ok(d.S[i - 1]! >= d.S[i]!);
      const US = new Float64Array(m * p);
      for (let i = 0; i < m; i++) for (let j = 0; j < p; j++) US[i * p + j] = d.U[i * p + j]! * d.S[j]!;
      const R = matmul64(US, transpose(d.V, n, p), m, p, n);
      let err = 0;
      for (let i = 0; i < A.length; i++) err = Math.max(err, Math.abs(R[i]! - A[i]!));
      assert.ok(err < 1e-10, `max reconstruction error ${err}`);
      assert.ok(Math.abs(fro2(A) - d.S.reduce((s, x) => s + x * x, 0)) < 1e-9 * fro2(A));
    });
  }

  test('known singular values: a rank-deficient matrix with a zero singular value still has orthonormal U', () => {
    // A = u1 v1ᵀ·3 + u2 v2ᵀ·1 in 5×4, rank 2
    const g = new Generator(3);
    const B = randMat(5, 2, g);
    const C = randMat(2, 4, g);
    const A = matmul64(B, C, 5, 2, 4);
    const d = svd(A, 5, 4);
    assert.ok(d.S[2]! < 1e-12 * d.S[0]! && d.S[3]! < 1e-12 * d.S[0]!);
    const UtU = matmul64(transpose(d.U, 5, 4), d.U, 4, 5, 4);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) assert.ok(Math.abs(UtU[i * 4 + j]! - (i === j ? 1 : 0)) < 1e-9);
  });

  test('truncation: ‖W − W_r‖²_F equals the tail Σ_{i>r} σ_i², and the full rank is exact to 1e-5 in float32', () => {
    const g = new Generator(9);
    const [m, n] = [48, 32];
    const W = randMat(m, n, g);
    const S = svd(W, m, n).S;
    for (const r of [1, 5, 16, 31]) {
      const f = factorize(W, m, n, { rank: r });
      assert.equal(f.rank, r);
      const tail = S.slice(r).reduce((s, x) => s + x * x, 0);
      const got = fro2(residual(W, f, m, n));
      assert.ok(Math.abs(got - tail) < 1e-9 * fro2(W), `rank ${r}: ‖W − W_r‖² ${got} vs tail ${tail}`);
    }
    // the module at full rank reproduces the layer's outputs
    const lin = Linear.fromWeights(new Tensor(Float32Array.from(W), [m, n], 'float32'), Tensor.randn([m], { generator: g }));
    const f = factorize(W, m, n, { rank: n });
    const lr = LowRankLinear.fromFactors(new Tensor(Float32Array.from(f.second), [m, n], 'float32'), new Tensor(Float32Array.from(f.first), [n, n], 'float32'), lin.bias);
    const x = Tensor.randn([7, n], { generator: g });
    const [y0, y1] = noGrad(() => [lin.forward(x).toFloat32Array(), lr.forward(x).toFloat32Array()]);
    for (let i = 0; i < y0.length; i++) assert.ok(Math.abs(y0[i]! - y1[i]!) < 1e-5 * (1 + Math.abs(y0[i]!)), `output ${i}: ${y0[i]} vs ${y1[i]}`);
  });

  test('rank rules: energy keeps the smallest rank with that Σσ² fraction; ratio keeps that fraction of weights; break-even', () => {
    const S = Float64Array.from([4, 2, 1, 1]); // σ² = 16, 4, 1, 1 → total 22
    assert.equal(chooseRank(S, 10, 4, { energy: 16 / 22 }), 1);
    assert.equal(chooseRank(S, 10, 4, { energy: 0.8 }), 2);
    assert.equal(chooseRank(S, 10, 4, { energy: 1 }), 4);
    assert.equal(chooseRank(S, 10, 4, { rank: 9 }), 4);
    assert.equal(chooseRank(S, 128, 512, { ratio: 0.5 }), 51); // ⌊0.5·65536/640⌋
    assert.equal(breakEvenRank(128, 128), 63);
    assert.equal(breakEvenRank(128, 512), 102); // 102·640 < 65536 ≤ 103·640
    assert.ok(102 * 640 < 128 * 512 && 103 * 640 > 128 * 512);
  });
});

describe('activation-aware (SVD-LLM whitening)', () => {
  test('beats plain SVD on output error for correlated inputs, loses on weight error', () => {
    const g = new Generator(21);
    const [m, n, T] = [24, 32, 400];
    const W = randMat(m, n, g);
    // correlated, anisotropic inputs: x = z·M with a random mixing M and a few dominant directions
    const M = randMat(n, n, g);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) M[i * n + j] *= i < 4 ? 5 : 0.2;
    const X = matmul64(randMat(T, n, g), M, T, n, n);
    const C = matmul64(transpose(X, T, n), X, n, T, n);
    for (const r of [4, 8, 12]) {
      const plain = factorize(W, m, n, { rank: r });
      const aware = factorize(W, m, n, { rank: r }, { c: C, damp: 1e-6 });
      const outErr = (f: typeof plain) => quadForm(residual(W, f, m, n), m, n, C) / quadForm(W, m, n, C);
      assert.ok(outErr(aware) < outErr(plain), `rank ${r}: aware ${outErr(aware)} vs plain ${outErr(plain)}`);
      assert.ok(fro2(residual(W, aware, m, n)) >= fro2(residual(W, plain, m, n)) * (1 - 1e-9), 'plain SVD is optimal in the weight norm');
    }
  });
});

const g = new Generator(17);
const ids = Tensor.randint(1, 40, [3, 6], { dtype: 'int32', generator: g });
const attn = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0]), { shape: [3, 6] });
const clsBatch = { inputIds: ids, attentionMask: attn, labels: Tensor.from(Int32Array.from([0, 2, 1])) };
const calib = () => [clsBatch, clsBatch];


describe('share.lowrank method', () => {
  test('BERT: block Linears factorized by ratio, report, save/reload bit-exact', () => {
    const m = tinyBert();
    const r = runRecipe(m, [{ method: 'share.lowrank', ratio: 0.25 }], { calibration: calib });
    const rep = r.steps[0]!;
    assert.equal(rep.layers, 12); // 2 blocks × (q, k, v, o, up, down)
    assert.equal(rep.factorized, 12);
    assert.ok((rep.params_after as number) < 0.3 * (rep.params_before as number));
    assert.ok(typeof rep.mean_output_error === 'number');
    const q = m.getSubmodule('bert.encoder.layer.0.attention.self.query');
    assert.ok(q instanceof LowRankLinear);
    assert.equal(q.rank, 4); // ⌊0.25·32·32/64⌋
    assert.ok(m.getSubmodule('classifier') instanceof Linear, 'heads are not targeted by default');
    const y0 = noGrad(() => (m as Fwd).forward(clsBatch).logits.toFloat32Array());
    const { loaded, config } = roundTrip(m);
    const cc = config.compression_config as { modules: Record<string, { type: string; rank: number }> };
    assert.equal(cc.modules['bert.encoder.layer.0.attention.self.query']!.type, 'low_rank_linear');
    assert.equal(cc.modules['bert.encoder.layer.0.attention.self.query']!.rank, 4);
    assert.ok(loaded.getSubmodule('bert.encoder.layer.1.output.dense') instanceof LowRankLinear);
    const y1 = noGrad(() => (loaded as Fwd).forward(clsBatch).logits.toFloat32Array());
    assert.deepEqual(y1, y0);
  });

  test('activation-aware on BERT: lower output error than plain at the same ranks; reloads', () => {
    const plain = tinyBert();
    const aware = tinyBert();
    const a = runRecipe(plain, [{ method: 'share.lowrank', rank: 3 }], { calibration: calib }).steps[0]!;
    const b = runRecipe(aware, [{ method: 'share.lowrank', rank: 3, activation_aware: true }], { calibration: calib }).steps[0]!;
    assert.equal(a.ranks, b.ranks);
    assert.ok((b.mean_output_error as number) < (a.mean_output_error as number), `${b.mean_output_error} vs ${a.mean_output_error}`);
    assert.ok(Math.abs((b.mean_plain_output_error as number) - (a.mean_output_error as number)) < 1e-9);
    const y0 = noGrad(() => (aware as Fwd).forward(clsBatch).logits.toFloat32Array());
    const y1 = noGrad(() => (roundTrip(aware).loaded as Fwd).forward(clsBatch).logits.toFloat32Array());
    assert.deepEqual(y1, y0);
  });

  test('GPT-2 Conv1D layers, energy rule, layers above break-even stay dense', () => {
    const m = tinyGpt2();
    const lm = { inputIds: ids, labels: ids };
    const x = noGrad(() => (m as Fwd).forward(lm).logits.toFloat32Array());
    const r = runRecipe(m, [{ method: 'share.lowrank', energy: 1 }]).steps[0]!;
    // energy 1 needs full rank, above every break-even: nothing changes
    assert.equal(r.factorized, 0);
    assert.deepEqual(noGrad(() => (m as Fwd).forward(lm).logits.toFloat32Array()), x);
    const r2 = runRecipe(m, [{ method: 'share.lowrank', energy: 0.5, targets: ['**.c_fc'] }]).steps[0]!;
    assert.equal(r2.layers, 2);
    assert.equal(r2.factorized, 2);
    const y0 = noGrad(() => (m as Fwd).forward(lm).logits.toFloat32Array());
    assert.deepEqual(noGrad(() => (roundTrip(m).loaded as Fwd).forward(lm).logits.toFloat32Array()), y0);
  });

  test('finetune trains the factors', () => {
    const m = tinyBert();
    runRecipe(m, [{ method: 'share.lowrank', rank: 2 }]);
    const names = m.namedParameters().map(([n]) => n);
    assert.ok(names.includes('bert.encoder.layer.0.attention.self.query.first.weight'));
    assert.ok(names.includes('bert.encoder.layer.0.attention.self.query.second.bias'));
  });

  test('option errors name the option', () => {
    const m = tinyBert();
    expectThrows(() => runRecipe(m, [{ method: 'share.lowrank', rank: 4, ratio: 0.5 }]), "options 'rank' and 'ratio' both choose the rank");
    expectThrows(() => runRecipe(m, [{ method: 'share.lowrank', ratio: 1.5 }]), "option 'ratio' must be in (0, 1)");
    expectThrows(() => runRecipe(m, [{ method: 'share.lowrank', energy: 0 }]), "option 'energy' must be in (0, 1]");
    expectThrows(() => runRecipe(m, [{ method: 'share.lowrank', rank: 0 }]), "option 'rank' must be an integer >= 1");
    expectThrows(() => runRecipe(m, [{ method: 'share.lowrank', rank: 2.5 }]), "option 'rank' expects integer");
    expectThrows(() => runRecipe(m, [{ method: 'share.lowrank', activation_aware: true }]), "option 'activation_aware' needs calibration data");
    expectThrows(() => runRecipe(m, [{ method: 'share.lowrank', targets: ['nothing.here'] }]), "targets glob 'nothing.here' matches no module");
    expectThrows(() => runRecipe(m, [{ method: 'share.lowrank', targets: ['bert.embeddings'] }]), "option 'targets': no Linear layer is selected");
    expectThrows(() => runRecipe(m, [{ method: 'share.lowrank', rnak: 2 }]), "unknown option 'rnak'");
    assert.ok(m.getSubmodule('bert.encoder.layer.0.attention.self.query') instanceof Linear, 'nothing changed');
  });
});
