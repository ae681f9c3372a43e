/** LlamaConfig with Hugging Face defaults (transformers v4.36.2 configuration_llama.py). */
export interface LlamaConfig {
  model_type: 'llama';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** hidden_size / num_attention_heads unless given (newer HF configs, e.g. stories260K, state it). */
  head_dim: number;
  hidden_act: string;
  max_position_embeddings: number;
  initializer_range: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
  rope_theta: number;
  rope_scaling: unknown;
  attention_bias: boolean;
  attention_dropout: number;
  mlp_bias: boolean;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id?: number | null;
  architectures?: string[];
  [key: string]: unknown;
}

export function llamaConfig(raw: Partial<LlamaConfig> & Record<string, unknown> = {}): LlamaConfig {
  const heads = (raw.num_attention_heads as number | undefined) ?? 32;
  const hidden = (raw.hidden_size as number | undefined) ?? 4096;
  const cfg: LlamaConfig = {
    model_type: 'llama',
    vocab_size: 32000,
    hidden_size: hidden,
    intermediate_size: 11008,
    num_hidden_layers: 32,
    num_attention_heads: heads,
    num_key_value_heads: heads,
    head_dim: hidden / heads,
    hidden_act: 'silu',
    max_position_embeddings: 2048,
    initializer_range: 0.02,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    rope_theta: 10000,
    rope_scaling: null,
    attention_bias: false,
    attention_dropout: 0,
    mlp_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    ...raw,
  } as LlamaConfig;
  if (raw.num_key_value_heads == null) cfg.num_key_value_heads = cfg.num_attention_heads;
  if (raw.head_dim == null) cfg.head_dim = cfg.hidden_size / cfg.num_attention_heads;
  if (cfg.num_attention_heads % cfg.num_key_value_heads !== 0)
    throw new Error(`LlamaConfig: num_attention_heads ${cfg.num_attention_heads} is not a multiple of num_key_value_heads ${cfg.num_key_value_heads}`);
  if (cfg.head_dim % 2 !== 0) throw new Error(`LlamaConfig: head_dim ${cfg.head_dim} must be even for rotary embeddings`);
  if (cfg.rope_scaling) throw new Error('LlamaConfig: rope_scaling is not supported');
  return cfg;
}
