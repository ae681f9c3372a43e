/**
 * int8 ONNX export of int8-dynamic models: DynamicQuantizeLinear + MatMulInteger, or QDQ. ONNX measures one
 * activation (scale, zero point) per tensor (uint8) where Shrink measures one per token, so logits agree within the
 * activation rounding, not 1e-4: checked against Shrink at 5 % of the logit range. Also prints, once, how fast
 * onnxruntime runs fp32, MatMulInteger and QDQ graphs of the same BERT (measurement only, not asserted).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { BertForSequenceClassification, bertConfig, manualSeed } from '../../src/index.ts';
import { tinyLlama } from '../harness/tiny-models.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { noGrad } from '../../src/tensor/autograd.ts';
import { exportOnnx } from '../../src/export/onnx.ts';
import { decodeModel } from '../../src/export/onnx-proto.ts';
import { quantizeModel } from '../../src/compress/quant/apply.ts';

const i64 = (a: ArrayLike<number>, dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(Array.from(a), (v) => BigInt(v)), dims);

function feeds(s: ort.InferenceSession, ids: Int32Array, mask: Int32Array, b: number, t: number): Record<string, ort.Tensor> {
  const f: Record<string, ort.Tensor> = { input_ids: i64(ids, [b, t]), attention_mask: i64(mask, [b, t]) };
  if (s.inputNames.includes('token_type_ids')) f.token_type_ids = i64(new Int32Array(b * t), [b, t]);
  if (s.inputNames.includes('position_ids')) f.position_ids = i64(Array.from({ length: b * t }, (_, i) => i % t), [b, t]);
  return f;
}

test('int8-dynamic Llama → MatMulInteger and QDQ graphs: integer ops present, logits near Shrink\'s', async () => {
  const m = tinyLlama();
  quantizeModel(m, { scheme: 'int8-dynamic' });
  const [b, t] = [2, 6];
  const ids = Int32Array.from({ length: b * t }, (_, i) => (i * 5 + 1) % 40);
  const mask = Int32Array.from({ length: b * t }, (_, i) => (i >= t && i % t < 2 ? 0 : 1));
  const want = noGrad(() => m.forward({ inputIds: new Tensor(ids, [b, t], 'int32'), attentionMask: new Tensor(mask, [b, t], 'int32') }).logits.toFloat32Array());
  let range = 0;
  for (const v of want) range = Math.max(range, Math.abs(v));
  for (const mode of ['matmulinteger', 'qdq'] as const) {
    const r = exportOnnx(m, { dtype: 'int8', int8Mode: mode });
    const ops = new Set((decodeModel(r.bytes).graph.node as { op_type: string }[]).map((n) => n.op_type));
    assert.ok(ops.has('DynamicQuantizeLinear'));
    assert.ok(mode === 'matmulinteger' ? ops.has('MatMulInteger') : ops.has('DequantizeLinear'), [...ops].join());
    const s = await ort.InferenceSession.create(r.bytes);
    const got = (await s.run(feeds(s, ids, mask, b, t))).logits!.data as Float32Array;
    let d = 0;
    for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i]! - want[i]!));
    console.log(`int8 ${mode}: max |onnx − shrink| = ${d.toExponential(2)} (logit range ±${range.toFixed(2)})`);
    assert.ok(d <= 0.05 * range, `${mode}: ${d}`);
  }
});

test('onnxruntime speed: fp32 vs int8 MatMulInteger vs int8 QDQ (measured once, printed)', async () => {
  manualSeed(1);
  const m = new BertForSequenceClassification(bertConfig({ vocab_size: 1000, hidden_size: 384, num_hidden_layers: 4, num_attention_heads: 6, intermediate_size: 1536, max_position_embeddings: 128 })).eval();
  const fp32 = exportOnnx(m).bytes;
  quantizeModel(m, { scheme: 'int8-dynamic', embeddings: false });
  const graphs = { fp32, 'int8 MatMulInteger': exportOnnx(m, { dtype: 'int8', int8Mode: 'matmulinteger' }).bytes, 'int8 QDQ': exportOnnx(m, { dtype: 'int8', int8Mode: 'qdq' }).bytes };
  const [b, t] = [8, 128];
  const ids = Int32Array.from({ length: b * t }, (_, i) => (i * 13 + 7) % 1000);
  const mask = new Int32Array(b * t).fill(1);
  const ms: Record<string, number> = {};
  for (const [name, bytes] of Object.entries(graphs)) {
    const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    const f = feeds(s, ids, mask, b, t);
    await s.run(f);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await s.run(f);
      times.push(performance.now() - t0);
    }
    ms[name] = times.sort((x, y) => x - y)[2]!;
  }
  console.log(`onnxruntime ${ort.env.versions.common}, 1 thread, BERT 4×384 (FFN 1536), batch ${b}×${t}: ${Object.entries(ms).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')}`);
  for (const v of Object.values(ms)) assert.ok(v > 0);
});
