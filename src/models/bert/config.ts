/** BertConfig with Hugging Face defaults (transformers v4.36.2 configuration_bert.py). */
export interface BertConfig {
  model_type: 'bert';
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: string;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  initializer_range: number;
  layer_norm_eps: number;
  pad_token_id: number;
  position_embedding_type: string;
  classifier_dropout: number | null;
  num_labels: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  problem_type?: string | null;
  /** HF PretrainedConfig.pruned_heads: {"<layer index>": [head indices among the original heads]}, applied at construction. */
  pruned_heads?: Record<string, number[]>;
  architectures?: string[];
  [key: string]: unknown;
}

export const BERT_DEFAULTS: BertConfig = {
  model_type: 'bert',
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  max_position_embeddings: 512,
  type_vocab_size: 2,
  initializer_range: 0.02,
  layer_norm_eps: 1e-12,
  pad_token_id: 0,
  position_embedding_type: 'absolute',
  classifier_dropout: null,
  num_labels: 2,
  problem_type: null,
};

export function bertConfig(raw: Partial<BertConfig> & Record<string, unknown> = {}): BertConfig {
  const cfg = { ...BERT_DEFAULTS, ...raw } as BertConfig;
  if (raw.id2label && raw.num_labels === undefined) cfg.num_labels = Object.keys(raw.id2label).length;
  if (cfg.hidden_size % cfg.num_attention_heads !== 0)
    throw new Error(`BertConfig: hidden_size ${cfg.hidden_size} is not a multiple of num_attention_heads ${cfg.num_attention_heads}`);
  for (const [layer, heads] of Object.entries(cfg.pruned_heads ?? {})) {
    const i = Number(layer);
    if (!Number.isInteger(i) || i < 0 || i >= cfg.num_hidden_layers) throw new Error(`BertConfig: pruned_heads names layer '${layer}' (the model has ${cfg.num_hidden_layers})`);
    if (!Array.isArray(heads) || heads.some((h) => !Number.isInteger(h) || h < 0 || h >= cfg.num_attention_heads))
      throw new Error(`BertConfig: pruned_heads['${layer}'] must list head indices in [0, ${cfg.num_attention_heads})`);
  }
  if (cfg.position_embedding_type !== 'absolute')
    throw new Error(`BertConfig: position_embedding_type '${cfg.position_embedding_type}' is not supported (only 'absolute')`);
  return cfg;
}
