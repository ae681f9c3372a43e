/**
 * Distillation losses.
 *
 * - Logit KD (Hinton et al. 2015): T²·KL(softmax(z_T/T) ‖ softmax(z_S/T)), averaged over the rows that count —
 *   examples of a classifier, or token positions of a language model (padding and ignored labels left out; for a
 *   causal LM the position that predicts label t+1, as the shifted LM loss does).
 * - TinyBERT (Jiao et al. 2020), as huawei-noah/Pretrained-Language-Model TinyBERT/task_distill.py and
 *   general_distill.py compute them: attention MSE on the UNNORMALISED scores with every entry ≤ −100 (the masked
 *   ones) replaced by 0 in student and teacher, student attention layer m ↔ teacher layer m·k + k − 1; hidden-state
 *   MSE, student state m ↔ teacher state m·k (0 = embedding output), the student's states passed through one shared
 *   `fit_dense` Linear(student hidden → teacher hidden); k = teacher layers / student layers; prediction loss = the
 *   upstream soft_cross_entropy(s/T, t/T) = mean over batch AND classes of −softmax(t/T)·log_softmax(s/T).
 */
import type { Tensor } from '../../tensor/tensor.ts';
import { Tensor as T } from '../../tensor/tensor.ts';
import { klDiv, mseLoss, softCrossEntropy } from '../../ops/index.ts';
import type { Linear } from '../../nn/layers.ts';

/** Which positions of a token-level KD count. */
export type KdPositions = 'labelled' | 'all';

export interface KdOptions {
  temperature: number;
  /** 'causal': logits at t are scored against label t+1 (GPT-2, Llama); 'masked': against label t (BERT MLM). */
  lm?: 'causal' | 'masked';
  /** Token-level only: 'labelled' (default) = positions with a label ≠ −100 and not padding; 'all' = every non-padding position. */
  positions?: KdPositions;
  attentionMask?: Tensor | null;
  labels?: Tensor | null;
}

/**
 * Row indices (into logits reshaped [B·T, V]) that a token-level KD scores. Causal: positions 0..T−2 (the last
 * one predicts nothing), with label t+1 ≠ −100 under 'labelled'; masked: label t ≠ −100. Padding (mask 0) never counts.
 */
export function kdRows(B: number, Tn: number, o: Pick<KdOptions, 'lm' | 'positions' | 'attentionMask' | 'labels'>): number[] {
  const mask = o.attentionMask ? o.attentionMask.to('float32').toFloat32Array() : null;
  const labels = o.labels && (o.positions ?? 'labelled') === 'labelled' && o.labels.ndim === 2 ? o.labels.toArray() : null;
  const causal = o.lm === 'causal';
  const rows: number[] = [];
  for (let b = 0; b < B; b++)
    for (let t = 0; t < Tn; t++) {
      if (causal && t === Tn - 1) continue;
      if (mask && mask[b * Tn + t] === 0) continue;
      if (labels && labels[b * Tn + t + (causal ? 1 : 0)] === -100) continue;
      rows.push(b * Tn + t);
    }
  return rows;
}

/**
 * T²·KL(softmax(teacher/T) ‖ softmax(student/T)), mean over rows: logits [N, C] (every row) or [B, T, V] (the rows
 * of {@link kdRows}). The teacher is not differentiated. Returns 0 (attached to the graph) when no row counts.
 */
export function kdLoss(student: Tensor, teacher: Tensor, o: KdOptions): Tensor {
  const temp = o.temperature;
  if (!(temp > 0)) throw new Error(`kdLoss: temperature must be positive, got ${temp}`);
  if (student.shape.join(',') !== teacher.shape.join(','))
    throw new Error(`kdLoss: student logits [${student.shape}] and teacher logits [${teacher.shape}] differ (the student and the teacher must share the label set / vocabulary)`);
  let s = student;
  let t = teacher.detach();
  if (student.ndim === 3) {
    const [B, Tn, V] = student.shape as [number, number, number];
    const rows = kdRows(B, Tn, o);
    if (rows.length === 0) return student.sum().mul(0);
    const idx = T.from(Int32Array.from(rows));
    s = student.reshape([B * Tn, V]).indexSelect(0, idx);
    t = t.reshape([B * Tn, V]).indexSelect(0, idx);
  } else if (student.ndim !== 2) throw new Error(`kdLoss: expected logits [N, C] or [B, T, V], got [${student.shape}]`);
  const kl = klDiv(s.div(temp).logSoftmax(-1), t.div(temp).softmax(-1), { reduction: 'batchmean' });
  return kl.mul(temp * temp);
}

/** upstream's `torch.where(x <= -1e2, 0, x)`: masked (and any other ≤ −100) attention scores become 0. */
export function zeroMaskedScores(x: Tensor): Tensor {
  return x.maskedFill(x.le(-100), 0);
}

/** layers_per_block = teacher layers / student layers (an integer, as upstream asserts). */
export function layersPerBlock(teacherLayers: number, studentLayers: number): number {
  if (studentLayers < 1 || teacherLayers % studentLayers !== 0)
    throw new Error(`TinyBERT layer mapping: the teacher's ${teacherLayers} layers are not a multiple of the student's ${studentLayers}`);
  return teacherLayers / studentLayers;
}

/** Teacher attention layer of student layer m: m·k + k − 1. */
export const teacherAttentionLayer = (m: number, k: number): number => m * k + k - 1;
/** Teacher hidden state of student hidden state m (0 = embeddings): m·k. */
export const teacherHiddenState = (m: number, k: number): number => m * k;

/**
 * Σ over student layers m of MSE(zeroMasked(student scores m), zeroMasked(teacher scores m·k + k − 1)). A layer
 * whose attention is pruned away (null) on either side contributes nothing.
 */
export function tinybertAttentionLoss(student: readonly (Tensor | null)[], teacher: readonly (Tensor | null)[]): Tensor | null {
  const k = layersPerBlock(teacher.length, student.length);
  let loss: Tensor | null = null;
  student.forEach((s, m) => {
    const t = teacher[teacherAttentionLayer(m, k)];
    if (!s || !t) return;
    if (s.shape.join(',') !== t.shape.join(','))
      throw new Error(`TinyBERT attention loss: student layer ${m} scores [${s.shape}] vs teacher layer ${teacherAttentionLayer(m, k)} [${t.shape}] (student and teacher need the same number of heads)`);
    const l = mseLoss(zeroMaskedScores(s), zeroMaskedScores(t.detach()));
    loss = loss ? loss.add(l) : l;
  });
  return loss;
}

/** The student's hidden states through fit_dense (as TinyBERT's `is_student` forward); unchanged without one. */
export function projectStates(states: readonly Tensor[], fitDense: Linear | null): Tensor[] {
  return fitDense ? states.map((h) => fitDense.forward(h)) : [...states];
}

/**
 * Per-state hidden MSE: student state m (projected by fit_dense) ↔ teacher state m·k, m = 0..Ls (0 = embedding
 * output). Returns the terms; upstream's rep_loss is their sum.
 */
export function tinybertHiddenTerms(student: readonly Tensor[], teacher: readonly Tensor[], fitDense: Linear | null): Tensor[] {
  const Ls = student.length - 1;
  const k = layersPerBlock(teacher.length - 1, Ls);
  const proj = projectStates(student, fitDense);
  return proj.map((s, m) => {
    const t = teacher[teacherHiddenState(m, k)]!;
    if (s.shape.join(',') !== t.shape.join(','))
      throw new Error(`TinyBERT hidden loss: student state ${m} [${s.shape}] vs teacher state ${teacherHiddenState(m, k)} [${t.shape}]${fitDense ? '' : ' (widths differ and no fit_dense)'}`);
    return mseLoss(s, t.detach());
  });
}

/** upstream soft_cross_entropy(student/T, teacher/T): (−softmax(t/T) · log_softmax(s/T)).mean() over every element. */
export function tinybertPredictionLoss(student: Tensor, teacher: Tensor, temperature = 1): Tensor {
  return softCrossEntropy(student, teacher, { temperature, reduction: 'mean' });
}

/** All of TinyBERT's intermediate losses at once (upstream names): att_loss, rep_loss, and their sum. */
export function tinybertIntermediateLosses(
  s: { scores: readonly (Tensor | null)[]; states: readonly Tensor[] },
  t: { scores: readonly (Tensor | null)[]; states: readonly Tensor[] },
  fitDense: Linear | null,
): { att: Tensor | null; rep: Tensor; embedding: Tensor; hidden: Tensor | null; total: Tensor } {
  const att = tinybertAttentionLoss(s.scores, t.scores);
  const terms = tinybertHiddenTerms(s.states, t.states, fitDense);
  const embedding = terms[0]!;
  const hidden = terms.slice(1).reduce<Tensor | null>((a, b) => (a ? a.add(b) : b), null);
  const rep = hidden ? embedding.add(hidden) : embedding;
  return { att, rep, embedding, hidden, total: att ? rep.add(att) : rep };
}
