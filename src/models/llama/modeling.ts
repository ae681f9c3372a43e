/**
 * Llama: LlamaModel, LlamaForCausalLM. Hugging Face transformers v4.36.2 models/llama/modeling_llama.py (eager
 * attention): RMSNorm, rotary embeddings in HF's rotate-half layout (dim j pairs with j + hd/2), SwiGLU MLP,
 * grouped-query attention. Parity: fixtures llama and llama_gqa; real checkpoint: stories260K.
 *
 * Shapes: B batch, T new tokens, S keys, H hidden, nH query heads, nKV key/value heads, R = nH/nKV, hd head dim.
 */
import { Module } from '../../nn/module.ts';
import { Embedding, Linear, RMSNorm } from '../../nn/layers.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { cat, dropout as dropoutFn } from '../../ops/index.ts';
import { activation } from '../activations.ts';
import { FLOAT32_MIN, layerHeadMask, shiftedLmLoss, type AttentionResult, type DecoderOutput, type FeedForwardModule, type ForwardOptions, type ModelInputs, type ModelOutput } from '../outputs.ts';
import type { KVCache } from '../generation.ts';
import { llamaConfig, type LlamaConfig } from './config.ts';

const f32 = Math.fround;

/**
 * cos/sin tables [P, hd] as HF builds them in float32: inv_freq_j = 1/θ^(2j/hd), freqs = t·inv_freq, emb = [freqs,
 * freqs] (concatenated, not interleaved).
 */
export function ropeTables(hd: number, positions: number, theta: number): { cos: Tensor; sin: Tensor } {
  const half = hd / 2;
  const inv = new Float32Array(half);
  for (let j = 0; j < half; j++) inv[j] = f32(1 / f32(theta ** f32((2 * j) / hd)));
  const cos = new Float32Array(positions * hd);
  const sin = new Float32Array(positions * hd);
  for (let t = 0; t < positions; t++)
    for (let j = 0; j < half; j++) {
      const a = f32(t * inv[j]!);
      cos[t * hd + j] = cos[t * hd + j + half] = Math.cos(a);
      sin[t * hd + j] = sin[t * hd + j + half] = Math.sin(a);
    }
  return { cos: new Tensor(cos, [positions, hd], 'float32'), sin: new Tensor(sin, [positions, hd], 'float32') };
}

/** [-x2, x1] where x1, x2 are the two halves of the last dim. */
export function rotateHalf(x: Tensor): Tensor {
  const hd = x.shape[x.ndim - 1]!;
  return cat([x.narrow(-1, hd / 2, hd / 2).neg(), x.narrow(-1, 0, hd / 2)], -1);
}

/**
 * Grouped-query attention. The head layout is the instance's own (`numHeads`, `numKvHeads`, `headDim`), not the
 * config's, so layers may keep different head counts after pruning: q_proj/o_proj span numHeads·headDim,
 * k_proj/v_proj numKvHeads·headDim, and numHeads must stay a multiple of numKvHeads. headDim must equal the
 * model's rotary width (config.head_dim).
 */
export class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  /** Live query heads. */
  numHeads: number;
  /** Live key/value heads (GQA groups). */
  numKvHeads: number;
  /** Width of one head. */
  headDim: number;
  constructor(readonly cfg: LlamaConfig, readonly layerIdx: number) {
    super();
    const { hidden_size: H, num_attention_heads: nH, num_key_value_heads: nKV, head_dim: hd, attention_bias: bias } = cfg;
    this.numHeads = nH;
    this.numKvHeads = nKV;
    this.headDim = hd;
    this.q_proj = new Linear(H, nH * hd, { bias });
    this.k_proj = new Linear(H, nKV * hd, { bias });
    this.v_proj = new Linear(H, nKV * hd, { bias });
    this.o_proj = new Linear(nH * hd, H, { bias });
  }
  forward(x: Tensor, cos: Tensor, sin: Tensor, maskAdd: Tensor | null, cache: KVCache | null, headMask: Tensor | null = null): AttentionResult {
    const [B, T] = x.shape as [number, number];
    const { numHeads: nH, numKvHeads: nKV, headDim: hd } = this;
    if (nH % nKV !== 0) throw new Error(`LlamaAttention (layer ${this.layerIdx}): ${nH} query heads are not a multiple of ${nKV} key/value heads`);
    if (cos.shape[cos.ndim - 1] !== hd) throw new Error(`LlamaAttention (layer ${this.layerIdx}): head width ${hd} differs from the rotary width ${cos.shape[cos.ndim - 1]}`);
    const R = nH / nKV;
    const rope = (t: Tensor) => t.mul(cos).add(rotateHalf(t).mul(sin)); // cos/sin (B|1, 1, T, hd)
    const q = rope(this.q_proj.forward(x).reshape([B, T, nH, hd]).transpose(1, 2)); // (B, nH, T, hd)
    let k = rope(this.k_proj.forward(x).reshape([B, T, nKV, hd]).transpose(1, 2)); // (B, nKV, T, hd)
    let v = this.v_proj.forward(x).reshape([B, T, nKV, hd]).transpose(1, 2); // (B, nKV, T, hd)
    if (cache) [k, v] = cache.update(this.layerIdx, k, v); // (B, nKV, S, hd)
    const S = k.shape[2]!;
    // GQA without copying K/V: query heads grouped as (nKV, R) broadcast against (nKV, 1)
    const qg = q.reshape([B, nKV, R, T, hd]);
    let scores = qg.matmul(k.unsqueeze(2).transpose(-1, -2)).div(Math.sqrt(hd)); // (B, nKV, R, T, S)
    if (maskAdd) scores = scores.add(maskAdd.unsqueeze(1)); // maskAdd (B, 1, T, S)
    const probs = scores.softmax(-1);
    let dropped = dropoutFn(probs, this.cfg.attention_dropout, this.training);
    if (headMask) dropped = dropped.mul(headMask.reshape([...headMask.shape.slice(0, -3), nKV, R, ...headMask.shape.slice(-2)]));
    const ctx = dropped.matmul(v.unsqueeze(2)); // (B, nKV, R, T, hd)
    const out = this.o_proj.forward(ctx.reshape([B, nH, T, hd]).transpose(1, 2).reshape([B, T, nH * hd])); // (B, T, H)
    return { out, probs: probs.reshape([B, nH, T, S]), scores: scores.reshape([B, nH, T, S]) };
  }
}

export class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  private act: (x: Tensor) => Tensor;
  constructor(cfg: LlamaConfig) {
    super();
    const bias = cfg.mlp_bias;
    this.gate_proj = new Linear(cfg.hidden_size, cfg.intermediate_size, { bias });
    this.up_proj = new Linear(cfg.hidden_size, cfg.intermediate_size, { bias });
    this.down_proj = new Linear(cfg.intermediate_size, cfg.hidden_size, { bias });
    this.act = activation(cfg.hidden_act, 'LlamaMLP');
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(this.act(this.gate_proj.forward(x)).mul(this.up_proj.forward(x)));
  }
}

/**
 * Pre-norm block: x + self_attn(input_layernorm(x)), then h + mlp(post_attention_layernorm(h)). `self_attn` or
 * `mlp` null means that sub-block is pruned away and its residual branch is skipped (its norm keeps its keys,
 * unused). `mlp` takes any (B, T, H) → (B, T, H) module (Llama has no residual dropout).
 */
export class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention | null;
  mlp: FeedForwardModule | null;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  constructor(cfg: LlamaConfig, layerIdx: number) {
    super();
    this.self_attn = new LlamaAttention(cfg, layerIdx);
    this.mlp = new LlamaMLP(cfg);
    this.input_layernorm = new RMSNorm(cfg.hidden_size, { eps: cfg.rms_norm_eps });
    this.post_attention_layernorm = new RMSNorm(cfg.hidden_size, { eps: cfg.rms_norm_eps });
  }
  forward(x: Tensor, cos: Tensor, sin: Tensor, maskAdd: Tensor | null, cache: KVCache | null, headMask: Tensor | null = null): AttentionResult {
    let h = x;
    let probs: Tensor | null = null;
    let scores: Tensor | null = null;
    if (this.self_attn) {
      const a = this.self_attn.forward(this.input_layernorm.forward(x), cos, sin, maskAdd, cache, headMask);
      h = x.add(a.out);
      probs = a.probs;
      scores = a.scores;
    }
    return { out: this.mlp ? h.add(this.mlp.forward(this.post_attention_layernorm.forward(h))) : h, probs, scores };
  }
}

/**
 * Additive 4-D mask [B, 1, T, S]: finfo(float32).min where the key is in the future or padding (set, not summed),
 * 0 elsewhere. Without an attention mask only the causal part applies.
 */
export function llamaMask(B: number, T: number, S: number, attentionMask: Tensor | null): Tensor {
  const m = new Float32Array(B * T * S);
  const past = S - T;
  const pad = attentionMask ? attentionMask.toFloat32Array() : null;
  if (attentionMask && (attentionMask.shape[0] !== B || attentionMask.shape[1] !== S))
    throw new Error(`Llama: attention mask [${attentionMask.shape}] does not match [batch ${B}, keys ${S}]`);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let s = 0; s < S; s++) if (s > past + t || (pad && pad[b * S + s] === 0)) m[(b * T + t) * S + s] = FLOAT32_MIN;
  return new Tensor(m, [B, 1, T, S], 'float32');
}

/** HF LlamaModel. hiddenStates: [embed_tokens, output of layers 0..L-2, norm(output of layer L-1)]. */
export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;
  private rope: { cos: Tensor; sin: Tensor };
  constructor(readonly config: LlamaConfig) {
    super();
    this.embed_tokens = new Embedding(config.vocab_size, config.hidden_size, { paddingIdx: config.pad_token_id ?? undefined });
    this.layers = Array.from({ length: config.num_hidden_layers }, (_, i) => new LlamaDecoderLayer(config, i));
    this.norm = new RMSNorm(config.hidden_size, { eps: config.rms_norm_eps });
    this.rope = ropeTables(config.head_dim, config.max_position_embeddings, config.rope_theta);
  }
  forward(inputs: ModelInputs, opts: ForwardOptions = {}, cache: KVCache | null = null): DecoderOutput {
    const { inputIds, attentionMask, positionIds } = inputs;
    if (inputIds.ndim !== 2) throw new Error(`LlamaModel: inputIds must be [batch, seq], got [${inputIds.shape}]`);
    const [B, T] = inputIds.shape as [number, number];
    const past = cache?.length ?? 0;
    const S = past + T;
    if (S > this.config.max_position_embeddings)
      throw new Error(`LlamaModel: ${S} positions exceed max_position_embeddings ${this.config.max_position_embeddings}`);
    const pos = positionIds ?? Tensor.arange(past, S).reshape([1, T]); // (B|1, T)
    const cos = this.rope.cos.indexSelect(0, pos.reshape([-1])).reshape([pos.shape[0]!, 1, T, this.config.head_dim]);
    const sin = this.rope.sin.indexSelect(0, pos.reshape([-1])).reshape([pos.shape[0]!, 1, T, this.config.head_dim]);
    const maskAdd = attentionMask || T > 1 ? llamaMask(B, T, S, attentionMask ?? null) : null;
    let x = this.embed_tokens.forward(inputIds); // (B, T, H)
    const hiddenStates: Tensor[] = [];
    const attentions: (Tensor | null)[] = [];
    const scores: (Tensor | null)[] = [];
    this.layers.forEach((layer, i) => {
      hiddenStates.push(x);
      const r = layer.forward(x, cos, sin, maskAdd, cache, layerHeadMask(opts, i, layer.self_attn?.numHeads ?? 0));
      x = r.out;
      attentions.push(r.probs);
      scores.push(r.scores);
    });
    x = this.norm.forward(x);
    hiddenStates.push(x);
    if (cache) cache.advance(T);
    return {
      lastHiddenState: x,
      hiddenStates: opts.outputHiddenStates ? hiddenStates : undefined,
      attentions: opts.outputAttentions ? attentions : undefined,
      attentionScores: opts.outputAttentionScores ? scores : undefined,
    };
  }
}

/** HF LlamaForCausalLM; lm_head is tied to model.embed_tokens when config.tie_word_embeddings. */
export class LlamaForCausalLM extends Module {
  model: LlamaModel;
  lm_head: Linear;
  constructor(readonly config: LlamaConfig) {
    super();
    this.model = new LlamaModel(config);
    this.lm_head = new Linear(config.hidden_size, config.vocab_size, { bias: false });
    if (config.tie_word_embeddings) this.lm_head.weight = this.model.embed_tokens.weight;
  }
  /** Tied keys depend on the config (stories260K and llama_gqa tie, llama does not). */
  override tiedKeys(): Record<string, string> {
    return this.config.tie_word_embeddings ? { 'lm_head.weight': 'model.embed_tokens.weight' } : {};
  }
  forward(inputs: ModelInputs, opts: ForwardOptions = {}, cache: KVCache | null = null): ModelOutput {
    const out = this.model.forward(inputs, opts, cache);
    const logits = this.lm_head.forward(out.lastHiddenState); // (B, T, V)
    const loss = inputs.labels ? shiftedLmLoss(logits, inputs.labels) : undefined;
    return { logits, loss, hiddenStates: out.hiddenStates, attentions: out.attentions, attentionScores: out.attentionScores };
  }
}

export { llamaConfig };
