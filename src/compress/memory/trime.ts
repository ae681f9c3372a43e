/**
 * TRIME (Zhong, Lei & Chen 2022, "Training Language Models with Memory Augmentation"): the training loss that treats
 * the model's own representations of other tokens in the batch as extra output "words".
 *
 * For token i with representation h_i (the last block's FFN input after its norm), target y_i and output logits z_i:
 *
 *   s_ij   = h_i·h_j / √d  (+ −10000 where memory entry j is not accessible to i; no temperature in training)
 *   Z_t    = logsumexp_v z_iv,   Z_c = logsumexp_j s_ij
 *   ctx_i  = −log Σ_{j: y_j = y_i} softmax_j(s_ij)      (non-positives get −10000 added, as upstream)
 *   loss_i = −log( p_vocab(y_i)·Z_t/(Z_t+Z_c) + p_mem(y_i)·Z_c/(Z_t+Z_c) )   (all in log space)
 *
 * summed over tokens (fairseq divides by the sample size later). The memory variants differ only in the mask
 * (what entry j token i may see), exactly as upstream's three criteria build it:
 * - `local` (trime_loss.py): strictly earlier tokens of the same segment;
 * - `long` (trime_long_loss_same_device.py): the batch's segments are consecutive (keep-order batching), flattened
 *   in order, and every token sees every strictly earlier token of the chain — previous segments and its own prefix;
 * - `ext` (trime_ext_loss.py): every token of every other segment in the batch, plus the strictly earlier tokens of
 *   its own segment — or none of its own segment when local memory is dropped (`dropLocal`, upstream
 *   `only_cross_sent` drawn with probability `cross_sent_ratio` = 0.9 per batch in training).
 *
 * Tokens with an ignored target (−100 here) are left out as queries and as memory entries (upstream removes label-0
 * memory entries and pads; its local loss still sums pad rows, which never arise in this project's LM batches).
 */
import { Tensor } from '../../tensor/tensor.ts';
import { stack } from '../../ops/movement.ts';

export type MemoryVariant = 'local' | 'long' | 'ext';
export const MEMORY_VARIANTS = ['local', 'long', 'ext'] as const;

/** Upstream's "minus infinity" for masked similarities and non-positive entries. */
export const MASK = -10000;

export interface TrimeLossOptions {
  variant?: MemoryVariant;
  /** ext: no memory from the token's own segment (upstream only_cross_sent). */
  dropLocal?: boolean;
  /**
   * long: number of independent chains of consecutive segments the batch rows form (rows split evenly, in order);
   * 1 (upstream) = the whole batch is one chain.
   */
  chains?: number;
  /** Targets equal to this are not scored and not memory entries. */
  ignoreIndex?: number;
}

export interface TrimeLossResult {
  /** Σ over scored tokens of the joint-normalisation loss (upstream `loss`). */
  loss: Tensor;
  /** Σ of plain token cross-entropy (upstream `ori_loss`). */
  oriLoss: Tensor;
  /** Scored tokens (upstream `sample_size` with sentence_avg off). */
  sampleSize: number;
  /** The masked similarity matrix [scored queries, memory entries]. */
  inBatchLogits: Tensor;
  /** Per-token joint loss [scored]. */
  tokenLoss: Tensor;
}

/**
 * Whether memory entry (segment b2, position t2) is visible to query (b, t) under `variant`, with L positions per
 * segment and B segments.
 */
export function memoryVisible(variant: MemoryVariant, b: number, t: number, b2: number, t2: number, L: number, o: { dropLocal?: boolean; chainRows?: number } = {}): boolean {
  switch (variant) {
    case 'local':
      return b === b2 && t2 < t;
    case 'long': {
      const rows = o.chainRows ?? Infinity;
      if (Math.floor(b / rows) !== Math.floor(b2 / rows)) return false;
      return b2 * L + t2 < b * L + t;
    }
    case 'ext':
      if (b !== b2) return true;
      return !o.dropLocal && t2 < t;
  }
}

/** Additive mask [queries, memory] (0 visible, −10000 not) for flat token indices (row-major b·L + t). */
export function memoryMask(variant: MemoryVariant, B: number, L: number, queries: readonly number[], memory: readonly number[], o: { dropLocal?: boolean; chains?: number; dtype?: 'float32' | 'float64' } = {}): Tensor {
  const chains = o.chains ?? 1;
  if (!(Number.isInteger(chains) && chains >= 1 && B % chains === 0)) throw new Error(`trime: chains (${chains}) must divide the batch's ${B} segments`);
  const chainRows = B / chains;
  const m = o.dtype === 'float64' ? new Float64Array(queries.length * memory.length) : new Float32Array(queries.length * memory.length);
  for (let i = 0; i < queries.length; i++) {
    const q = queries[i]!;
    const b = Math.floor(q / L);
    const t = q % L;
    for (let j = 0; j < memory.length; j++) {
      const e = memory[j]!;
      if (!memoryVisible(variant, b, t, Math.floor(e / L), e % L, L, { dropLocal: o.dropLocal, chainRows })) m[i * memory.length + j] = MASK;
    }
  }
  return Tensor.from(m, { shape: [queries.length, memory.length] });
}

function intData(t: Tensor): Int32Array {
  return Int32Array.from(t.toArray() as ArrayLike<number>, Number);
}

/**
 * Upstream compute_in_bacth_logits for `variant`: reps [B, L, d] → (reps·repsᵀ/√d + mask) over every token (no
 * token dropped), [B·L, B·L]. The fixture's `trime.in_batch_logits` is this for 'local'.
 */
export function inBatchLogits(reps: Tensor, variant: MemoryVariant = 'local', o: { dropLocal?: boolean; chains?: number } = {}): Tensor {
  if (reps.ndim !== 3) throw new Error(`inBatchLogits: reps must be [B, L, d], got [${reps.shape}]`);
  const [B, L, d] = reps.shape as [number, number, number];
  const flat = reps.reshape(B * L, d);
  const all = Array.from({ length: B * L }, (_, i) => i);
  const mask = memoryMask(variant, B, L, all, all, { ...o, dtype: reps.dtype === 'float64' ? 'float64' : 'float32' });
  return flat.matmul(flat.t()).div(Math.sqrt(d)).add(mask);
}

/**
 * The TRIME loss (see the file comment). reps [B, L, d] (memory keys and queries, one per position), logits
 * [B·L, V] (or [B, L, V]), targets [B, L] or [B·L] (integers). Differentiable in reps and logits.
 */
export function trimeLoss(reps: Tensor, logits: Tensor, targets: Tensor, o: TrimeLossOptions = {}): TrimeLossResult {
  const variant = o.variant ?? 'local';
  const ignore = o.ignoreIndex ?? -100;
  if (reps.ndim !== 3) throw new Error(`trimeLoss: reps must be [B, L, d], got [${reps.shape}]`);
  const [B, L, d] = reps.shape as [number, number, number];
  const N = B * L;
  const V = logits.shape[logits.shape.length - 1]!;
  if (logits.numel !== N * V) throw new Error(`trimeLoss: logits [${logits.shape}] do not hold ${N} positions (reps [${reps.shape}])`);
  if (targets.numel !== N) throw new Error(`trimeLoss: targets [${targets.shape}] do not hold ${N} positions`);
  const y = intData(targets);
  const keep: number[] = [];
  for (let i = 0; i < N; i++) if (y[i] !== ignore) keep.push(i);
  if (keep.length === 0) throw new Error('trimeLoss: no scored token (every target is ignored)');
  const idx = Tensor.from(Int32Array.from(keep));
  const h = reps.reshape(N, d).indexSelect(0, idx);
  const z = logits.reshape(N, V).indexSelect(0, idx);
  const yk = Int32Array.from(keep, (i) => y[i]!);
  const dtype = reps.dtype === 'float64' ? 'float64' : 'float32';
  const mask = memoryMask(variant, B, L, keep, keep, { dropLocal: o.dropLocal, chains: o.chains, dtype });
  const neg = dtype === 'float64' ? new Float64Array(keep.length * keep.length) : new Float32Array(keep.length * keep.length);
  for (let i = 0; i < keep.length; i++) for (let j = 0; j < keep.length; j++) if (yk[i] !== yk[j]) neg[i * keep.length + j] = MASK;
  const negatives = Tensor.from(neg, { shape: [keep.length, keep.length] });

  const s = h.matmul(h.t()).div(Math.sqrt(d)).add(mask);
  const normC = s.logsumexp(1);
  const ctxLoss = s.logSoftmax(1).add(negatives).logsumexp(1).neg();
  const normT = z.logsumexp(1);
  const tgt = Tensor.from(yk, { shape: [keep.length, 1] });
  const tokLoss = z.logSoftmax(1).gather(1, tgt).reshape(keep.length).neg();
  const normTpc = stack([normT, normC], 1).logsumexp(1);
  const joint = stack([tokLoss.neg().add(normT).sub(normTpc), ctxLoss.neg().add(normC).sub(normTpc)], 1).logsumexp(1).neg();
  return { loss: joint.sum(), oriLoss: tokLoss.sum(), sampleSize: keep.length, inBatchLogits: s, tokenLoss: joint };
}
