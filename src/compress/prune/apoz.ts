/**
 * `prune.apoz` (one-shot): Network Trimming (Hu et al. 2016) on transformer FFNs. Over the calibration data, each
 * FFN neuron's activations (the input of the down projection, padding left out) are scored and the given
 * fraction of neurons with the most zeros is removed in every targeted layer, physically: up (and gate) rows and
 * down columns are sliced (BERT intermediate.dense / output.dense, GPT-2 c_fc / c_proj Conv1D, Llama gate / up /
 * down), so the layers are really smaller and save as plain narrower checkpoints.
 *
 * Criteria: `apoz` = fraction of activations ≤ 0 (exact for ReLU), `apoz_eps` = fraction with |a| ≤ eps (for
 * GELU/SiLU, whose negative tail is small but not zero), `mean_abs` = mean |a| (lowest pruned); `auto` picks apoz
 * for ReLU and apoz_eps otherwise. The report says which was used.
 *
 * The paper iterates prune → fine-tune; in a recipe that is the chain
 * `prune.apoz → finetune → prune.apoz → finetune`, each prune taking `sparsity` of what is left.
 */
import type { Method } from '../method.ts';
import { registerMethod } from '../method.ts';
import { activationStats, calibrationOf, checkFraction, countOf, ffnUnits, keepNeurons, lowest, range, structureSummary, NEURON_CRITERIA, type NeuronCriterion } from './importance.ts';

export interface ApozConfig {
  /** Fraction of each targeted FFN's neurons to remove, in [0, 1). */
  sparsity: number;
  criterion: NeuronCriterion | 'auto';
  /** Threshold of apoz_eps. */
  eps: number;
  targets: string[] | null;
  ignore: string[] | null;
}

const CRITERIA = ['auto', ...NEURON_CRITERIA] as const;

function check(cfg: ApozConfig): void {
  try {
    checkFraction('sparsity', cfg.sparsity);
    if (!(cfg.eps >= 0)) throw new Error(`option 'eps' must be >= 0, got ${cfg.eps}`);
  } catch (e) {
    throw new Error(`prune.apoz: ${(e as Error).message}`, { cause: e });
  }
}

/** The criterion `auto` stands for with this activation. */
export function apozCriterion(cfg: Pick<ApozConfig, 'criterion'>, activation: string | null): NeuronCriterion {
  if (cfg.criterion !== 'auto') return cfg.criterion;
  return activation === 'relu' ? 'apoz' : 'apoz_eps';
}

export const pruneApoz: Method<ApozConfig> = {
  name: 'prune.apoz',
  kind: 'one-shot',
  description: 'Network Trimming: remove the FFN neurons with the highest average percentage of zeros on calibration data (physically sliced)',
  defaults: { sparsity: 0.5, criterion: 'auto', eps: 0.01, targets: null, ignore: null },
  types: { criterion: CRITERIA, targets: 'string[]', ignore: 'string[]' },
  globs: ['targets', 'ignore'],
  check: (model, cfg, ctx) => {
    check(cfg);
    if (!ctx.calibration) throw new Error('prune.apoz needs calibration data: give the recipe a task (or --task), whose training examples calibrate');
    if (ffnUnits(model, cfg.targets, cfg.ignore).length === 0) throw new Error('prune.apoz: no dense or gated FFN is targeted');
  },
  apply: (model, cfg, ctx) => {
    check(cfg);
    const batches = calibrationOf('prune.apoz', ctx);
    const ffns = ffnUnits(model, cfg.targets, cfg.ignore);
    if (ffns.length === 0) throw new Error('prune.apoz: no dense or gated FFN is targeted');
    const before = structureSummary(model);
    const criteria = new Set(ffns.map((f) => apozCriterion(cfg, f.m.activation)));
    const stats = activationStats(model, ffns, batches, cfg.eps);
    let removed = 0;
    let total = 0;
    // the criterion's own statistic (fraction of zeros, or mean |a|), averaged over removed and kept neurons
    let critRemoved = 0;
    let critKept = 0;
    ffns.forEach((f, li) => {
      const s = stats[li]!;
      const crit = apozCriterion(cfg, f.m.activation);
      const score = crit === 'mean_abs' ? s.meanAbs : (crit === 'apoz' ? s.nonPositive : s.small).map((v) => 1 - v);
      const drop = lowest(score, Math.min(countOf(cfg.sparsity, f.units), f.units - 1));
      const dropSet = new Set(drop);
      const keep = range(f.units).filter((j) => !dropSet.has(j));
      const stat = crit === 'mean_abs' ? s.meanAbs : crit === 'apoz' ? s.nonPositive : s.small;
      for (const j of drop) critRemoved += stat[j]!;
      for (const j of keep) critKept += stat[j]!;
      removed += drop.length;
      total += f.units;
      keepNeurons(model, f.index, keep);
      ctx.log?.(`prune.apoz: layer ${f.index}: ${f.units} → ${keep.length} neurons (${crit})`);
    });
    const after = structureSummary(model);
    return {
      report: () => ({
        criterion: [...criteria].join(','),
        sparsity: total ? removed / total : 0,
        neurons_removed: removed,
        ffn_before: before.ffn.join('/'),
        ffn_after: after.ffn.join('/'),
        criterion_removed: removed ? critRemoved / removed : 0,
        criterion_kept: total - removed ? critKept / (total - removed) : 0,
        params_before: before.params,
        params_after: after.params,
        calibration_batches: batches.length,
      }),
    };
  },
};

registerMethod(pruneApoz);
