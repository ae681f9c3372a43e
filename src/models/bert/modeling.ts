/**
 * BERT: BertModel, BertForMaskedLM, BertForSequenceClassification.
 * Hugging Face transformers v4.36.2 models/bert/modeling_bert.py (eager attention). Field names are checkpoint
 * keys (`bert.encoder.layer.0.attention.self.query.weight`); Linear weights are [out, in].
 * Parity: test/models/parity.test.ts against fixtures bert_mlm and bert_cls.
 *
 * Shapes: B batch, T tokens, H hidden, nH heads, hd head dim, V vocab.
 *
 * Beyond HF, for compression: head counts live on each attention module (pruneHeads, config.pruned_heads), the
 * MLP is a replaceable slot (BertLayer.setMlp), a pruned-away attention/MLP is the identity (CoFiPruning), and
 * forward can return pre-softmax attention scores and take a per-layer head mask. See BertLayer for the keys.
 */
import { Module } from '../../nn/module.ts';
import { Dropout, Embedding, LayerNorm, Linear, sliceLinear } from '../../nn/layers.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { crossEntropy, mseLoss, sub, dropout as dropoutFn } from '../../ops/index.ts';
import { activation } from '../activations.ts';
import { FLOAT32_MIN, findPruneableHeads, layerHeadMask, type AttentionResult, type FeedForwardModule, type ForwardOptions, type ModelInputs, type ModelOutput } from '../outputs.ts';
import { bertConfig, type BertConfig } from './config.ts';

/** (1 - mask)[:, None, None, :] · finfo(float32).min: 0 for real keys, the most negative float for padding. */
export function extendedAttentionMask(mask: Tensor): Tensor {
  const [B, T] = mask.shape as [number, number];
  return sub(1, mask.to('float32')).mul(FLOAT32_MIN).reshape([B, 1, 1, T]); // (B, 1, 1, T)
}

export class BertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  token_type_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(readonly cfg: BertConfig) {
    super();
    this.word_embeddings = new Embedding(cfg.vocab_size, cfg.hidden_size, { paddingIdx: cfg.pad_token_id });
    this.position_embeddings = new Embedding(cfg.max_position_embeddings, cfg.hidden_size);
    this.token_type_embeddings = new Embedding(cfg.type_vocab_size, cfg.hidden_size);
    this.LayerNorm = new LayerNorm([cfg.hidden_size], { eps: cfg.layer_norm_eps });
    this.dropout = new Dropout(cfg.hidden_dropout_prob);
  }
  forward(inputIds: Tensor, tokenTypeIds?: Tensor | null, positionIds?: Tensor | null): Tensor {
    const [B, T] = inputIds.shape as [number, number];
    if (T > this.cfg.max_position_embeddings)
      throw new Error(`BertEmbeddings: sequence length ${T} exceeds max_position_embeddings ${this.cfg.max_position_embeddings}`);
    const pos = positionIds ?? Tensor.arange(T).reshape([1, T]);
    const types = tokenTypeIds ?? Tensor.zeros([B, T], { dtype: 'int32' });
    const x = this.word_embeddings
      .forward(inputIds)
      .add(this.token_type_embeddings.forward(types))
      .add(this.position_embeddings.forward(pos)); // (B, T, H)
    return this.dropout.forward(this.LayerNorm.forward(x));
  }
}

/**
 * Multi-head self-attention. The head layout is the instance's own (`numHeads`, `headDim`, HF's
 * num_attention_heads / attention_head_size), not the config's, so every layer may keep a different number of
 * heads after pruning: q/k/v are [numHeads·headDim, H].
 */
export class BertSelfAttention extends Module {
  query: Linear;
  key: Linear;
  value: Linear;
  /** Live head count (config.num_attention_heads less the pruned heads). */
  numHeads: number;
  /** Width of one head (hidden_size / num_attention_heads at construction; pruning heads does not change it). */
  headDim: number;
  constructor(readonly cfg: BertConfig) {
    super();
    const h = cfg.hidden_size;
    this.numHeads = cfg.num_attention_heads;
    this.headDim = h / cfg.num_attention_heads;
    this.query = new Linear(h, this.allHeadSize);
    this.key = new Linear(h, this.allHeadSize);
    this.value = new Linear(h, this.allHeadSize);
  }
  /** BERT has no grouped-query attention: one key/value head per query head. */
  get numKvHeads(): number {
    return this.numHeads;
  }
  /** numHeads · headDim (HF all_head_size): the width of q, k, v and of attention.output.dense's input. */
  get allHeadSize(): number {
    return this.numHeads * this.headDim;
  }
  forward(x: Tensor, maskAdd: Tensor | null, headMask: Tensor | null = null): { context: Tensor; probs: Tensor; scores: Tensor } {
    const [B, T] = x.shape as [number, number];
    const nH = this.numHeads;
    const hd = this.headDim;
    const heads = (t: Tensor) => t.reshape([B, T, nH, hd]).transpose(1, 2); // (B, nH, T, hd)
    const q = heads(this.query.forward(x));
    const k = heads(this.key.forward(x));
    const v = heads(this.value.forward(x));
    let scores = q.matmul(k.transpose(-1, -2)).div(Math.sqrt(hd)); // (B, nH, T, T)
    if (maskAdd) scores = scores.add(maskAdd);
    const probs = scores.softmax(-1);
    let dropped = dropoutFn(probs, this.cfg.attention_probs_dropout_prob, this.training);
    if (headMask) dropped = dropped.mul(headMask);
    const context = dropped.matmul(v).transpose(1, 2).reshape([B, T, nH * hd]); // (B, T, nH·hd)
    return { context, probs, scores };
  }
}

/**
 * dense → dropout → LayerNorm(· + residual): BertSelfOutput and BertOutput share this shape. `dense` is null
 * when the sub-block it closes is pruned away or replaced (the LayerNorm stays, as in CoFiPruning's checkpoints).
 */
export class BertResidualOutput extends Module {
  dense: Linear | null;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(cfg: BertConfig, inFeatures: number) {
    super();
    this.dense = new Linear(inFeatures, cfg.hidden_size);
    this.LayerNorm = new LayerNorm([cfg.hidden_size], { eps: cfg.layer_norm_eps });
    this.dropout = new Dropout(cfg.hidden_dropout_prob);
  }
  forward(h: Tensor, residual: Tensor): Tensor {
    if (!this.dense) throw new Error('BertResidualOutput: dense is pruned away (null); the layer should have skipped this sub-block');
    return this.LayerNorm.forward(this.dropout.forward(this.dense.forward(h)).add(residual));
  }
}

/**
 * Self-attention + its output projection. Pruning heads (HF prune_heads) shrinks q/k/v rows and output.dense
 * columns. Once every head is pruned, `self` and `output.dense` become null and the sub-block is the identity
 * (CoFiPruning's convention: its output equals its input, without the LayerNorm); `output.LayerNorm` keeps its
 * keys, unused.
 */
export class BertAttention extends Module {
  self: BertSelfAttention | null;
  output: BertResidualOutput;
  /** Pruned heads as indices among the ORIGINAL config.num_attention_heads heads (HF pruned_heads). */
  readonly prunedHeads = new Set<number>();
  constructor(readonly cfg: BertConfig) {
    super();
    this.self = new BertSelfAttention(cfg);
    this.output = new BertResidualOutput(cfg, this.self.allHeadSize);
  }
  /** Live head count (0 once every head is pruned). */
  get numHeads(): number {
    return this.self?.numHeads ?? 0;
  }
  /**
   * HF BertAttention.prune_heads: `heads` index the original heads; ones already pruned are ignored. Slices the
   * rows of query/key/value and the columns of output.dense into new tensors (nn's sliceLinear: parameters
   * change identity, so build optimizers afterwards) and records them in `prunedHeads`.
   */
  pruneHeads(heads: readonly number[]): void {
    const sa = this.self;
    const { heads: todo, keep } = findPruneableHeads(heads, this.cfg.num_attention_heads, sa?.numHeads ?? 0, sa?.headDim ?? 0, this.prunedHeads);
    if (todo.length === 0 || !sa) return;
    for (const h of todo) this.prunedHeads.add(h);
    if (keep.length === 0) {
      this.self = null;
      this.output.dense = null;
      return;
    }
    sa.query = sliceLinear(sa.query, { outIdx: keep });
    sa.key = sliceLinear(sa.key, { outIdx: keep });
    sa.value = sliceLinear(sa.value, { outIdx: keep });
    this.output.dense = sliceLinear(this.output.dense!, { inIdx: keep });
    sa.numHeads -= todo.length;
  }
  forward(x: Tensor, maskAdd: Tensor | null, headMask: Tensor | null = null): AttentionResult {
    if (!this.self) return { out: x, probs: null, scores: null };
    const { context, probs, scores } = this.self.forward(x, maskAdd, headMask);
    return { out: this.output.forward(context, x), probs, scores };
  }
}

export class BertIntermediate extends Module {
  dense: Linear;
  private act: (x: Tensor) => Tensor;
  constructor(cfg: BertConfig) {
    super();
    this.dense = new Linear(cfg.hidden_size, cfg.intermediate_size);
    this.act = activation(cfg.hidden_act, 'BertIntermediate');
  }
  forward(x: Tensor): Tensor {
    return this.act(this.dense.forward(x)); // (B, T, I)
  }
}

/**
 * One encoder layer: attention, then the MLP closed by `output` (dropout, residual, LayerNorm).
 *
 * Sub-block states (CoFiPruning's conventions for pruned-away parts):
 * - default (HF): `intermediate` + `output.dense`; keys `intermediate.dense.*`, `output.dense.*`, `output.LayerNorm.*`.
 * - replaced MLP ({@link setMlp} with a module): out = output.LayerNorm(output.dropout(mlp(a)) + a);
 *   `intermediate` and `output.dense` are null, so the keys are `mlp.<the module's keys>` and `output.LayerNorm.*`.
 * - pruned MLP (`setMlp(null)`): the layer output is the attention output `a` (no LayerNorm); only
 *   `output.LayerNorm.*` keys remain, unused.
 * - `attention` null (pruned away): the attention sub-block's output is its input (no LayerNorm), no attention keys.
 * The FFN width is the live `intermediate.dense` width, so layers may differ after slicing units.
 */
export class BertLayer extends Module {
  attention: BertAttention | null;
  intermediate: BertIntermediate | null;
  output: BertResidualOutput;
  /** A replacement MLP (B, T, H) → (B, T, H); null (no keys) by default. */
  mlp: FeedForwardModule | null = null;
  constructor(cfg: BertConfig) {
    super();
    this.attention = new BertAttention(cfg);
    this.intermediate = new BertIntermediate(cfg);
    this.output = new BertResidualOutput(cfg, cfg.intermediate_size);
  }
  /** Replace the MLP (intermediate + output.dense) with `mlp`, or prune it away with null. Returns nothing to undo. */
  setMlp(mlp: FeedForwardModule | null): void {
    this.mlp = mlp;
    this.intermediate = null;
    this.output.dense = null;
  }
  forward(x: Tensor, maskAdd: Tensor | null, headMask: Tensor | null = null): AttentionResult {
    const a = this.attention ? this.attention.forward(x, maskAdd, headMask) : { out: x, probs: null, scores: null };
    let out: Tensor;
    if (this.mlp) out = this.output.LayerNorm.forward(this.output.dropout.forward(this.mlp.forward(a.out)).add(a.out));
    else if (this.intermediate && this.output.dense) out = this.output.forward(this.intermediate.forward(a.out), a.out);
    else if (!this.intermediate && !this.output.dense) out = a.out;
    else throw new Error('BertLayer: intermediate and output.dense must both be present (dense MLP) or both null (replaced or pruned MLP)');
    return { out, probs: a.probs, scores: a.scores };
  }
}

export class BertEncoder extends Module {
  layer: BertLayer[];
  constructor(cfg: BertConfig) {
    super();
    this.layer = Array.from({ length: cfg.num_hidden_layers }, () => new BertLayer(cfg));
  }
}

export class BertPooler extends Module {
  dense: Linear;
  constructor(cfg: BertConfig) {
    super();
    this.dense = new Linear(cfg.hidden_size, cfg.hidden_size);
  }
  forward(hidden: Tensor): Tensor {
    return this.dense.forward(hidden.select(1, 0)).tanh(); // (B, H) from the [CLS] position
  }
}

export interface BertModelOutput {
  lastHiddenState: Tensor;
  pooled?: Tensor;
  hiddenStates?: Tensor[];
  attentions?: (Tensor | null)[];
  attentionScores?: (Tensor | null)[];
}

/** Heads to prune per layer, HF format: {"<layer index>": [head indices among the original heads]}. */
export type HeadsToPrune = Record<string | number, readonly number[]>;

/**
 * HF BertModel. hiddenStates[0] is the embedding output (after its LayerNorm); [i] the output of layer i-1.
 * `config.pruned_heads` is applied at construction, as HF's post_init does.
 */
export class BertModel extends Module {
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler | null;
  constructor(readonly config: BertConfig, opts: { addPoolingLayer?: boolean } = {}) {
    super();
    this.embeddings = new BertEmbeddings(config);
    this.encoder = new BertEncoder(config);
    this.pooler = opts.addPoolingLayer === false ? null : new BertPooler(config);
    if (config.pruned_heads && Object.keys(config.pruned_heads).length > 0) this.pruneHeads(config.pruned_heads);
  }
  /**
   * HF PreTrainedModel.prune_heads: prune heads per layer (indices among the original heads; already pruned ones
   * are ignored) and record the union in `config.pruned_heads`, so a saved config rebuilds the same shapes.
   */
  pruneHeads(headsToPrune: HeadsToPrune): void {
    const merged: Record<string, number[]> = { ...(this.config.pruned_heads ?? {}) };
    for (const [key, heads] of Object.entries(headsToPrune)) {
      const i = Number(key);
      const layer = this.encoder.layer[i];
      if (!Number.isInteger(i) || !layer) throw new Error(`BertModel.pruneHeads: no layer '${key}' (the encoder has ${this.encoder.layer.length})`);
      if (!layer.attention) throw new Error(`BertModel.pruneHeads: layer ${i} has no attention (pruned away)`);
      layer.attention.pruneHeads(heads);
      merged[String(i)] = [...new Set([...(merged[String(i)] ?? []), ...heads])].sort((a, b) => a - b);
    }
    this.config.pruned_heads = merged;
  }
  /**
   * Pruned heads per layer as the modules hold them, in config.pruned_heads format (layers without pruned heads
   * are left out). A layer whose `attention` is null is not representable there and is left out too.
   */
  prunedHeads(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    this.encoder.layer.forEach((l, i) => {
      if (l.attention && l.attention.prunedHeads.size > 0) out[String(i)] = [...l.attention.prunedHeads].sort((a, b) => a - b);
    });
    return out;
  }
  forward(inputs: ModelInputs, opts: ForwardOptions = {}): BertModelOutput {
    const { inputIds, attentionMask, tokenTypeIds, positionIds } = inputs;
    if (inputIds.ndim !== 2) throw new Error(`BertModel: inputIds must be [batch, seq], got [${inputIds.shape}]`);
    const maskAdd = attentionMask ? extendedAttentionMask(attentionMask) : null;
    let h = this.embeddings.forward(inputIds, tokenTypeIds, positionIds);
    const hiddenStates: Tensor[] = [h];
    const attentions: (Tensor | null)[] = [];
    const scores: (Tensor | null)[] = [];
    this.encoder.layer.forEach((layer, i) => {
      const r = layer.forward(h, maskAdd, layerHeadMask(opts, i, layer.attention?.numHeads ?? 0));
      h = r.out;
      hiddenStates.push(h);
      attentions.push(r.probs);
      scores.push(r.scores);
    });
    return {
      lastHiddenState: h,
      pooled: this.pooler ? this.pooler.forward(h) : undefined,
      hiddenStates: opts.outputHiddenStates ? hiddenStates : undefined,
      attentions: opts.outputAttentions ? attentions : undefined,
      attentionScores: opts.outputAttentionScores ? scores : undefined,
    };
  }
}

export class BertPredictionHeadTransform extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  private act: (x: Tensor) => Tensor;
  constructor(cfg: BertConfig) {
    super();
    this.dense = new Linear(cfg.hidden_size, cfg.hidden_size);
    this.LayerNorm = new LayerNorm([cfg.hidden_size], { eps: cfg.layer_norm_eps });
    this.act = activation(cfg.hidden_act, 'BertPredictionHeadTransform');
  }
  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(this.act(this.dense.forward(x)));
  }
}

/** cls.predictions: transform, then a decoder tied to the word embeddings with its own bias. */
export class BertLMPredictionHead extends Module {
  transform: BertPredictionHeadTransform;
  decoder: Linear;
  bias: Tensor;
  constructor(cfg: BertConfig) {
    super();
    this.transform = new BertPredictionHeadTransform(cfg);
    this.decoder = new Linear(cfg.hidden_size, cfg.vocab_size, { bias: false });
    this.bias = Tensor.zeros([cfg.vocab_size], { requiresGrad: true });
  }
  forward(x: Tensor): Tensor {
    return this.decoder.forward(this.transform.forward(x)).add(this.bias); // (B, T, V)
  }
}

export class BertOnlyMLMHead extends Module {
  predictions: BertLMPredictionHead;
  constructor(cfg: BertConfig) {
    super();
    this.predictions = new BertLMPredictionHead(cfg);
  }
}

/** HF BertForMaskedLM: loss = CE over positions whose label is not -100. */
export class BertForMaskedLM extends Module {
  static override tied = { 'cls.predictions.decoder.weight': 'bert.embeddings.word_embeddings.weight' };
  bert: BertModel;
  cls: BertOnlyMLMHead;
  constructor(readonly config: BertConfig) {
    super();
    this.bert = new BertModel(config, { addPoolingLayer: false });
    this.cls = new BertOnlyMLMHead(config);
    this.tieWeights();
  }
  /** The decoder shares the word-embedding matrix; its bias is `cls.predictions.bias`. */
  tieWeights(): void {
    this.cls.predictions.decoder.weight = this.bert.embeddings.word_embeddings.weight;
  }
  /** HF prune_heads on the encoder (see BertModel.pruneHeads); records them in config.pruned_heads. */
  pruneHeads(headsToPrune: HeadsToPrune): void {
    this.bert.pruneHeads(headsToPrune);
  }
  /** Pruned heads per layer in config.pruned_heads format (see BertModel.prunedHeads). */
  prunedHeads(): Record<string, number[]> {
    return this.bert.prunedHeads();
  }
  /**
   * With `predictOnlyLabelled` (and labels), the prediction head runs only on positions whose label is not -100
   * and `logits` is [nLabelled, V]: the same loss and gradients, without the vocabulary-sized matmul and
   * cross-entropy over the ~85 % of positions MLM ignores (the head is most of a small BERT's training FLOPs).
   */
  forward(inputs: ModelInputs, opts: ForwardOptions & { predictOnlyLabelled?: boolean } = {}): ModelOutput {
    const out = this.bert.forward(inputs, opts);
    const V = this.config.vocab_size;
    if (opts.predictOnlyLabelled && inputs.labels) {
      const flat = inputs.labels.reshape([-1]).toArray();
      const pos: number[] = [];
      for (let i = 0; i < flat.length; i++) if (flat[i] !== -100) pos.push(i);
      const idx = Tensor.from(Int32Array.from(pos));
      const h = out.lastHiddenState.reshape([-1, this.config.hidden_size]).indexSelect(0, idx); // (nLabelled, H)
      const logits = this.cls.predictions.forward(h); // (nLabelled, V)
      const loss = crossEntropy(logits, inputs.labels.reshape([-1]).indexSelect(0, idx));
      return { logits, loss, hiddenStates: out.hiddenStates, attentions: out.attentions, attentionScores: out.attentionScores };
    }
    const logits = this.cls.predictions.forward(out.lastHiddenState);
    const loss = inputs.labels ? crossEntropy(logits.reshape([-1, V]), inputs.labels.reshape([-1])) : undefined;
    return { logits, loss, hiddenStates: out.hiddenStates, attentions: out.attentions, attentionScores: out.attentionScores };
  }
}

/** HF BertForSequenceClassification: pooled [CLS] → dropout → classifier. */
export class BertForSequenceClassification extends Module {
  bert: BertModel;
  dropout: Dropout;
  classifier: Linear;
  constructor(readonly config: BertConfig) {
    super();
    this.bert = new BertModel(config);
    this.dropout = new Dropout(config.classifier_dropout ?? config.hidden_dropout_prob);
    this.classifier = new Linear(config.hidden_size, config.num_labels);
  }
  /** HF prune_heads on the encoder (see BertModel.pruneHeads); records them in config.pruned_heads. */
  pruneHeads(headsToPrune: HeadsToPrune): void {
    this.bert.pruneHeads(headsToPrune);
  }
  /** Pruned heads per layer in config.pruned_heads format (see BertModel.prunedHeads). */
  prunedHeads(): Record<string, number[]> {
    return this.bert.prunedHeads();
  }
  forward(inputs: ModelInputs, opts: ForwardOptions = {}): ModelOutput {
    const out = this.bert.forward(inputs, opts);
    const logits = this.classifier.forward(this.dropout.forward(out.pooled!)); // (B, num_labels)
    let loss: Tensor | undefined;
    if (inputs.labels) {
      const pt = this.config.problem_type ?? (this.config.num_labels === 1 ? 'regression' : 'single_label_classification');
      if (pt === 'regression') loss = mseLoss(logits.reshape([-1]), inputs.labels.to('float32').reshape([-1]));
      else if (pt === 'single_label_classification') loss = crossEntropy(logits, inputs.labels.reshape([-1]));
      else throw new Error(`BertForSequenceClassification: problem_type '${pt}' is not supported`);
    }
    return { logits, loss, hiddenStates: out.hiddenStates, attentions: out.attentions, attentionScores: out.attentionScores };
  }
}

export { bertConfig };
