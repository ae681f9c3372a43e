/**
 * ONNX export (opset 17, IR version 8) of Shrink's BERT, GPT-2 and Llama models: the graph is built op by op from
 * the live modules (so per-layer head counts, FFN widths and pruned-away sub-blocks export as they are), weights
 * are initializers. Inputs/outputs follow Hugging Face Optimum's names, which transformers.js feeds:
 *
 * - BERT: `input_ids`, `attention_mask`, `token_type_ids` (int64 [batch_size, sequence_length]) → `logits`
 *   (BertForSequenceClassification [batch, labels]; BertForMaskedLM [batch, seq, vocab]) or `last_hidden_state`
 *   (+ `pooler_output`) for BertModel.
 * - GPT-2 / Llama: `input_ids`, `attention_mask`, `position_ids` → `logits` [batch, seq, vocab]; every call runs the
 *   whole sequence. With `kvCache` (Optimum's "with past" decoder, what transformers.js's generate() feeds) the graph
 *   also takes `past_key_values.{i}.key` / `.value` [batch, heads, past_sequence_length, head_dim] (key/value heads
 *   for Llama's GQA; keys after RoPE) and returns `present.{i}.key` / `.value` [batch, heads, past + seq, head_dim]
 *   after `logits`; `attention_mask` is then [batch, past + seq] and `position_ids` [batch, seq]. One graph serves the
 *   first step (past length 0) and the following ones: past and new keys/values are concatenated along the sequence
 *   axis and the causal mask is offset by the past length (attention_mask width − seq). Layers whose attention was
 *   pruned away have no past/present.
 *
 * Compressed layers export as their dense float32 equivalents: QuantLinear / QuantEmbedding are dequantized
 * ((q − zero)·scale, what Shrink multiplies by), ClusteredLinear is gathered from its codebook, sparse weights are
 * densified, LowRankLinear stays factorized (two MatMuls). With `dtype: 'fp16'` the float weights are stored as
 * float16 and cast to float32 inside the graph (compute stays float32). `dtype: 'int8'` exports int8-dynamic
 * QuantLinear layers as integer ops (see int8Mode); every other layer stays float.
 */
import { Module } from '../nn/module.ts';
import { Conv1D, Embedding, LayerNorm, Linear, RMSNorm } from '../nn/layers.ts';
import { Tensor } from '../tensor/tensor.ts';
import { FLOAT32_MIN } from '../models/outputs.ts';
import { BertForMaskedLM, BertForSequenceClassification, BertModel, type BertLayer } from '../models/bert/modeling.ts';
import { GPT2LMHeadModel, GPT2MLP, GPT2Model } from '../models/gpt2/modeling.ts';
import { LlamaForCausalLM, LlamaMLP, LlamaModel, ropeTables } from '../models/llama/modeling.ts';
import { QuantEmbedding, QuantLinear, dequantize } from '../compress/quant/modules.ts';
import { LowRankLinear } from '../compress/share/lowrank.ts';
import { ClusteredLinear } from '../compress/share/clustered.ts';
import { SparseEmbedding, SparseLinear } from '../compress/prune/sparse.ts';
import { DT, encodeModel } from './onnx-proto.ts';
import { GraphBuilder } from './onnx-graph.ts';

export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;
export type OnnxDtype = 'fp32' | 'fp16' | 'int8';
/** How int8-dynamic layers are written: DynamicQuantizeLinear + MatMulInteger, or QuantizeLinear/DequantizeLinear pairs. */
export type Int8Mode = 'matmulinteger' | 'qdq';

export interface OnnxExportOptions {
  dtype?: OnnxDtype;
  int8Mode?: Int8Mode;
  producerVersion?: string;
  /** GPT-2 / Llama: past key/values inputs and present outputs (see above). */
  kvCache?: boolean;
}

export interface OnnxExportResult {
  bytes: Uint8Array;
  inputs: string[];
  outputs: string[];
  /** What compressed layers became (e.g. "QuantLinear(int8): 12 → dense fp32 (dequantized)"). */
  conversions: string[];
  architecture: string;
  weightBytes: number;
}

const BATCH = 'batch_size';
const SEQ = 'sequence_length';
const PAST = 'past_sequence_length';
const TOTAL = 'past_sequence_length + sequence_length';

/** The key/value cache names transformers.js and Optimum use. */
export const pastName = (layer: number, kind: 'key' | 'value') => `past_key_values.${layer}.${kind}`;
export const presentName = (layer: number, kind: 'key' | 'value') => `present.${layer}.${kind}`;

/** Count of each conversion applied (for the report). */
class Notes {
  private counts = new Map<string, number>();
  add(s: string): void {
    this.counts.set(s, (this.counts.get(s) ?? 0) + 1);
  }
  list(): string[] {
    return [...this.counts].map(([s, n]) => `${s} ×${n}`);
  }
}

function f32(t: Tensor): Float32Array {
  return t.contiguous().toFloat32Array();
}
/** [out, in] float32 → its transpose [in, out] (MatMul's B). */
function transposed(wOutIn: Tensor): Float32Array {
  return f32(wOutIn.t());
}

class Emitter {
  readonly notes = new Notes();
  /** KV graph: the present outputs, declared after the main output. */
  readonly presents: { value: string; name: string; dims: (number | string)[] }[] = [];
  constructor(
    readonly g: GraphBuilder,
    readonly opts: Required<Pick<OnnxExportOptions, 'dtype' | 'int8Mode' | 'kvCache'>>,
  ) {}

  /** y = x·Wᵀ + b for any linear-like module Shrink has; `name` is its checkpoint path. */
  linear(x: string, m: Module | null, name: string): string {
    const g = this.g;
    if (!m) throw new Error(`ONNX export: ${name} is missing`);
    if (m instanceof LowRankLinear) {
      this.notes.add('LowRankLinear → two MatMuls (factorized)');
      return this.linear(this.linear(x, m.first, `${name}.first`), m.second, `${name}.second`);
    }
    let wInOut: Float32Array;
    let K: number, N: number;
    let bias: Tensor | null;
    if (m instanceof Linear) {
      [N, K] = m.weight.shape as [number, number];
      wInOut = transposed(m.weight);
      bias = m.bias;
    } else if (m instanceof Conv1D) {
      [K, N] = m.weight.shape as [number, number];
      wInOut = f32(m.weight);
      bias = m.bias;
    } else if (m instanceof QuantLinear) {
      if (this.opts.dtype === 'int8' && m.scheme === 'int8-dynamic') return this.int8Linear(x, m, name);
      this.notes.add(`QuantLinear(${m.scheme}) → dense fp32 (dequantized)`);
      const w = m.dequantized().narrow(1, 0, m.inFeatures);
      [N, K] = w.shape as [number, number];
      wInOut = transposed(w);
      bias = m.bias;
    } else if (m instanceof ClusteredLinear) {
      this.notes.add('ClusteredLinear → dense fp32 (codebook gathered)');
      const w = m.weightOutIn();
      [N, K] = w.shape as [number, number];
      wInOut = transposed(w);
      bias = m.bias;
    } else if (m instanceof SparseLinear) {
      this.notes.add('SparseLinear → dense fp32');
      const w = m.dense();
      [N, K] = w.shape as [number, number];
      wInOut = transposed(w);
      bias = m.bias;
    } else throw new Error(`ONNX export: ${name} is a ${m.constructor.name}, which has no ONNX export (supported: Linear, Conv1D, QuantLinear, LowRankLinear, ClusteredLinear, SparseLinear)`);
    const w = g.weight(`${name}.weight`, wInOut, [K, N]);
    const y = g.op1('MatMul', [x, w], {}, 'matmul');
    return bias ? g.op1('Add', [y, g.weight(`${name}.bias`, f32(bias), [N])], {}, 'add') : y;
  }

  /**
   * An int8-dynamic QuantLinear (per-channel symmetric int8 weights) as integer ops. ONNX's dynamic quantization
   * measures one (scale, zero point) per tensor for the activations (uint8), where Shrink measures one per token,
   * so results differ by the activation rounding (a few 1e-3 relative).
   */
  private int8Linear(x: string, m: QuantLinear, name: string): string {
    const g = this.g;
    const [N, Kp] = m.qweight.shape;
    const K = m.inFeatures;
    if (Kp !== K) throw new Error(`ONNX export: ${name}: int8 export of a zero-padded layer is not supported`);
    const codes = m.getBuffer('weight')!.data as Int8Array; // [N, K]
    const qT = new Int8Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) qT[k * N + n] = codes[n * K + k]!;
    const scale = Float32Array.from(m.getBuffer('weight_scale')!.data as Float32Array);
    const wq = g.raw(`${name}.weight_quantized`, DT.INT8, new Uint8Array(qT.buffer), [K, N]);
    const ws = g.raw(`${name}.weight_scale`, DT.FLOAT, new Uint8Array(scale.buffer), [N]);
    let y: string;
    if (this.opts.int8Mode === 'matmulinteger') {
      this.notes.add('QuantLinear(int8-dynamic) → DynamicQuantizeLinear + MatMulInteger');
      const [xq, xs, xz] = g.op('DynamicQuantizeLinear', [x], {}, 3, 'dql');
      const acc = g.op1('MatMulInteger', [xq!, wq, xz!], {}, 'mmi');
      const accf = g.op1('Cast', [acc], { to: DT.FLOAT }, 'cast');
      y = g.op1('Mul', [accf, g.op1('Mul', [xs!, ws], {}, 'scale')], {}, 'dequant');
    } else {
      this.notes.add('QuantLinear(int8-dynamic) → QDQ (DynamicQuantizeLinear → DequantizeLinear, int8 weight → DequantizeLinear) + MatMul');
      const [xq, xs, xz] = g.op('DynamicQuantizeLinear', [x], {}, 3, 'dql');
      const xd = g.op1('DequantizeLinear', [xq!, xs!, xz!], {}, 'dq_x');
      const zeros = g.raw(`${name}.weight_zero_point`, DT.INT8, new Uint8Array(N), [N]);
      const wd = g.op1('DequantizeLinear', [wq, ws, zeros], { axis: 1 }, 'dq_w');
      y = g.op1('MatMul', [xd, wd], {}, 'matmul');
    }
    return m.bias ? g.op1('Add', [y, g.weight(`${name}.bias`, f32(m.bias), [N])], {}, 'add') : y;
  }

  /** Rows of an embedding table picked by `ids`. */
  embedding(ids: string, m: Module, name: string): string {
    let w: Tensor;
    if (m instanceof Embedding) w = m.weight;
    else if (m instanceof QuantEmbedding) {
      this.notes.add('QuantEmbedding → dense fp32 (dequantized)');
      w = dequantize(m.qweight); // synced with its buffers at load
    } else if (m instanceof SparseEmbedding) {
      this.notes.add('SparseEmbedding → dense fp32');
      w = m.dense();
    } else throw new Error(`ONNX export: ${name} is a ${m.constructor.name}, which has no ONNX export`);
    const [V, D] = w.shape as [number, number];
    return this.g.op1('Gather', [this.g.weight(`${name}.weight`, f32(w), [V, D]), ids], { axis: 0 }, 'gather');
  }

  layerNorm(x: string, m: LayerNorm, name: string): string {
    const D = m.normalizedShape.reduce((a, b) => a * b, 1);
    if (m.normalizedShape.length !== 1) throw new Error(`ONNX export: ${name}: LayerNorm over ${m.normalizedShape.length} dims is not supported`);
    const scale = this.g.weight(`${name}.weight`, m.weight ? f32(m.weight) : new Float32Array(D).fill(1), [D]);
    const bias = this.g.weight(`${name}.bias`, m.bias ? f32(m.bias) : new Float32Array(D), [D]);
    return this.g.op1('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: { float: m.eps } }, 'layernorm');
  }

  /** HF LlamaRMSNorm: x / sqrt(mean(x²) + eps) · weight (opset 17 has no RMSNormalization). */
  rmsNorm(x: string, m: RMSNorm, name: string): string {
    const g = this.g;
    const ms = g.op1('ReduceMean', [g.op1('Mul', [x, x], {}, 'sq')], { axes: [-1], keepdims: 1 }, 'meansq');
    const den = g.op1('Sqrt', [g.op1('Add', [ms, g.f32([m.eps])], {}, 'add')], {}, 'sqrt');
    const y = g.op1('Div', [x, den], {}, 'rmsnorm');
    return g.op1('Mul', [y, g.weight(`${name}.weight`, f32(m.weight), [m.weight.numel])], {}, 'rmsnorm_w');
  }

  act(x: string, name: string, where: string): string {
    const g = this.g;
    switch (name) {
      case 'gelu': {
        // 0.5·x·(1 + erf(x/√2)), torch's exact GELU
        const e = g.op1('Erf', [g.op1('Div', [x, g.f32([Math.SQRT2])], {}, 'div')], {}, 'erf');
        return g.op1('Mul', [g.op1('Mul', [x, g.f32([0.5])], {}, 'mul'), g.op1('Add', [e, g.f32([1])], {}, 'add')], {}, 'gelu');
      }
      case 'gelu_new':
      case 'gelu_pytorch_tanh': {
        const c = Math.sqrt(2 / Math.PI);
        const x3 = g.op1('Mul', [g.op1('Mul', [x, x], {}, 'mul'), x], {}, 'cube');
        const inner = g.op1('Mul', [g.op1('Add', [x, g.op1('Mul', [x3, g.f32([0.044715])], {}, 'mul')], {}, 'add'), g.f32([c])], {}, 'mul');
        const t = g.op1('Tanh', [inner], {}, 'tanh');
        return g.op1('Mul', [g.op1('Mul', [x, g.f32([0.5])], {}, 'mul'), g.op1('Add', [t, g.f32([1])], {}, 'add')], {}, 'gelu_tanh');
      }
      case 'relu':
        return g.op1('Relu', [x]);
      case 'silu':
      case 'swish':
        return g.op1('Mul', [x, g.op1('Sigmoid', [x])], {}, 'silu');
      case 'tanh':
        return g.op1('Tanh', [x]);
      default:
        throw new Error(`ONNX export: ${where}: activation '${name}' has no ONNX export`);
    }
  }

  /** [B, T, n·hd] → [B, n, T, hd] (perm [0, 2, 1, 3]) or, for keys, [B, n, hd, T]. */
  heads(x: string, n: number, hd: number, keys = false): string {
    const r = this.g.op1('Reshape', [x, this.g.i64([0, 0, n, hd])], {}, 'reshape');
    return this.g.op1('Transpose', [r], { perm: keys ? [0, 2, 3, 1] : [0, 2, 1, 3] }, 'transpose');
  }
  /** [B, n, T, hd] → [B, T, n·hd]. */
  merge(x: string, n: number, hd: number): string {
    const t = this.g.op1('Transpose', [x], { perm: [0, 2, 1, 3] }, 'transpose');
    return this.g.op1('Reshape', [t, this.g.i64([0, 0, n * hd])], {}, 'reshape');
  }
  /** (1 − mask)·finfo(float32).min as [B, 1, 1, S]. */
  paddingMask(mask: string): string {
    const g = this.g;
    const m = g.op1('Cast', [mask], { to: DT.FLOAT }, 'mask_f');
    const add = g.op1('Mul', [g.op1('Sub', [g.f32([1]), m], {}, 'sub'), g.f32([FLOAT32_MIN])], {}, 'mask_add');
    return g.op1('Unsqueeze', [add, g.i64([1, 2])], {}, 'mask_4d');
  }
  /** Sequence length T (scalar int64) of a [B, T] input, and arange(T). */
  arange(ids: string): { T: string; range: string } {
    const g = this.g;
    const T = g.op1('Gather', [g.op1('Shape', [ids], {}, 'shape'), g.i64([1], true)], { axis: 0 }, 'seq_len');
    return { T, range: g.op1('Range', [g.i64([0], true), T, g.i64([1], true)], {}, 'arange') };
  }
  /**
   * KV graph: layer `i`'s past keys/values (inputs [B, n, past, hd]) with this step's `k`, `v` [B, n, T, hd]
   * appended along the sequence axis; the results [B, n, past + T, hd] are also the layer's present outputs.
   */
  withPast(i: number, k: string, v: string, n: number, hd: number): [string, string] {
    const g = this.g;
    const all = (['key', 'value'] as const).map((kind, j) => {
      const past = g.input(pastName(i, kind), DT.FLOAT, [BATCH, n, PAST, hd]);
      const cat = g.op1('Concat', [past, j === 0 ? k : v], { axis: 2 }, `present_${kind}`);
      this.presents.push({ value: cat, name: presentName(i, kind), dims: [BATCH, n, TOTAL, hd] });
      return cat;
    });
    return [all[0]!, all[1]!];
  }
  /**
   * KV graph: allowed[t, s] = s ≤ past + t, bool [T, S], where S is the attention mask's width (past + T) and
   * past = S − T (as Shrink's causalAllowed / llamaMask).
   */
  causalWithPast(ids: string, mask: string): string {
    const g = this.g;
    const T = g.op1('Gather', [g.op1('Shape', [ids], {}, 'shape'), g.i64([1], true)], { axis: 0 }, 'seq_len');
    const S = g.op1('Gather', [g.op1('Shape', [mask], {}, 'shape'), g.i64([1], true)], { axis: 0 }, 'total_len');
    const past = g.op1('Sub', [S, T], {}, 'past_len');
    const rows = g.op1('Unsqueeze', [g.op1('Range', [past, S, g.i64([1], true)], {}, 'query_pos'), g.i64([1])], {}, 'rows');
    const cols = g.op1('Unsqueeze', [g.op1('Range', [g.i64([0], true), S, g.i64([1], true)], {}, 'key_pos'), g.i64([0])], {}, 'cols');
    return g.op1('LessOrEqual', [cols, rows], {}, 'causal');
  }
  /** allowed[t, s] = s ≤ t, bool [T, T]. */
  causal(range: string): string {
    const g = this.g;
    const rows = g.op1('Unsqueeze', [range, g.i64([1])], {}, 'rows');
    const cols = g.op1('Unsqueeze', [range, g.i64([0])], {}, 'cols');
    return g.op1('LessOrEqual', [cols, rows], {}, 'causal');
  }
}

// ---------------------------------------------------------------- BERT

function exportBert(e: Emitter, model: BertModel, prefix: string): { hidden: string; pooled: string | null } {
  const g = e.g;
  const cfg = model.config;
  const ids = g.input('input_ids', DT.INT64, [BATCH, SEQ]);
  const mask = g.input('attention_mask', DT.INT64, [BATCH, SEQ]);
  const types = g.input('token_type_ids', DT.INT64, [BATCH, SEQ]);
  const emb = model.embeddings;
  const p = `${prefix}embeddings`;
  const { range } = e.arange(ids);
  let x = g.op1('Add', [e.embedding(ids, emb.word_embeddings, `${p}.word_embeddings`), e.embedding(types, emb.token_type_embeddings, `${p}.token_type_embeddings`)], {}, 'add');
  x = g.op1('Add', [x, e.embedding(range, emb.position_embeddings, `${p}.position_embeddings`)], {}, 'add');
  x = e.layerNorm(x, emb.LayerNorm, `${p}.LayerNorm`);
  const maskAdd = e.paddingMask(mask);
  model.encoder.layer.forEach((layer: BertLayer, i) => {
    const lp = `${prefix}encoder.layer.${i}`;
    let a = x;
    const att = layer.attention;
    if (att && att.self) {
      const sa = att.self;
      const { numHeads: nH, headDim: hd } = sa;
      const q = e.heads(e.linear(x, sa.query, `${lp}.attention.self.query`), nH, hd);
      const k = e.heads(e.linear(x, sa.key, `${lp}.attention.self.key`), nH, hd, true);
      const v = e.heads(e.linear(x, sa.value, `${lp}.attention.self.value`), nH, hd);
      let s = g.op1('Div', [g.op1('MatMul', [q, k], {}, 'scores'), g.f32([Math.sqrt(hd)])], {}, 'scores_scaled');
      s = g.op1('Add', [s, maskAdd], {}, 'scores_masked');
      const probs = g.op1('Softmax', [s], { axis: -1 }, 'probs');
      const ctx = e.merge(g.op1('MatMul', [probs, v], {}, 'context'), nH, hd);
      const o = e.linear(ctx, att.output.dense, `${lp}.attention.output.dense`);
      a = e.layerNorm(g.op1('Add', [o, x], {}, 'residual'), att.output.LayerNorm, `${lp}.attention.output.LayerNorm`);
    }
    if (layer.mlp) throw new Error(`ONNX export: ${lp}.mlp is a ${layer.mlp.constructor.name} (a replaced MLP), which has no ONNX export`);
    if (layer.intermediate && layer.output.dense) {
      const h = e.act(e.linear(a, layer.intermediate.dense, `${lp}.intermediate.dense`), cfg.hidden_act, `${lp}.intermediate`);
      const o = e.linear(h, layer.output.dense, `${lp}.output.dense`);
      x = e.layerNorm(g.op1('Add', [o, a], {}, 'residual'), layer.output.LayerNorm, `${lp}.output.LayerNorm`);
    } else x = a; // pruned-away MLP: the layer output is the attention output
  });
  let pooled: string | null = null;
  if (model.pooler) {
    const cls = g.op1('Gather', [x, g.i64([0], true)], { axis: 1 }, 'cls');
    pooled = g.op1('Tanh', [e.linear(cls, model.pooler.dense, `${prefix}pooler.dense`)], {}, 'pooled');
  }
  return { hidden: x, pooled };
}

// ---------------------------------------------------------------- GPT-2

function exportGpt2(e: Emitter, model: GPT2Model, prefix: string): string {
  const g = e.g;
  const cfg = model.config;
  const kv = e.opts.kvCache;
  const ids = g.input('input_ids', DT.INT64, [BATCH, SEQ]);
  const mask = g.input('attention_mask', DT.INT64, [BATCH, kv ? TOTAL : SEQ]);
  const pos = g.input('position_ids', DT.INT64, [BATCH, SEQ]);
  let x = g.op1('Add', [e.embedding(ids, model.wte, `${prefix}wte`), e.embedding(pos, model.wpe, `${prefix}wpe`)], {}, 'add');
  const causal = kv ? e.causalWithPast(ids, mask) : e.causal(e.arange(ids).range);
  const maskAdd = e.paddingMask(mask);
  model.h.forEach((block, i) => {
    const bp = `${prefix}h.${i}`;
    if (block.attn) {
      const at = block.attn;
      const { numHeads: nH, headDim: hd } = at;
      const D = nH * hd;
      const qkv = e.linear(e.layerNorm(x, block.ln_1, `${bp}.ln_1`), at.c_attn, `${bp}.attn.c_attn`);
      const [q0, k0, v0] = g.op('Split', [qkv, g.i64([D, D, D])], { axis: 2 }, 3, 'split');
      let kT: string, vh: string;
      if (kv) {
        const [kAll, vAll] = e.withPast(i, e.heads(k0!, nH, hd), e.heads(v0!, nH, hd), nH, hd);
        kT = g.op1('Transpose', [kAll], { perm: [0, 1, 3, 2] }, 'kT');
        vh = vAll;
      } else [kT, vh] = [e.heads(k0!, nH, hd, true), e.heads(v0!, nH, hd)];
      let s = g.op1('MatMul', [e.heads(q0!, nH, hd), kT], {}, 'scores');
      if (cfg.scale_attn_weights) s = g.op1('Div', [s, g.f32([Math.sqrt(hd)])], {}, 'scores_scaled');
      if (cfg.scale_attn_by_inverse_layer_idx) s = g.op1('Div', [s, g.f32([i + 1])], {}, 'scores_scaled');
      s = g.op1('Where', [causal, s, g.f32([FLOAT32_MIN])], {}, 'scores_causal');
      s = g.op1('Add', [s, maskAdd], {}, 'scores_masked');
      const probs = g.op1('Softmax', [s], { axis: -1 }, 'probs');
      const ctx = e.merge(g.op1('MatMul', [probs, vh], {}, 'context'), nH, hd);
      x = g.op1('Add', [x, e.linear(ctx, at.c_proj, `${bp}.attn.c_proj`)], {}, 'residual');
    }
    if (block.mlp) {
      if (!(block.mlp instanceof GPT2MLP)) throw new Error(`ONNX export: ${bp}.mlp is a ${block.mlp.constructor.name} (a replaced MLP), which has no ONNX export`);
      const h = e.act(e.linear(e.layerNorm(x, block.ln_2, `${bp}.ln_2`), block.mlp.c_fc, `${bp}.mlp.c_fc`), cfg.activation_function, `${bp}.mlp`);
      x = g.op1('Add', [x, e.linear(h, block.mlp.c_proj, `${bp}.mlp.c_proj`)], {}, 'residual');
    }
  });
  return e.layerNorm(x, model.ln_f, `${prefix}ln_f`);
}

// ---------------------------------------------------------------- Llama

function exportLlama(e: Emitter, model: LlamaModel, prefix: string): string {
  const g = e.g;
  const cfg = model.config;
  const kv = e.opts.kvCache;
  const ids = g.input('input_ids', DT.INT64, [BATCH, SEQ]);
  const mask = g.input('attention_mask', DT.INT64, [BATCH, kv ? TOTAL : SEQ]);
  const pos = g.input('position_ids', DT.INT64, [BATCH, SEQ]);
  const hd = cfg.head_dim;
  const rope = ropeTables(hd, cfg.max_position_embeddings, cfg.rope_theta);
  const cosT = g.weight('rope.cos', f32(rope.cos), [cfg.max_position_embeddings, hd]);
  const sinT = g.weight('rope.sin', f32(rope.sin), [cfg.max_position_embeddings, hd]);
  const cos = g.op1('Unsqueeze', [g.op1('Gather', [cosT, pos], { axis: 0 }, 'cos'), g.i64([1])], {}, 'cos4');
  const sin = g.op1('Unsqueeze', [g.op1('Gather', [sinT, pos], { axis: 0 }, 'sin'), g.i64([1])], {}, 'sin4');
  // additive mask [B, 1, T, S]: 0 where the key is visible (s ≤ past + t and not padding), finfo.min elsewhere (set)
  const padOk = g.op1('Unsqueeze', [g.op1('Cast', [mask], { to: DT.BOOL }, 'mask_b'), g.i64([1, 2])], {}, 'mask_4d');
  const causal = kv ? e.causalWithPast(ids, mask) : e.causal(e.arange(ids).range);
  const allowed = g.op1('And', [causal, padOk], {}, 'allowed');
  const maskAdd = g.op1('Unsqueeze', [g.op1('Where', [allowed, g.f32([0]), g.f32([FLOAT32_MIN])], {}, 'mask_add'), g.i64([1])], {}, 'mask_5d');
  const ropeApply = (t: string) => {
    const [x1, x2] = g.op('Split', [t, g.i64([hd / 2, hd / 2])], { axis: -1 }, 2, 'half');
    const rot = g.op1('Concat', [g.op1('Neg', [x2!], {}, 'neg'), x1!], { axis: -1 }, 'rot');
    return g.op1('Add', [g.op1('Mul', [t, cos], {}, 'mul'), g.op1('Mul', [rot, sin], {}, 'mul')], {}, 'rope');
  };
  let x = e.embedding(ids, model.embed_tokens, `${prefix}embed_tokens`);
  model.layers.forEach((layer, i) => {
    const lp = `${prefix}layers.${i}`;
    if (layer.self_attn) {
      const at = layer.self_attn;
      const { numHeads: nH, numKvHeads: nKV } = at;
      if (at.headDim !== hd) throw new Error(`ONNX export: ${lp}.self_attn: head width ${at.headDim} differs from the rotary width ${hd}`);
      if (nH % nKV !== 0) throw new Error(`ONNX export: ${lp}.self_attn: ${nH} query heads are not a multiple of ${nKV} key/value heads`);
      const R = nH / nKV;
      const hIn = e.rmsNorm(x, layer.input_layernorm, `${lp}.input_layernorm`);
      const q = ropeApply(e.heads(e.linear(hIn, at.q_proj, `${lp}.self_attn.q_proj`), nH, hd)); // [B, nH, T, hd]
      let k = ropeApply(e.heads(e.linear(hIn, at.k_proj, `${lp}.self_attn.k_proj`), nKV, hd)); // [B, nKV, T, hd]
      let v = e.heads(e.linear(hIn, at.v_proj, `${lp}.self_attn.v_proj`), nKV, hd);
      if (kv) [k, v] = e.withPast(i, k, v, nKV, hd); // [B, nKV, past + T, hd]
      const qg = g.op1('Reshape', [q, g.i64([0, nKV, R, -1, hd])], {}, 'q_groups');
      const kT = g.op1('Transpose', [g.op1('Unsqueeze', [k, g.i64([2])], {}, 'k5')], { perm: [0, 1, 2, 4, 3] }, 'kT');
      let s = g.op1('Div', [g.op1('MatMul', [qg, kT], {}, 'scores'), g.f32([Math.sqrt(hd)])], {}, 'scores_scaled');
      s = g.op1('Add', [s, maskAdd], {}, 'scores_masked');
      const probs = g.op1('Softmax', [s], { axis: -1 }, 'probs');
      const ctx = g.op1('MatMul', [probs, g.op1('Unsqueeze', [v, g.i64([2])], {}, 'v5')], {}, 'context'); // [B, nKV, R, T, hd]
      const merged = e.merge(g.op1('Reshape', [ctx, g.i64([0, nH, -1, hd])], {}, 'ctx4'), nH, hd);
      x = g.op1('Add', [x, e.linear(merged, at.o_proj, `${lp}.self_attn.o_proj`)], {}, 'residual');
    }
    if (layer.mlp) {
      if (!(layer.mlp instanceof LlamaMLP)) throw new Error(`ONNX export: ${lp}.mlp is a ${layer.mlp.constructor.name} (a replaced MLP), which has no ONNX export`);
      const h = e.rmsNorm(x, layer.post_attention_layernorm, `${lp}.post_attention_layernorm`);
      const gate = e.act(e.linear(h, layer.mlp.gate_proj, `${lp}.mlp.gate_proj`), cfg.hidden_act, `${lp}.mlp`);
      const up = e.linear(h, layer.mlp.up_proj, `${lp}.mlp.up_proj`);
      x = g.op1('Add', [x, e.linear(g.op1('Mul', [gate, up], {}, 'swiglu'), layer.mlp.down_proj, `${lp}.mlp.down_proj`)], {}, 'residual');
    }
  });
  return e.rmsNorm(x, model.norm, `${prefix}norm`);
}

/** The graph of `model` as ONNX bytes. */
export function exportOnnx(model: Module, opts: OnnxExportOptions = {}): OnnxExportResult {
  const dtype = opts.dtype ?? 'fp32';
  const g = new GraphBuilder({ fp16Weights: dtype === 'fp16' });
  const kvCache = opts.kvCache ?? false;
  const e = new Emitter(g, { dtype, int8Mode: opts.int8Mode ?? 'matmulinteger', kvCache });
  const arch = model.constructor.name;
  if (kvCache && !(model instanceof GPT2Model || model instanceof GPT2LMHeadModel || model instanceof LlamaModel || model instanceof LlamaForCausalLM))
    throw new Error(`ONNX export: kvCache (past key/values) applies to GPT-2 and Llama decoders, not ${arch}`);
  const V = (model as { config?: { vocab_size?: number } }).config?.vocab_size ?? 0;
  if (model instanceof BertForSequenceClassification) {
    const { pooled } = exportBert(e, model.bert, 'bert.');
    g.output(e.linear(pooled!, model.classifier, 'classifier'), 'logits', DT.FLOAT, [BATCH, model.config.num_labels]);
  } else if (model instanceof BertForMaskedLM) {
    const { hidden } = exportBert(e, model.bert, 'bert.');
    const pr = model.cls.predictions;
    const t = e.layerNorm(e.act(e.linear(hidden, pr.transform.dense, 'cls.predictions.transform.dense'), model.config.hidden_act, 'cls.predictions.transform'), pr.transform.LayerNorm, 'cls.predictions.transform.LayerNorm');
    const logits = g.op1('Add', [e.linear(t, pr.decoder, 'cls.predictions.decoder'), g.weight('cls.predictions.bias', f32(pr.bias), [pr.bias.numel])], {}, 'logits');
    g.output(logits, 'logits', DT.FLOAT, [BATCH, SEQ, V]);
  } else if (model instanceof BertModel) {
    const { hidden, pooled } = exportBert(e, model, '');
    g.output(hidden, 'last_hidden_state', DT.FLOAT, [BATCH, SEQ, model.config.hidden_size]);
    if (pooled) g.output(pooled, 'pooler_output', DT.FLOAT, [BATCH, model.config.hidden_size]);
  } else if (model instanceof GPT2LMHeadModel) {
    g.output(e.linear(exportGpt2(e, model.transformer, 'transformer.'), model.lm_head, 'lm_head'), 'logits', DT.FLOAT, [BATCH, SEQ, V]);
  } else if (model instanceof GPT2Model) {
    g.output(exportGpt2(e, model, ''), 'last_hidden_state', DT.FLOAT, [BATCH, SEQ, model.config.n_embd]);
  } else if (model instanceof LlamaForCausalLM) {
    g.output(e.linear(exportLlama(e, model.model, 'model.'), model.lm_head, 'lm_head'), 'logits', DT.FLOAT, [BATCH, SEQ, V]);
  } else if (model instanceof LlamaModel) {
    g.output(exportLlama(e, model, ''), 'last_hidden_state', DT.FLOAT, [BATCH, SEQ, model.config.hidden_size]);
  } else throw new Error(`ONNX export: ${arch} has no ONNX export (supported: BertModel, BertForMaskedLM, BertForSequenceClassification, GPT2Model, GPT2LMHeadModel, LlamaModel, LlamaForCausalLM)`);
  for (const p of e.presents) g.output(p.value, p.name, DT.FLOAT, p.dims);
  const conversions = e.notes.list();
  const proto = g.toModel({
    opset: ONNX_OPSET,
    irVersion: ONNX_IR_VERSION,
    producerVersion: opts.producerVersion ?? '',
    docString: `${arch} exported by Shrink (${dtype}${kvCache ? ', with past key/values' : ''})${conversions.length ? `; ${conversions.join('; ')}` : ''}`,
    props: { architecture: arch, dtype, ...(kvCache ? { kv_cache: 'true' } : {}), ...(conversions.length ? { conversions: conversions.join('; ') } : {}) },
  });
  if (g.weightBytes > 2 ** 31 - 2 ** 24) throw new Error(`ONNX export: ${arch} has ${(g.weightBytes / 2 ** 30).toFixed(2)} GiB of weights; a single ONNX protobuf file holds at most 2 GiB (external data files are not written yet)`);
  return {
    bytes: encodeModel(proto),
    inputs: (g.inputs as { name: string }[]).map((i) => i.name),
    outputs: (g.outputs as { name: string }[]).map((o) => o.name),
    conversions,
    architecture: arch,
    weightBytes: g.weightBytes,
  };
}
