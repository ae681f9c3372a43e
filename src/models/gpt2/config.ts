/** GPT2Config with Hugging Face defaults (transformers v4.36.2 configuration_gpt2.py). */
export interface GPT2Config {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_inner: number | null;
  activation_function: string;
  resid_pdrop: number;
  embd_pdrop: number;
  attn_pdrop: number;
  layer_norm_epsilon: number;
  initializer_range: number;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  reorder_and_upcast_attn: boolean;
  bos_token_id: number;
  eos_token_id: number;
  tie_word_embeddings: boolean;
  architectures?: string[];
  [key: string]: unknown;
}

export const GPT2_DEFAULTS: GPT2Config = {
  model_type: 'gpt2',
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_inner: null,
  activation_function: 'gelu_new',
  resid_pdrop: 0.1,
  embd_pdrop: 0.1,
  attn_pdrop: 0.1,
  layer_norm_epsilon: 1e-5,
  initializer_range: 0.02,
  scale_attn_weights: true,
  scale_attn_by_inverse_layer_idx: false,
  reorder_and_upcast_attn: false,
  bos_token_id: 50256,
  eos_token_id: 50256,
  tie_word_embeddings: true,
};

export function gpt2Config(raw: Partial<GPT2Config> & Record<string, unknown> = {}): GPT2Config {
  const cfg = { ...GPT2_DEFAULTS, ...raw } as GPT2Config;
  if (cfg.n_embd % cfg.n_head !== 0) throw new Error(`GPT2Config: n_embd ${cfg.n_embd} is not a multiple of n_head ${cfg.n_head}`);
  return cfg;
}
