/** Typed model outputs (HF's ModelOutput classes, as plain records), and what the model families share. */
import type { Tensor } from '../tensor/tensor.ts';
import type { Module } from '../nn/module.ts';
import { crossEntropy } from '../ops/index.ts';

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
  /** Softmax probabilities per layer (before attention dropout and before `headMask`). */
  outputAttentions?: boolean;
  /**
   * Pre-softmax attention scores per layer: q·kᵀ after the model's scaling and with the additive masks applied
   * (causal and padding positions hold finfo(float32).min), as TinyBERT distils them. Shape as `attentions`.
   */
  outputAttentionScores?: boolean;
  /**
   * HF `head_mask`, one entry per layer (null/missing: no mask). An entry of `numHeads` elements (that layer's
   * live head count) is broadcast as [1, nH, 1, 1]; any other shape must broadcast against the probabilities
   * (B, nH, T, S). It multiplies the attention probabilities after dropout, so a 0 zeroes that head's context.
   */
  headMask?: ReadonlyArray<Tensor | null | undefined> | null;
}

export interface ModelOutput {
  logits: Tensor;
  loss?: Tensor;
  /** Embedding output then the output of each layer (HF conventions per model: see each model's doc). */
  hiddenStates?: Tensor[];
  /** Softmax probabilities [B, heads, T, T] per layer; null for a layer whose attention is pruned away. */
  attentions?: (Tensor | null)[];
  /** Pre-softmax scores (see ForwardOptions.outputAttentionScores) per layer; null where attention is pruned away. */
  attentionScores?: (Tensor | null)[];
}

/** Output of the decoder stacks (GPT2Model, LlamaModel). */
export interface DecoderOutput {
  lastHiddenState: Tensor;
  hiddenStates?: Tensor[];
  attentions?: (Tensor | null)[];
  attentionScores?: (Tensor | null)[];
}

/** What one attention module hands back to its block: output, softmax probabilities and pre-softmax scores. */
export interface AttentionResult {
  out: Tensor;
  probs: Tensor | null;
  scores: Tensor | null;
}

/**
 * A module that can fill an MLP slot (BertLayer.mlp, GPT2Block.mlp, LlamaDecoderLayer.mlp): (B, T, H) → (B, T, H).
 * Dense/gated MLPs, MoE layers and fast-feedforward trees all fit. A GPT-2 replacement gets the block's residual
 * dropout unless it sets `appliesResidualDropout` (GPT2MLP does, as HF's GPT2MLP owns that dropout).
 */
export type FeedForwardModule = Module & { forward(x: Tensor): Tensor; appliesResidualDropout?: boolean };

/** The per-layer head mask for layer i, shaped to broadcast against probabilities (B, nH, …, T, S). */
export function layerHeadMask(opts: ForwardOptions, i: number, numHeads: number): Tensor | null {
  const m = opts.headMask?.[i] ?? null;
  if (!m) return null;
  if (m.ndim === 1) {
    if (m.shape[0] !== numHeads) throw new Error(`headMask[${i}]: ${m.shape[0]} entries, but layer ${i} has ${numHeads} heads`);
    return m.reshape([1, numHeads, 1, 1]);
  }
  return m;
}

/**
 * HF find_pruneable_heads_and_indices: `heads` index the original `numOriginal` heads; ones in `alreadyPruned`
 * are ignored. Returns the new heads to prune and the features to keep ([0, numLive·headDim) positions of the
 * live heads' q/k/v outputs).
 */
export function findPruneableHeads(heads: readonly number[], numOriginal: number, numLive: number, headDim: number, alreadyPruned: ReadonlySet<number>): { heads: number[]; keep: number[] } {
  for (const h of heads) if (!Number.isInteger(h) || h < 0 || h >= numOriginal) throw new Error(`pruneHeads: head ${h} is out of range (the layer had ${numOriginal} heads)`);
  const todo = [...new Set(heads)].filter((h) => !alreadyPruned.has(h)).sort((a, b) => a - b);
  // position of original head h among the live heads: h less the already-pruned heads before it
  const drop = new Set(todo.map((h) => h - [...alreadyPruned].filter((p) => p < h).length));
  const keep: number[] = [];
  for (let i = 0; i < numLive; i++) if (!drop.has(i)) for (let d = 0; d < headDim; d++) keep.push(i * headDim + d);
  return { heads: todo, keep };
}

/** Causal-LM loss as HF: CE(logits[:, :-1], labels[:, 1:]), mean over labels ≠ -100. */
export function shiftedLmLoss(logits: Tensor, labels: Tensor): Tensor {
  const [B, T, V] = logits.shape as [number, number, number];
  if (labels.shape[0] !== B || labels.shape[1] !== T) throw new Error(`causal LM loss: labels [${labels.shape}] do not match logits [${B},${T}]`);
  const l = logits.narrow(1, 0, T - 1).reshape([-1, V]);
  const t = labels.narrow(1, 1, T - 1).reshape([-1]);
  return crossEntropy(l, t);
}

/** The smallest float32 (torch.finfo(torch.float32).min), HF's additive mask value. */
export const FLOAT32_MIN = -3.4028234663852886e38;
