// Model anatomy: paths, head layouts and live widths for BERT, GPT-2 and Llama (MHA and GQA), checked against the
// modules' real tensors, and updated by pruned heads, sliced FFNs, replaced MLPs and removed attention.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromPretrained } from '../../src/models/registry.ts';
import { anatomy, removeAttention, replaceMlp, type ModelAnatomy } from '../../src/models/anatomy.ts';
import { BertForSequenceClassification, BertModel, bertConfig } from '../../src/models/bert/modeling.ts';
import { GPT2LMHeadModel, GPT2Model, gpt2Config } from '../../src/models/gpt2/modeling.ts';
import { LlamaForCausalLM, LlamaModel, llamaConfig } from '../../src/models/llama/modeling.ts';
import { Module } from '../../src/nn/module.ts';
import { Linear, sliceLinear } from '../../src/nn/layers.ts';
import type { Tensor } from '../../src/tensor/tensor.ts';
import { modelFixture } from '../harness/fixtures.ts';
import { expectThrows } from '../harness/expect.ts';

const weightOf = (m: Module, path: string): Tensor => (m.getSubmodule(path) as unknown as { weight: Tensor }).weight;

/** Checks every anatomy claims against the model's tensors. */
function checkConsistent(model: Module, a: ModelAnatomy): void {
  const H = a.hiddenSize;
  const saved = model.stateDict({ forSave: true });
  for (const e of a.embeddings) assert.equal(weightOf(model, e).shape[1], H, e);
  for (const b of a.blocks) {
    assert.ok(model.getSubmodule(b.path), b.path);
    for (const n of b.norms) assert.deepEqual(weightOf(model, n).shape, [H], n);
    const at = b.attention;
    if (at) {
      const conv = at.layout === 'in_out';
      const oi = (p: string) => (conv ? [...weightOf(model, p).shape].reverse() : [...weightOf(model, p).shape]);
      assert.equal(at.numHeads % at.numKvHeads, 0);
      if (at.fused) {
        assert.deepEqual(oi(at.fused), [3 * at.numHeads * at.headDim, H], at.fused);
        assert.ok(at.q === at.fused && at.k === at.fused && at.v === at.fused);
      } else {
        assert.deepEqual(oi(at.q), [at.numHeads * at.headDim, H], at.q);
        assert.deepEqual(oi(at.k), [at.numKvHeads * at.headDim, H], at.k);
        assert.deepEqual(oi(at.v), [at.numKvHeads * at.headDim, H], at.v);
      }
      assert.deepEqual(oi(at.o), [H, at.numHeads * at.headDim], at.o);
    }
    const m = b.mlp;
    if (m && m.kind !== 'custom') {
      const oi = (p: string) => (m.layout === 'in_out' ? [...weightOf(model, p).shape].reverse() : [...weightOf(model, p).shape]);
      assert.deepEqual(oi(m.up!), [m.intermediate, H], m.up!);
      if (m.gate) assert.deepEqual(oi(m.gate), [m.intermediate, H], m.gate);
      assert.deepEqual(oi(m.down!), [H, m.intermediate], m.down!);
    }
  }
  for (const n of [a.finalNorm, a.embeddingNorm]) if (n) assert.deepEqual(weightOf(model, n).shape, [H], n);
  // hiddenTensors: every listed dim is H, and (fixtures have no other size-H dims) every saved key with a size-H dim is listed
  const listed = new Map(a.hiddenTensors.map((h) => [h.key, h.dims]));
  for (const [key, dims] of listed) {
    assert.ok(saved.has(key), `${key} is a saved key`);
    for (const d of dims) assert.equal(saved.get(key)!.shape[d], H, `${key} dim ${d}`);
  }
  for (const [key, t] of saved) if (t.shape.includes(H) && !isCustom(a, key) && !isHeadBias(a, key)) assert.ok(listed.has(key), `${key} [${t.shape}] should be listed`);
  // q/k/v biases are numHeads·headDim wide (equal to H here only by coincidence): never hidden tensors
  for (const b of a.blocks) if (b.attention) for (const p of [b.attention.q, b.attention.k, b.attention.v]) assert.equal(listed.has(`${p}.bias`), false, `${p}.bias`);
}
const isHeadBias = (a: ModelAnatomy, key: string) => a.blocks.some((b) => b.attention && [b.attention.q, b.attention.k, b.attention.v].some((p) => key === `${p}.bias`));
const isCustom = (a: ModelAnatomy, key: string) => a.blocks.some((b) => b.mlp?.kind === 'custom' && key.startsWith(`${b.mlp.path}.`));

describe('anatomy of the fixture models', () => {
  test('bert_mlm (BertForMaskedLM)', () => {
    const model = fromPretrained(modelFixture('bert_mlm').dir);
    const a = anatomy(model);
    checkConsistent(model, a);
    assert.equal(a.modelType, 'bert');
    assert.equal(a.className, 'BertForMaskedLM');
    assert.equal(a.base, 'bert');
    assert.equal(a.normPlacement, 'post');
    assert.deepEqual(a.embeddings, ['bert.embeddings.word_embeddings', 'bert.embeddings.position_embeddings', 'bert.embeddings.token_type_embeddings']);
    assert.equal(a.embeddingNorm, 'bert.embeddings.LayerNorm');
    assert.equal(a.head, 'cls');
    assert.equal(a.pooler, null);
    assert.equal(a.blocks.length, 2);
    assert.deepEqual(a.blocks[1], {
      index: 1,
      path: 'bert.encoder.layer.1',
      attention: { path: 'bert.encoder.layer.1.attention', q: 'bert.encoder.layer.1.attention.self.query', k: 'bert.encoder.layer.1.attention.self.key', v: 'bert.encoder.layer.1.attention.self.value', o: 'bert.encoder.layer.1.attention.output.dense', numHeads: 4, numKvHeads: 4, headDim: 16, prunedHeads: [], layout: 'out_in' },
      mlp: { path: 'bert.encoder.layer.1.mlp', kind: 'dense', up: 'bert.encoder.layer.1.intermediate.dense', gate: null, down: 'bert.encoder.layer.1.output.dense', intermediate: 128, activation: 'gelu', layout: 'out_in', module: 'BertIntermediate' },
      norms: ['bert.encoder.layer.1.attention.output.LayerNorm', 'bert.encoder.layer.1.output.LayerNorm'],
    });
    const hid = new Map(a.hiddenTensors.map((h) => [h.key, h.dims]));
    assert.deepEqual(hid.get('bert.embeddings.word_embeddings.weight'), [1]);
    assert.deepEqual(hid.get('bert.encoder.layer.0.attention.self.query.weight'), [1]); // [64, 64]: only the input side is hidden
    assert.deepEqual(hid.get('bert.encoder.layer.0.attention.output.dense.weight'), [0]);
    assert.deepEqual(hid.get('bert.encoder.layer.0.output.dense.bias'), [0]);
    assert.deepEqual(hid.get('cls.predictions.transform.dense.weight'), [0, 1]);
    assert.equal(hid.has('cls.predictions.decoder.weight'), false); // tied to the word embeddings, not saved
    assert.equal(hid.has('bert.encoder.layer.0.attention.self.query.bias'), false);
    assert.deepEqual(a.tied, { 'cls.predictions.decoder.weight': 'bert.embeddings.word_embeddings.weight' });
  });

  test('bert_cls (BertForSequenceClassification) and a bare BertModel', () => {
    const model = fromPretrained<BertForSequenceClassification>(modelFixture('bert_cls').dir);
    const a = anatomy(model);
    checkConsistent(model, a);
    assert.equal(a.head, 'classifier');
    assert.equal(a.pooler, 'bert.pooler');
    const hid = new Map(a.hiddenTensors.map((h) => [h.key, h.dims]));
    assert.deepEqual(hid.get('bert.pooler.dense.weight'), [0, 1]);
    assert.deepEqual(hid.get('classifier.weight'), [1]);
    const base = anatomy(model.bert);
    checkConsistent(model.bert, base);
    assert.equal(base.base, '');
    assert.equal(base.head, null);
    assert.equal(base.blocks[0]!.attention!.q, 'encoder.layer.0.attention.self.query');
  });

  test('gpt2 (GPT2LMHeadModel): fused c_attn, Conv1D layout', () => {
    const model = fromPretrained<GPT2LMHeadModel>(modelFixture('gpt2').dir);
    const a = anatomy(model);
    checkConsistent(model, a);
    assert.equal(a.normPlacement, 'pre');
    assert.deepEqual(a.embeddings, ['transformer.wte', 'transformer.wpe']);
    assert.equal(a.finalNorm, 'transformer.ln_f');
    assert.equal(a.head, 'lm_head');
    const b = a.blocks[0]!;
    assert.equal(b.attention!.fused, 'transformer.h.0.attn.c_attn');
    assert.equal(b.attention!.o, 'transformer.h.0.attn.c_proj');
    assert.equal(b.attention!.layout, 'in_out');
    assert.deepEqual([b.attention!.numHeads, b.attention!.numKvHeads, b.attention!.headDim], [4, 4, 16]);
    assert.deepEqual([b.mlp!.up, b.mlp!.down, b.mlp!.intermediate, b.mlp!.activation], ['transformer.h.0.mlp.c_fc', 'transformer.h.0.mlp.c_proj', 256, 'gelu_new']);
    assert.deepEqual(b.norms, ['transformer.h.0.ln_1', 'transformer.h.0.ln_2']);
    const hid = new Map(a.hiddenTensors.map((h) => [h.key, h.dims]));
    assert.deepEqual(hid.get('transformer.h.0.attn.c_attn.weight'), [0]); // [in=H, out=3·H]
    assert.deepEqual(hid.get('transformer.h.0.attn.c_proj.weight'), [1]);
    assert.deepEqual(hid.get('transformer.h.0.mlp.c_proj.weight'), [1]);
    assert.equal(hid.has('transformer.h.0.attn.c_attn.bias'), false);
    assert.equal(hid.has('lm_head.weight'), false); // tied
  });

  test('llama (MHA, untied head) and llama_gqa (2 kv heads, tied head)', () => {
    const mha = fromPretrained<LlamaForCausalLM>(modelFixture('llama').dir);
    const am = anatomy(mha);
    checkConsistent(mha, am);
    assert.deepEqual(new Map(am.hiddenTensors.map((h) => [h.key, h.dims])).get('lm_head.weight'), [1]);
    const gqa = fromPretrained<LlamaForCausalLM>(modelFixture('llama_gqa').dir);
    const a = anatomy(gqa);
    checkConsistent(gqa, a);
    const at = a.blocks[1]!.attention!;
    assert.deepEqual(at, { path: 'model.layers.1.self_attn', q: 'model.layers.1.self_attn.q_proj', k: 'model.layers.1.self_attn.k_proj', v: 'model.layers.1.self_attn.v_proj', o: 'model.layers.1.self_attn.o_proj', numHeads: 4, numKvHeads: 2, headDim: 16, prunedHeads: [], layout: 'out_in' });
    assert.deepEqual(weightOf(gqa, at.k).shape, [32, 64]);
    const m = a.blocks[1]!.mlp!;
    assert.deepEqual([m.kind, m.up, m.gate, m.down, m.intermediate, m.activation], ['gated', 'model.layers.1.mlp.up_proj', 'model.layers.1.mlp.gate_proj', 'model.layers.1.mlp.down_proj', 172, 'silu']);
    assert.equal(a.finalNorm, 'model.norm');
    assert.deepEqual(a.tied, { 'lm_head.weight': 'model.embed_tokens.weight' });
    assert.ok(!a.hiddenTensors.some((h) => h.key === 'lm_head.weight'));
    const base = anatomy(gqa.model);
    assert.equal(base.blocks[0]!.mlp!.down, 'layers.0.mlp.down_proj');
    assert.equal(base.head, null);
  });
});

describe('anatomy follows the live modules', () => {
  class Tiny extends Module {
    fc: Linear;
    constructor(h: number) {
      super();
      this.fc = new Linear(h, h);
    }
    forward(x: Tensor): Tensor {
      return this.fc.forward(x);
    }
  }

  test('BERT: pruned heads (both ways), sliced FFN, replaced and pruned MLP, removed attention', () => {
    const cfg = bertConfig({ vocab_size: 60, hidden_size: 48, num_hidden_layers: 4, num_attention_heads: 6, intermediate_size: 96, max_position_embeddings: 32, pruned_heads: { 1: [5, 0] } });
    const model = new BertModel(cfg);
    model.pruneHeads({ 2: [1, 2, 3] });
    const l3 = model.encoder.layer[3]!;
    l3.intermediate!.dense = sliceLinear(l3.intermediate!.dense, { outIdx: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
    l3.output.dense = sliceLinear(l3.output.dense!, { inIdx: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
    let a = anatomy(model);
    checkConsistent(model, a);
    assert.deepEqual(a.blocks.map((b) => b.attention!.numHeads), [6, 4, 3, 6]);
    assert.deepEqual(a.blocks.map((b) => b.attention!.prunedHeads), [[], [0, 5], [1, 2, 3], []]);
    assert.deepEqual(a.blocks.map((b) => b.mlp!.intermediate), [96, 96, 96, 10]);

    const blk = replaceMlp(model, 0, new Tiny(48));
    assert.deepEqual(blk.mlp, { path: 'encoder.layer.0.mlp', kind: 'custom', up: null, gate: null, down: null, intermediate: null, activation: null, layout: 'out_in', module: 'Tiny' });
    assert.ok(model.stateDictKeys().includes('encoder.layer.0.mlp.fc.weight'));
    assert.equal(replaceMlp(model, 1, null).mlp, null);
    assert.equal(removeAttention(model, 3).attention, null);
    model.pruneHeads({ 2: [0, 4, 5] }); // every head of layer 2 gone: CoFi identity
    a = anatomy(model);
    checkConsistent(model, a);
    assert.equal(a.blocks[2]!.attention, null);
    assert.deepEqual(a.blocks[2]!.norms, ['encoder.layer.2.attention.output.LayerNorm', 'encoder.layer.2.output.LayerNorm']);
    assert.deepEqual(a.blocks[3]!.norms, ['encoder.layer.3.output.LayerNorm']);
    assert.ok(!a.hiddenTensors.some((h) => h.key.startsWith('encoder.layer.0.intermediate') || h.key.startsWith('encoder.layer.0.mlp.')));
    assert.ok(a.hiddenTensors.some((h) => h.key === 'encoder.layer.1.output.LayerNorm.weight')); // kept (CoFi), still hidden-sized
    assert.deepEqual(model.prunedHeads(), { 1: [0, 5], 2: [0, 1, 2, 3, 4, 5] });
  });

  test('GPT-2 and Llama: pruned heads, replaced / removed sub-blocks', () => {
    const g = new GPT2Model(gpt2Config({ vocab_size: 40, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 4 }));
    g.h[1]!.attn!.pruneHeads([2]);
    replaceMlp(g, 0, new Tiny(32));
    removeAttention(g, 0);
    const a = anatomy(g);
    checkConsistent(g, a);
    assert.equal(a.blocks[0]!.attention, null);
    assert.equal(a.blocks[0]!.mlp!.kind, 'custom');
    assert.deepEqual([a.blocks[1]!.attention!.numHeads, a.blocks[1]!.attention!.prunedHeads], [3, [2]]);

    const l = new LlamaModel(llamaConfig({ vocab_size: 40, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 16 }));
    replaceMlp(l, 1, null);
    removeAttention(l, 0);
    const b = anatomy(l);
    checkConsistent(l, b);
    assert.deepEqual([b.blocks[0]!.attention, b.blocks[0]!.mlp!.kind, b.blocks[1]!.mlp], [null, 'gated', null]);
    assert.equal(b.blocks[1]!.attention!.numKvHeads, 2);
  });

  test('unsupported models are refused', () => {
    expectThrows(() => anatomy(new Tiny(4)), 'anatomy: no description for Tiny');
  });
});
