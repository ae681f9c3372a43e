// One checkpoint format for compressed models: savePretrained records what the plain config cannot build
// (compression_config), HF-expressible structure stays in HF's own fields, and fromPretrained rebuilds it exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BertForSequenceClassification, GPT2LMHeadModel, Linear, Tensor, bertConfig, compress, fromPretrained, gpt2Config, manualSeed, noGrad, savePretrained,
} from '../../src/index.ts';
import { sliceLinear } from '../../src/nn/layers.ts';
import type { Module } from '../../src/nn/module.ts';
import { modelSize } from '../../src/eval/size.ts';
import { expectThrows } from '../harness/expect.ts';
import { roundTrip } from '../harness/roundtrip.ts';

function tinyBert(): BertForSequenceClassification {
  manualSeed(5);
  const m = new BertForSequenceClassification(bertConfig({ vocab_size: 50, hidden_size: 32, num_hidden_layers: 3, num_attention_heads: 4, intermediate_size: 48, max_position_embeddings: 16, num_labels: 2 }));
  return m.eval();
}

const ids = Tensor.from(Int32Array.from([2, 7, 9, 11, 3, 4, 5, 1]), { shape: [2, 4] });
const mask = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 0]), { shape: [2, 4] });
const logitsOf = (m: Module) => Array.from(noGrad(() => (m as BertForSequenceClassification).forward({ inputIds: ids, attentionMask: mask }).logits).data);


/** Keep FFN units `keep` of BERT layer i (rows of intermediate.dense, columns of output.dense). */
function pruneFfn(m: BertForSequenceClassification, i: number, keep: number[]): void {
  const layer = m.bert.encoder.layer[i]!;
  layer.intermediate!.dense = sliceLinear(layer.intermediate!.dense, { outIdx: keep });
  layer.output.dense = sliceLinear(layer.output.dense!, { inIdx: keep });
}

test('pruned heads and a uniform pruned FFN width are written as HF fields (pruned_heads, intermediate_size): a plain HF folder', () => {
  const m = tinyBert();
  m.bert.pruneHeads({ 0: [1, 3], 2: [0] });
  for (let i = 0; i < 3; i++) pruneFfn(m, i, [0, 2, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
  const before = logitsOf(m);
  const { loaded, config } = roundTrip(m);
  assert.deepEqual(config.pruned_heads, { 0: [1, 3], 2: [0] });
  assert.equal(config.intermediate_size, 12);
  assert.equal(config.compression_config, undefined, 'nothing beyond HF fields');
  assert.deepEqual(logitsOf(loaded), before);
  assert.equal(loaded.bert.encoder.layer[0]!.attention!.self!.numHeads, 2);
  assert.deepEqual(loaded.bert.encoder.layer[0]!.attention!.self!.query.weight.shape, [16, 32]);
  assert.equal(modelSize(loaded).parameters, modelSize(m).parameters);
});

test('per-layer FFN widths, a pruned-away attention, a pruned MLP and a replaced MLP go into compression_config and reload exactly', () => {
  const m = tinyBert();
  m.bert.pruneHeads({ 1: [2] });
  pruneFfn(m, 0, [1, 2, 3, 4, 5]);
  pruneFfn(m, 1, [0, 10, 20, 30, 40, 41, 42]);
  m.bert.encoder.layer[1]!.attention = null;
  m.bert.encoder.layer[2]!.setMlp(new Linear(32, 32));
  const before = logitsOf(m);
  const { loaded, config } = roundTrip(m);
  const cc = config.compression_config as compress.CompressionConfig;
  assert.equal(cc.format_version, 1);
  assert.deepEqual(cc.modules['bert.encoder.layer.0.intermediate.dense'], { type: 'linear', in_features: 32, out_features: 5, bias: true });
  assert.deepEqual(cc.modules['bert.encoder.layer.0.output.dense'], { type: 'linear', in_features: 5, out_features: 32, bias: true });
  assert.deepEqual(cc.modules['bert.encoder.layer.1.attention'], { type: 'none' });
  assert.deepEqual(cc.modules['bert.encoder.layer.2.mlp'], { type: 'linear', in_features: 32, out_features: 32, bias: true });
  assert.deepEqual(cc.modules['bert.encoder.layer.2.intermediate'], { type: 'none' });
  assert.deepEqual(cc.modules['bert.encoder.layer.2.output.dense'], { type: 'none' });
  assert.equal(config.pruned_heads, undefined, 'the only pruned heads were in the attention that is gone');
  assert.deepEqual(logitsOf(loaded), before);
  assert.equal(loaded.bert.encoder.layer[1]!.attention, null);
  assert.ok(loaded.bert.encoder.layer[2]!.mlp instanceof Linear);
  // gradients flow through the rebuilt structure
  loaded.train();
  const loss = loaded.forward({ inputIds: ids, attentionMask: mask, labels: Tensor.from(Int32Array.from([0, 1])) }).loss!;
  loss.backward();
  assert.ok(loaded.bert.encoder.layer[0]!.intermediate!.dense.weight.grad, 'grad reaches the pruned FFN');
});

test('GPT-2 with pruned heads (fused c_attn) saves its per-layer head counts and reloads exactly', () => {
  manualSeed(2);
  const m = new GPT2LMHeadModel(gpt2Config({ vocab_size: 40, n_positions: 16, n_embd: 24, n_layer: 2, n_head: 3 })).eval();
  m.transformer.h[1]!.attn!.pruneHeads([0]);
  const x = Tensor.from(Int32Array.from([1, 5, 9, 3]), { shape: [1, 4] });
  const before = Array.from(noGrad(() => m.forward({ inputIds: x }).logits).data);
  const { loaded, config } = roundTrip(m);
  const cc = config.compression_config as compress.CompressionConfig;
  assert.deepEqual(cc.modules['transformer.h.1.attn'], { type: 'fields', numHeads: 2 });
  assert.deepEqual(cc.modules['transformer.h.1.attn.c_attn'], { type: 'conv1d', in_features: 24, out_features: 48, bias: true });
  assert.deepEqual(Array.from(noGrad(() => loaded.forward({ inputIds: x }).logits).data), before);
});

test('a pruned-then-quantized layer reloads at its pruned shape with its integer codes', () => {
  const m = tinyBert();
  pruneFfn(m, 0, [0, 1, 2, 3, 4, 5, 6, 7]);
  compress.runRecipe(m, [{ method: 'quant.rtn', scheme: 'int8-dynamic', targets: ['bert.encoder.layer.0.**'] }]);
  const before = logitsOf(m);
  const { loaded, config } = roundTrip(m);
  assert.ok(config.quantization_config, 'quantization_config written');
  assert.deepEqual((config.quantization_config as { modules: Record<string, { shape: number[] }> }).modules['bert.encoder.layer.0.intermediate.dense']!.shape, [8, 32]);
  assert.deepEqual(logitsOf(loaded), before);
  assert.deepEqual(modelSize(loaded), modelSize(m));
});

test('compression_config errors name the folder, the entry and what was expected', () => {
  const m = tinyBert();
  pruneFfn(m, 0, [0, 1]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'structure-bad-'));
  try {
    savePretrained(m as never, dir);
    const file = path.join(dir, 'config.json');
    const good = JSON.parse(fs.readFileSync(file, 'utf8'));
    const write = (cc: unknown) => fs.writeFileSync(file, JSON.stringify({ ...good, compression_config: cc }));
    write({ format_version: 1, modules: { 'bert.encoder.layer.0.intermediate.dense': { type: 'lstm' } } });
    expectThrows(() => fromPretrained(dir), `${dir}: config.json compression_config.modules['bert.encoder.layer.0.intermediate.dense'].type: unknown module type 'lstm' (known: none, fields,`);
    write({ format_version: 1, modules: { 'bert.encoder.layer.0.intermediate.dense': { type: 'linear', in_features: 32, out_features: 0 } } });
    expectThrows(() => fromPretrained(dir), `compression_config.modules['bert.encoder.layer.0.intermediate.dense'].out_features: expected an integer >= 1, got 0`);
    write({ format_version: 7, modules: {} });
    expectThrows(() => fromPretrained(dir), `${dir}: config.json compression_config.format_version 7 is not supported (this Shrink reads 1)`);
    write({ format_version: 1, modules: { 'bert.encoder.layer.9.attention': { type: 'none' } } });
    expectThrows(() => fromPretrained(dir), `${dir}: config.json compression_config.modules['bert.encoder.layer.9.attention']: BertForSequenceClassification has no 'bert.encoder.layer.9'`);
    // without its structure entries the weights no longer fit: the error names the folder
    write({ format_version: 1, modules: {} });
    expectThrows(() => fromPretrained(dir), `${dir}: the weights do not fit config.json: loadStateDict(BertForSequenceClassification): wrong shapes (3): bert.encoder.layer.0.intermediate.dense.weight: checkpoint [2,32], model [48,32]`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an unregistered module kind cannot be saved silently', () => {
  const m = tinyBert();
  class Mystery extends Linear {}
  m.bert.encoder.layer[0]!.setMlp(new Mystery(32, 32));
  // a subclass of a registered kind is described as that kind, so it reloads as a Linear
  const { loaded } = roundTrip(m);
  assert.ok(loaded.bert.encoder.layer[0]!.mlp instanceof Linear);
  class Opaque extends (Object.getPrototypeOf(Linear) as typeof Module) {
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  m.bert.encoder.layer[0]!.setMlp(new (Opaque as unknown as new () => Linear)());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'structure-opaque-'));
  try {
    expectThrows(() => savePretrained(m as never, dir), "cannot save the model: module 'bert.encoder.layer.0.mlp' (Opaque) differs from what config.json builds and its class is not registered with registerModuleType");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
