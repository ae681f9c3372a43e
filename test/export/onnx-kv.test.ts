/**
 * ONNX export with past key/values (`kvCache`, Optimum's "with past" decoder that transformers.js's generate() runs),
 * checked in onnxruntime-node against Shrink's forward: the whole sequence with an empty past (length 0); then
 * incremental decoding, one token per call with the returned presents fed back as the past, where every step's
 * logits must equal Shrink's full forward over the whole sequence at that position (1e-4); the present shapes; and
 * greedy generation through the ONNX loop against Shrink's generate() on stories260K.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { tinyGpt2, tinyLlama } from '../harness/tiny-models.ts';
import { fromPretrained } from '../../src/index.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { noGrad } from '../../src/tensor/autograd.ts';
import type { Module } from '../../src/nn/module.ts';
import { sliceLinear, type Linear } from '../../src/nn/layers.ts';
import { exportOnnx } from '../../src/export/onnx.ts';
import { exportFolder } from '../../src/export/index.ts';
import { decodeModel } from '../../src/export/onnx-proto.ts';
import { generate } from '../../src/models/generation.ts';
import { loadTokenizer } from '../../src/tokenizers/index.ts';
import { buildProgram } from '../../src/cli/main.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const i64 = (a: ArrayLike<number>, dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(Array.from(a), (v) => BigInt(v)), dims);

/** [batch, kv heads, head_dim] of each past input, read from the session's input metadata. */
function pastShapes(s: ort.InferenceSession): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const meta of s.inputMetadata) {
    if (!meta.name.startsWith('past_key_values.')) continue;
    assert.ok(meta.isTensor);
    m.set(meta.name, meta.shape as number[]);
  }
  return m;
}

/** An empty past (sequence length 0) for every past input, as transformers.js builds it on the first step. */
function emptyPast(s: ort.InferenceSession, b: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, shape] of pastShapes(s)) {
    assert.equal(shape[0], 'batch_size');
    assert.equal(shape[2], 'past_sequence_length');
    feeds[name] = new ort.Tensor('float32', new Float32Array(0), [b, shape[1] as number, 0, shape[3] as number]);
  }
  return feeds;
}

function pastFrom(out: ort.InferenceSession.OnnxValueMapType): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(out)) if (k.startsWith('present.')) feeds[k.replace(/^present\./, 'past_key_values.')] = v as ort.Tensor;
  return feeds;
}

function shrinkLogits(m: Module, ids: number[], mask: number[], b: number, t: number): Float32Array {
  return noGrad(() => {
    const r = (m as unknown as { forward(i: unknown): { logits: Tensor } }).forward({ inputIds: new Tensor(Int32Array.from(ids), [b, t], 'int32'), attentionMask: new Tensor(Int32Array.from(mask), [b, t], 'int32') });
    return r.logits.toFloat32Array();
  });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'output sizes differ');
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  assert.ok(Number.isFinite(d), 'non-finite output');
  return d;
}

/**
 * `model` exported with kvCache: (a) prompt with an empty past vs Shrink's forward; (b) `steps` single-token calls
 * with the presents fed back, each vs Shrink's full forward over the whole sequence; (c) present shapes. Row 1 of
 * the batch is left-padded. Returns the largest difference.
 */
async function checkIncremental(name: string, model: Module, vocab: number, layers: { layer: number; heads: number; hd: number }[], steps = 5): Promise<number> {
  const r = exportOnnx(model, { kvCache: true });
  assert.deepEqual(r.inputs, ['input_ids', 'attention_mask', 'position_ids', ...layers.flatMap(({ layer }) => [`past_key_values.${layer}.key`, `past_key_values.${layer}.value`])]);
  assert.deepEqual(r.outputs, ['logits', ...layers.flatMap(({ layer }) => [`present.${layer}.key`, `present.${layer}.value`])]);
  const s = await ort.InferenceSession.create(r.bytes);
  const [B, P, V] = [2, 4, vocab];
  const total = P + steps;
  const all = Array.from({ length: B * total }, (_, i) => (i * 7 + 3) % vocab); // row-major [B, total]
  const maskAll = Array.from({ length: B * total }, (_, i) => (Math.floor(i / total) === 1 && i % total < 2 ? 0 : 1));
  const cols = (a: number[], from: number, to: number) => Array.from({ length: B }, (_, b) => a.slice(b * total + from, b * total + to)).flat();
  let worst = 0;
  // (a) the prompt, past length 0
  let out = await s.run({
    input_ids: i64(cols(all, 0, P), [B, P]),
    attention_mask: i64(cols(maskAll, 0, P), [B, P]),
    position_ids: i64(Array.from({ length: B * P }, (_, i) => i % P), [B, P]),
    ...emptyPast(s, B),
  });
  const want0 = shrinkLogits(model, cols(all, 0, P), cols(maskAll, 0, P), B, P);
  worst = Math.max(worst, maxDiff(out.logits!.data as Float32Array, want0));
  for (const { layer, heads, hd } of layers)
    for (const kind of ['key', 'value']) assert.deepEqual(out[`present.${layer}.${kind}`]!.dims, [B, heads, P, hd], `${name}: present.${layer}.${kind} after the prompt`);
  // (b) one token at a time, the presents fed back as the past
  for (let t = P; t < total; t++) {
    out = await s.run({
      input_ids: i64(cols(all, t, t + 1), [B, 1]),
      attention_mask: i64(cols(maskAll, 0, t + 1), [B, t + 1]),
      position_ids: i64(new Array(B).fill(t), [B, 1]),
      ...pastFrom(out),
    });
    for (const { layer, heads, hd } of layers)
      for (const kind of ['key', 'value']) assert.deepEqual(out[`present.${layer}.${kind}`]!.dims, [B, heads, t + 1, hd], `${name}: present.${layer}.${kind} at step ${t}`);
    const full = shrinkLogits(model, cols(all, 0, t + 1), cols(maskAll, 0, t + 1), B, t + 1); // [B, t+1, V]
    const want = Float32Array.from({ length: B * V }, (_, i) => full[(Math.floor(i / V) * (t + 1) + t) * V + (i % V)]!);
    const d = maxDiff(out.logits!.data as Float32Array, want);
    assert.ok(d <= 1e-4, `${name}: step ${t}: max |onnx − shrink| = ${d}`);
    worst = Math.max(worst, d);
  }
  assert.ok(worst <= 1e-4, `${name}: ${worst}`);
  console.log(`${name} (kv-cache): prompt ${P} + ${steps} steps, max |onnx − shrink| = ${worst.toExponential(2)}`);
  return worst;
}

test('kv-cache graph: empty past, then token-by-token decoding with presents fed back = Shrink full forward (GPT-2, Llama GQA)', async () => {
  await checkIncremental('GPT2LMHeadModel', tinyGpt2(), 40, [0, 1].map((layer) => ({ layer, heads: 4, hd: 8 })));
  // tinyLlama: 4 query heads in 2 key/value groups, so the cache holds 2 heads
  await checkIncremental('LlamaForCausalLM (GQA)', tinyLlama(), 40, [0, 1].map((layer) => ({ layer, heads: 2, hd: 8 })));
});

test('kv-cache graph of pruned models: per-layer head counts, pruned-away attention has no past/present', async () => {
  const gpt = tinyGpt2();
  gpt.transformer.h[0]!.attn!.pruneHeads([0, 3]);
  await checkIncremental('pruned GPT-2', gpt, 40, [
    { layer: 0, heads: 2, hd: 8 },
    { layer: 1, heads: 4, hd: 8 },
  ]);
  const llama = tinyLlama();
  llama.model.layers[0]!.self_attn = null;
  const mlp = llama.model.layers[1]!.mlp as unknown as { gate_proj: Linear; up_proj: Linear; down_proj: Linear };
  const keep = [1, 2, 7, 11, 19];
  mlp.gate_proj = sliceLinear(mlp.gate_proj, { outIdx: keep });
  mlp.up_proj = sliceLinear(mlp.up_proj, { outIdx: keep });
  mlp.down_proj = sliceLinear(mlp.down_proj, { inIdx: keep });
  await checkIncremental('pruned Llama', llama, 40, [{ layer: 1, heads: 2, hd: 8 }]);
});

test('kv-cache graph: declared shapes use Optimum / transformers.js dim names; BERT is refused', () => {
  const p = decodeModel(exportOnnx(tinyLlama(), { kvCache: true }).bytes);
  const dims = (v: { type: { tensor_type: { shape: { dim: { dim_value?: number; dim_param?: string }[] } } } }) =>
    v.type.tensor_type.shape.dim.map((d) => d.dim_param ?? Number(d.dim_value));
  const byName = (list: { name: string }[], n: string) => list.find((x) => x.name === n) as never;
  assert.deepEqual(dims(byName(p.graph.input, 'attention_mask')), ['batch_size', 'past_sequence_length + sequence_length']);
  assert.deepEqual(dims(byName(p.graph.input, 'past_key_values.1.value')), ['batch_size', 2, 'past_sequence_length', 8]);
  assert.deepEqual(dims(byName(p.graph.output, 'present.0.key')), ['batch_size', 2, 'past_sequence_length + sequence_length', 8]);
  assert.deepEqual(dims(byName(p.graph.output, 'logits')), ['batch_size', 'sequence_length', 40]);
  assert.throws(() => exportOnnx(fromPretrained(path.join(ROOT, 'data/models/bert-teacher-sst2')), { kvCache: true }), /kvCache .* GPT-2 and Llama/);
});

test('stories260K --kv-cache: incremental logits, and greedy generation through the ONNX loop = Shrink generate()', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-export-kv-'));
  try {
    const dir = path.join(ROOT, 'data/models/stories260K');
    const out = path.join(tmp, 'o');
    let text = '';
    await buildProgram((x) => (text += x)).parseAsync(['export', dir, '-o', out, '--kv-cache', '--json'], { from: 'user' });
    const j = JSON.parse(text);
    assert.ok(j.inputs.includes('past_key_values.4.value') && j.outputs.includes('present.4.value'), j.inputs.join(','));
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.shrink_export.kv_cache, true);
    const model = fromPretrained(dir);
    await checkIncremental('stories260K', model, 512, [0, 1, 2, 3, 4].map((layer) => ({ layer, heads: 4, hd: 8 })), 4);

    const s = await ort.InferenceSession.create(path.join(out, 'onnx', 'model.onnx'));
    const prompt = loadTokenizer(dir).encode('Once upon a time, there was a little');
    const n = 24;
    const want = generate(model, prompt, { maxNewTokens: n });
    const ids = [...prompt];
    let feed = [...prompt];
    let past = emptyPast(s, 1);
    for (let step = 0; step < n; step++) {
      const o = await s.run({
        input_ids: i64(feed, [1, feed.length]),
        attention_mask: i64(new Array(ids.length).fill(1), [1, ids.length]),
        position_ids: i64(feed.map((_, k) => ids.length - feed.length + k), [1, feed.length]),
        ...past,
      });
      const logits = o.logits!.data as Float32Array;
      const V = 512;
      const last = logits.subarray((feed.length - 1) * V, feed.length * V);
      let best = 0;
      for (let v = 1; v < V; v++) if (last[v]! > last[best]!) best = v;
      ids.push(best);
      feed = [best];
      past = pastFrom(o);
    }
    assert.deepEqual(ids, want, 'greedy tokens: ONNX loop vs Shrink generate()');
    console.log(`stories260K: ${n} greedy tokens via the ONNX KV loop = Shrink generate(): ${JSON.stringify(loadTokenizer(dir).decode(ids.slice(prompt.length)))}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('CLI: --kv-cache is refused for gguf and for BERT, before the model loads', async () => {
  const run = async (args: string[]) => {
    let s = '';
    await buildProgram((x) => (s += x)).parseAsync(args, { from: 'user' });
    return s;
  };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-export-kv-cli-'));
  try {
    await assert.rejects(run(['export', path.join(ROOT, 'data/models/stories260K'), '--format', 'gguf', '-o', path.join(tmp, 'x.gguf'), '--kv-cache']), /--kv-cache applies to --format onnx/);
    await assert.rejects(run(['export', path.join(ROOT, 'data/models/bert-teacher-sst2'), '-o', path.join(tmp, 'b'), '--kv-cache']), /--kv-cache applies to GPT-2 and Llama/);
    assert.ok(!fs.existsSync(path.join(tmp, 'b')));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
