/**
 * GGUF (version 3) export of Llama-family models for llama.cpp: metadata under llama.cpp's keys
 * (`general.architecture` = llama, `llama.context_length`, `llama.embedding_length`, `llama.block_count`,
 * `llama.feed_forward_length`, `llama.attention.head_count[_kv]`, `llama.rope.dimension_count`,
 * `llama.rope.freq_base`, `llama.attention.layer_norm_rms_epsilon`, `general.file_type`, and the llama2.c /
 * SentencePiece vocabulary as `tokenizer.ggml.*`), tensors under llama.cpp's names (`token_embd`,
 * `blk.N.attn_q`, …, `output_norm`, `output`) with ggml's dimension order (ne[0] = the contiguous dim).
 *
 * Like llama.cpp's convert_hf_to_gguf.py, q/k rows are permuted from Hugging Face's rotate-half RoPE layout to
 * ggml's interleaved pairs. Tensor types: F32, F16, Q8_0 (blocks of 32: fp16 scale d = max|x|/127, int8 codes
 * round(x/d); 34 bytes) and Q4_0 (blocks of 32: d = x_absmax_signed/−8, codes min(15, ⌊x/d + 8.5⌋), low nibbles the
 * first 16 values; 18 bytes) — ggml's reference quantizers. As llama.cpp does, 1-D tensors (norms) stay F32 and a
 * matrix whose rows are not a multiple of 32 falls back to F16 (q8_0) or F32.
 *
 * Compressed models are written from their dense float weights (dequantized / multiplied out) and re-encoded. GGUF's
 * llama architecture has one head count and FFN width for all layers, so models with pruned heads, per-layer FFN
 * widths or pruned-away sub-blocks are refused with the layer named.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Module } from '../nn/module.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { f32ToF16Bits } from '../tensor/dtype.ts';
import { LlamaForCausalLM, LlamaMLP } from '../models/llama/modeling.ts';
import { denseEmbedding, denseLinear } from './dense.ts';

export type GgufType = 'f32' | 'f16' | 'q8_0' | 'q4_0';
export const GGUF_TYPES: readonly GgufType[] = ['f32', 'f16', 'q8_0', 'q4_0'];
/** ggml_type ids. */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
/** llama_ftype ids (general.file_type). */
const FILE_TYPE: Record<GgufType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 };
export const GGUF_ALIGNMENT = 32;
export const QK = 32;

// ---------------------------------------------------------------- ggml quantizers (reference versions)

/** Q8_0 blocks of a row-major [rows, cols] matrix (cols % 32 == 0): per block fp16 d, then 32 int8. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % QK !== 0) throw new Error(`Q8_0: ${x.length} values are not a multiple of ${QK}`);
  const nb = x.length / QK;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[b * QK + j]!));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let j = 0; j < QK; j++) dv.setInt8(b * 34 + 2 + j, roundf(Math.fround(x[b * QK + j]! * id)));
  }
  return out;
}

/** Q4_0 blocks: fp16 d, then 16 bytes (value j in the low nibble of byte j, value j+16 in its high nibble). */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  if (x.length % QK !== 0) throw new Error(`Q4_0: ${x.length} values are not a multiple of ${QK}`);
  const nb = x.length / QK;
  const out = new Uint8Array(nb * 18);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[b * QK + j]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 18, f32ToF16Bits(d), true);
    for (let j = 0; j < QK / 2; j++) {
      const x0 = Math.fround(x[b * QK + j]! * id);
      const x1 = Math.fround(x[b * QK + QK / 2 + j]! * id);
      const q0 = Math.min(15, Math.trunc(Math.fround(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(x1 + 8.5)));
      out[b * 18 + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** C roundf: halves away from zero. */
function roundf(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

// ---------------------------------------------------------------- writer

type KV = { key: string; type: 'u32' | 'i32' | 'f32' | 'str' | 'bool' | 'u64' } & ({ value: number | string | boolean } | never);
type KVArr = { key: string; type: 'arr'; elem: 'str' | 'f32' | 'i32'; values: (string | number)[] };
const VT = { u32: 4, i32: 5, f32: 6, bool: 7, str: 8, arr: 9, u64: 10 } as const;

class ByteWriter {
  private chunks: Uint8Array[] = [];
  length = 0;
  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.push(b);
  }
  i32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    this.push(b);
  }
  u64(v: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.push(b);
  }
  f32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
  }
  str(s: string): void {
    const e = new TextEncoder().encode(s);
    this.u64(e.byteLength);
    this.push(e);
  }
  bytes(b: Uint8Array): void {
    this.push(b);
  }
  pad(align: number): void {
    const r = this.length % align;
    if (r) this.push(new Uint8Array(align - r));
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    return out;
  }
}

interface GgufTensor {
  name: string;
  /** Row-major shape (outermost first); written reversed as ggml's ne. */
  shape: number[];
  type: number;
  data: Uint8Array;
}

function writeGguf(kvs: (KV | KVArr)[], tensors: GgufTensor[]): Uint8Array {
  const w = new ByteWriter();
  w.bytes(new TextEncoder().encode('GGUF'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const kv of kvs) {
    w.str(kv.key);
    w.u32(VT[kv.type]);
    if (kv.type === 'arr') {
      w.u32(VT[kv.elem]);
      w.u64(kv.values.length);
      for (const v of kv.values) kv.elem === 'str' ? w.str(v as string) : kv.elem === 'f32' ? w.f32(v as number) : w.i32(v as number);
    } else {
      const v = (kv as { value: number | string | boolean }).value;
      if (kv.type === 'str') w.str(v as string);
      else if (kv.type === 'u32') w.u32(v as number);
      else if (kv.type === 'i32') w.i32(v as number);
      else if (kv.type === 'f32') w.f32(v as number);
      else if (kv.type === 'u64') w.u64(v as number);
      else w.bytes(new Uint8Array([v ? 1 : 0]));
    }
  }
  let offset = 0;
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.data.byteLength / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  }
  w.pad(GGUF_ALIGNMENT);
  for (const t of tensors) {
    w.bytes(t.data);
    w.pad(GGUF_ALIGNMENT);
  }
  return w.finish();
}

// ---------------------------------------------------------------- Llama → GGUF

/**
 * Hugging Face q/k rows (per head: the first half of the dims, then the second: rotate-half) → ggml's interleaved
 * pairs, as convert_hf_to_gguf.py's permute: row h·hd + 2j + t ← row h·hd + t·hd/2 + j.
 */
export function permuteRope(w: Float32Array, nHeads: number, hd: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++)
    for (let j = 0; j < hd / 2; j++)
      for (let t = 0; t < 2; t++) {
        const dst = (h * hd + 2 * j + t) * cols;
        const src = (h * hd + t * (hd / 2) + j) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
  return out;
}

export interface GgufExportOptions {
  type: GgufType;
  /** Folder whose tokenizer (tok512.bin / tokenizer.bin, llama2.c format) goes into the metadata. */
  tokenizerDir?: string;
  name?: string;
}

export interface GgufExportResult {
  bytes: Uint8Array;
  conversions: string[];
  warnings: string[];
  /** Per tensor: name, row-major shape and the ggml type it got. */
  tensors: { name: string; shape: number[]; type: keyof typeof GGML_TYPE }[];
}

/** llama2.c tokenizer.bin → GGUF vocabulary (pieces with '▁' for spaces, scores, token types). */
function llama2cVocab(file: string): { tokens: string[]; scores: number[]; types: number[] } {
  const buf = fs.readFileSync(file);
  const dec = new TextDecoder('utf-8', { ignoreBOM: true });
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  let off = 4;
  while (off + 8 <= buf.length) {
    const score = buf.readFloatLE(off);
    const len = buf.readInt32LE(off + 4);
    if (len < 0 || off + 8 + len > buf.length) throw new Error(`${file}: token ${tokens.length} has an invalid length ${len}`);
    let piece = dec.decode(buf.subarray(off + 8, off + 8 + len));
    off += 8 + len;
    const i = tokens.length;
    // llama2.c's export wrote '▁' as ' ' and the special pieces with newlines around them
    piece = piece.trim() === '<s>' || piece.trim() === '</s>' ? piece.trim() : piece.replace(/ /g, '\u2581');
    tokens.push(piece);
    scores.push(score);
    types.push(i === 0 ? 2 : i === 1 || i === 2 ? 3 : /^<0x[0-9A-F]{2}>$/.test(piece) ? 6 : 1);
  }
  return { tokens, scores, types };
}

export function exportGguf(model: Module, opts: GgufExportOptions): GgufExportResult {
  if (!(model instanceof LlamaForCausalLM)) throw new Error(`GGUF export: ${model.constructor.name} is not supported (only LlamaForCausalLM, the llama architecture)`);
  const cfg = model.config;
  const { hidden_size: H, num_attention_heads: nH, num_key_value_heads: nKV, head_dim: hd } = cfg;
  const conversions = new Map<string, number>();
  const note = (n: string | null) => n && conversions.set(n, (conversions.get(n) ?? 0) + 1);
  const warnings: string[] = [];
  const tensors: GgufTensor[] = [];
  const info: GgufExportResult['tensors'] = [];
  let fellBack = 0;
  const add = (name: string, t: Tensor, shape: number[], matrix: boolean, rows?: Float32Array) => {
    const data = rows ?? t.contiguous().toFloat32Array();
    let type: keyof typeof GGML_TYPE = 'F32';
    const cols = shape[shape.length - 1]!;
    if (matrix && opts.type !== 'f32') {
      if (opts.type === 'f16') type = 'F16';
      else if (cols % QK === 0) type = opts.type === 'q8_0' ? 'Q8_0' : 'Q4_0';
      else {
        type = opts.type === 'q8_0' ? 'F16' : 'F32';
        fellBack++;
      }
    }
    let bytes: Uint8Array;
    if (type === 'F32') bytes = new Uint8Array(Float32Array.from(data).buffer);
    else if (type === 'F16') {
      const h = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) h[i] = f32ToF16Bits(data[i]!);
      bytes = new Uint8Array(h.buffer);
    } else bytes = type === 'Q8_0' ? quantizeQ8_0(data) : quantizeQ4_0(data);
    tensors.push({ name, shape, type: GGML_TYPE[type], data: bytes });
    info.push({ name, shape, type });
  };
  const lin = (name: string, m: Module | null, where: string, permute?: number) => {
    if (!m) throw new Error(`GGUF export: ${where} is pruned away; GGUF's llama architecture needs every layer complete`);
    const d = denseLinear(m, where);
    note(d.note);
    if (d.bias) throw new Error(`GGUF export: ${where} has a bias, which the llama architecture in llama.cpp does not load`);
    const [N, K] = d.weight.shape as [number, number];
    let rows = d.weight.contiguous().toFloat32Array();
    if (permute !== undefined) rows = permuteRope(rows, permute, hd, K);
    add(name, d.weight, [N, K], true, rows);
    return [N, K] as const;
  };
  const emb = denseEmbedding(model.model.embed_tokens, 'model.embed_tokens');
  note(emb.note);
  add('token_embd.weight', emb.weight, emb.weight.shape as number[], true);
  let ffn = -1;
  model.model.layers.forEach((layer, i) => {
    const lp = `model.layers.${i}`;
    const at = layer.self_attn;
    if (!at) throw new Error(`GGUF export: ${lp}.self_attn is pruned away; GGUF's llama architecture needs every layer complete`);
    if (at.numHeads !== nH || at.numKvHeads !== nKV)
      throw new Error(`GGUF export: ${lp}.self_attn has ${at.numHeads} query / ${at.numKvHeads} key-value heads, the config ${nH} / ${nKV}; GGUF's llama architecture needs the same heads in every layer`);
    add(`blk.${i}.attn_norm.weight`, layer.input_layernorm.weight, [H], false);
    lin(`blk.${i}.attn_q.weight`, at.q_proj, `${lp}.self_attn.q_proj`, nH);
    lin(`blk.${i}.attn_k.weight`, at.k_proj, `${lp}.self_attn.k_proj`, nKV);
    lin(`blk.${i}.attn_v.weight`, at.v_proj, `${lp}.self_attn.v_proj`);
    lin(`blk.${i}.attn_output.weight`, at.o_proj, `${lp}.self_attn.o_proj`);
    if (!layer.mlp) throw new Error(`GGUF export: ${lp}.mlp is pruned away; GGUF's llama architecture needs every layer complete`);
    if (!(layer.mlp instanceof LlamaMLP)) throw new Error(`GGUF export: ${lp}.mlp is a ${layer.mlp.constructor.name}, which the llama architecture cannot hold`);
    add(`blk.${i}.ffn_norm.weight`, layer.post_attention_layernorm.weight, [H], false);
    const [F] = lin(`blk.${i}.ffn_gate.weight`, layer.mlp.gate_proj, `${lp}.mlp.gate_proj`);
    lin(`blk.${i}.ffn_up.weight`, layer.mlp.up_proj, `${lp}.mlp.up_proj`);
    lin(`blk.${i}.ffn_down.weight`, layer.mlp.down_proj, `${lp}.mlp.down_proj`);
    if (ffn >= 0 && F !== ffn) throw new Error(`GGUF export: ${lp}.mlp is ${F} wide, layer 0's ${ffn}; GGUF's llama architecture needs one FFN width`);
    ffn = F;
  });
  add('output_norm.weight', model.model.norm.weight, [H], false);
  const tied = model.lm_head.weight === model.model.embed_tokens.weight || (cfg.tie_word_embeddings && !(model.lm_head as { weight?: Tensor }).weight);
  if (!tied) lin('output.weight', model.lm_head, 'lm_head');
  if (fellBack) warnings.push(`${fellBack} matrices have rows not a multiple of ${QK} and are stored ${opts.type === 'q8_0' ? 'F16' : 'F32'} (as llama.cpp's converter does)`);

  const kvs: (KV | KVArr)[] = [
    { key: 'general.architecture', type: 'str', value: 'llama' },
    { key: 'general.name', type: 'str', value: opts.name ?? 'shrink-export' },
    { key: 'general.alignment', type: 'u32', value: GGUF_ALIGNMENT },
    { key: 'general.file_type', type: 'u32', value: FILE_TYPE[opts.type] },
    ...(opts.type === 'q8_0' || opts.type === 'q4_0' ? [{ key: 'general.quantization_version', type: 'u32' as const, value: 2 }] : []),
    { key: 'llama.vocab_size', type: 'u32', value: cfg.vocab_size },
    { key: 'llama.context_length', type: 'u32', value: cfg.max_position_embeddings },
    { key: 'llama.embedding_length', type: 'u32', value: H },
    { key: 'llama.block_count', type: 'u32', value: cfg.num_hidden_layers },
    { key: 'llama.feed_forward_length', type: 'u32', value: ffn },
    { key: 'llama.rope.dimension_count', type: 'u32', value: hd },
    { key: 'llama.attention.head_count', type: 'u32', value: nH },
    { key: 'llama.attention.head_count_kv', type: 'u32', value: nKV },
    ...(hd * nH !== H
      ? [
          { key: 'llama.attention.key_length', type: 'u32' as const, value: hd },
          { key: 'llama.attention.value_length', type: 'u32' as const, value: hd },
        ]
      : []),
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: cfg.rms_norm_eps },
    { key: 'llama.rope.freq_base', type: 'f32', value: cfg.rope_theta },
  ] as (KV | KVArr)[];
  const tokFile = opts.tokenizerDir ? ['tok512.bin', 'tokenizer.bin'].map((f) => path.join(opts.tokenizerDir!, f)).find((f) => fs.existsSync(f)) : undefined;
  if (tokFile) {
    const v = llama2cVocab(tokFile);
    if (v.tokens.length !== cfg.vocab_size) warnings.push(`${tokFile} has ${v.tokens.length} tokens, the model ${cfg.vocab_size}`);
    kvs.push(
      { key: 'tokenizer.ggml.model', type: 'str', value: 'llama' } as KV,
      { key: 'tokenizer.ggml.tokens', type: 'arr', elem: 'str', values: v.tokens },
      { key: 'tokenizer.ggml.scores', type: 'arr', elem: 'f32', values: v.scores },
      { key: 'tokenizer.ggml.token_type', type: 'arr', elem: 'i32', values: v.types },
      { key: 'tokenizer.ggml.unknown_token_id', type: 'u32', value: 0 } as KV,
      { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: Number(cfg.bos_token_id ?? 1) } as KV,
      { key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: Number(cfg.eos_token_id ?? 2) } as KV,
    );
  } else warnings.push('no llama2.c tokenizer (tok512.bin / tokenizer.bin) in the model folder: the GGUF has no tokenizer.ggml.* metadata, which llama.cpp needs to run it');
  return { bytes: writeGguf(kvs, tensors), conversions: [...conversions].map(([s, n]) => `${s} ×${n}`), warnings, tensors: info };
}
