/**
 * GPT-2: GPT2Model, GPT2LMHeadModel. Hugging Face transformers v4.36.2 models/gpt2/modeling_gpt2.py (eager).
 * GPT-2 keeps `Conv1D`'s [in, out] weight layout (y = x·W + b) so checkpoint keys, shapes and gradients compare
 * by name with HF. Parity: fixture gpt2.
 *
 * Shapes: B batch, T new tokens, S keys (past + new), H hidden, nH heads, hd head dim, V vocab.
 */
import { normal_ } from '../../nn/init.ts';
import { Module } from '../../nn/module.ts';
import { Dropout, Embedding, LayerNorm, Linear } from '../../nn/layers.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { crossEntropy, dropout as dropoutFn, sub, where } from '../../ops/index.ts';
import { activation } from '../activations.ts';
import { FLOAT32_MIN, findPruneableHeads, layerHeadMask, shiftedLmLoss, type AttentionResult, type DecoderOutput, type FeedForwardModule, type ForwardOptions, type ModelInputs, type ModelOutput } from '../outputs.ts';
import { gpt2Config, type GPT2Config } from './config.ts';
import type { KVCache } from '../generation.ts';
import { sliceLinear } from '../../nn/layers.ts';

// HF Conv1D (weight [in, out], y = x·W + b) lives in nn/layers.ts; re-exported here so existing imports keep working.
import { Conv1D } from '../../nn/layers.ts';
export { Conv1D };

/** 1 where key s may be attended from query t (s ≤ past + t), else 0: [T, S]. */
export function causalAllowed(T: number, S: number): Tensor {
  const m = new Float32Array(T * S);
  const past = S - T;
  for (let t = 0; t < T; t++) for (let s = 0; s <= past + t && s < S; s++) m[t * S + s] = 1;
  return new Tensor(m, [T, S], 'float32');
}

/**
 * Causal self-attention with HF's fused c_attn (Conv1D [H, 3·nH·hd]: the q, k, v columns in that order) and
 * c_proj [nH·hd, H]. The head layout is the instance's own (`numHeads`, `headDim`, HF's num_heads / head_dim with
 * split_size = numHeads·headDim), not the config's, so layers may keep different head counts after pruning.
 */
export class GPT2Attention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;
  /** Live head count (config.n_head until heads are pruned). */
  numHeads: number;
  /** Width of one head (n_embd / n_head at construction). */
  headDim: number;
  /** Pruned heads as indices among the original config.n_head heads (HF pruned_heads). */
  readonly prunedHeads = new Set<number>();
  constructor(readonly cfg: GPT2Config, readonly layerIdx: number) {
    super();
    this.numHeads = cfg.n_head;
    this.headDim = cfg.n_embd / cfg.n_head;
    this.c_attn = new Conv1D(cfg.n_embd, 3 * this.allHeadSize, cfg.initializer_range);
    this.c_proj = new Conv1D(this.allHeadSize, cfg.n_embd, cfg.initializer_range);
  }
  /** GPT-2 has no grouped-query attention: one key/value head per query head. */
  get numKvHeads(): number {
    return this.numHeads;
  }
  /** numHeads · headDim (HF split_size): the width of each of q, k, v in c_attn and of c_proj's input. */
  get allHeadSize(): number {
    return this.numHeads * this.headDim;
  }
  /**
   * HF GPT2Attention.prune_heads: `heads` index the original heads (already pruned ones ignored); keeps the q, k
   * and v columns of the live heads in c_attn and their rows in c_proj, as new tensors. Pruning every head is
   * refused: set the block's `attn` to null instead (models/anatomy.ts removeAttention).
   */
  pruneHeads(heads: readonly number[]): void {
    const { heads: todo, keep } = findPruneableHeads(heads, this.cfg.n_head, this.numHeads, this.headDim, this.prunedHeads);
    if (todo.length === 0) return;
    if (keep.length === 0) throw new Error(`GPT2Attention.pruneHeads: pruning every head of layer ${this.layerIdx}; set the block's attn to null instead`);
    const D = this.allHeadSize;
    this.c_attn = sliceLinear(this.c_attn, { outIdx: [...keep, ...keep.map((i) => i + D), ...keep.map((i) => i + 2 * D)] });
    this.c_proj = sliceLinear(this.c_proj, { inIdx: keep });
    this.numHeads -= todo.length;
    for (const h of todo) this.prunedHeads.add(h);
  }
  forward(x: Tensor, maskAdd: Tensor | null, cache: KVCache | null, headMask: Tensor | null = null): AttentionResult {
    const [B, T] = x.shape as [number, number];
    const nH = this.numHeads;
    const hd = this.headDim;
    const D = nH * hd;
    const [q0, k0, v0] = this.c_attn.forward(x).split(D, 2); // 3 × (B, T, nH·hd)
    const heads = (t: Tensor) => t.reshape([B, T, nH, hd]).transpose(1, 2); // (B, nH, T, hd)
    let k = heads(k0!);
    let v = heads(v0!);
    if (cache) [k, v] = cache.update(this.layerIdx, k, v); // (B, nH, S, hd)
    const S = k.shape[2]!;
    let scores = heads(q0!).matmul(k.transpose(-1, -2)); // (B, nH, T, S)
    if (this.cfg.scale_attn_weights) scores = scores.div(Math.sqrt(hd));
    if (this.cfg.scale_attn_by_inverse_layer_idx) scores = scores.div(this.layerIdx + 1);
    scores = where(causalAllowed(T, S), scores, Tensor.full([], FLOAT32_MIN)); // causal: set, not summed
    if (maskAdd) scores = scores.add(maskAdd);
    const probs = scores.softmax(-1);
    let dropped = dropoutFn(probs, this.cfg.attn_pdrop, this.training);
    if (headMask) dropped = dropped.mul(headMask);
    const ctx = dropped.matmul(v).transpose(1, 2).reshape([B, T, D]); // (B, T, nH·hd)
    return { out: dropoutFn(this.c_proj.forward(ctx), this.cfg.resid_pdrop, this.training), probs, scores };
  }
}

export class GPT2MLP extends Module {
  c_fc: Conv1D;
  c_proj: Conv1D;
  private act: (x: Tensor) => Tensor;
  constructor(readonly cfg: GPT2Config) {
    super();
    const inner = cfg.n_inner ?? 4 * cfg.n_embd;
    this.c_fc = new Conv1D(cfg.n_embd, inner, cfg.initializer_range);
    this.c_proj = new Conv1D(inner, cfg.n_embd, cfg.initializer_range);
    this.act = activation(cfg.activation_function, 'GPT2MLP');
  }
  /** HF's GPT2MLP ends with the residual dropout; GPT2Block adds it to replacement MLPs that do not. */
  readonly appliesResidualDropout = true;
  forward(x: Tensor): Tensor {
    return dropoutFn(this.c_proj.forward(this.act(this.c_fc.forward(x))), this.cfg.resid_pdrop, this.training);
  }
}

/**
 * Pre-norm block: x + attn(ln_1(x)), then h + mlp(ln_2(h)). `attn` or `mlp` null means that sub-block is pruned
 * away and its residual branch is skipped (ln_1 / ln_2 keep their keys, unused). `mlp` takes any
 * (B, T, H) → (B, T, H) module; one without `appliesResidualDropout` gets the block's dropout (resid_pdrop) on its
 * output, as HF's GPT2MLP applies it.
 */
export class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention | null;
  ln_2: LayerNorm;
  mlp: FeedForwardModule | null;
  constructor(readonly cfg: GPT2Config, layerIdx: number) {
    super();
    this.ln_1 = new LayerNorm([cfg.n_embd], { eps: cfg.layer_norm_epsilon });
    this.attn = new GPT2Attention(cfg, layerIdx);
    this.ln_2 = new LayerNorm([cfg.n_embd], { eps: cfg.layer_norm_epsilon });
    this.mlp = new GPT2MLP(cfg);
  }
  forward(x: Tensor, maskAdd: Tensor | null, cache: KVCache | null, headMask: Tensor | null = null): AttentionResult {
    let h = x;
    let probs: Tensor | null = null;
    let scores: Tensor | null = null;
    if (this.attn) {
      const a = this.attn.forward(this.ln_1.forward(x), maskAdd, cache, headMask);
      h = x.add(a.out);
      probs = a.probs;
      scores = a.scores;
    }
    if (!this.mlp) return { out: h, probs, scores };
    let m = this.mlp.forward(this.ln_2.forward(h));
    if (!this.mlp.appliesResidualDropout) m = dropoutFn(m, this.cfg.resid_pdrop, this.training);
    return { out: h.add(m), probs, scores };
  }
}

export type { DecoderOutput };

/**
 * HF GPT2Model. hiddenStates: [embeddings, output of layers 0..L-2, ln_f(output of layer L-1)] (HF convention:
 * the last entry is after the final LayerNorm).
 */
export class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  drop: Dropout;
  h: GPT2Block[];
  ln_f: LayerNorm;
  constructor(readonly config: GPT2Config) {
    super();
    this.wte = new Embedding(config.vocab_size, config.n_embd);
    this.wpe = new Embedding(config.n_positions, config.n_embd);
    this.drop = new Dropout(config.embd_pdrop);
    this.h = Array.from({ length: config.n_layer }, (_, i) => new GPT2Block(config, i));
    this.ln_f = new LayerNorm([config.n_embd], { eps: config.layer_norm_epsilon });
  }
  forward(inputs: ModelInputs, opts: ForwardOptions = {}, cache: KVCache | null = null): DecoderOutput {
    const { inputIds, attentionMask, positionIds } = inputs;
    if (inputIds.ndim !== 2) throw new Error(`GPT2Model: inputIds must be [batch, seq], got [${inputIds.shape}]`);
    const [, T] = inputIds.shape as [number, number];
    const past = cache?.length ?? 0;
    if (past + T > this.config.n_positions) throw new Error(`GPT2Model: ${past + T} positions exceed n_positions ${this.config.n_positions}`);
    const pos = positionIds ?? Tensor.arange(past, past + T).reshape([1, T]);
    let x = this.drop.forward(this.wte.forward(inputIds).add(this.wpe.forward(pos))); // (B, T, H)
    const maskAdd = attentionMask ? paddingMaskAdd(attentionMask) : null;
    const hiddenStates: Tensor[] = [];
    const attentions: (Tensor | null)[] = [];
    const scores: (Tensor | null)[] = [];
    this.h.forEach((block, i) => {
      hiddenStates.push(x);
      const r = block.forward(x, maskAdd, cache, layerHeadMask(opts, i, block.attn?.numHeads ?? 0));
      x = r.out;
      attentions.push(r.probs);
      scores.push(r.scores);
    });
    x = this.ln_f.forward(x);
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

/** (1 - mask)[:, None, None, :] · finfo(float32).min over all keys S (past + new). */
export function paddingMaskAdd(mask: Tensor): Tensor {
  const [B, S] = mask.shape as [number, number];
  return sub(1, mask.to('float32')).mul(FLOAT32_MIN).reshape([B, 1, 1, S]); // (B, 1, 1, S)
}

/** Moved to models/outputs.ts; re-exported for existing imports. */
export { shiftedLmLoss };

/** HF GPT2LMHeadModel; lm_head is tied to transformer.wte. */
export class GPT2LMHeadModel extends Module {
  static override tied = { 'lm_head.weight': 'transformer.wte.weight' };
  transformer: GPT2Model;
  lm_head: Linear;
  constructor(readonly config: GPT2Config) {
    super();
    this.transformer = new GPT2Model(config);
    this.lm_head = new Linear(config.n_embd, config.vocab_size, { bias: false });
    this.tieWeights();
  }
  tieWeights(): void {
    this.lm_head.weight = this.transformer.wte.weight;
  }
  forward(inputs: ModelInputs, opts: ForwardOptions = {}, cache: KVCache | null = null): ModelOutput {
    const out = this.transformer.forward(inputs, opts, cache);
    const logits = this.lm_head.forward(out.lastHiddenState); // (B, T, V)
    const loss = inputs.labels ? shiftedLmLoss(logits, inputs.labels) : undefined;
    return { logits, loss, hiddenStates: out.hiddenStates, attentions: out.attentions, attentionScores: out.attentionScores };
  }
}

export { gpt2Config };
