// share.layers (ALBERT cross-layer sharing): groups from group_size / groups, the same Tensor objects in every
// layer of a group (LayerNorms per layer), mean / first init, gradient accumulation (the shared gradient is the sum
// of the layers' gradients; one SGD step moves every member identically), save/reload bit-exact with the ties
// restored and a smaller file, exact option errors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BertForSequenceClassification, GPT2LMHeadModel, Generator, SGD, Tensor, bertConfig, compress, fromPretrained, gpt2Config, manualSeed, noGrad, savePretrained } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { Conv1D, Linear, type LinearLike } from '../../src/nn/layers.ts';
import { modelSize } from '../../src/eval/size.ts';
import type { ModelInputs, ModelOutput } from '../../src/models/outputs.ts';
import { SharedConv1D, SharedLinear, layerGroups, shareLayersModel } from '../../src/compress/share/layers.ts';
import { tinyBert, tinyGpt2, tinyLlama } from '../harness/tiny-models.ts';
import { roundTrip } from '../harness/roundtrip.ts';

const { runRecipe } = compress;
type Fwd = Module & { forward(i: ModelInputs): ModelOutput };

/** BERT classifier of `layers` blocks (hidden 32, 4 heads, FFN 24), eval mode. */
function bert(layers: number, seed = 5): BertForSequenceClassification {
  manualSeed(seed);
  return new BertForSequenceClassification(bertConfig({ vocab_size: 50, hidden_size: 32, num_hidden_layers: layers, num_attention_heads: 4, intermediate_size: 24, max_position_embeddings: 16, num_labels: 3 })).eval();
}

const g0 = new Generator(17);
const ids = Tensor.randint(1, 40, [3, 6], { dtype: 'int32', generator: g0 });
const attn = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0]), { shape: [3, 6] });
const clsBatch = { inputIds: ids, attentionMask: attn, labels: Tensor.from(Int32Array.from([0, 2, 1])) };
const lmBatch = { inputIds: ids, labels: ids };

const BERT_SLOTS = ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense', 'intermediate.dense', 'output.dense'];
const lin = (m: Module, p: string) => m.getSubmodule(p) as LinearLike;
const vals = (t: Tensor) => noGrad(() => t.contiguous().toFloat32Array());

function fileBytes(m: Module): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'share-layers-'));
  try {
    savePretrained(m as never, dir);
    return fs.statSync(path.join(dir, 'model.safetensors')).size;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Run f and return the message of what it throws. */
function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('nothing was thrown');
}

describe('groups', () => {
  test('group_size, explicit groups (sorted, singletons dropped), default all', () => {
    assert.deepEqual(layerGroups({ group_size: 2, groups: null }, 5), [[0, 1], [2, 3]]);
    assert.deepEqual(layerGroups({ group_size: 3, groups: null }, 6), [[0, 1, 2], [3, 4, 5]]);
    assert.deepEqual(layerGroups({ group_size: null, groups: [[3, 1], [0], [2, 4]] }, 5), [[1, 3], [2, 4]]);
    assert.deepEqual(layerGroups({ group_size: null, groups: null }, 4), [[0, 1, 2, 3]]);
  });
});

describe('share.layers', () => {
  test('BERT, group_size 2 of 5 layers: the same tensors in a group, LayerNorms per layer, mean init, fewer parameters', () => {
    const m = bert(5);
    const orig = m.stateDict();
    const w = (l: number, s: string) => vals(orig.get(`bert.encoder.layer.${l}.${s}.weight`)!);
    const before = modelSize(m);
    const r = runRecipe(m, [{ method: 'share.layers', group_size: 2 }]).steps[0]!;
    assert.equal(r.groups, '0-1/2-3');
    assert.equal(r.shared_layers_per_block, 6);
    const per = 4 * (32 * 32 + 32) + (24 * 32 + 24) + (32 * 24 + 32);
    assert.equal(r.params_before, 4 * per);
    assert.equal(r.params_after, 2 * per);
    assert.equal(modelSize(m).parameters, before.parameters - 2 * per);
    for (const [a, b] of [[0, 1], [2, 3]] as const)
      for (const s of BERT_SLOTS) {
        const A = lin(m, `bert.encoder.layer.${a}.${s}`);
        const B = lin(m, `bert.encoder.layer.${b}.${s}`);
        assert.ok(A instanceof SharedLinear && B instanceof SharedLinear);
        assert.equal(A.owner, null);
        assert.equal((B as SharedLinear).owner, A);
        assert.equal(B.weight, A.weight, `${s}: layer ${b}'s weight is layer ${a}'s tensor`);
        assert.equal(B.bias, A.bias);
        const mean = w(a, s).map((x, i) => (x + w(b, s)[i]!) / 2);
        assert.deepEqual(vals(A.weight), Float32Array.from(mean));
      }
    assert.notEqual(lin(m, 'bert.encoder.layer.1.attention.self.query').weight, lin(m, 'bert.encoder.layer.2.attention.self.query').weight);
    assert.ok(!(lin(m, 'bert.encoder.layer.4.attention.self.query') instanceof SharedLinear), 'layer 4 is in no group');
    const ln = (l: number) => m.getSubmodule(`bert.encoder.layer.${l}.output.LayerNorm`) as Module & { weight: Tensor };
    assert.notEqual(ln(0).weight, ln(1).weight, 'LayerNorms stay per layer');
    // each shared tensor is one parameter, listed once, under the owner
    const names = m.namedParameters().map(([n]) => n);
    assert.ok(names.includes('bert.encoder.layer.0.attention.self.query.weight'));
    assert.ok(!names.includes('bert.encoder.layer.1.attention.self.query.weight'));
    assert.ok(!m.stateDictKeys().includes('bert.encoder.layer.1.intermediate.dense.bias'));
  });

  test("init 'first' keeps the lowest layer's weights; share 'attention' leaves the FFN alone", () => {
    const m = bert(3);
    const q2 = vals(lin(m, 'bert.encoder.layer.2.attention.self.query').weight);
    const q0 = vals(lin(m, 'bert.encoder.layer.0.attention.self.query').weight);
    const r = shareLayersModel(m, { groups: [[2, 0]], share: 'attention', init: 'first' });
    assert.deepEqual(r[0]!.layers, [0, 2]);
    assert.deepEqual(r[0]!.slots, BERT_SLOTS.slice(0, 4));
    assert.equal(r[0]!.weight_errors[0], 0);
    assert.ok(r[0]!.weight_errors[1]! > 0.5);
    const s2 = lin(m, 'bert.encoder.layer.2.attention.self.query');
    assert.deepEqual(vals(s2.weight), q0);
    assert.notDeepEqual(vals(s2.weight), q2);
    assert.ok(lin(m, 'bert.encoder.layer.2.intermediate.dense').constructor === Linear);
    assert.ok(lin(m, 'bert.encoder.layer.1.attention.self.query').constructor === Linear);
  });

  test('the shared gradient is the sum of the layers’ gradients; one SGD step moves every member identically', () => {
    const shared = bert(3, 9);
    shareLayersModel(shared, {});
    // the untied twin: the same values in separate tensors
    const twin = bert(3, 9);
    for (const l of [0, 1, 2]) for (const s of BERT_SLOTS) noGrad(() => lin(twin, `bert.encoder.layer.${l}.${s}`).weight.copy_(lin(shared, `bert.encoder.layer.0.${s}`).weight));
    for (const l of [0, 1, 2]) for (const s of BERT_SLOTS) noGrad(() => lin(twin, `bert.encoder.layer.${l}.${s}`).bias!.copy_(lin(shared, `bert.encoder.layer.0.${s}`).bias!));
    const y = noGrad(() => (shared as Fwd).forward(clsBatch).logits.toFloat32Array());
    assert.deepEqual(noGrad(() => (twin as Fwd).forward(clsBatch).logits.toFloat32Array()), y);
    (shared as Fwd).forward(clsBatch).loss!.backward();
    (twin as Fwd).forward(clsBatch).loss!.backward();
    for (const s of BERT_SLOTS) {
      const got = lin(shared, `bert.encoder.layer.0.${s}`).weight.grad!.toFloat32Array();
      const parts = [0, 1, 2].map((l) => lin(twin, `bert.encoder.layer.${l}.${s}`).weight.grad!.toFloat32Array());
      for (let i = 0; i < got.length; i++) {
        const want = parts[0]![i]! + parts[1]![i]! + parts[2]![i]!;
        assert.ok(Math.abs(got[i]! - want) <= 1e-6 + 1e-4 * Math.abs(want), `${s}[${i}]: ${got[i]} vs ${want}`);
      }
    }
    const before = BERT_SLOTS.map((s) => vals(lin(shared, `bert.encoder.layer.0.${s}`).weight));
    const grads = BERT_SLOTS.map((s) => lin(shared, `bert.encoder.layer.0.${s}`).weight.grad!.toFloat32Array());
    new SGD(shared.parameters(), { lr: 0.5 }).step();
    BERT_SLOTS.forEach((s, k) => {
      const w0 = vals(lin(shared, `bert.encoder.layer.0.${s}`).weight);
      assert.deepEqual(vals(lin(shared, `bert.encoder.layer.1.${s}`).weight), w0);
      assert.deepEqual(vals(lin(shared, `bert.encoder.layer.2.${s}`).weight), w0);
      for (let i = 0; i < w0.length; i++) assert.ok(Math.abs(w0[i]! - (before[k]![i]! - 0.5 * grads[k]![i]!)) < 1e-6, `${s}: stepped once with the summed gradient`);
    });
  });

  for (const [name, make, batch, slot] of [
    ['BERT', () => tinyBert(), clsBatch, 'bert.encoder.layer.1.attention.self.query'],
    ['GPT-2 (Conv1D, tied lm_head)', () => tinyGpt2(), lmBatch, 'transformer.h.1.attn.c_attn'],
    ['Llama (gated MLP, no biases)', () => tinyLlama(), lmBatch, 'model.layers.1.mlp.gate_proj'],
  ] as const)
    test(`${name}: save/reload bit-exact, ties restored, each shared tensor stored once`, () => {
      const m = make() as unknown as Fwd;
      const fileBefore = fileBytes(m);
      const r = runRecipe(m, [{ method: 'share.layers' }]).steps[0]!;
      const y0 = noGrad(() => m.forward(batch as ModelInputs).logits.toFloat32Array());
      const fileAfter = fileBytes(m);
      assert.ok(fileBefore - fileAfter >= 4 * (r.params_before as number - (r.params_after as number)), `file ${fileBefore} → ${fileAfter}`);
      const { loaded, config } = roundTrip(m);
      assert.deepEqual(noGrad(() => loaded.forward(batch as ModelInputs).logits.toFloat32Array()), y0);
      const member = lin(loaded, slot);
      const owner = lin(loaded, slot.replace('.1.', '.0.'));
      assert.ok(member instanceof SharedLinear || member instanceof SharedConv1D);
      assert.equal(member.weight, owner.weight, 'the reloaded member uses the owner’s tensor');
      assert.equal(member.bias, owner.bias);
      assert.equal(modelSize(loaded).parameters, modelSize(m).parameters);
      const mods = (config.compression_config as { modules: Record<string, Record<string, unknown>> }).modules;
      const type = member instanceof SharedConv1D ? 'shared_conv1d' : 'shared_linear';
      const shape = { in_features: member.inFeatures, out_features: member.outFeatures, bias: member.bias !== null };
      assert.deepEqual(mods[slot.replace('.1.', '.0.')], { type, ...shape, group: slot.replace('.1.', '.0.'), owner: true, members: 1 });
      assert.deepEqual(mods[slot], { type, ...shape, group: slot.replace('.1.', '.0.'), owner: false });
      // saving the reloaded model again writes the same description
      assert.deepEqual(roundTrip(loaded).config.compression_config, config.compression_config);
      if (m instanceof GPT2LMHeadModel) assert.equal((loaded as unknown as GPT2LMHeadModel).lm_head.weight, (loaded as unknown as GPT2LMHeadModel).transformer.wte.weight);
    });

  test('a member whose owner is not in the checkpoint is refused, naming the entry', () => {
    const m = tinyBert();
    shareLayersModel(m, { share: 'attention' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'share-layers-'));
    try {
      savePretrained(m as never, dir);
      const cfgPath = path.join(dir, 'config.json');
      const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
      delete cfg.compression_config.modules['bert.encoder.layer.0.attention.self.key'];
      fs.writeFileSync(cfgPath, JSON.stringify(cfg));
      assert.match(
        messageOf(() => fromPretrained(dir)),
        /compression_config\.modules\['bert\.encoder\.layer\.1\.attention\.self\.key'\]\.group: its owner 'bert\.encoder\.layer\.0\.attention\.self\.key' has not been built before it/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('GPT-2 from a 4-layer config, groups [[0, 2], [1, 3]], ffn only: Conv1D members tied', () => {
    manualSeed(2);
    const m = new GPT2LMHeadModel(gpt2Config({ vocab_size: 40, n_positions: 16, n_embd: 32, n_layer: 4, n_head: 4, n_inner: 24, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 })).eval();
    const r = runRecipe(m, [{ method: 'share.layers', groups: [[0, 2], [1, 3]], share: 'ffn' }]).steps[0]!;
    assert.equal(r.groups, '0-2/1-3');
    assert.equal(lin(m, 'transformer.h.2.mlp.c_fc').weight, lin(m, 'transformer.h.0.mlp.c_fc').weight);
    assert.equal(lin(m, 'transformer.h.3.mlp.c_proj').weight, lin(m, 'transformer.h.1.mlp.c_proj').weight);
    assert.ok(lin(m, 'transformer.h.2.attn.c_attn').constructor === Conv1D);
    const y0 = noGrad(() => (m as unknown as Fwd).forward(lmBatch).logits.toFloat32Array());
    const { loaded } = roundTrip(m);
    assert.deepEqual(noGrad(() => (loaded as unknown as Fwd).forward(lmBatch).logits.toFloat32Array()), y0);
  });

  test('option errors: exact messages, nothing changed', () => {
    const m = tinyBert();
    const run = (step: Record<string, unknown>) => () => runRecipe(m, [{ method: 'share.layers', ...step }]);
    assert.equal(messageOf(run({ groups: [[0, 2]] })), "share.layers: option 'groups': layer 2 (group 0) is out of range: the model has 2 layers, 0..1");
    assert.equal(messageOf(run({ groups: [[0, 1], [1]] })), "share.layers: option 'groups': layer 1 is in group 0 and group 1");
    assert.equal(messageOf(run({ groups: [0, 1] })), "share.layers: option 'groups' must be a list of non-empty lists of layer indices, e.g. [[0, 1, 2], [3, 4, 5]], got [0,1]");
    assert.equal(messageOf(run({ share: 'mlp' })), "recipe: step 1 (share.layers): option 'share' expects one of 'attention', 'ffn', 'all', got \"mlp\"");
    assert.equal(messageOf(run({ init: 'last' })), "recipe: step 1 (share.layers): option 'init' expects one of 'mean', 'first', got \"last\"");
    assert.equal(messageOf(run({ group_size: 2, groups: [[0, 1]] })), "share.layers: options 'group_size' and 'groups' both set the groups: give one");
    assert.equal(messageOf(run({ group_size: 1 })), "share.layers: option 'group_size' must be an integer >= 2, got 1");
    assert.equal(messageOf(run({ group_size: 3 })), "share.layers: option 'group_size' 3 is larger than the model's 2 layers");
    // called directly, the method's own checks say the same
    assert.equal(messageOf(() => shareLayersModel(m, { share: 'mlp' as never })), "option 'share' must be one of attention, ffn, all, got \"mlp\"");
    assert.ok(lin(m, 'bert.encoder.layer.1.attention.self.query').constructor === Linear, 'nothing changed');
  });
});
