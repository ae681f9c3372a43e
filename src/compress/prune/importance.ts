/**
 * Shared pieces of the structured pruning methods (prune.structured, prune.apoz): what can be pruned in a model
 * (attention units and FFN neurons read from the anatomy), importance scores, physical rebuilding, and the plain
 * fine-tuning step `finetune`.
 *
 * Scores (higher = more important, kept):
 * - FFN neurons from calibration activations (the input of the down projection: act(up(x)) for BERT / GPT-2,
 *   act(gate(x))·up(x) for Llama), padding positions left out: `apoz` = 1 − APoZ (Hu et al. 2016, Network
 *   Trimming: the fraction of activations ≤ 0), `apoz_eps` = 1 − the fraction with |a| ≤ eps (for GELU/SiLU,
 *   whose outputs are rarely exactly ≤ 0 in a useful sense), `mean_abs` = mean |a|;
 * - `gradient` (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): |∂L/∂m| of a mask m = 1
 *   multiplying each head's attention probabilities (the models' `headMask`) or each neuron's activation (a
 *   forward pre-hook on the down projection), summed over calibration batches with the task loss;
 * - `weight_norm`: the L2 norm of a unit's weights (q/k/v rows and o columns of a head; up/gate rows and down
 *   columns of a neuron).
 *
 * Attention units: a head for BERT / GPT-2 / Llama with numKvHeads = numHeads; for grouped-query Llama a whole KV
 * group (its numHeads/numKvHeads query heads with their key/value head), which is what can be cut out physically.
 */
import type { Module } from '../../nn/module.ts';
import { Conv1D, Linear, sliceLinear } from '../../nn/layers.ts';
import { registerForwardPreHook, type HookHandle } from '../../nn/hooks.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { anatomy, removeAttention, replaceMlp, type AttentionAnatomy, type MlpAnatomy } from '../../models/anatomy.ts';
import type { ForwardOptions, ModelInputs, ModelOutput } from '../../models/outputs.ts';
import { BertAttention } from '../../models/bert/modeling.ts';
import { GPT2Attention } from '../../models/gpt2/modeling.ts';
import { LlamaAttention } from '../../models/llama/modeling.ts';
import { registerMethod, type Method, type RecipeContext } from '../method.ts';
import { matchesAny } from '../select.ts';

type ForwardModel = Module & { forward(i: ModelInputs, o?: ForwardOptions): ModelOutput };
export type Batch = Record<string, Tensor>;

export const NEURON_CRITERIA = ['apoz', 'apoz_eps', 'mean_abs'] as const;
export type NeuronCriterion = (typeof NEURON_CRITERIA)[number];

export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Attention of block `index` in units that can be pruned physically (heads, or KV groups under GQA). */
export interface AttentionUnits {
  index: number;
  a: AttentionAnatomy;
  /** Query heads per unit: 1, or numHeads/numKvHeads for grouped-query attention. */
  headsPerUnit: number;
  units: number;
}

/** The dense/gated MLP of block `index`. */
export interface FfnUnits {
  index: number;
  m: MlpAnatomy;
  units: number;
}

/** Whether a sub-block is selected by targets / ignore globs (matched against its path and its modules' paths). */
function selected(paths: (string | null | undefined)[], targets: readonly string[] | null, ignore: readonly string[] | null): boolean {
  const ps = paths.filter((p): p is string => !!p);
  if (targets && !ps.some((p) => matchesAny(p, targets))) return false;
  if (ignore && ps.some((p) => matchesAny(p, ignore))) return false;
  return true;
}

export function attentionUnits(model: Module, targets: readonly string[] | null = null, ignore: readonly string[] | null = null): AttentionUnits[] {
  const out: AttentionUnits[] = [];
  for (const b of anatomy(model).blocks) {
    const a = b.attention;
    if (!a || !selected([a.path, a.q, a.k, a.v, a.o], targets, ignore)) continue;
    const grouped = a.numKvHeads !== a.numHeads;
    const headsPerUnit = grouped ? a.numHeads / a.numKvHeads : 1;
    out.push({ index: b.index, a, headsPerUnit, units: grouped ? a.numKvHeads : a.numHeads });
  }
  return out;
}

export function ffnUnits(model: Module, targets: readonly string[] | null = null, ignore: readonly string[] | null = null): FfnUnits[] {
  const out: FfnUnits[] = [];
  for (const b of anatomy(model).blocks) {
    const m = b.mlp;
    if (!m || m.kind === 'custom' || !m.up || !m.down || m.intermediate === null) continue;
    if (!selected([m.path, m.up, m.gate, m.down], targets, ignore)) continue;
    out.push({ index: b.index, m, units: m.intermediate });
  }
  return out;
}

/** Calibration batches as model inputs (keys a model forward takes). */
function inputsOf(b: Batch): ModelInputs {
  return b as unknown as ModelInputs;
}

function withEval<T>(model: Module, run: () => T): T {
  const was = model.training;
  model.eval();
  try {
    return run();
  } finally {
    model.train(was);
  }
}

/** Batches from the recipe context, or a clear error naming the method. */
export function calibrationOf(name: string, ctx: RecipeContext): Batch[] {
  if (!ctx.calibration) throw new Error(`${name} needs calibration data: give the recipe a task (or --task), whose training examples calibrate`);
  const batches = [...ctx.calibration()];
  if (batches.length === 0) throw new Error(`${name}: the calibration data is empty`);
  return batches;
}

/**
 * Per-neuron activation statistics over calibration data: for each FFN, the fraction of activations ≤ 0, the
 * fraction with |a| ≤ eps and the mean |a|, over non-padding positions. Runs the model under noGrad in eval mode.
 */
export function activationStats(model: Module, ffns: FfnUnits[], batches: Iterable<Batch>, eps: number): { nonPositive: Float64Array; small: Float64Array; meanAbs: Float64Array; count: number }[] {
  const stats = ffns.map((f) => ({ nonPositive: new Float64Array(f.units), small: new Float64Array(f.units), meanAbs: new Float64Array(f.units), count: 0 }));
  let mask: Float32Array | null = null;
  const handles: HookHandle[] = [];
  try {
    ffns.forEach((f, li) => {
      handles.push(
        registerForwardPreHook(model.getSubmodule(f.m.down!), (_m, inputs) => {
          const x = inputs[0] as Tensor;
          const I = x.shape[x.ndim - 1]!;
          const a = x.toArray() as Float32Array;
          const s = stats[li]!;
          const rows = a.length / I;
          for (let r = 0; r < rows; r++) {
            if (mask && mask[r] === 0) continue;
            s.count++;
            const o = r * I;
            for (let j = 0; j < I; j++) {
              const v = a[o + j]!;
              if (v <= 0) s.nonPositive[j]!++;
              const av = Math.abs(v);
              if (av <= eps) s.small[j]!++;
              s.meanAbs[j]! += av;
            }
          }
        }),
      );
    });
    withEval(model, () =>
      noGrad(() => {
        for (const b of batches) {
          mask = b.attentionMask ? (b.attentionMask.to('float32').toArray() as Float32Array) : null;
          (model as ForwardModel).forward(inputsOf(b));
        }
      }),
    );
  } finally {
    for (const h of handles) h.remove();
  }
  for (const s of stats)
    for (let j = 0; j < s.nonPositive.length; j++) {
      const c = Math.max(s.count, 1);
      s.nonPositive[j]! /= c;
      s.small[j]! /= c;
      s.meanAbs[j]! /= c;
    }
  return stats;
}

/** Neuron importance from activations (higher = keep): 1 − APoZ, 1 − fraction |a| ≤ eps, or mean |a|. */
export function activationImportance(model: Module, ffns: FfnUnits[], batches: Iterable<Batch>, criterion: NeuronCriterion, eps: number): Float64Array[] {
  return activationStats(model, ffns, batches, eps).map((s) =>
    criterion === 'mean_abs' ? s.meanAbs : (criterion === 'apoz' ? s.nonPositive : s.small).map((v) => 1 - v),
  );
}

/** Rows (Linear) or columns (Conv1D) of a layer's output features, as the squared norms of each output feature. */
function outSq(m: Module): Float64Array {
  const l = m as Linear | Conv1D;
  const w = l.weight.toArray() as Float32Array;
  const [r, c] = l.weight.shape as [number, number];
  const conv = l instanceof Conv1D;
  const n = conv ? c : r;
  const out = new Float64Array(n);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[conv ? j : i]! += w[i * c + j]! ** 2;
  if (l.bias) {
    const b = l.bias.toArray() as Float32Array;
    for (let i = 0; i < n; i++) out[i]! += b[i]! ** 2;
  }
  return out;
}
/** Squared norms of each input feature's weights. */
function inSq(m: Module): Float64Array {
  const l = m as Linear | Conv1D;
  const w = l.weight.toArray() as Float32Array;
  const [r, c] = l.weight.shape as [number, number];
  const conv = l instanceof Conv1D;
  const out = new Float64Array(conv ? r : c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[conv ? i : j]! += w[i * c + j]! ** 2;
  return out;
}
const sumBlocks = (v: Float64Array, offset: number, width: number, n: number) => range(n).map((u) => { let s = 0; for (let d = 0; d < width; d++) s += v[offset + u * width + d]!; return s; });

/** L2 norm of each attention unit's weights: its q rows, k/v rows (whole group under GQA) and o columns. */
export function headWeightNorms(model: Module, att: AttentionUnits[]): Float64Array[] {
  return att.map(({ a, headsPerUnit, units }) => {
    const w = headsPerUnit * a.headDim;
    const kvW = a.headDim; // one key/value head per unit
    const o = sumBlocks(inSq(model.getSubmodule(a.o)), 0, w, units);
    let q: number[], k: number[], v: number[];
    if (a.fused) {
      const f = outSq(model.getSubmodule(a.fused));
      const D = a.numHeads * a.headDim;
      [q, k, v] = [0, 1, 2].map((p) => sumBlocks(f, p * D, w, units)) as [number[], number[], number[]];
    } else {
      q = sumBlocks(outSq(model.getSubmodule(a.q)), 0, w, units);
      k = sumBlocks(outSq(model.getSubmodule(a.k)), 0, kvW, units);
      v = sumBlocks(outSq(model.getSubmodule(a.v)), 0, kvW, units);
    }
    return Float64Array.from(range(units), (u) => Math.sqrt(q[u]! + k[u]! + v[u]! + o[u]!));
  });
}

/** L2 norm of each neuron's weights: up (and gate) rows and down columns. */
export function neuronWeightNorms(model: Module, ffns: FfnUnits[]): Float64Array[] {
  return ffns.map(({ m }) => {
    const up = outSq(model.getSubmodule(m.up!));
    const gate = m.gate ? outSq(model.getSubmodule(m.gate)) : null;
    const down = inSq(model.getSubmodule(m.down!));
    return up.map((u, j) => Math.sqrt(u + (gate ? gate[j]! : 0) + down[j]!));
  });
}

/** Gradient importance (Michel et al.): per-unit |∂L/∂mask| summed over batches, and per sub-block |∂L/∂scale|. */
export interface GradientImportance {
  /** Per attention entry: one score per unit (head or KV group). */
  heads: Float64Array[];
  /** Per FFN entry: one score per neuron. */
  neurons: Float64Array[];
  /** |Σ over the layer's head-mask gradients| per batch, summed: the importance of the whole attention sub-block. */
  attentionBlocks: Float64Array;
  /** The same for each MLP (scaling all its neurons together). */
  mlpBlocks: Float64Array;
  /** Where the labels came from: the batches ('task'), next tokens ('next-token') or the model's own predictions ('predicted'). */
  labels: 'task' | 'next-token' | 'predicted';
  batches: number;
}

/**
 * Labels for a calibration batch: its own, the input ids for a causal LM (the models shift them), or else the
 * model's predicted class (GLUE calibration sentences carry no labels; the expected Fisher with the model's
 * prediction is the usual stand-in).
 */
function withLabels(model: Module, b: Batch): { batch: ModelInputs; kind: GradientImportance['labels'] } {
  if (b.labels) return { batch: inputsOf(b), kind: 'task' };
  if (anatomy(model).modelType !== 'bert') return { batch: { ...inputsOf(b), labels: b.inputIds }, kind: 'next-token' };
  const logits = noGrad(() => (model as ForwardModel).forward(inputsOf(b)).logits);
  const [B, C] = logits.shape as [number, number];
  if (logits.ndim !== 2) throw new Error(`gradient importance: calibration batches without labels and logits of shape [${logits.shape}]`);
  const l = logits.toArray() as Float32Array;
  const y = Int32Array.from(range(B), (i) => { let best = 0; for (let c = 1; c < C; c++) if (l[i * C + c]! > l[i * C + best]!) best = c; return best; });
  return { batch: { ...inputsOf(b), labels: Tensor.from(y) }, kind: 'predicted' };
}

/**
 * Michel et al.'s importance: masks of ones on every head (through the models' `headMask`) and every neuron (a
 * pre-hook on each down projection), the task loss's gradient w.r.t. them, |·| accumulated over batches. Eval mode
 * (no dropout); parameter gradients are left as they were.
 */
export function gradientImportance(model: Module, att: AttentionUnits[], ffns: FfnUnits[], batches: Iterable<Batch>): GradientImportance {
  const nLayers = anatomy(model).blocks.length;
  const blocks = anatomy(model).blocks;
  const heads = att.map((u) => new Float64Array(u.units));
  const neurons = ffns.map((f) => new Float64Array(f.units));
  const attentionBlocks = new Float64Array(nLayers);
  const mlpBlocks = new Float64Array(nLayers);
  const params = model.parameters();
  const savedGrads = params.map((p) => p.grad);
  let labels: GradientImportance['labels'] = 'task';
  let n = 0;
  const neuronMasks: Tensor[] = [];
  const handles: HookHandle[] = [];
  try {
    ffns.forEach((f, li) => {
      handles.push(registerForwardPreHook(model.getSubmodule(f.m.down!), (_m, inputs) => [(inputs[0] as Tensor).mul(neuronMasks[li]!), ...inputs.slice(1)]));
    });
    withEval(model, () => {
      for (const b of batches) {
        ffns.forEach((f, li) => (neuronMasks[li] = Tensor.ones([f.units], { requiresGrad: true })));
        const { batch, kind } = withLabels(model, b); // (a forward of its own for predicted labels: masks of ones change nothing)
        labels = kind;
        const headMask: (Tensor | null)[] = blocks.map((bl) => (bl.attention ? Tensor.ones([bl.attention.numHeads], { requiresGrad: true }) : null));
        const out = (model as ForwardModel).forward(batch, { headMask });
        if (!out.loss) throw new Error('gradient importance: the model returned no loss for the calibration batch');
        out.loss.backward();
        att.forEach((u, li) => {
          const g = headMask[u.index]!.grad!.toArray() as Float32Array;
          let s = 0;
          for (let unit = 0; unit < u.units; unit++) {
            let gu = 0;
            for (let h = 0; h < u.headsPerUnit; h++) gu += g[unit * u.headsPerUnit + h]!;
            heads[li]![unit]! += Math.abs(gu);
            s += gu;
          }
          attentionBlocks[u.index]! += Math.abs(s);
        });
        ffns.forEach((f, li) => {
          const g = neuronMasks[li]!.grad!.toArray() as Float32Array;
          let s = 0;
          for (let j = 0; j < f.units; j++) {
            neurons[li]![j]! += Math.abs(g[j]!);
            s += g[j]!;
          }
          mlpBlocks[f.index]! += Math.abs(s);
        });
        n++;
      }
    });
  } finally {
    for (const h of handles) h.remove();
    params.forEach((p, i) => (p.grad = savedGrads[i] ?? null));
  }
  return { heads, neurons, attentionBlocks, mlpBlocks, labels, batches: n };
}

/** Indices of the `count` lowest scores (ties: lower index first), sorted ascending. */
export function lowest(scores: ArrayLike<number>, count: number): number[] {
  return range(scores.length)
    .sort((x, y) => scores[x]! - scores[y]! || x - y)
    .slice(0, Math.max(0, count))
    .sort((x, y) => x - y);
}

/** How many of n units a fraction removes (rounded to nearest). */
export const countOf = (fraction: number, n: number): number => Math.min(n, Math.round(fraction * n + 1e-9));

/**
 * Remove attention units (heads, or KV groups) of block `index` physically: BertAttention / GPT2Attention
 * pruneHeads (HF semantics, indices among the original heads are translated), Llama q/k/v rows and o columns
 * sliced group-wise. Removing every unit leaves the attention sub-block null (the identity).
 */
export function pruneAttentionUnits(model: Module, index: number, units: readonly number[]): void {
  if (units.length === 0) return;
  const a = anatomy(model).blocks[index]!.attention;
  if (!a) throw new Error(`pruneAttentionUnits: block ${index} has no attention`);
  const att = model.getSubmodule(a.path);
  const grouped = a.numKvHeads !== a.numHeads;
  const R = grouped ? a.numHeads / a.numKvHeads : 1;
  const nUnits = grouped ? a.numKvHeads : a.numHeads;
  for (const u of units) if (!Number.isInteger(u) || u < 0 || u >= nUnits) throw new Error(`pruneAttentionUnits: unit ${u} is out of range (block ${index} has ${nUnits})`);
  const drop = new Set(units);
  if (drop.size === nUnits) {
    if (att instanceof BertAttention) att.pruneHeads(range(att.cfg.num_attention_heads));
    else removeAttention(model, index);
    return;
  }
  if (att instanceof BertAttention || att instanceof GPT2Attention) {
    // live position → original head index
    const nOrig = att instanceof BertAttention ? att.cfg.num_attention_heads : att.cfg.n_head;
    const live = range(nOrig).filter((h) => !att.prunedHeads.has(h));
    att.pruneHeads([...drop].map((u) => live[u]!));
    return;
  }
  if (att instanceof LlamaAttention) {
    const hd = a.headDim;
    const keepUnits = range(nUnits).filter((u) => !drop.has(u));
    const qKeep = keepUnits.flatMap((u) => range(R * hd).map((d) => u * R * hd + d));
    const kvKeep = keepUnits.flatMap((u) => range(hd).map((d) => u * hd + d));
    att.q_proj = sliceLinear(att.q_proj, { outIdx: qKeep });
    att.k_proj = sliceLinear(att.k_proj, { outIdx: kvKeep });
    att.v_proj = sliceLinear(att.v_proj, { outIdx: kvKeep });
    att.o_proj = sliceLinear(att.o_proj, { inIdx: qKeep });
    att.numHeads = keepUnits.length * R;
    att.numKvHeads = keepUnits.length;
    return;
  }
  throw new Error(`pruneAttentionUnits: cannot prune heads of ${att.constructor.name}`);
}

/** Keep the FFN neurons `keep` of block `index`: up (and gate) rows and down columns, with sliceLinear. */
export function keepNeurons(model: Module, index: number, keep: readonly number[]): void {
  const m = anatomy(model).blocks[index]!.mlp;
  if (!m || m.kind === 'custom' || !m.up || !m.down) throw new Error(`keepNeurons: block ${index} has no dense or gated MLP`);
  if (keep.length === 0) {
    replaceMlp(model, index, null);
    return;
  }
  if (keep.length === m.intermediate) return;
  for (const p of [m.up, m.gate]) if (p) model.setSubmodule(p, sliceLinear(model.getSubmodule(p) as Linear | Conv1D, { outIdx: keep }));
  model.setSubmodule(m.down, sliceLinear(model.getSubmodule(m.down) as Linear | Conv1D, { inIdx: keep }));
}

/** Parameters, and per-layer head / FFN counts, for reports. */
export function structureSummary(model: Module): { params: number; heads: number[]; kv_heads: number[]; ffn: number[] } {
  const blocks = anatomy(model).blocks;
  return {
    params: model.numParameters(),
    heads: blocks.map((b) => b.attention?.numHeads ?? 0),
    kv_heads: blocks.map((b) => b.attention?.numKvHeads ?? 0),
    ffn: blocks.map((b) => (b.mlp ? (b.mlp.intermediate ?? -1) : 0)),
  };
}

/** A fraction option in [0, 1): throws naming it. */
export function checkFraction(name: string, v: number): void {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw new Error(`option '${name}' must be a fraction in [0, 1), got ${v}`);
}

// ---------------------------------------------------------------- plain fine-tuning

/**
 * `finetune` (trained): no parameters and no losses of its own; the stage trains the whole model on the task loss.
 * A recipe says `{"method": "finetune"}` for a plain fine-tuning stage (after a pruning step, between APoZ rounds).
 * Joined with other trained steps it adds nothing.
 */
export const finetune: Method<Record<string, never>> = {
  name: 'finetune',
  kind: 'trained',
  description: 'plain fine-tuning on the task loss (a training stage with no method of its own: after pruning, between rounds)',
  defaults: {},
  apply: (model) => ({ report: () => ({ params: model.numParameters() }) }),
};

registerMethod(finetune);
