/**
 * CoFi's distillation losses (princeton-nlp/CoFiPruning trainer/trainer.py at da855a8, `layer_distill_version` 4):
 *
 * - prediction: `T² · KL(softmax(z_T/T) ‖ softmax(z_S/T))`, batch mean (torch kl_div "batchmean"), T = 2;
 * - layers: each chosen teacher layer output is matched to one student layer output passed through a Linear
 *   (initialised to the identity), by plain MSE (mean over every element, padding included). The pairing is
 *   recomputed every step from the losses themselves: walking the chosen teacher layers from the last one down,
 *   each takes the student layer of lowest loss among those below the previous pick that still exist (MHA mask
 *   non-zero — upstream's test), so the alignment is monotone; the loss is the sum over the chosen pairs.
 *
 * Upstream hard-codes teacher layers [2, 5, 8, 11] of 12: every third layer ending at the last, which
 * `defaultTeacherLayers` generalises to any depth.
 */
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { klDiv, mseLoss } from '../../ops/index.ts';

/** Every third layer (0-based) ending at the last: [2, 5, 8, 11] for 12 layers, [2, 5] for 6, [1] for 2. */
export function defaultTeacherLayers(numLayers: number): number[] {
  const out: number[] = [];
  for (let i = numLayers - 1; i >= 0; i -= 3) out.unshift(i);
  return out;
}

/** `T² · KL(softmax(teacher/T) ‖ softmax(student/T))` with torch's "batchmean" reduction. */
export function predictionDistillLoss(student: Tensor, teacher: Tensor, temperature: number): Tensor {
  const T = temperature;
  return klDiv(student.div(T).logSoftmax(-1), teacher.div(T).softmax(-1), { reduction: 'batchmean' }).mul(T * T);
}

export interface LayerAlignment {
  loss: Tensor;
  /** Student layer chosen for each teacher layer (teacherLayers order); -1 where none was left. */
  alignment: number[];
  /** The MSE of every (teacher layer, student layer) pair, row-major [teacherLayers.length, student layers]. */
  table: number[][];
}

/**
 * The version-4 layer loss. `teacherHidden` / `studentHidden`: layer outputs (without the embeddings) of the whole
 * teacher / student; `transform`: the student-side Linear; `exists[s]`: whether student layer s is alive (null: all).
 */
export function layerDistillLoss(teacherHidden: readonly Tensor[], studentHidden: readonly Tensor[], transform: (x: Tensor) => Tensor, teacherLayers: readonly number[], exists: readonly boolean[] | null): LayerAlignment {
  const S = studentHidden.length;
  for (const t of teacherLayers) if (!(t >= 0 && t < teacherHidden.length)) throw new Error(`prune.cofi: distill layer ${t} is out of range (the teacher has ${teacherHidden.length} layers)`);
  const projected = studentHidden.map((h) => transform(h));
  const table = noGrad(() => teacherLayers.map((t) => projected.map((p) => mseLoss(p.detach(), teacherHidden[t]!).item())));
  const alignment: number[] = new Array(teacherLayers.length).fill(-1);
  let last = S;
  for (let i = teacherLayers.length - 1; i >= 0; i--) {
    const order = table[i]!.map((v, s) => ({ v, s })).sort((a, b) => a.v - b.v || a.s - b.s);
    const pick = order.find(({ s }) => s < last && (exists === null || exists[s]));
    if (!pick) continue; // upstream would index past the last layer here; nothing is left to align with
    alignment[i] = pick.s;
    last = pick.s;
  }
  let loss: Tensor | null = null;
  alignment.forEach((s, i) => {
    if (s < 0) return;
    const l = mseLoss(projected[s]!, teacherHidden[teacherLayers[i]!]!);
    loss = loss ? loss.add(l) : l;
  });
  return { loss: loss ?? Tensor.zeros([]), alignment, table };
}
