/** Typed model outputs (HF's ModelOutput classes, as plain records). */
import type { Tensor } from '../tensor/tensor.ts';

export interface ModelInputs {
  /** Token ids, int32 [B, T]. */
  inputIds: Tensor;
  /** 1 for real tokens, 0 for padding, [B, T] (any dtype). */
  attentionMask?: Tensor | null;
  /** Segment ids, int32 [B, T] (BERT). */
  tokenTypeIds?: Tensor | null;
  /** Position ids, int32 [B, T] or [1, T]; default 0..T-1 (HF v4.36 does not derive them from the mask). */
  positionIds?: Tensor | null;
  /** Targets: int32 class ids [B] (classification) or token ids [B, T] with -100 = ignore (LM / MLM). */
  labels?: Tensor | null;
}

export interface ForwardOptions {
  outputHiddenStates?: boolean;
  outputAttentions?: boolean;
}

export interface ModelOutput {
  logits: Tensor;
  loss?: Tensor;
  /** Embedding output then the output of each layer (HF conventions per model: see each model's doc). */
  hiddenStates?: Tensor[];
  /** Softmax probabilities [B, heads, T, T] per layer. */
  attentions?: Tensor[];
}

/** The smallest float32 (torch.finfo(torch.float32).min), HF's additive mask value. */
export const FLOAT32_MIN = -3.4028234663852886e38;
