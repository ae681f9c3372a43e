/**
 * `prune.cofi` (trained): CoFiPruning (Xia, Zhong & Chen, ACL 2022; princeton-nlp/CoFiPruning at da855a8).
 *
 * One training stage learns hard-concrete L0 gates (l0.ts) over attention heads, whole attention sub-blocks, FFN
 * neurons, whole FFNs and hidden dimensions, multiplied into a stock BERT where upstream's model classes multiply
 * them (masked.ts), while
 * - the first `prepruning_steps` steps fine-tune without masks (upstream's trainer hard-codes 100),
 * - then the Lagrangian `λ₁(ŝ − t) + λ₂(ŝ − t)²` drives the expected sparsity ŝ to the target t, ramped linearly over
 *   `lagrangian_warmup` (a fraction (< 1) of the pruning steps, or a step count); log α train with AdamW at
 *   `reg_lr` and λ by gradient ascent at the same rate, both off the schedule; log α clamped after every step,
 * - the loss is distillation from the unpruned teacher: `alpha_layer · L_layer + alpha_ce · T²·KL` (distill.ts,
 *   upstream's layer_distill_version 4), with the task loss left to the recipe's `task_weight` (0 in our recipes,
 *   as upstream trains on the distillation loss alone when it distils), embeddings frozen.
 * `finalize` folds the deterministic masks into the weights and removes what they zero (finalize.ts); a following
 * step with its own `train` (e.g. `finetune`) fine-tunes the fixed structure.
 *
 * With `train.eval_every` the stage ends on its best dev evaluation among those where ŝ ≥ target − `sparsity_epsilon`
 * (`bestEligible`; upstream's trainer starts saving its best once ŝ − t > −ε). Without it, on the last step.
 * Not done: the optimizer is not reset when pruning starts.
 */
import type { Module } from '../../nn/module.ts';
import { Linear } from '../../nn/layers.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { eye } from '../../tensor/creation.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { registerMethod, type Method, type MethodRun } from '../method.ts';
import { BertForSequenceClassification, BertModel } from '../../models/bert/modeling.ts';
import { anatomy } from '../../models/anatomy.ts';
import { L0Masks, L0_TYPES, type L0Type, type L0Zs } from './l0.ts';
import { bertBase, installMasks, type CofiZ } from './masked.ts';
import { defaultTeacherLayers, layerDistillLoss, predictionDistillLoss } from './distill.ts';
import { foldAndPrune } from './finalize.ts';

export interface CofiConfig {
  /** Fraction of the prunable parameters (attention and FFN weights) to remove. */
  target_sparsity: number;
  /** Gates to learn: any of head, head_layer, intermediate, mlp, hidden (upstream's structured_heads+structured_mlp+hidden+layer = all). */
  pruning_type: string[];
  droprate_init: number;
  temperature: number;
  magical_number: number;
  /** Steps of plain (distilled) fine-tuning before the masks start. */
  prepruning_steps: number;
  /** Target ramp: a fraction (< 1) of the pruning steps, or a number of steps. */
  lagrangian_warmup: number;
  /** Learning rate of log α and λ (upstream reg_learning_rate). */
  reg_lr: number;
  distill_temp: number;
  alpha_ce: number;
  alpha_layer: number;
  /** Teacher layers (0-based) to align; null: every third ending at the last ([2, 5, 8, 11] of 12). */
  distill_layers: number[] | null;
  freeze_embeddings: boolean;
  /** With train.eval_every: an evaluation counts for the best once the expected sparsity ≥ target − this. */
  sparsity_epsilon: number;
}

const defaults: CofiConfig = {
  target_sparsity: 0.9,
  pruning_type: ['head', 'head_layer', 'intermediate', 'mlp', 'hidden'],
  droprate_init: 0.5,
  temperature: 2 / 3,
  magical_number: 0.8,
  prepruning_steps: 100,
  lagrangian_warmup: 0.1,
  reg_lr: 0.01,
  distill_temp: 2,
  alpha_ce: 0.1,
  alpha_layer: 0.9,
  distill_layers: null,
  freeze_embeddings: true,
  sparsity_epsilon: 0.01,
};

const Z_NAMES: Record<L0Type, keyof CofiZ> = { head: 'head', head_layer: 'headLayer', intermediate: 'intermediate', mlp: 'mlp', hidden: 'hidden' };
const toZ = (zs: L0Zs): CofiZ => Object.fromEntries(Object.entries(zs).map(([t, v]) => [Z_NAMES[t as L0Type], v])) as CofiZ;

/** Attention + FFN weights and biases of the encoder: what CoFi's sparsity is a fraction of. */
export function encoderParams(model: Module): number {
  const a = anatomy(model);
  let n = 0;
  for (const b of a.blocks) {
    const mods = [...(b.attention ? [b.attention.q, b.attention.k, b.attention.v, b.attention.o] : []), ...(b.mlp ? [b.mlp.up!, b.mlp.down!] : [])];
    for (const p of mods) n += model.getSubmodule(p).numParameters();
  }
  return n;
}

function plan(model: Module, cfg: CofiConfig) {
  if (!(model instanceof BertForSequenceClassification || model instanceof BertModel))
    throw new Error(`prune.cofi: supports BERT classifiers (BertForSequenceClassification), got ${model.constructor.name}`);
  const base = bertBase(model);
  const c = base.config;
  if (!(cfg.target_sparsity > 0 && cfg.target_sparsity < 1)) throw new Error(`option 'target_sparsity' must be in (0, 1), got ${cfg.target_sparsity}`);
  for (const t of cfg.pruning_type) if (!(L0_TYPES as readonly string[]).includes(t)) throw new Error(`option 'pruning_type': unknown gate '${t}' (gates: ${L0_TYPES.join(', ')})`);
  if (cfg.pruning_type.length === 0) throw new Error(`option 'pruning_type' is empty`);
  if (!(Number.isInteger(cfg.prepruning_steps) && cfg.prepruning_steps >= 0)) throw new Error(`option 'prepruning_steps' must be an integer >= 0, got ${cfg.prepruning_steps}`);
  if (!(cfg.lagrangian_warmup >= 0)) throw new Error(`option 'lagrangian_warmup' must be >= 0, got ${cfg.lagrangian_warmup}`);
  if (!(cfg.sparsity_epsilon >= 0 && cfg.sparsity_epsilon < 1)) throw new Error(`option 'sparsity_epsilon' must be in [0, 1), got ${cfg.sparsity_epsilon}`);
  if (!(cfg.distill_temp > 0)) throw new Error(`option 'distill_temp' must be > 0, got ${cfg.distill_temp}`);
  base.encoder.layer.forEach((l, i) => {
    if (!l.attention?.self || l.attention.numHeads !== c.num_attention_heads || !l.intermediate || l.intermediate.dense.outFeatures !== c.intermediate_size)
      throw new Error(`prune.cofi: layer ${i} is already pruned or replaced (CoFi starts from an unpruned BERT)`);
  });
  const L = c.num_hidden_layers;
  const layers = cfg.distill_layers ?? defaultTeacherLayers(L);
  for (const t of layers) if (!(Number.isInteger(t) && t >= 0 && t < L)) throw new Error(`option 'distill_layers': layer ${t} is out of range (the teacher has ${L} layers)`);
  return { base, c, L, layers };
}

function named<T>(run: () => T): T {
  try {
    return run();
  } catch (e) {
    throw new Error(`prune.cofi: ${(e as Error).message.replace(/^prune\.cofi: /, '')}`, { cause: e });
  }
}

export const pruneCofi: Method<CofiConfig> = {
  name: 'prune.cofi',
  kind: 'trained',
  description: 'CoFiPruning: L0 gates on heads, attention layers, FFN neurons, FFN layers and hidden dims, Lagrangian sparsity control, layer-wise distillation; zeroed parts physically removed',
  defaults,
  types: { pruning_type: 'string[]', distill_layers: 'number[]', prepruning_steps: 'integer' },
  check: (model, cfg) => void named(() => plan(model, cfg)),
  apply: (model, cfg, ctx): MethodRun => {
    const { base, c, L, layers } = named(() => plan(model, cfg));
    const total = ctx.totalSteps ?? 0;
    if (cfg.prepruning_steps >= total) throw new Error(`prune.cofi: prepruning_steps ${cfg.prepruning_steps} leaves none of the stage's ${total} steps for pruning`);
    const pruningSteps = total - cfg.prepruning_steps;
    const l0 = new L0Masks({
      layers: L, heads: c.num_attention_heads, hidden: c.hidden_size, intermediate: c.intermediate_size,
      types: cfg.pruning_type as L0Type[], droprateInit: cfg.droprate_init, temperature: cfg.temperature, magicalNumber: cfg.magical_number,
      lagrangianWarmup: cfg.lagrangian_warmup < 1 ? Math.round(cfg.lagrangian_warmup * pruningSteps) : Math.round(cfg.lagrangian_warmup),
      targetSparsity: cfg.target_sparsity,
    });
    const d = c.hidden_size;
    const transform = new Linear(d, d);
    noGrad(() => {
      transform.weight.copy_(eye(d));
      transform.bias!.zero_();
    });
    const paramsBefore = model.numParameters();
    const prunableBefore = encoderParams(model);
    const frozen = cfg.freeze_embeddings ? base.embeddings.parameters().filter((p) => p.requiresGrad) : [];
    for (const p of frozen) p.requiresGrad = false;

    let step = 0;
    let detCache: { version: number; z: CofiZ } | null = null;
    let version = 0;
    const pruning = () => step >= cfg.prepruning_steps;
    const masks = installMasks(model, () => {
      if (!pruning()) return null;
      if (model.training) return toZ(l0.sample());
      if (detCache?.version !== version) detCache = { version, z: toZ(l0.deterministic().masks) };
      return detCache.z;
    });
    let alignment = '';
    const logAlphas = l0.namedParameters().filter(([n]) => !n.startsWith('lambda'));
    const lambdas = l0.namedParameters().filter(([n]) => n.startsWith('lambda'));
    let done: ReturnType<typeof foldAndPrune> | null = null;
    let finalSparsity = { expected: 0 };

    return {
      needs: { teacher: true, hiddenStates: true },
      params: () => [
        { name: 'l0', params: logAlphas, lr: cfg.reg_lr, fixedLr: true },
        { name: 'lagrangian', params: lambdas, lr: cfg.reg_lr, maximize: true, fixedLr: true },
        { name: 'layer_transformation', params: transform.namedParameters() },
      ],
      beforeStep: (s) => {
        step = s;
      },
      losses: ({ student, teacher }) => {
        if (!teacher) throw new Error('prune.cofi: needs the teacher outputs');
        const out: Record<string, Tensor> = {};
        out.pred_distill = predictionDistillLoss(student.logits, teacher.logits, cfg.distill_temp).mul(cfg.alpha_ce);
        if (cfg.alpha_layer !== 0) {
          const sh = student.hiddenStates;
          const th = teacher.hiddenStates;
          if (!sh || !th) throw new Error('prune.cofi: the models returned no hidden states');
          const z = masks.last();
          const hl = z?.headLayer ? (z.headLayer.toArray() as Float32Array) : null;
          const r = layerDistillLoss(th.slice(1), sh.slice(1), (x) => transform.forward(x), layers, hl ? Array.from(hl, (v) => v !== 0) : null);
          out.layer_distill = r.loss.mul(cfg.alpha_layer);
          alignment = r.alignment.join(',');
        }
        if (pruning()) out.lagrangian = l0.lagrangian(step - cfg.prepruning_steps).loss;
        return out;
      },
      afterOptimizerStep: (s) => {
        step = s;
        l0.clampLogAlpha();
        version++;
        if (pruning() && s % 100 === 0) {
          const lag = noGrad(() => l0.lagrangian(s - cfg.prepruning_steps));
          ctx.log?.(`prune.cofi: step ${s}: expected sparsity ${lag.expectedSparsity.item().toFixed(3)}, target ${lag.targetSparsity.toFixed(3)}, λ1 ${l0.lambda_1.item().toFixed(3)}, λ2 ${l0.lambda_2.item().toFixed(3)}`);
        }
      },
      bestEligible: () => pruning() && noGrad(() => l0.lagrangian(step - cfg.prepruning_steps).expectedSparsity.item()) >= cfg.target_sparsity - cfg.sparsity_epsilon,
      finalize: () => {
        masks.remove();
        finalSparsity = { expected: noGrad(() => l0.lagrangian(pruningSteps).expectedSparsity.item()) };
        done = foldAndPrune(model, toZ(l0.deterministic().masks));
        for (const p of bertBase(model).embeddings.parameters()) p.requiresGrad = true;
        ctx.log?.(`prune.cofi: heads ${done.heads.join('/')}, FFN ${done.ffn.join('/')}, hidden ${done.hidden}/${d}`);
      },
      report: () => {
        const prunableAfter = encoderParams(model);
        return {
          target_sparsity: cfg.target_sparsity,
          expected_sparsity: +finalSparsity.expected.toFixed(4),
          sparsity: +(1 - prunableAfter / prunableBefore).toFixed(4),
          encoder_params_before: prunableBefore,
          encoder_params_after: prunableAfter,
          params_before: paramsBefore,
          params_after: model.numParameters(),
          ...(done ? { heads: done.heads.join('/'), ffn: done.ffn.join('/'), hidden: done.hidden, attention_removed: done.attentionRemoved.join(',') || 'none', mlp_removed: done.mlpRemoved.join(',') || 'none' } : {}),
          alignment,
        };
      },
    };
  },
};

registerMethod(pruneCofi);
