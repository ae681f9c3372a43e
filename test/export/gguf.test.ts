/**
 * GGUF export of stories260K parsed back with @huggingface/gguf: llama.cpp's metadata keys, tensor names and ggml
 * shapes, and the tensor bytes decoded (F32, F16, Q8_0 blocks) against Shrink's own weights — for Q8_0, against the
 * weights of the same model quantized by Shrink (int8, symmetric groups of 32, the Q8_0 grid), dequantized.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gguf } from '@huggingface/gguf';
import { fromPretrained, LlamaForCausalLM } from '../../src/index.ts';
import { f16BitsToF32 } from '../../src/tensor/dtype.ts';
import { exportFolder } from '../../src/export/index.ts';
import { exportGguf, permuteRope } from '../../src/export/gguf.ts';
import { quantizeModel } from '../../src/compress/quant/apply.ts';
import { QuantLinear } from '../../src/compress/quant/modules.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIR = path.join(ROOT, 'data/models/stories260K');

/** Decode a ggml tensor's bytes to float32. */
function decode(bytes: Uint8Array, type: number, n: number): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  if (type === 0) for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  else if (type === 1) for (let i = 0; i < n; i++) out[i] = f16BitsToF32(dv.getUint16(2 * i, true));
  else if (type === 8)
    for (let b = 0; b < n / 32; b++) {
      const d = f16BitsToF32(dv.getUint16(34 * b, true));
      for (let j = 0; j < 32; j++) out[32 * b + j] = d * dv.getInt8(34 * b + 2 + j);
    }
  else throw new Error(`type ${type}`);
  return out;
}
const BYTES: Record<number, (n: number) => number> = { 0: (n) => 4 * n, 1: (n) => 2 * n, 8: (n) => (n / 32) * 34 };

async function readBack(file: string) {
  const p = await gguf(file, { allowLocalFile: true });
  const buf = fs.readFileSync(file);
  const tensors = new Map<string, { shape: number[]; type: number; data: Float32Array }>();
  for (const t of p.tensorInfos) {
    const ne = t.shape.map(Number);
    const n = ne.reduce((a, b) => a * b, 1);
    const start = Number(p.tensorDataOffset + t.offset);
    tensors.set(t.name, { shape: [...ne].reverse(), type: Number(t.dtype), data: decode(buf.subarray(start, start + BYTES[Number(t.dtype)]!(n)), Number(t.dtype), n) });
  }
  return { metadata: p.metadata as Record<string, unknown>, tensors };
}

/** Shrink's weight of a GGUF tensor, in GGUF's row order (q/k permuted). */
function shrinkWeight(m: LlamaForCausalLM, name: string): Float32Array {
  const cfg = m.config;
  if (name === 'token_embd.weight') return m.model.embed_tokens.weight.toFloat32Array();
  if (name === 'output_norm.weight') return m.model.norm.weight.toFloat32Array();
  const [, i, kind] = /^blk\.(\d+)\.(\w+)\.weight$/.exec(name)!;
  const l = m.model.layers[Number(i)]!;
  const at = l.self_attn!;
  const mlp = l.mlp as unknown as Record<string, { forward: unknown }>;
  const w = (mod: unknown) => (mod instanceof QuantLinear ? mod.dequantized() : (mod as { weight: { contiguous(): { toFloat32Array(): Float32Array } } }).weight.contiguous()).toFloat32Array();
  const map: Record<string, () => Float32Array> = {
    attn_norm: () => l.input_layernorm.weight.toFloat32Array(),
    ffn_norm: () => l.post_attention_layernorm.weight.toFloat32Array(),
    attn_q: () => permuteRope(w(at.q_proj), cfg.num_attention_heads, cfg.head_dim, cfg.hidden_size),
    attn_k: () => permuteRope(w(at.k_proj), cfg.num_key_value_heads, cfg.head_dim, cfg.hidden_size),
    attn_v: () => w(at.v_proj),
    attn_output: () => w(at.o_proj),
    ffn_gate: () => w(mlp.gate_proj),
    ffn_up: () => w(mlp.up_proj),
    ffn_down: () => w(mlp.down_proj),
  };
  return map[kind!]!();
}

test('stories260K → GGUF (f32, f16, q8_0) parses back with @huggingface/gguf: llama.cpp keys, names, shapes, values', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-gguf-'));
  try {
    const model = fromPretrained<LlamaForCausalLM>(DIR);
    const cfg = model.config;
    for (const type of ['f32', 'f16', 'q8_0'] as const) {
      const file = path.join(tmp, `stories-${type}.gguf`);
      exportFolder(DIR, file, { format: 'gguf', dtype: type });
      const { metadata: md, tensors } = await readBack(file);
      assert.equal(md['general.architecture'], 'llama');
      assert.equal(md['general.file_type'], { f32: 0, f16: 1, q8_0: 7 }[type]);
      assert.equal(md['llama.block_count'], cfg.num_hidden_layers);
      assert.equal(md['llama.embedding_length'], cfg.hidden_size);
      assert.equal(md['llama.feed_forward_length'], cfg.intermediate_size);
      assert.equal(md['llama.attention.head_count'], cfg.num_attention_heads);
      assert.equal(md['llama.attention.head_count_kv'], cfg.num_key_value_heads);
      assert.equal(md['llama.rope.dimension_count'], cfg.head_dim);
      assert.equal(md['llama.context_length'], cfg.max_position_embeddings);
      assert.ok(Math.abs((md['llama.attention.layer_norm_rms_epsilon'] as number) - cfg.rms_norm_eps) < 1e-9);
      assert.equal(md['tokenizer.ggml.model'], 'llama');
      const toks = md['tokenizer.ggml.tokens'] as string[];
      assert.equal(toks.length, 512);
      assert.deepEqual([toks[0], toks[1], toks[2], toks[3]], ['<unk>', '<s>', '</s>', '<0x00>']);
      assert.ok(toks.some((t) => t.startsWith('\u2581')), 'spaces as ▁');
      // 9 tensors per layer + embedding + final norm; the head is tied (no output.weight)
      assert.equal(tensors.size, 9 * cfg.num_hidden_layers + 2);
      assert.ok(!tensors.has('output.weight'));
      assert.deepEqual(tensors.get('blk.0.ffn_down.weight')!.shape, [cfg.hidden_size, cfg.intermediate_size]);
      assert.deepEqual(tensors.get('token_embd.weight')!.shape, [cfg.vocab_size, cfg.hidden_size]);
      let worst = 0;
      for (const [name, t] of tensors) {
        const want = shrinkWeight(model, name);
        assert.equal(t.data.length, want.length, name);
        if (t.shape.length === 1) assert.equal(t.type, 0, `${name}: norms stay F32`);
        else if (type === 'q8_0') assert.equal(t.type, t.shape[1]! % 32 === 0 ? 8 : 1, `${name}: Q8_0, or F16 for rows of 172`);
        else assert.equal(t.type, type === 'f32' ? 0 : 1, name);
        for (let i = 0; i < want.length; i++) {
          const err = Math.abs(t.data[i]! - want[i]!);
          // f32 exact; f16: half an ulp of float16; q8_0: half a step of the block's scale (max|x|/127) plus its f16 rounding
          const bound = t.type === 0 ? 0 : t.type === 1 ? Math.abs(want[i]!) * 2 ** -11 + 2 ** -25 : q8Bound(want, i);
          assert.ok(err <= bound, `${type} ${name}[${i}]: ${t.data[i]} vs ${want[i]} (bound ${bound})`);
          worst = Math.max(worst, err);
        }
      }
      console.log(`${type}: ${fs.statSync(file).size} bytes, max |gguf − shrink| = ${worst.toExponential(2)}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

/** Q8_0's error bound: half a step (max|x|/127 of the block) plus the float16 rounding of the scale (≤ 127 steps · 2^-11). */
function q8Bound(w: Float32Array, i: number): number {
  const step = amaxOfBlock(w, i) / 127;
  return step * (0.5 + 127 * 2 ** -11) + 1e-7;
}

function amaxOfBlock(w: Float32Array, i: number): number {
  const s = Math.floor(i / 32) * 32;
  let a = 0;
  for (let j = s; j < s + 32; j++) a = Math.max(a, Math.abs(w[j]!));
  return a;
}

test('a Shrink-quantized model (int8, groups of 32) exports to Q8_0 blocks that decode to Shrink\'s dequantized weights', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-gguf-q-'));
  try {
    const q = fromPretrained<LlamaForCausalLM>(DIR);
    quantizeModel(q, { scheme: 'int8', granularity: 'group', groupSize: 32, symmetric: true, embeddings: false });
    const file = path.join(tmp, 'q.gguf');
    const r = exportGguf(q, { type: 'q8_0', tokenizerDir: DIR });
    assert.ok(r.conversions.some((c) => c.startsWith('QuantLinear(int8) dequantized')), r.conversions.join('; '));
    fs.writeFileSync(file, r.bytes);
    const { tensors } = await readBack(file);
    let compared = 0;
    let worst = 0;
    for (const [name, t] of tensors) {
      if (t.type !== 8) continue;
      // Shrink's grid is torch's (max|x|/127.5, half to even), Q8_0's max|x|/127 with a float16 scale: the decoded
      // blocks are Shrink's dequantized values re-rounded to the Q8_0 grid
      const shrinkDeq = shrinkWeight(q, name);
      for (let i = 0; i < shrinkDeq.length; i++) {
        const err = Math.abs(t.data[i]! - shrinkDeq[i]!);
        assert.ok(err <= q8Bound(shrinkDeq, i), `${name}[${i}]: gguf ${t.data[i]} vs shrink int8 ${shrinkDeq[i]}`);
        worst = Math.max(worst, err / (amaxOfBlock(shrinkDeq, i) / 127 || 1));
      }
      compared++;
    }
    assert.ok(compared >= 10, `compared ${compared} Q8_0 tensors`);
    console.log(`Q8_0 of Shrink int8/g32: ${compared} tensors, max |gguf − shrink dequantized| = ${worst.toFixed(3)} Q8_0 steps`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('GGUF export refuses what the llama architecture cannot hold, naming the layer; and non-Llama models', () => {
  const m = fromPretrained<LlamaForCausalLM>(DIR);
  m.model.layers[2]!.mlp = null;
  assert.throws(() => exportGguf(m, { type: 'f32' }), /model\.layers\.2\.mlp is pruned away/);
  assert.throws(() => exportFolder(DIR, path.join(os.tmpdir(), 'x.gguf'), { format: 'gguf', dtype: 'q5_k' }), /--dtype for --format gguf must be one of f32, f16, q8_0, q4_0, got 'q5_k'/);
});
