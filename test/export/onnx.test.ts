/**
 * ONNX export checked by onnxruntime-node: the exported graph's logits against Shrink's own forward, on tiny seeded
 * models (plain, pruned, low-rank, quantized, clustered), with padded attention masks, and on the bundled
 * stories260K and bert-teacher-sst2 checkpoints. Tolerances: fp32 1e-4 absolute (measured ≤ ~2e-6), fp16 weights
 * 2e-2 relative to the logit range (a float16 rounding of every weight).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { tinyBert, tinyGpt2, tinyLlama } from '../harness/tiny-models.ts';
import { BertForMaskedLM, BertModel, bertConfig, manualSeed, fromPretrained } from '../../src/index.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { noGrad } from '../../src/tensor/autograd.ts';
import type { Module } from '../../src/nn/module.ts';
import { Linear, sliceLinear } from '../../src/nn/layers.ts';
import { exportOnnx } from '../../src/export/onnx.ts';
import { exportFolder } from '../../src/export/index.ts';
import { decodeModel } from '../../src/export/onnx-proto.ts';
import { LowRankLinear } from '../../src/compress/share/lowrank.ts';
import { ClusteredLinear } from '../../src/compress/share/clustered.ts';
import { quantizeModel } from '../../src/compress/quant/apply.ts';
import { buildProgram } from '../../src/cli/main.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const B = 3;
const T = 7;

/** ids, and a mask with right padding in row 1 and left padding in row 2. */
function batch(vocab: number, b = B, t = T): { ids: Int32Array; mask: Int32Array } {
  const ids = Int32Array.from({ length: b * t }, (_, i) => (i * 7 + 3) % vocab);
  const mask = Int32Array.from({ length: b * t }, (_, i) => {
    const [r, c] = [Math.floor(i / t), i % t];
    return r === 1 && c >= t - 3 ? 0 : r === 2 && c < 2 ? 0 : 1;
  });
  return { ids, mask };
}

const i64 = (a: ArrayLike<number>, dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(Array.from(a), (v) => BigInt(v)), dims);

async function runOnnx(bytes: Uint8Array | string, ids: Int32Array, mask: Int32Array, b: number, t: number, output = 'logits'): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes as Uint8Array);
  const feeds: Record<string, ort.Tensor> = { input_ids: i64(ids, [b, t]), attention_mask: i64(mask, [b, t]) };
  if (s.inputNames.includes('token_type_ids')) feeds.token_type_ids = i64(new Int32Array(b * t), [b, t]);
  if (s.inputNames.includes('position_ids')) feeds.position_ids = i64(Array.from({ length: b * t }, (_, i) => i % t), [b, t]);
  const out = await s.run(feeds);
  return out[output]!.data as Float32Array;
}

function shrinkLogits(m: Module, ids: Int32Array, mask: Int32Array, b: number, t: number, output: 'logits' | 'lastHiddenState' = 'logits'): Float32Array {
  return noGrad(() => {
    const r = (m as unknown as { forward(i: unknown): Record<string, Tensor> }).forward({ inputIds: new Tensor(ids, [b, t], 'int32'), attentionMask: new Tensor(mask, [b, t], 'int32') });
    return r[output]!.toFloat32Array();
  });
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'output sizes differ');
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  assert.ok(Number.isFinite(d), 'non-finite output');
  return d;
}

async function checkParity(name: string, m: Module, vocab: number, tol = 1e-4, dtype: 'fp32' | 'fp16' = 'fp32'): Promise<number> {
  const { ids, mask } = batch(vocab);
  const r = exportOnnx(m, { dtype });
  const got = await runOnnx(r.bytes, ids, mask, B, T, r.outputs[0]);
  const want = shrinkLogits(m, ids, mask, B, T, r.outputs[0] === 'logits' ? 'logits' : 'lastHiddenState');
  const d = maxDiff(got, want);
  let range = 0;
  for (const v of want) range = Math.max(range, Math.abs(v));
  const bound = dtype === 'fp16' ? tol * range : tol;
  assert.ok(d <= bound, `${name}: max |onnx − shrink| = ${d} > ${bound}`);
  console.log(`${name} (${dtype}): max |onnx − shrink| = ${d.toExponential(2)} (logit range ±${range.toFixed(2)})`);
  return d;
}

test('onnxruntime reproduces Shrink logits: BERT classifier, MLM, encoder; GPT-2; Llama (GQA), with padding', async () => {
  await checkParity('BertForSequenceClassification', tinyBert(), 50);
  manualSeed(11);
  const cfg = { vocab_size: 50, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 24, max_position_embeddings: 16, hidden_act: 'gelu_new' };
  await checkParity('BertForMaskedLM (gelu_new)', new BertForMaskedLM(bertConfig(cfg)).eval(), 50);
  await checkParity('BertModel', new BertModel(bertConfig(cfg)).eval(), 50);
  await checkParity('GPT2LMHeadModel', tinyGpt2(), 40);
  await checkParity('LlamaForCausalLM', tinyLlama(), 40);
});

test('pruned models export their live structure: heads per layer, FFN widths, pruned-away sub-blocks', async () => {
  const bert = tinyBert();
  bert.pruneHeads({ 0: [1, 2], 1: [0, 1, 2, 3] }); // layer 1's attention pruned away entirely
  const l0 = bert.bert.encoder.layer[0]!;
  l0.intermediate!.dense = sliceLinear(l0.intermediate!.dense, { outIdx: [0, 3, 5, 9, 10] });
  l0.output.dense = sliceLinear(l0.output.dense!, { inIdx: [0, 3, 5, 9, 10] });
  bert.bert.encoder.layer[1]!.setMlp(null);
  await checkParity('pruned BERT', bert, 50);

  const gpt = tinyGpt2();
  gpt.transformer.h[0]!.attn!.pruneHeads([0, 3]);
  gpt.transformer.h[1]!.mlp = null;
  await checkParity('pruned GPT-2', gpt, 40);

  const llama = tinyLlama();
  llama.model.layers[0]!.self_attn = null;
  const mlp = llama.model.layers[1]!.mlp as unknown as { gate_proj: Linear; up_proj: Linear; down_proj: Linear };
  const keep = [1, 2, 7, 11, 19];
  mlp.gate_proj = sliceLinear(mlp.gate_proj, { outIdx: keep });
  mlp.up_proj = sliceLinear(mlp.up_proj, { outIdx: keep });
  mlp.down_proj = sliceLinear(mlp.down_proj, { inIdx: keep });
  await checkParity('pruned Llama', llama, 40);
});

test('low-rank layers export as two MatMuls, clustered and quantized layers as dense fp32', async () => {
  const bert = tinyBert();
  const q = bert.bert.encoder.layer[0]!.attention!.self!.query;
  const r = 5;
  const lr = LowRankLinear.fromFactors(Tensor.randn([q.outFeatures, r]), Tensor.randn([r, q.inFeatures]).mul(0.1), q.bias);
  bert.bert.encoder.layer[0]!.attention!.self!.query = lr as unknown as Linear;
  const d = bert.bert.encoder.layer[1]!.intermediate!.dense;
  const codes = Array.from({ length: d.outFeatures * d.inFeatures }, (_, i) => (i * 5) % 16);
  const cb = Array.from({ length: 16 }, (_, i) => (i - 8) / 20);
  bert.bert.encoder.layer[1]!.intermediate!.dense = ClusteredLinear.fromCodes(cb, codes, [d.outFeatures, d.inFeatures], 4, d.bias) as unknown as Linear;
  const res = exportOnnx(bert);
  assert.ok(res.conversions.some((c) => c.startsWith('LowRankLinear')), res.conversions.join('; '));
  assert.ok(res.conversions.some((c) => c.startsWith('ClusteredLinear')), res.conversions.join('; '));
  const matmuls = (decodeModel(res.bytes).graph.node as { op_type: string }[]).filter((n) => n.op_type === 'MatMul').length;
  const plain = (decodeModel(exportOnnx(tinyBert()).bytes).graph.node as { op_type: string }[]).filter((n) => n.op_type === 'MatMul').length;
  assert.equal(matmuls, plain + 1, 'the low-rank layer is two MatMuls');
  await checkParity('low-rank + clustered BERT', bert, 50);

  for (const scheme of ['int8', 'int4', 'int8-dynamic'] as const) {
    const m = tinyLlama();
    quantizeModel(m, { scheme, ...(scheme === 'int4' ? { granularity: 'group' as const, groupSize: 16 } : {}) });
    const e = exportOnnx(m);
    assert.ok(e.conversions.some((c) => c.includes(`QuantLinear(${scheme})`)), e.conversions.join('; '));
    // int8-dynamic: Shrink quantizes activations per token at run time; the fp32 graph multiplies by the dequantized weights
    await checkParity(`Llama ${scheme} → dense fp32`, m, 40, scheme === 'int8-dynamic' ? 5e-2 : 1e-4);
  }
});

test('fp16 weights: half the file, logits within 2e-2 of the logit range', async () => {
  const m = tinyGpt2();
  const a = exportOnnx(m);
  const h = exportOnnx(m, { dtype: 'fp16' });
  assert.ok(h.weightBytes < 0.55 * a.weightBytes, `${h.weightBytes} vs ${a.weightBytes}`);
  await checkParity('GPT-2', m, 40, 2e-2, 'fp16');
  await checkParity('Llama', tinyLlama(), 40, 2e-2, 'fp16');
});

test('the exported file parses back as an opset-17 ONNX model with HF input names', () => {
  const r = exportOnnx(tinyBert());
  const p = decodeModel(r.bytes);
  assert.equal(p.ir_version, 8);
  assert.deepEqual(p.opset_import.map((o: { domain?: string; version: number }) => [o.domain ?? '', o.version]), [['', 17]]);
  assert.deepEqual(p.graph.input.map((i: { name: string }) => i.name), ['input_ids', 'attention_mask', 'token_type_ids']);
  assert.deepEqual(p.graph.output.map((i: { name: string }) => i.name), ['logits']);
  assert.ok(p.graph.initializer.some((t: { name: string }) => t.name === 'bert.embeddings.word_embeddings.weight'));
});

for (const [name, dir, vocab] of [['stories260K', 'data/models/stories260K', 512], ['bert-teacher-sst2', 'data/models/bert-teacher-sst2', 16626]] as const) {
  test(`${name}: exported folder (transformers.js layout) runs in onnxruntime with Shrink's logits`, async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-export-'));
    try {
      const out = path.join(tmp, 'onnx-out');
      const r = exportFolder(path.join(ROOT, dir), out, { format: 'onnx' });
      assert.ok(fs.existsSync(path.join(out, 'onnx', 'model.onnx')));
      const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
      assert.equal(cfg.model_type, name === 'stories260K' ? 'llama' : 'bert');
      assert.ok(r.tokenizerFiles.length > 0, 'tokenizer files copied');
      const model = fromPretrained(path.join(ROOT, dir));
      const [b, t] = [2, 16];
      const { ids, mask } = batch(vocab, b, t);
      ids[0] = name === 'stories260K' ? 1 : 2;
      const got = await runOnnx(path.join(out, 'onnx', 'model.onnx'), ids, mask, b, t);
      const d = maxDiff(got, shrinkLogits(model, ids, mask, b, t));
      console.log(`${name}: max |onnx − shrink| = ${d.toExponential(2)} over ${got.length} logits`);
      assert.ok(d <= 1e-4, `${name}: ${d}`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}

test('CLI: shrink export writes the folder, refuses a non-empty output without --force, names bad flags', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-export-cli-'));
  const run = async (args: string[]) => {
    let s = '';
    await buildProgram((x) => (s += x)).parseAsync(args, { from: 'user' });
    return s;
  };
  try {
    const out = path.join(tmp, 'o');
    const j = JSON.parse(await run(['export', path.join(ROOT, 'data/models/stories260K'), '-o', out, '--json']));
    assert.equal(j.architecture, 'LlamaForCausalLM');
    assert.ok(fs.existsSync(path.join(out, 'onnx', 'model.onnx')));
    await assert.rejects(run(['export', path.join(ROOT, 'data/models/stories260K'), '-o', out]), /exists and is not empty \(use --force/);
    await run(['export', path.join(ROOT, 'data/models/stories260K'), '-o', out, '--force', '--dtype', 'fp16', '--json']);
    assert.ok(fs.existsSync(path.join(out, 'onnx', 'model_fp16.onnx')));
    assert.ok(!fs.existsSync(path.join(out, 'onnx', 'model.onnx')), 'replaced as a whole');
    await assert.rejects(run(['export', path.join(ROOT, 'data/models/stories260K'), '-o', path.join(tmp, 'p'), '--dtype', 'q8_0']), /--dtype for --format onnx must be one of fp32, fp16, int8, got 'q8_0'/);
    await assert.rejects(run(['export', path.join(tmp, 'nothing'), '-o', path.join(tmp, 'q')]), /nothing: no config\.json/);
    assert.ok(!fs.existsSync(path.join(tmp, 'q')));
    assert.deepEqual(fs.readdirSync(tmp).sort(), ['o'], 'no temp folders left');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
