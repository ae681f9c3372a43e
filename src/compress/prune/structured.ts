/**
 * `prune.structured` (one-shot): remove attention heads, FFN neurons and whole sub-blocks, physically.
 *
 * Importance, all measured on the unpruned model before anything is removed:
 * - heads: `gradient` (Michel et al. 2019: |∂L/∂mask| of a head mask of ones, through the models' `headMask`,
 *   accumulated over the calibration batches with the task loss) or `weight_norm`;
 * - neurons: `gradient` (the same on a neuron mask at the down projection's input), `weight_norm` or `apoz`
 *   (see apoz.ts; `criterion` and `eps` as there);
 * - whole sub-blocks (`layers`: how many attention / MLP sub-blocks to remove): the gradient of a scale on the
 *   whole sub-block (|Σ of its mask gradients| per batch); or by index (`drop_attention`, `drop_mlp`). A removed
 *   sub-block becomes null, the identity.
 *
 * `heads` and `neurons` are fractions to remove, per layer (`scope: "per_layer"`) or ranked across layers
 * (`scope: "global"`, gradient scores normalized per layer by their L2 norm as Michel et al. do). Each layer keeps
 * `min_heads_per_layer` heads (default 1); pruning every head of a layer is an error unless
 * `allow_layer_removal: true`, which then leaves the attention null.
 *
 * Rebuilding: BertAttention.pruneHeads / GPT2Attention.pruneHeads (HF semantics; GPT-2's fused c_attn sliced in
 * its q, k and v parts), Llama grouped-query attention by whole KV groups (the group's query heads with their key
 * and value head; a fraction of heads is a fraction of groups), FFNs with sliceLinear. A BERT whose FFNs end up
 * the same width saves as a plain HF folder (`pruned_heads`, `intermediate_size`).
 *
 * Fine-tuning afterwards is the next recipe step, `{"method": "finetune"}` (importance.ts); logit distillation from
 * the unpruned model comes with the distillation methods (issue 15).
 */
import type { Method } from '../method.ts';
import { registerMethod } from '../method.ts';
import type { Module } from '../../nn/module.ts';
import { anatomy, removeAttention, replaceMlp } from '../../models/anatomy.ts';
import {
  activationImportance, attentionUnits, calibrationOf, checkFraction, countOf, ffnUnits, gradientImportance, headWeightNorms, keepNeurons, lowest,
  neuronWeightNorms, pruneAttentionUnits, range, structureSummary, NEURON_CRITERIA, type AttentionUnits, type FfnUnits, type GradientImportance, type NeuronCriterion,
} from './importance.ts';
import { apozCriterion } from './apoz.ts';

export interface StructuredConfig {
  /** Fraction of attention heads to remove (KV groups for grouped-query attention), in [0, 1). */
  heads: number;
  /** Fraction of FFN neurons to remove, in [0, 1). */
  neurons: number;
  head_importance: 'gradient' | 'weight_norm';
  neuron_importance: 'gradient' | 'weight_norm' | 'apoz';
  /** APoZ criterion and threshold when neuron_importance is apoz. */
  criterion: NeuronCriterion | 'auto';
  eps: number;
  scope: 'per_layer' | 'global';
  min_heads_per_layer: number;
  allow_layer_removal: boolean;
  /** How many attention / MLP sub-blocks to remove, by gradient importance. */
  layers: number;
  /** Block indices whose attention / MLP is removed. */
  drop_attention: number[] | null;
  drop_mlp: number[] | null;
  targets: string[] | null;
  ignore: string[] | null;
}

const defaults: StructuredConfig = {
  heads: 0, neurons: 0, head_importance: 'gradient', neuron_importance: 'gradient', criterion: 'auto', eps: 0.01, scope: 'per_layer',
  min_heads_per_layer: 1, allow_layer_removal: false, layers: 0, drop_attention: null, drop_mlp: null, targets: null, ignore: null,
};

/** Whether the config needs calibration batches. */
function needsData(cfg: StructuredConfig): boolean {
  return (cfg.heads > 0 && cfg.head_importance === 'gradient') || (cfg.neurons > 0 && cfg.neuron_importance !== 'weight_norm') || cfg.layers > 0;
}

interface Plan {
  att: AttentionUnits[];
  ffns: FfnUnits[];
  minUnits: number[];
}

function plan(model: Module, cfg: StructuredConfig): Plan {
  checkFraction('heads', cfg.heads);
  checkFraction('neurons', cfg.neurons);
  if (!(Number.isInteger(cfg.min_heads_per_layer) && cfg.min_heads_per_layer >= 0)) throw new Error(`option 'min_heads_per_layer' must be an integer >= 0, got ${cfg.min_heads_per_layer}`);
  if (cfg.min_heads_per_layer === 0 && !cfg.allow_layer_removal)
    throw new Error(`option 'min_heads_per_layer' 0 lets a layer lose every head; set allow_layer_removal: true to remove whole attention layers`);
  if (!(Number.isInteger(cfg.layers) && cfg.layers >= 0)) throw new Error(`option 'layers' must be an integer >= 0, got ${cfg.layers}`);
  if (!(cfg.eps >= 0)) throw new Error(`option 'eps' must be >= 0, got ${cfg.eps}`);
  const blocks = anatomy(model).blocks;
  for (const k of ['drop_attention', 'drop_mlp'] as const)
    for (const i of cfg[k] ?? []) {
      if (!Number.isInteger(i) || i < 0 || i >= blocks.length) throw new Error(`option '${k}': block ${i} is out of range (the model has ${blocks.length} blocks)`);
      if (k === 'drop_attention' ? !blocks[i]!.attention : !blocks[i]!.mlp) throw new Error(`option '${k}': block ${i} has no ${k === 'drop_attention' ? 'attention' : 'MLP'} left`);
    }
  const att = attentionUnits(model, cfg.targets, cfg.ignore);
  const ffns = ffnUnits(model, cfg.targets, cfg.ignore);
  const minUnits = att.map((u) => Math.min(u.units, Math.ceil(cfg.min_heads_per_layer / u.headsPerUnit)));
  if (cfg.heads > 0 && att.length === 0) throw new Error(`option 'heads': no attention is targeted`);
  if (cfg.neurons > 0 && ffns.length === 0) throw new Error(`option 'neurons': no dense or gated FFN is targeted`);
  if (cfg.scope === 'per_layer' && !cfg.allow_layer_removal)
    for (const u of att)
      if (countOf(cfg.heads, u.units) >= u.units)
        throw new Error(`option 'heads' ${cfg.heads} removes every head of layer ${u.index} (${u.units} ${u.headsPerUnit > 1 ? 'KV groups' : 'heads'}); set allow_layer_removal: true or a smaller fraction`);
  const sub = blocks.filter((b) => b.attention).length + blocks.filter((b) => b.mlp).length;
  if (cfg.layers > sub) throw new Error(`option 'layers' ${cfg.layers}: the model has ${sub} attention / MLP sub-blocks`);
  return { att, ffns, minUnits };
}

/** Per-layer counts to remove: fraction per layer, or the lowest of all layers (scores normalized per layer) within each layer's floor. */
function choose(scores: Float64Array[], units: number[], floors: number[], fraction: number, scope: StructuredConfig['scope'], normalize: boolean): number[][] {
  if (fraction === 0) return scores.map(() => []);
  if (scope === 'per_layer') return scores.map((s, i) => lowest(s, Math.min(countOf(fraction, units[i]!), units[i]! - floors[i]!)));
  const norm = scores.map((s) => {
    if (!normalize) return s;
    const n = Math.sqrt(s.reduce((a, v) => a + v * v, 0)) || 1;
    return s.map((v) => v / n);
  });
  const all = norm.flatMap((s, li) => range(s.length).map((j) => ({ li, j, v: s[j]! }))).sort((a, b) => a.v - b.v || a.li - b.li || a.j - b.j);
  let todo = countOf(fraction, units.reduce((a, b) => a + b, 0));
  const out: number[][] = scores.map(() => []);
  for (const x of all) {
    if (todo === 0) break;
    if (units[x.li]! - out[x.li]!.length <= floors[x.li]!) continue;
    out[x.li]!.push(x.j);
    todo--;
  }
  return out.map((o) => o.sort((a, b) => a - b));
}

/** Errors of the checks name the method (the runner adds no step label to a method's own check). */
function named<T>(run: () => T): T {
  try {
    return run();
  } catch (e) {
    throw new Error(`prune.structured: ${(e as Error).message}`, { cause: e });
  }
}

export const pruneStructured: Method<StructuredConfig> = {
  name: 'prune.structured',
  kind: 'one-shot',
  description: 'structured pruning: attention heads (Michel et al. gradient or weight norm), FFN neurons and whole sub-blocks, physically removed',
  defaults,
  types: {
    head_importance: ['gradient', 'weight_norm'], neuron_importance: ['gradient', 'weight_norm', 'apoz'], criterion: ['auto', ...NEURON_CRITERIA], scope: ['per_layer', 'global'],
    min_heads_per_layer: 'integer', layers: 'integer', drop_attention: 'number[]', drop_mlp: 'number[]', targets: 'string[]', ignore: 'string[]',
  },
  globs: ['targets', 'ignore'],
  check: (model, cfg, ctx) => {
    named(() => plan(model, cfg));
    if (needsData(cfg) && !ctx.calibration) throw new Error('prune.structured needs calibration data for gradient / APoZ importance: give the recipe a task (or --task), or use weight_norm');
  },
  apply: (model, cfg, ctx) => {
    const { att, ffns, minUnits } = named(() => plan(model, cfg));
    const before = structureSummary(model);
    const batches = needsData(cfg) ? calibrationOf('prune.structured', ctx) : [];
    const grad: GradientImportance | null =
      (cfg.heads > 0 && cfg.head_importance === 'gradient') || (cfg.neurons > 0 && cfg.neuron_importance === 'gradient') || cfg.layers > 0 ? gradientImportance(model, att, ffns, batches) : null;
    const headScores = cfg.heads === 0 ? att.map((u) => new Float64Array(u.units)) : cfg.head_importance === 'gradient' ? grad!.heads : headWeightNorms(model, att);
    let neuronScores: Float64Array[];
    if (cfg.neurons === 0) neuronScores = ffns.map((f) => new Float64Array(f.units));
    else if (cfg.neuron_importance === 'gradient') neuronScores = grad!.neurons;
    else if (cfg.neuron_importance === 'weight_norm') neuronScores = neuronWeightNorms(model, ffns);
    else {
      const crit = apozCriterion(cfg, ffns[0]!.m.activation);
      neuronScores = activationImportance(model, ffns, batches, crit, cfg.eps);
    }

    // whole sub-blocks: by index, then the least important ones by gradient
    const dropAtt = new Set(cfg.drop_attention ?? []);
    const dropMlp = new Set(cfg.drop_mlp ?? []);
    if (cfg.layers > 0) {
      const cands = [
        ...att.filter((u) => !dropAtt.has(u.index)).map((u) => ({ kind: 'attention' as const, i: u.index, v: grad!.attentionBlocks[u.index]! })),
        ...ffns.filter((f) => !dropMlp.has(f.index)).map((f) => ({ kind: 'mlp' as const, i: f.index, v: grad!.mlpBlocks[f.index]! })),
      ].sort((a, b) => a.v - b.v || a.i - b.i);
      for (const c of cands.slice(0, cfg.layers)) (c.kind === 'attention' ? dropAtt : dropMlp).add(c.i);
    }

    const headFloors = minUnits.map((m) => (cfg.allow_layer_removal ? m : Math.max(m, 1)));
    const liveAtt = att.map((u, li) => ({ u, li })).filter(({ u }) => !dropAtt.has(u.index));
    const headDrops = choose(liveAtt.map(({ li }) => headScores[li]!), liveAtt.map(({ u }) => u.units), liveAtt.map(({ li }) => headFloors[li]!), cfg.heads, cfg.scope, cfg.head_importance === 'gradient');
    const liveFfn = ffns.map((f, li) => ({ f, li })).filter(({ f }) => !dropMlp.has(f.index));
    const neuronFloor = cfg.allow_layer_removal ? 0 : 1;
    const neuronDrops = choose(liveFfn.map(({ li }) => neuronScores[li]!), liveFfn.map(({ f }) => f.units), liveFfn.map(() => neuronFloor), cfg.neurons, cfg.scope, cfg.neuron_importance === 'gradient');

    // rebuild
    for (const i of [...dropAtt].sort((a, b) => a - b)) if (anatomy(model).blocks[i]!.attention) removeAttention(model, i);
    for (const i of [...dropMlp].sort((a, b) => a - b)) if (anatomy(model).blocks[i]!.mlp) replaceMlp(model, i, null);
    let headsRemoved = 0;
    liveAtt.forEach(({ u }, k) => {
      const drop = headDrops[k]!;
      headsRemoved += drop.length * u.headsPerUnit;
      pruneAttentionUnits(model, u.index, drop);
    });
    let neuronsRemoved = 0;
    liveFfn.forEach(({ f }, k) => {
      const dropSet = new Set(neuronDrops[k]!);
      neuronsRemoved += dropSet.size;
      keepNeurons(model, f.index, range(f.units).filter((j) => !dropSet.has(j)));
    });
    const after = structureSummary(model);
    const totalHeads = att.reduce((a, u) => a + u.units * u.headsPerUnit, 0);
    const totalNeurons = ffns.reduce((a, f) => a + f.units, 0);
    ctx.log?.(`prune.structured: heads ${before.heads.join('/')} → ${after.heads.join('/')}, FFN ${before.ffn.join('/')} → ${after.ffn.join('/')}`);
    return {
      report: () => ({
        head_importance: cfg.heads > 0 ? cfg.head_importance : 'none',
        neuron_importance: cfg.neurons > 0 ? (cfg.neuron_importance === 'apoz' ? `apoz:${apozCriterion(cfg, ffns[0]?.m.activation ?? null)}` : cfg.neuron_importance) : 'none',
        ...(grad ? { labels: grad.labels, calibration_batches: grad.batches } : {}),
        heads_removed: headsRemoved,
        heads_fraction: totalHeads ? headsRemoved / totalHeads : 0,
        neurons_removed: neuronsRemoved,
        neurons_fraction: totalNeurons ? neuronsRemoved / totalNeurons : 0,
        attention_removed: [...dropAtt].sort((a, b) => a - b).join(',') || 'none',
        mlp_removed: [...dropMlp].sort((a, b) => a - b).join(',') || 'none',
        heads_before: before.heads.join('/'),
        heads_after: after.heads.join('/'),
        ffn_before: before.ffn.join('/'),
        ffn_after: after.ffn.join('/'),
        params_before: before.params,
        params_after: after.params,
      }),
    };
  },
};

registerMethod(pruneStructured);
