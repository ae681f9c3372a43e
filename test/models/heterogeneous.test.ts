// Per-layer shapes and pruned/replaced sub-blocks: BERT layers with different head counts (pruneHeads and
// config.pruned_heads) and FFN widths run forward and backward and equal the unpruned model with those heads /
// units zeroed; null attention / MLP are the documented identities (CoFiPruning); outputAttentionScores
// softmaxed are the attention probabilities; GPT-2 and Llama slots take replacements and nulls.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromPretrained } from '../../src/models/registry.ts';
import { BertForSequenceClassification, BertForMaskedLM, BertModel, bertConfig, extendedAttentionMask, type BertLayer } from '../../src/models/bert/modeling.ts';
import { GPT2LMHeadModel, GPT2MLP, paddingMaskAdd } from '../../src/models/gpt2/modeling.ts';
import { LlamaForCausalLM, LlamaMLP } from '../../src/models/llama/modeling.ts';
import { shiftedLmLoss as fromOutputs } from '../../src/models/outputs.ts';
import { shiftedLmLoss as fromGpt2 } from '../../src/models/gpt2/modeling.ts';
import { Module } from '../../src/nn/module.ts';
import { Linear, sliceLinear } from '../../src/nn/layers.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { noGrad } from '../../src/tensor/autograd.ts';
import { manualSeed } from '../../src/tensor/random.ts';
import { modelFixture } from '../harness/fixtures.ts';
import { expectClose, expectThrows } from '../harness/expect.ts';

const fx = modelFixture('bert_cls');
const inputs = {
  inputIds: fx.t('inputs.input_ids'),
  attentionMask: fx.t('inputs.attention_mask'),
  tokenTypeIds: fx.tensors.get('inputs.token_type_ids') ?? null,
  labels: fx.t('inputs.labels'),
};
const load = () => fromPretrained<BertForSequenceClassification>(fx.dir);
// Pruning keeps the same sums less exact zeros; the float order of the matmuls may differ by an ulp or so.
const TIGHT = { atol: 2e-6, rtol: 1e-5 };

/** Zero the output.dense columns of the given heads: the same as zeroing those heads' context. */
function zeroHeadColumns(layer: BertLayer, heads: number[]): void {
  const sa = layer.attention!.self!;
  const w = layer.attention!.output.dense!.weight;
  const [out, inp] = w.shape as [number, number];
  noGrad(() => {
    for (const h of heads) for (let r = 0; r < out; r++) for (let d = 0; d < sa.headDim; d++) w.data[r * inp + h * sa.headDim + d] = 0;
  });
}
/** Zero the output.dense columns of the given FFN units: the same as zeroing those units' activations. */
function zeroUnitColumns(layer: BertLayer, units: number[]): void {
  const w = layer.output.dense!.weight;
  const [out, inp] = w.shape as [number, number];
  noGrad(() => {
    for (const u of units) for (let r = 0; r < out; r++) w.data[r * inp + u] = 0;
  });
}
/** Keep the FFN units `keep` of a layer: intermediate.dense rows and output.dense columns. */
function sliceFfn(layer: BertLayer, keep: number[]): void {
  layer.intermediate!.dense = sliceLinear(layer.intermediate!.dense, { outIdx: keep });
  layer.output.dense = sliceLinear(layer.output.dense!, { inIdx: keep });
}
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const without = (n: number, drop: number[]) => range(n).filter((i) => !drop.includes(i));

function compareOutputs(got: ReturnType<BertForSequenceClassification['forward']>, want: typeof got, tol = TIGHT): void {
  expectClose(got.logits, want.logits, tol, 'logits');
  got.hiddenStates!.forEach((h, i) => expectClose(h, want.hiddenStates![i]!, tol, `hiddenStates[${i}]`));
  expectClose(got.loss!, want.loss!, tol, 'loss');
}

describe('BERT attention heads', () => {
  const PRUNE = { 0: [1, 3], 1: [2] };

  test('pruneHeads equals the unpruned model with those heads zeroed (head mask and output.dense columns), outputs and gradients', () => {
    const pruned = load();
    pruned.pruneHeads(PRUNE);
    const masked = load();
    const zeroed = load();
    zeroHeadColumns(zeroed.bert.encoder.layer[0]!, [1, 3]);
    zeroHeadColumns(zeroed.bert.encoder.layer[1]!, [2]);
    const headMask = [Tensor.from(Float32Array.from([1, 0, 1, 0])), Tensor.from(Float32Array.from([1, 1, 0, 1]))];

    const l0 = pruned.bert.encoder.layer[0]!.attention!;
    assert.equal(l0.self!.numHeads, 2);
    assert.equal(pruned.bert.encoder.layer[1]!.attention!.self!.numHeads, 3);
    assert.deepEqual(l0.self!.query.weight.shape, [32, 64]);
    assert.deepEqual(l0.output.dense!.weight.shape, [64, 32]);
    assert.deepEqual(pruned.bert.encoder.layer[1]!.attention!.self!.value.weight.shape, [48, 64]);
    // kept rows are the original heads 0 and 2, in order
    const q0 = masked.bert.encoder.layer[0]!.attention!.self!.query.weight;
    const rows02 = Tensor.from(Int32Array.from([...range(16), ...range(16).map((d) => 32 + d)]));
    expectClose(l0.self!.query.weight, q0.indexSelect(0, rows02), { atol: 0, rtol: 0 }, 'query rows');

    const opts = { outputHiddenStates: true, outputAttentions: true };
    const p = pruned.forward(inputs, opts);
    const m = masked.forward(inputs, { ...opts, headMask });
    const z = zeroed.forward(inputs, opts);
    compareOutputs(p, m);
    compareOutputs(p, z);
    // the attention probabilities of the kept heads are unchanged
    expectClose(p.attentions![0]!, m.attentions![0]!.indexSelect(1, Tensor.from(Int32Array.from([0, 2]))), TIGHT, 'attentions[0]');
    assert.deepEqual(p.attentions![1]!.shape.slice(0, 2), [inputs.inputIds.shape[0], 3]);

    // gradients: the pruned parameters' grads are the kept slices of the masked model's grads
    p.loss!.backward();
    m.loss!.backward();
    const pq = pruned.bert.encoder.layer[0]!.attention!.self!.query.weight.grad!;
    const mq = masked.bert.encoder.layer[0]!.attention!.self!.query.weight.grad!;
    const keep0 = [...range(16), ...range(16).map((d) => 32 + d)];
    expectClose(pq, mq.indexSelect(0, Tensor.from(Int32Array.from(keep0))), { atol: 1e-6, rtol: 1e-4 }, 'grad query (layer 0)');
    const pd = pruned.bert.encoder.layer[1]!.attention!.output.dense!.weight.grad!;
    const md = masked.bert.encoder.layer[1]!.attention!.output.dense!.weight.grad!;
    const keep1 = [...range(32), ...range(16).map((d) => 48 + d)];
    expectClose(pd, md.indexSelect(1, Tensor.from(Int32Array.from(keep1))), { atol: 1e-6, rtol: 1e-4 }, 'grad output.dense (layer 1)');
    for (const [n, t] of pruned.namedParameters()) {
      assert.ok(t.grad, `${n} has no gradient`);
      assert.deepEqual(t.grad.shape, t.shape, `${n} gradient shape`);
    }
  });

  test('indices refer to the original heads; already pruned heads are ignored; pruned_heads is recorded', () => {
    const model = load();
    const orig = model.bert.encoder.layer[0]!.attention!.self!.key.weight.clone();
    const att = model.bert.encoder.layer[0]!.attention!;
    att.pruneHeads([1]);
    att.pruneHeads([1, 2]); // 1 is already gone: only original head 2 goes now
    assert.deepEqual([...att.prunedHeads].sort(), [1, 2]);
    assert.equal(att.self!.numHeads, 2);
    const rows = [...range(16), ...range(16).map((d) => 48 + d)]; // original heads 0 and 3
    expectClose(att.self!.key.weight, orig.indexSelect(0, Tensor.from(Int32Array.from(rows))), { atol: 0, rtol: 0 }, 'key rows');
    assert.deepEqual(model.prunedHeads(), { 0: [1, 2] });
    expectThrows(() => att.pruneHeads([4]), 'head 4 is out of range');
    model.pruneHeads({ 1: [0], 0: [3] });
    assert.deepEqual(model.config.pruned_heads, { 0: [3], 1: [0] }); // model-level calls record in the config (HF)
    assert.deepEqual(model.prunedHeads(), { 0: [1, 2, 3], 1: [0] });
  });

  test('config.pruned_heads builds the pruned shapes; a pruned model reloads from its config and weights', () => {
    const a = load();
    a.pruneHeads(PRUNE);
    const cfg = bertConfig({ ...a.config, pruned_heads: a.prunedHeads() });
    const b = new BertForSequenceClassification(cfg);
    assert.deepEqual(b.prunedHeads(), { 0: [1, 3], 1: [2] });
    b.loadStateDict(a.stateDict({ forSave: true })); // strict: same keys, same shapes
    b.eval();
    compareOutputs(b.forward(inputs, { outputHiddenStates: true }), a.forward(inputs, { outputHiddenStates: true }), { atol: 0, rtol: 0 });
    expectThrows(() => bertConfig({ ...a.config, pruned_heads: { 5: [0] } }), "pruned_heads names layer '5'");
  });

  test('pruning every head of a layer makes its attention the identity (CoFi): keys self.* and output.dense.* go, output.LayerNorm stays', () => {
    const model = load();
    model.pruneHeads({ 1: [0, 1, 2, 3] });
    const att = model.bert.encoder.layer[1]!.attention!;
    assert.equal(att.self, null);
    assert.equal(att.numHeads, 0);
    const keys = model.stateDictKeys().filter((k) => k.startsWith('bert.encoder.layer.1.attention.'));
    assert.deepEqual(keys, ['bert.encoder.layer.1.attention.output.LayerNorm.weight', 'bert.encoder.layer.1.attention.output.LayerNorm.bias']);
    const out = model.forward(inputs, { outputHiddenStates: true, outputAttentions: true });
    assert.equal(out.attentions![1], null);
    const layer = model.bert.encoder.layer[1]!;
    const h1 = out.hiddenStates![1]!;
    const want = noGrad(() => layer.output.forward(layer.intermediate!.forward(h1), h1)); // FFN on the layer input
    expectClose(out.hiddenStates![2]!, want, { atol: 0, rtol: 0 }, 'layer 1 output');
  });
});

describe('BERT MLP slot', () => {
  test('slicing FFN units (different widths per layer) equals zeroing them; forward and backward run', () => {
    const sliced = load();
    const zeroed = load();
    const drop0 = [0, 5, 17, 64, 127];
    const drop1 = range(64).map((i) => 2 * i); // half the units
    sliceFfn(sliced.bert.encoder.layer[0]!, without(128, drop0));
    sliceFfn(sliced.bert.encoder.layer[1]!, without(128, drop1));
    zeroUnitColumns(zeroed.bert.encoder.layer[0]!, drop0);
    zeroUnitColumns(zeroed.bert.encoder.layer[1]!, drop1);
    assert.deepEqual(sliced.bert.encoder.layer[0]!.intermediate!.dense.weight.shape, [123, 64]);
    assert.deepEqual(sliced.bert.encoder.layer[1]!.output.dense!.weight.shape, [64, 64]);
    const s = sliced.forward(inputs, { outputHiddenStates: true });
    compareOutputs(s, zeroed.forward(inputs, { outputHiddenStates: true }));
    s.loss!.backward();
    for (const [n, t] of sliced.namedParameters()) assert.deepEqual(t.grad?.shape, t.shape, `${n} gradient`);
  });

  test('heads and FFN widths differing per layer, in training mode with dropout: forward and backward run', () => {
    manualSeed(3);
    const model = load();
    model.pruneHeads({ 0: [0], 1: [1, 2, 3] });
    sliceFfn(model.bert.encoder.layer[1]!, range(40));
    model.train();
    const out = model.forward(inputs, { outputAttentions: true });
    assert.deepEqual(out.attentions!.map((a) => a!.shape[1]), [3, 1]);
    out.loss!.backward();
    for (const [n, t] of model.namedParameters()) {
      assert.ok(t.grad, `${n} has no gradient`);
      assert.deepEqual(t.grad.shape, t.shape, `${n} gradient shape`);
      assert.ok(t.grad.toFloat32Array().every(Number.isFinite), `${n} gradient is finite`);
    }
  });

  /** The HF MLP as one module, to check the slot against the built-in path. */
  class WrappedMlp extends Module {
    constructor(readonly up: Linear, readonly down: Linear) {
      super();
    }
    forward(x: Tensor): Tensor {
      return this.down.forward(this.up.forward(x).gelu());
    }
  }

  test('a replacement MLP: output.LayerNorm(dropout(mlp(a)) + a); keys mlp.* replace intermediate.* and output.dense.*', () => {
    const ref = load();
    const model = load();
    const layer = model.bert.encoder.layer[0]!;
    layer.setMlp(new WrappedMlp(layer.intermediate!.dense, layer.output.dense!));
    assert.equal(layer.intermediate, null);
    assert.equal(layer.output.dense, null);
    const keys = model.stateDictKeys().filter((k) => k.startsWith('bert.encoder.layer.0.') && !k.includes('.attention.'));
    assert.deepEqual(keys, [
      'bert.encoder.layer.0.output.LayerNorm.weight',
      'bert.encoder.layer.0.output.LayerNorm.bias',
      'bert.encoder.layer.0.mlp.up.weight',
      'bert.encoder.layer.0.mlp.up.bias',
      'bert.encoder.layer.0.mlp.down.weight',
      'bert.encoder.layer.0.mlp.down.bias',
    ]);
    compareOutputs(model.forward(inputs, { outputHiddenStates: true }), ref.forward(inputs, { outputHiddenStates: true }), { atol: 0, rtol: 0 });
    // a different module goes through the same residual + LayerNorm
    manualSeed(11);
    const other = new WrappedMlp(new Linear(64, 8), new Linear(8, 64));
    layer.setMlp(other);
    const e = model.forward(inputs, { outputHiddenStates: true });
    const att = noGrad(() => layer.attention!.forward(e.hiddenStates![0]!, extendedAttentionMask(inputs.attentionMask)).out);
    expectClose(e.hiddenStates![1]!, noGrad(() => layer.output.LayerNorm.forward(other.forward(att).add(att))), { atol: 0, rtol: 0 }, 'layer 0 output');
  });

  test('a pruned MLP (setMlp(null)) makes the layer output the attention output; a null attention passes its input on', () => {
    const model = load();
    const l0 = model.bert.encoder.layer[0]!;
    const l1 = model.bert.encoder.layer[1]!;
    l0.setMlp(null);
    l1.attention = null;
    assert.ok(!model.stateDictKeys().some((k) => k.startsWith('bert.encoder.layer.1.attention.') || k.startsWith('bert.encoder.layer.0.intermediate.')));
    const out = model.forward(inputs, { outputHiddenStates: true, outputAttentions: true, outputAttentionScores: true });
    const mask = extendedAttentionMask(inputs.attentionMask);
    const [h0, h1, h2] = out.hiddenStates!;
    expectClose(h1!, noGrad(() => l0.attention!.forward(h0!, mask).out), { atol: 0, rtol: 0 }, 'layer 0 = attention output');
    expectClose(h2!, noGrad(() => l1.output.forward(l1.intermediate!.forward(h1!), h1!)), { atol: 0, rtol: 0 }, 'layer 1 = FFN of its input');
    assert.equal(out.attentions![1], null);
    assert.equal(out.attentionScores![1], null);
    assert.ok(out.attentions![0]);
    out.loss!.backward(); // gradients flow through both identities
    assert.ok(model.bert.embeddings.word_embeddings.weight.grad);
    assert.deepEqual(l0.attention!.self!.query.weight.grad?.shape, [64, 64]);
  });
});

describe('attention scores', () => {
  test('BERT: softmax(scores) = attentions; padded keys hold finfo(float32).min; scores = q·kᵀ/√hd + mask', () => {
    const model = load();
    model.pruneHeads({ 0: [2] });
    const out = model.forward(inputs, { outputAttentions: true, outputAttentionScores: true });
    out.attentionScores!.forEach((s, i) => expectClose(s!.softmax(-1), out.attentions![i]!, { atol: 1e-7, rtol: 1e-6 }, `softmax(scores[${i}])`));
    assert.deepEqual(out.attentionScores![0]!.shape.slice(1, 2), [3]);
    const mask = inputs.attentionMask.toFloat32Array();
    const [B, nH, T] = out.attentionScores![1]!.shape as [number, number, number, number];
    const s = out.attentionScores![1]!.toFloat32Array();
    let padded = 0;
    for (let b = 0; b < B; b++)
      for (let k = 0; k < T; k++)
        if (mask[b * T + k] === 0) {
          padded++;
          for (let h = 0; h < nH; h++) assert.ok(s[((b * nH + h) * T + 0) * T + k]! < -1e38, 'padded key score');
        }
    assert.ok(padded > 0, 'the fixture has padding');
    // unmasked scores are the scaled dot products
    const h0 = model.forward(inputs, { outputHiddenStates: true }).hiddenStates![1]!;
    const sa = model.bert.encoder.layer[1]!.attention!.self!;
    const q = sa.query.forward(h0).reshape([B, T, 4, 16]).transpose(1, 2);
    const k = sa.key.forward(h0).reshape([B, T, 4, 16]).transpose(1, 2);
    expectClose(out.attentionScores![1]!, q.matmul(k.transpose(-1, -2)).div(4).add(extendedAttentionMask(inputs.attentionMask)), { atol: 1e-5, rtol: 1e-5 }, 'scores');
  });

  for (const name of ['gpt2', 'llama_gqa']) {
    test(`${name}: softmax(scores) = attentions, with causal positions at finfo(float32).min`, () => {
      const f = modelFixture(name);
      const model = fromPretrained<GPT2LMHeadModel | LlamaForCausalLM>(f.dir);
      const out = model.forward({ inputIds: f.t('inputs.input_ids'), attentionMask: f.t('inputs.attention_mask') }, { outputAttentions: true, outputAttentionScores: true });
      assert.equal(out.attentionScores!.length, 2);
      out.attentionScores!.forEach((s, i) => {
        assert.deepEqual(s!.shape, out.attentions![i]!.shape);
        expectClose(s!.softmax(-1), out.attentions![i]!, { atol: 1e-7, rtol: 1e-6 }, `softmax(scores[${i}])`);
        const T = s!.shape[3]!;
        assert.ok(s!.toFloat32Array()[1]! < -1e38, 'query 0 may not see key 1'); // [0, 0, 0, 1]
        assert.ok(T > 1);
      });
    });
  }
});

describe('GPT-2 and Llama slots', () => {
  const gf = modelFixture('gpt2');
  const gIn = { inputIds: gf.t('inputs.input_ids'), attentionMask: gf.t('inputs.attention_mask'), labels: gf.t('inputs.labels') };

  test('shiftedLmLoss lives in models/outputs.ts and gpt2 re-exports it', () => {
    assert.equal(fromGpt2, fromOutputs);
  });

  test('GPT-2 pruneHeads (fused c_attn, per-layer head counts) equals the head mask; outputs and gradients', () => {
    const pruned = fromPretrained<GPT2LMHeadModel>(gf.dir);
    const masked = fromPretrained<GPT2LMHeadModel>(gf.dir);
    pruned.transformer.h[0]!.attn!.pruneHeads([0, 2]);
    pruned.transformer.h[1]!.attn!.pruneHeads([3]);
    pruned.transformer.h[1]!.attn!.pruneHeads([3, 1]);
    const a0 = pruned.transformer.h[0]!.attn!;
    assert.equal(a0.numHeads, 2);
    assert.deepEqual(a0.c_attn.weight.shape, [64, 96]);
    assert.deepEqual(a0.c_proj.weight.shape, [32, 64]);
    assert.deepEqual([...pruned.transformer.h[1]!.attn!.prunedHeads].sort(), [1, 3]);
    const headMask = [Tensor.from(Float32Array.from([0, 1, 0, 1])), Tensor.from(Float32Array.from([1, 0, 1, 0]))];
    const p = pruned.forward(gIn, { outputHiddenStates: true, outputAttentions: true });
    const m = masked.forward(gIn, { outputHiddenStates: true, headMask });
    expectClose(p.logits, m.logits, TIGHT, 'logits');
    expectClose(p.loss!, m.loss!, TIGHT, 'loss');
    assert.equal(p.attentions![0]!.shape[1], 2);
    p.loss!.backward();
    m.loss!.backward();
    // c_attn keeps columns q[16..32), q[48..64), then the same for k and v
    const cols = [0, 64, 128].flatMap((o) => [...range(16).map((d) => o + 16 + d), ...range(16).map((d) => o + 48 + d)]);
    expectClose(a0.c_attn.weight.grad!, masked.transformer.h[0]!.attn!.c_attn.weight.grad!.indexSelect(1, Tensor.from(Int32Array.from(cols))), { atol: 1e-6, rtol: 1e-4 }, 'grad c_attn');
    expectThrows(() => a0.pruneHeads([1, 3]), 'set the block');
  });

  test('GPT-2: a replacement MLP gets the residual dropout GPT2MLP applies itself (same draws, same output)', () => {
    /** GPT2MLP without its dropout: the block must add it. */
    class Bare extends Module {
      constructor(readonly inner: GPT2MLP) {
        super();
      }
      forward(x: Tensor): Tensor {
        return this.inner.c_proj.forward(this.inner.c_fc.forward(x).gelu('tanh'));
      }
    }
    const ref = fromPretrained<GPT2LMHeadModel>(gf.dir).train();
    const model = fromPretrained<GPT2LMHeadModel>(gf.dir).train();
    for (const b of model.transformer.h) b.mlp = new Bare(b.mlp as GPT2MLP);
    manualSeed(7);
    const want = ref.forward(gIn).logits;
    manualSeed(7);
    const got = model.forward(gIn).logits;
    expectClose(got, want, { atol: 0, rtol: 0 }, 'logits in training mode');
    // and dropout is really on: another seed gives other logits
    manualSeed(8);
    const d = model.forward(gIn).logits.sub(want).abs().amax().item();
    assert.ok(d > 1e-3, `dropout changes the logits (${d})`);
  });

  test('GPT-2 and Llama: a null attention / MLP skips its residual branch', () => {
    const g = fromPretrained<GPT2LMHeadModel>(gf.dir);
    const b0 = g.transformer.h[0]!;
    const b1 = g.transformer.h[1]!;
    b0.attn = null;
    b1.mlp = null;
    const out = g.forward(gIn, { outputHiddenStates: true, outputAttentions: true });
    const [x0, x1] = out.hiddenStates!;
    expectClose(x1!, noGrad(() => x0!.add(b0.mlp!.forward(b0.ln_2.forward(x0!)))), { atol: 0, rtol: 0 }, 'GPT-2 block 0 = x + mlp');
    const maskAdd = paddingMaskAdd(gIn.attentionMask);
    const att1m = noGrad(() => b1.attn!.forward(b1.ln_1.forward(x1!), maskAdd, null).out);
    expectClose(noGrad(() => g.transformer.ln_f.forward(x1!.add(att1m))), out.hiddenStates![2]!, { atol: 0, rtol: 0 }, 'GPT-2 block 1 = x + attn');
    assert.equal(out.attentions![0], null);
    out.loss!.backward();

    const lf = modelFixture('llama_gqa');
    const l = fromPretrained<LlamaForCausalLM>(lf.dir);
    const ids = lf.t('inputs.input_ids');
    const L0 = l.model.layers[0]!;
    L0.self_attn = null;
    const lo = l.forward({ inputIds: ids }, { outputHiddenStates: true });
    const [y0, y1] = lo.hiddenStates!;
    expectClose(y1!, noGrad(() => y0!.add(L0.mlp!.forward(L0.post_attention_layernorm.forward(y0!)))), { atol: 0, rtol: 0 }, 'Llama layer 0 = x + mlp');
    L0.mlp = null;
    const lo2 = l.forward({ inputIds: ids }, { outputHiddenStates: true });
    expectClose(lo2.hiddenStates![1]!, lo2.hiddenStates![0]!, { atol: 0, rtol: 0 }, 'Llama layer 0 = identity');
  });

  test('Llama: heterogeneous GQA layers (one kv group removed from layer 0) equal the head mask', () => {
    const lf = modelFixture('llama_gqa');
    const pruned = fromPretrained<LlamaForCausalLM>(lf.dir);
    const masked = fromPretrained<LlamaForCausalLM>(lf.dir);
    const a = pruned.model.layers[0]!.self_attn!;
    // drop kv group 1 (query heads 2, 3): q/o keep heads 0-1, k/v keep kv head 0
    const q = range(32);
    a.q_proj = sliceLinear(a.q_proj, { outIdx: q });
    a.o_proj = sliceLinear(a.o_proj, { inIdx: q });
    a.k_proj = sliceLinear(a.k_proj, { outIdx: range(16) });
    a.v_proj = sliceLinear(a.v_proj, { outIdx: range(16) });
    a.numHeads = 2;
    a.numKvHeads = 1;
    const inp = { inputIds: lf.t('inputs.input_ids'), attentionMask: lf.t('inputs.attention_mask'), labels: lf.t('inputs.labels') };
    const p = pruned.forward(inp, { outputAttentions: true });
    const m = masked.forward(inp, { headMask: [Tensor.from(Float32Array.from([1, 1, 0, 0]))] });
    expectClose(p.logits, m.logits, TIGHT, 'logits');
    assert.equal(p.attentions![0]!.shape[1], 2);
    assert.equal(p.attentions![1]!.shape[1], 4);
    p.loss!.backward();
    for (const [n, t] of pruned.namedParameters()) assert.deepEqual(t.grad?.shape, t.shape, `${n} gradient`);
    // a replacement MLP works in the Llama slot (here the same gated MLP, wrapped)
    class Wrap extends Module {
      constructor(readonly inner: LlamaMLP) {
        super();
      }
      forward(x: Tensor): Tensor {
        return this.inner.forward(x);
      }
    }
    pruned.model.layers[1]!.mlp = new Wrap(pruned.model.layers[1]!.mlp as LlamaMLP);
    expectClose(noGrad(() => pruned.forward(inp).logits), p.logits, { atol: 0, rtol: 0 }, 'wrapped MLP');
    assert.ok(pruned.stateDictKeys().includes('model.layers.1.mlp.inner.down_proj.weight'));
  });
});

test('BertModel and BertForMaskedLM expose pruneHeads/prunedHeads too', () => {
  const base = new BertModel(bertConfig({ vocab_size: 50, hidden_size: 32, num_hidden_layers: 3, num_attention_heads: 4, intermediate_size: 48, max_position_embeddings: 16, pruned_heads: { 2: [0, 1] } }));
  assert.deepEqual(base.prunedHeads(), { 2: [0, 1] });
  assert.deepEqual(base.encoder.layer.map((l) => l.attention!.numHeads), [4, 4, 2]);
  const mlm = new BertForMaskedLM(bertConfig({ vocab_size: 50, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 48, max_position_embeddings: 16 }));
  mlm.pruneHeads({ 1: [3] });
  assert.deepEqual(mlm.prunedHeads(), { 1: [3] });
  assert.deepEqual(mlm.config.pruned_heads, { 1: [3] });
  const ids = Tensor.from(Int32Array.from([1, 5, 9, 2]), { shape: [1, 4] });
  const out = mlm.forward({ inputIds: ids, labels: ids });
  out.loss!.backward();
  assert.deepEqual(mlm.bert.encoder.layer[1]!.attention!.self!.query.weight.grad!.shape, [24, 32]);
});
