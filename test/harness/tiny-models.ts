/** Tiny seeded models for method tests (dropout off where the config has it, eval mode). */
import { BertForSequenceClassification, GPT2LMHeadModel, LlamaForCausalLM, bertConfig, gpt2Config, llamaConfig, manualSeed } from '../../src/index.ts';

/** BERT classifier: 2 layers, hidden 32, 4 heads, FFN 24, 3 labels. */
export function tinyBert(seed = 5): BertForSequenceClassification {
  manualSeed(seed);
  return new BertForSequenceClassification(bertConfig({ vocab_size: 50, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 24, max_position_embeddings: 16, num_labels: 3 })).eval();
}

/** GPT-2: 2 layers, hidden 32, 4 heads, FFN 24, no dropout. */
export function tinyGpt2(seed = 3): GPT2LMHeadModel {
  manualSeed(seed);
  return new GPT2LMHeadModel(gpt2Config({ vocab_size: 40, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 4, n_inner: 24, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 })).eval();
}

/** Llama with grouped-query attention: 2 layers, hidden 32, 4 query heads in 2 KV groups, FFN 20. */
export function tinyLlama(seed = 7): LlamaForCausalLM {
  manualSeed(seed);
  return new LlamaForCausalLM(llamaConfig({ vocab_size: 40, hidden_size: 32, intermediate_size: 20, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 16 })).eval();
}
