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
import { FLOAT32_MIN, type ForwardOptions, type ModelInputs, type ModelOutput } from '../outputs.ts';
import { gpt2Config, type GPT2Config } from './config.ts';
import type { KVCache } from '../generation.ts';

/** HF Conv1D: weight [in, out], y = x·W + b. */
export class Conv1D extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(inFeatures: number, outFeatures: number, std = 0.02) {
    super();
    this.weight = normal_(Tensor.empty([inFeatures, outFeatures]), 0, std).requiresGrad_();
    this.bias = Tensor.zeros([outFeatures], { requiresGrad: true });
  }
  forward(x: Tensor): Tensor {
    const x2 = x.reshape([-1, x.shape[x.ndim - 1]!]);
    return x2.matmul(this.weight).add(this.bias).reshape([...x.shape.slice(0, -1), this.weight.shape[1]!]);
  }
}

/** 1 where key s may be attended from query t (s ≤ past + t), else 0: [T, S]. */
export function causalAllowed(T: number, S: number): Tensor {
  const m = new Float32Array(T * S);
  const past = S - T;
  for (let t = 0; t < T; t++) for (let s = 0; s <= past + t && s < S; s++) m[t * S + s] = 1;
  return new Tensor(m, [T, S], 'float32');
}

export class GPT2Attention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;
  constructor(readonly cfg: GPT2Config, readonly layerIdx: number) {
    super();
    this.c_attn = new Conv1D(cfg.n_embd, 3 * cfg.n_embd, cfg.initializer_range);
    this.c_proj = new Conv1D(cfg.n_embd, cfg.n_embd, cfg.initializer_range);
  }
  forward(x: Tensor, maskAdd: Tensor | null, cache: KVCache | null): { out: Tensor; probs: Tensor } {
    const [B, T] = x.shape as [number, number];
    const nH = this.cfg.n_head;
    const H = this.cfg.n_embd;
    const hd = H / nH;
    const [q0, k0, v0] = this.c_attn.forward(x).split(H, 2); // 3 × (B, T, H)
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
    const ctx = dropoutFn(probs, this.cfg.attn_pdrop, this.training).matmul(v).transpose(1, 2).reshape([B, T, H]); // (B, T, H)
    return { out: dropoutFn(this.c_proj.forward(ctx), this.cfg.resid_pdrop, this.training), probs };
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
  forward(x: Tensor): Tensor {
    return dropoutFn(this.c_proj.forward(this.act(this.c_fc.forward(x))), this.cfg.resid_pdrop, this.training);
  }
}

export class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;
  constructor(cfg: GPT2Config, layerIdx: number) {
    super();
    this.ln_1 = new LayerNorm([cfg.n_embd], { eps: cfg.layer_norm_epsilon });
    this.attn = new GPT2Attention(cfg, layerIdx);
    this.ln_2 = new LayerNorm([cfg.n_embd], { eps: cfg.layer_norm_epsilon });
    this.mlp = new GPT2MLP(cfg);
  }
  forward(x: Tensor, maskAdd: Tensor | null, cache: KVCache | null): { out: Tensor; probs: Tensor } {
    const a = this.attn.forward(this.ln_1.forward(x), maskAdd, cache);
    const h = x.add(a.out);
    return { out: h.add(this.mlp.forward(this.ln_2.forward(h))), probs: a.probs };
  }
}

export interface DecoderOutput {
  lastHiddenState: Tensor;
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

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
    const attentions: Tensor[] = [];
    for (const block of this.h) {
      hiddenStates.push(x);
      const r = block.forward(x, maskAdd, cache);
      x = r.out;
      if (opts.outputAttentions) attentions.push(r.probs);
    }
    x = this.ln_f.forward(x);
    hiddenStates.push(x);
    if (cache) cache.advance(T);
    return { lastHiddenState: x, hiddenStates: opts.outputHiddenStates ? hiddenStates : undefined, attentions: opts.outputAttentions ? attentions : undefined };
  }
}

/** (1 - mask)[:, None, None, :] · finfo(float32).min over all keys S (past + new). */
export function paddingMaskAdd(mask: Tensor): Tensor {
  const [B, S] = mask.shape as [number, number];
  return sub(1, mask.to('float32')).mul(FLOAT32_MIN).reshape([B, 1, 1, S]); // (B, 1, 1, S)
}

/** Causal-LM loss as HF: CE(logits[:, :-1], labels[:, 1:]), mean over labels ≠ -100. */
export function shiftedLmLoss(logits: Tensor, labels: Tensor): Tensor {
  const [B, T, V] = logits.shape as [number, number, number];
  if (labels.shape[0] !== B || labels.shape[1] !== T) throw new Error(`causal LM loss: labels [${labels.shape}] do not match logits [${B},${T}]`);
  const l = logits.narrow(1, 0, T - 1).reshape([-1, V]);
  const t = labels.narrow(1, 1, T - 1).reshape([-1]);
  return crossEntropy(l, t);
}

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
    return { logits, loss, hiddenStates: out.hiddenStates, attentions: out.attentions };
  }
}

export { gpt2Config };
