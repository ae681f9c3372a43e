// Quantized modules, whole-model passes (RTN, streaming, GPTQ) and the checkpoint format, on small random GPT-2 /
// BERT / Llama models and the real stories260K.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BertForMaskedLM, GPT2LMHeadModel, Generator, LlamaForCausalLM, Linear, Tensor, bertConfig, fromPretrained, gpt2Config, llamaConfig, loadTokenizer, manualSeed, noGrad, savePretrained } from '../../src/index.ts';
import { QuantEmbedding, QuantLinear, dequantize, referenceForward } from '../../src/compress/quant/modules.ts';
import { int8ActivationMax, int8DynamicLinear } from '../../src/compress/quant/kernels.ts';
import { quantizeWeight } from '../../src/compress/quant/rtn.ts';
import { quantizeModel } from '../../src/compress/quant/apply.ts';
import { quantizeFolder } from '../../src/compress/quant/pretrained.ts';
import { accumulateHessian, gptqQuantize } from '../../src/compress/quant/gptq-adapter.ts';
import { SafetensorsFile, loadSafetensors, saveSafetensors } from '../../src/io/safetensors.ts';
import '../../src/compress/quant/format.ts';
import { formatLayerErrors, layerErrors } from '../../src/compress/quant/report.ts';
import { expectClose, expectEqual, expectThrows } from '../harness/expect.ts';

const g = new Generator(11);
const rand = (n: number, scale = 1) => Float32Array.from({ length: n }, () => scale * g.normal());
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'quant-'));

function linearWith(w: Float32Array, N: number, K: number): Linear {
  const l = new Linear(K, N, { bias: false });
  l.weight.data.set(w);
  return l;
}

test('QuantLinear weight-only (int8 per channel / per tensor, int4 groups) equals the float linear on dequantized weights', () => {
  const [M, N, K] = [5, 37, 96];
  const w = rand(N * K, 0.05);
  const x = new Tensor(rand(M * K), [M, K], 'float32');
  const bias = new Tensor(rand(N), [N], 'float32');
  for (const spec of [
    { bits: 8, granularity: 'channel', symmetric: true },
    { bits: 8, granularity: 'tensor', symmetric: false },
    { bits: 8, granularity: 'group', groupSize: 32, symmetric: true },
    { bits: 4, granularity: 'group', groupSize: 32, symmetric: false },
    { bits: 3, granularity: 'group', groupSize: 48, symmetric: true },
    { bits: 4, granularity: 'channel', symmetric: false },
  ] as const) {
    const q = quantizeWeight('w', w, N, K, spec);
    const m = new QuantLinear(spec.bits === 8 ? 'int8' : 'int4', q, bias);
    expectClose(m.forward(x), referenceForward(m, x), { atol: 1e-5, rtol: 1e-5 }, JSON.stringify(spec));
    // and close to the float layer itself
    const ref = noGrad(() => linearWith(w, N, K).forward(x).add(bias));
    const err = Math.sqrt(m.forward(x).sub(ref).square().mean().item() / ref.square().mean().item());
    assert.ok(err < (spec.bits === 8 ? 0.01 : 0.25), `${JSON.stringify(spec)}: relative error ${err}`);
  }
});

test('int8 dynamic: exact integer accumulation with the fused dequantize epilogue', () => {
  const [M, N, K] = [3, 7, 2100]; // K above 1,024: the float32 fallback sums in chunks
  const w = rand(N * K, 0.1);
  const q = quantizeWeight('w', w, N, K, { bits: 8, granularity: 'channel', symmetric: true });
  const x = rand(M * K);
  const out = new Float32Array(M * N);
  int8DynamicLinear(x, M, q, null, out);
  // reference: activations quantized per token to the kernel's codes (8-bit with VNNI, else 7-bit), integer dot
  // products in BigInt
  const QMAX = int8ActivationMax();
  for (let m = 0; m < M; m++) {
    const row = x.subarray(m * K, (m + 1) * K);
    const lo = Math.min(0, ...row);
    const hi = Math.max(0, ...row);
    const s = Math.fround((hi - lo) / QMAX);
    const inv = Math.fround(1 / s);
    const z = Math.round(-lo / s);
    for (let n = 0; n < N; n++) {
      let acc = 0n;
      for (let k = 0; k < K; k++) {
        const qa = Math.min(QMAX, Math.max(0, Math.round(Math.fround(row[k]! * inv)) + z));
        acc += BigInt((qa - z) * (q.codes as Int8Array)[n * K + k]!);
      }
      const want = s * q.scale[n]! * Number(acc);
      assert.ok(Math.abs(out[m * N + n]! - want) <= 1e-5 * Math.max(1, Math.abs(want)), `[${m},${n}] ${out[m * N + n]} vs ${want}`);
    }
  }
  // and near the float product
  const lin = linearWith(w, N, K);
  const ref = noGrad(() => lin.forward(new Tensor(x, [M, K], 'float32'))).data;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (out[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  assert.ok(Math.sqrt(num / den) < 0.02, `relative error ${Math.sqrt(num / den)}`);
  expectThrows(() => new QuantLinear('int8-dynamic', quantizeWeight('w', w, N, K, { bits: 8, granularity: 'channel', symmetric: false }), null), 'QuantLinear(int8-dynamic): needs 8-bit symmetric per-channel weights');
});

function tinyGpt2(): GPT2LMHeadModel {
  manualSeed(3);
  return new GPT2LMHeadModel(gpt2Config({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2, architectures: ['GPT2LMHeadModel'] }));
}

test('a quantized GPT-2 (Conv1D, tied head) saves and loads to the same outputs; the file holds integers and scales', () => {
  const dir = tmp();
  const src = path.join(dir, 'fp');
  const out = path.join(dir, 'q');
  savePretrained(tinyGpt2() as never, src);
  const ids = Tensor.from(Int32Array.from([1, 5, 9, 2, 33, 60, 7]), { shape: [1, 7] });
  for (const scheme of ['int8', 'int8-dynamic', 'int4'] as const) {
    const r = quantizeFolder(src, out, { scheme, groupSize: 16 });
    const fp = fromPretrained(src) as GPT2LMHeadModel;
    const mem = fromPretrained(src) as GPT2LMHeadModel;
    quantizeModel(mem, { scheme, groupSize: 16 });
    const loaded = fromPretrained(out) as GPT2LMHeadModel;
    assert.ok(loaded.lm_head instanceof QuantLinear && loaded.transformer.wte instanceof QuantEmbedding, 'quantized modules after load');
    assert.equal((loaded.lm_head as QuantLinear).qweight.codes, (loaded.transformer.wte as QuantEmbedding).qweight.codes, 'tied head shares the embedding codes');
    const a = noGrad(() => mem.forward({ inputIds: ids }).logits);
    const b = noGrad(() => loaded.forward({ inputIds: ids }).logits);
    expectEqual(b, a, `${scheme}: streaming + save + load vs in-memory`);
    const c = noGrad(() => fp.forward({ inputIds: ids }).logits);
    const rel = Math.sqrt(b.sub(c).square().mean().item() / c.square().mean().item());
    assert.ok(rel < (scheme === 'int4' ? 0.3 : 0.05), `${scheme}: logits relative error ${rel}`);
    const f = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    const keys = f.keys();
    f.close();
    assert.ok(!keys.some((k) => k.startsWith('lm_head.')), 'tied head not duplicated');
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.quantization_config.quant_method, 'shrink');
    assert.equal(cfg.quantization_config.modules['transformer.h.0.attn.c_attn'].type, 'conv1d');
    if (scheme === 'int4') {
      assert.ok(keys.includes('transformer.h.0.attn.c_attn.weight_packed') && keys.includes('transformer.h.0.attn.c_attn.weight_zero_point'));
      assert.deepEqual(loadSafetensors(path.join(out, 'model.safetensors')).tensors.get('transformer.h.0.attn.c_attn.weight_scale')!.shape, [96, 2]);
      assert.ok(r.fileBytesAfter < 0.3 * r.fileBytesBefore, `int4 file ${r.fileBytesAfter} of ${r.fileBytesBefore}`);
    } else {
      assert.equal(loadSafetensors(path.join(out, 'model.safetensors')).tensors.get('transformer.h.0.attn.c_attn.weight')!.dtype, 'int8');
      // a tiny model: 32-wide rows (a float32 scale per 32 codes), and float norms and biases weigh more than in real ones
      assert.ok(r.fileBytesAfter < 0.35 * r.fileBytesBefore, `int8 file ${r.fileBytesAfter} of ${r.fileBytesBefore}`);
    }
  }
  fs.rmSync(dir, { recursive: true });
});

test('a group size that does not divide in_features pads the stored weight with zero columns', () => {
  manualSeed(5);
  const m = new LlamaForCausalLM(llamaConfig({ vocab_size: 40, hidden_size: 32, intermediate_size: 44, num_hidden_layers: 1, num_attention_heads: 2, tie_word_embeddings: true }));
  const ids = Tensor.from(Int32Array.from([3, 8, 1, 30]), { shape: [1, 4] });
  const ref = noGrad(() => m.forward({ inputIds: ids }).logits);
  const r = quantizeModel(m, { scheme: 'int4', groupSize: 32 });
  assert.deepEqual(r.modules['model.layers.0.mlp.down_proj']!.shape, [32, 64]);
  assert.equal(r.modules['model.layers.0.mlp.down_proj']!.in_features, 44);
  const down = m.getSubmodule('model.layers.0.mlp.down_proj') as QuantLinear;
  const x = new Tensor(rand(2 * 44), [2, 44], 'float32');
  expectClose(down.forward(x), referenceForward(down, x), { atol: 1e-5, rtol: 1e-5 });
  const got = noGrad(() => m.forward({ inputIds: ids }).logits);
  assert.ok(Math.sqrt(got.sub(ref).square().mean().item() / ref.square().mean().item()) < 0.3);
});

test('loading a quantized checkpoint without its scales lists every missing tensor', () => {
  const dir = tmp();
  savePretrained(tinyGpt2() as never, path.join(dir, 'fp'));
  quantizeFolder(path.join(dir, 'fp'), path.join(dir, 'q'), { scheme: 'int8' });
  const file = path.join(dir, 'q', 'model.safetensors');
  const { tensors, metadata } = loadSafetensors(file);
  tensors.delete('transformer.h.0.mlp.c_fc.weight_scale');
  tensors.delete('transformer.wte.weight_scale');
  saveSafetensors(file, tensors, metadata);
  expectThrows(() => fromPretrained(path.join(dir, 'q')), 'quantized checkpoint is missing 2 scale/zero-point tensor(s): transformer.wte.weight_scale, transformer.h.0.mlp.c_fc.weight_scale');
  expectThrows(() => quantizeFolder(path.join(dir, 'q'), path.join(dir, 'q2'), { scheme: 'int8' }), 'already quantized');
  expectThrows(() => quantizeModel(tinyGpt2(), { scheme: 'int4', bits: 5 }), 'scheme int4: bits must be 2, 3 or 4, got 5');
  expectThrows(() => quantizeModel(tinyGpt2(), { scheme: 'int8-dynamic', granularity: 'group' }), 'scheme int8-dynamic needs per-channel weights, got granularity group');
  fs.rmSync(dir, { recursive: true });
});

test('a quantized BERT MLM keeps its decoder tied to the quantized word embeddings', () => {
  manualSeed(9);
  const m = new BertForMaskedLM(bertConfig({ vocab_size: 50, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, architectures: ['BertForMaskedLM'] }));
  const dir = tmp();
  savePretrained(m as never, path.join(dir, 'fp'));
  quantizeFolder(path.join(dir, 'fp'), path.join(dir, 'q'), { scheme: 'int8' });
  const q = fromPretrained(path.join(dir, 'q')) as BertForMaskedLM;
  const ids = Tensor.from(Int32Array.from([2, 7, 9, 4]), { shape: [1, 4] });
  const a = noGrad(() => m.eval().forward({ inputIds: ids }).logits);
  const b = noGrad(() => q.forward({ inputIds: ids }).logits);
  assert.ok(Math.sqrt(b.sub(a).square().mean().item() / a.square().mean().item()) < 0.05);
  fs.rmSync(dir, { recursive: true });
});

test('GPTQ: identity Hessian gives RTN exactly; correlated inputs give a lower output error than RTN', () => {
  const [N, K, R] = [24, 64, 512];
  const w = rand(N * K, 0.1);
  const I = new Float64Array(K * K);
  for (let i = 0; i < K; i++) I[i * K + i] = 1;
  for (const spec of [{ bits: 4, granularity: 'group', groupSize: 16, symmetric: false }, { bits: 3, granularity: 'channel', symmetric: true }] as const) {
    const rtn = quantizeWeight('w', w, N, K, spec);
    const gq = gptqQuantize('w', w, N, K, I, spec, { percdamp: 0 }).q;
    expectEqual(gq.codes, rtn.codes, 'codes');
    expectEqual(gq.scale, rtn.scale, 'scales');
  }
  // inputs x = z·A: strongly correlated features
  const A = rand(K * K, 1 / Math.sqrt(K));
  const z = new Tensor(rand(R * K), [R, K], 'float32');
  const X = noGrad(() => z.matmul(new Tensor(A, [K, K], 'float32')));
  const H = new Float64Array(K * K);
  accumulateHessian(H, X.data as Float32Array, R, K, 0);
  const W = new Tensor(w, [N, K], 'float32');
  const outErr = (q: Tensor) => noGrad(() => X.matmul(W.sub(q).t()).square().sum().item());
  for (const [spec, actOrder] of [
    [{ bits: 4, granularity: 'channel', symmetric: false }, false],
    [{ bits: 3, granularity: 'channel', symmetric: false }, false],
    [{ bits: 4, granularity: 'group', groupSize: 16, symmetric: false }, false],
    [{ bits: 4, granularity: 'group', groupSize: 16, symmetric: false }, true],
    [{ bits: 3, granularity: 'group', groupSize: 32, symmetric: true }, true],
  ] as const) {
    const rtn = outErr(dequantize(quantizeWeight('w', w, N, K, spec)));
    const gptq = outErr(dequantize(gptqQuantize('w', w, N, K, H, spec, { actOrder }).q));
    assert.ok(gptq < 0.8 * rtn, `${JSON.stringify(spec)} actOrder=${actOrder}: GPTQ ${gptq} vs RTN ${rtn}`);
  }
  // a dead input (never active) gets a zero weight column
  const Hd = Float64Array.from(H);
  for (let j = 0; j < K; j++) Hd[5 * K + j] = Hd[j * K + 5] = 0;
  const dq = dequantize(gptqQuantize('w', w, N, K, Hd, { bits: 4, granularity: 'channel', symmetric: false }).q).data;
  for (let n = 0; n < N; n++) assert.equal(dq[n * K + 5], 0, `row ${n}`);
});

test('GPTQ on stories260K beats RTN perplexity at 4 and 3 bits', () => {
  const dir = path.join(import.meta.dirname, '../../data/models/stories260K');
  const text = fs.readFileSync(path.join(import.meta.dirname, '../../data/tinystories-samples/stories260K-samples.txt'), 'utf8').split('\n').filter(Boolean);
  const tok = loadTokenizer(dir);
  const ids = text.slice(0, 12).flatMap((l) => tok.encode(l));
  const blocks: number[][] = [];
  for (let s = 0; s + 128 <= ids.length; s += 128) blocks.push(ids.slice(s, s + 128));
  const calib = blocks.slice(0, 4).map((b) => ({ inputIds: Tensor.from(Int32Array.from(b), { shape: [1, 128] }) }));
  const evalBlocks = blocks.slice(4, 12);
  const nll = (m: LlamaForCausalLM) =>
    noGrad(() => evalBlocks.reduce((s, b) => s + m.forward({ inputIds: Tensor.from(Int32Array.from(b), { shape: [1, 128] }), labels: Tensor.from(Int32Array.from(b), { shape: [1, 128] }) }).loss!.item(), 0) / evalBlocks.length);
  for (const bits of [4, 3]) {
    const rtn = fromPretrained(dir) as LlamaForCausalLM;
    quantizeModel(rtn, { scheme: 'int4', bits, groupSize: 32 });
    const gptq = fromPretrained(dir) as LlamaForCausalLM;
    quantizeModel(gptq, { scheme: 'int4', bits, groupSize: 32, method: 'gptq', calibration: () => calib });
    const [a, b] = [nll(rtn), nll(gptq)];
    assert.ok(b < a, `${bits} bits: GPTQ NLL ${b} should be below RTN ${a}`);
  }
});

test('the per-layer error report is zero for an unchanged model and grows as bits shrink', () => {
  const fp = tinyGpt2().eval();
  const ids = Tensor.from(Int32Array.from([1, 5, 9, 2, 33, 60, 7, 8]), { shape: [2, 4] });
  const layers = ['transformer.h.0.attn.c_attn', 'transformer.h.1.mlp.c_proj'];
  assert.deepEqual(layerErrors(fp, tinyGpt2().eval(), layers, [{ inputIds: ids }]).map((e) => e.relMse), [0, 0]);
  const errAt = (bits: number) => {
    const q = tinyGpt2().eval();
    quantizeModel(q, bits === 8 ? { scheme: 'int8' } : { scheme: 'int4', bits, groupSize: 16 });
    return layerErrors(fp, q, layers, [{ inputIds: ids }]);
  };
  const [e8, e4, e2] = [errAt(8), errAt(4), errAt(2)];
  for (let i = 0; i < layers.length; i++) assert.ok(e8[i]!.relMse < e4[i]!.relMse && e4[i]!.relMse < e2[i]!.relMse, `${layers[i]}: ${e8[i]!.relMse} ${e4[i]!.relMse} ${e2[i]!.relMse}`);
  assert.match(formatLayerErrors(e4), /^\| layer \| relative MSE \|\n\| --- \| --- \|\n\| transformer\.h\.0\.attn\.c_attn \| \d\.\d\de-\d+( ◀ worst)? \|\n/);
});
