/**
 * BERT: BertModel, BertForMaskedLM, BertForSequenceClassification.
 * Hugging Face transformers v4.36.2 models/bert/modeling_bert.py (eager attention). Field names are checkpoint
 * keys (`bert.encoder.layer.0.attention.self.query.weight`); Linear weights are [out, in].
 * Parity: test/models/parity.test.ts against fixtures bert_mlm and bert_cls.
 *
 * Shapes: B batch, T tokens, H hidden, nH heads, hd head dim, V vocab.
 */
import { Module } from '../../nn/module.ts';
import { Dropout, Embedding, LayerNorm, Linear } from '../../nn/layers.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { crossEntropy, mseLoss, sub, dropout as dropoutFn } from '../../ops/index.ts';
import { activation } from '../activations.ts';
import { FLOAT32_MIN, type ForwardOptions, type ModelInputs, type ModelOutput } from '../outputs.ts';
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

export class BertSelfAttention extends Module {
  query: Linear;
  key: Linear;
  value: Linear;
  constructor(readonly cfg: BertConfig) {
    super();
    const h = cfg.hidden_size;
    this.query = new Linear(h, h);
    this.key = new Linear(h, h);
    this.value = new Linear(h, h);
  }
  forward(x: Tensor, maskAdd: Tensor | null): { context: Tensor; probs: Tensor } {
    const [B, T] = x.shape as [number, number];
    const nH = this.cfg.num_attention_heads;
    const hd = this.cfg.hidden_size / nH;
    const heads = (t: Tensor) => t.reshape([B, T, nH, hd]).transpose(1, 2); // (B, nH, T, hd)
    const q = heads(this.query.forward(x));
    const k = heads(this.key.forward(x));
    const v = heads(this.value.forward(x));
    let scores = q.matmul(k.transpose(-1, -2)).div(Math.sqrt(hd)); // (B, nH, T, T)
    if (maskAdd) scores = scores.add(maskAdd);
    const probs = scores.softmax(-1);
    const dropped = dropoutFn(probs, this.cfg.attention_probs_dropout_prob, this.training);
    const context = dropped.matmul(v).transpose(1, 2).reshape([B, T, nH * hd]); // (B, T, H)
    return { context, probs };
  }
}

/** dense → dropout → LayerNorm(· + residual): BertSelfOutput and BertOutput share this shape. */
export class BertResidualOutput extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(cfg: BertConfig, inFeatures: number) {
    super();
    this.dense = new Linear(inFeatures, cfg.hidden_size);
    this.LayerNorm = new LayerNorm([cfg.hidden_size], { eps: cfg.layer_norm_eps });
    this.dropout = new Dropout(cfg.hidden_dropout_prob);
  }
  forward(h: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(this.dropout.forward(this.dense.forward(h)).add(residual));
  }
}

export class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertResidualOutput;
  constructor(cfg: BertConfig) {
    super();
    this.self = new BertSelfAttention(cfg);
    this.output = new BertResidualOutput(cfg, cfg.hidden_size);
  }
  forward(x: Tensor, maskAdd: Tensor | null): { out: Tensor; probs: Tensor } {
    const { context, probs } = this.self.forward(x, maskAdd);
    return { out: this.output.forward(context, x), probs };
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

export class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertResidualOutput;
  constructor(cfg: BertConfig) {
    super();
    this.attention = new BertAttention(cfg);
    this.intermediate = new BertIntermediate(cfg);
    this.output = new BertResidualOutput(cfg, cfg.intermediate_size);
  }
  forward(x: Tensor, maskAdd: Tensor | null): { out: Tensor; probs: Tensor } {
    const a = this.attention.forward(x, maskAdd);
    return { out: this.output.forward(this.intermediate.forward(a.out), a.out), probs: a.probs };
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
  attentions?: Tensor[];
}

/** HF BertModel. hiddenStates[0] is the embedding output (after its LayerNorm); [i] the output of layer i-1. */
export class BertModel extends Module {
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler | null;
  constructor(readonly config: BertConfig, opts: { addPoolingLayer?: boolean } = {}) {
    super();
    this.embeddings = new BertEmbeddings(config);
    this.encoder = new BertEncoder(config);
    this.pooler = opts.addPoolingLayer === false ? null : new BertPooler(config);
  }
  forward(inputs: ModelInputs, opts: ForwardOptions = {}): BertModelOutput {
    const { inputIds, attentionMask, tokenTypeIds, positionIds } = inputs;
    if (inputIds.ndim !== 2) throw new Error(`BertModel: inputIds must be [batch, seq], got [${inputIds.shape}]`);
    const maskAdd = attentionMask ? extendedAttentionMask(attentionMask) : null;
    let h = this.embeddings.forward(inputIds, tokenTypeIds, positionIds);
    const hiddenStates: Tensor[] = [h];
    const attentions: Tensor[] = [];
    for (const layer of this.encoder.layer) {
      const r = layer.forward(h, maskAdd);
      h = r.out;
      hiddenStates.push(h);
      if (opts.outputAttentions) attentions.push(r.probs);
    }
    return {
      lastHiddenState: h,
      pooled: this.pooler ? this.pooler.forward(h) : undefined,
      hiddenStates: opts.outputHiddenStates ? hiddenStates : undefined,
      attentions: opts.outputAttentions ? attentions : undefined,
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
      return { logits, loss, hiddenStates: out.hiddenStates, attentions: out.attentions };
    }
    const logits = this.cls.predictions.forward(out.lastHiddenState);
    const loss = inputs.labels ? crossEntropy(logits.reshape([-1, V]), inputs.labels.reshape([-1])) : undefined;
    return { logits, loss, hiddenStates: out.hiddenStates, attentions: out.attentions };
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
    return { logits, loss, hiddenStates: out.hiddenStates, attentions: out.attentions };
  }
}

export { bertConfig };
