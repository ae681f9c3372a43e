/**
 * `share.lowrank` (one-shot): truncated SVD of Linear layers into two smaller ones, W ≈ (U_r Σ_r)(V_rᵀ):
 * `first` = V_rᵀ [r, in] (no bias), `second` = U_r Σ_r [out, r] (with the layer's bias), y = second(first(x)).
 *
 * - Rank per layer: `rank` (fixed), `energy` (the smallest r keeping that fraction of Σσ², the squared Frobenius
 *   norm), or `ratio` (the fraction of the layer's weights to keep: r = ⌊ratio·m·n/(m+n)⌋); one of the three,
 *   `ratio` 0.5 when none is given.
 * - `activation_aware: true` (SVD-LLM, Wang et al. 2024; the whitening ASVD approximates): with the input second
 *   moment C = Σ x xᵀ from calibration data (padding left out), damped by `damp`·mean(diag C), and its Cholesky
 *   factor C = L Lᵀ, ‖(W − W′)X‖_F = ‖(W − W′)L‖_F, so the best rank-r W′ for the layer's *outputs* is the
 *   truncated SVD of W·L with L undone on the first factor: first = V_rᵀ L⁻¹, second = U_r Σ_r. The singular
 *   values of W·L then drive `energy`.
 * - Break-even: an m×n layer (m outputs, n inputs) at rank r stores and multiplies r(m+n) weights instead of m·n,
 *   so it is smaller and (at large batch, where the GEMMs are compute bound) faster only when r < m·n/(m+n) —
 *   64 for a 128×128 layer, 102 for 128×512, 384 for 768×768, 614 for 768×3072. A layer whose chosen rank reaches
 *   that stays dense (reported as kept_dense). Below it the speed-up is at most m·n/(r(m+n)), less the cost of a
 *   second, thinner GEMM.
 * - The SVD (`svd`): the exact one-sided Jacobi SVD (linalg.ts) up to min(m, n) = 1024, above that by default the
 *   randomized range finder with `power_iters` power iterations (rsvd.ts; Halko et al. 2011), which computes only
 *   the top r singular triplets — minutes instead of hours for a 2048×5632 layer — so `energy` and
 *   `activation_aware` (which need every singular value) ask for `svd: exact` there.
 * - Reported per layer (log lines and `lowRankReport`): rank, break-even rank, parameters before/after, relative
 *   weight error ‖W − W′‖_F/‖W‖_F, and with calibration data the relative output error ‖(W − W′)X‖_F/‖WX‖_F on the
 *   calibration inputs (bias left out of both); activation-aware runs also give the plain SVD's output error at
 *   the same rank (`compare_plain`).
 *
 * The factors are ordinary Linear layers: `finetune` trains them, `quant.rtn`/`quant.gptq` quantize them (low rank
 * + int8), and they save as `<name>.first.weight`, `<name>.second.weight`, `<name>.second.bias` with a
 * `low_rank_linear` entry in compression_config, so fromPretrained rebuilds them.
 */
import { Module } from '../../nn/module.ts';
import { Linear, type LinearLike } from '../../nn/layers.ts';
import { withoutInit } from '../../nn/init.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import type { Method } from '../method.ts';
import { registerMethod } from '../method.ts';
import { registerModuleType } from '../structure.ts';
import { calibrationBatches, inputCovariances, named, quadForm, targetLinears, weight64 } from './common.ts';
import { cholesky, solveRightLower, svd } from './linalg.ts';
import { randomizedSvd } from './rsvd.ts';

/** y = second(first(x)): a rank-r factorization of a Linear layer (see the file comment). */
export class LowRankLinear extends Module {
  first: Linear;
  second: Linear;
  constructor(first: Linear, second: Linear) {
    super();
    if (first.outFeatures !== second.inFeatures) throw new Error(`LowRankLinear: first gives ${first.outFeatures} features, second takes ${second.inFeatures}`);
    if (first.bias) throw new Error('LowRankLinear: the first factor has no bias');
    this.first = first;
    this.second = second;
  }
  /** Factors from [out, r] and [r, in] tensors (copied), with an optional bias [out]. */
  static fromFactors(second: Tensor, first: Tensor, bias: Tensor | null = null): LowRankLinear {
    return new LowRankLinear(Linear.fromWeights(first), Linear.fromWeights(second, bias));
  }
  get inFeatures(): number {
    return this.first.inFeatures;
  }
  get outFeatures(): number {
    return this.second.outFeatures;
  }
  get rank(): number {
    return this.first.outFeatures;
  }
  get bias(): Tensor | null {
    return this.second.bias;
  }
  /** The product second·first as one [out, in] weight (a new tensor, for analysis). */
  weightOutIn(): Tensor {
    return noGrad(() => this.second.weight.matmul(this.first.weight));
  }
  forward(x: Tensor): Tensor {
    return this.second.forward(this.first.forward(x));
  }
}

registerModuleType<LowRankLinear>({
  type: 'low_rank_linear',
  cls: LowRankLinear,
  describe: (m) => ({ in_features: m.inFeatures, out_features: m.outFeatures, rank: m.rank, bias: m.bias !== null }),
  build: (e, where) => {
    const n = (k: string) => {
      const v = e[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new Error(`${where}.${k}: expected an integer >= 1, got ${JSON.stringify(v)}`);
      return v;
    };
    const [K, N, r] = [n('in_features'), n('out_features'), n('rank')];
    return withoutInit(() => new LowRankLinear(new Linear(K, r, { bias: false }), new Linear(r, N, { bias: e.bias !== false })));
  },
});

// ---------------------------------------------------------------- factorization

export interface RankRule {
  rank?: number | null;
  energy?: number | null;
  ratio?: number | null;
}

/** The largest rank at which an m×n factorization is still smaller than the dense layer: ⌈mn/(m+n)⌉ − 1. */
export function breakEvenRank(m: number, n: number): number {
  return Math.ceil((m * n) / (m + n)) - 1;
}

/** The rank a rule gives for singular values S (descending) of an [m, n] matrix, in [1, min(m, n)]. */
export function chooseRank(S: ArrayLike<number>, m: number, n: number, rule: RankRule): number {
  const p = Math.min(m, n);
  if (rule.rank != null) return Math.max(1, Math.min(p, rule.rank));
  if (rule.energy != null) {
    let total = 0;
    for (let i = 0; i < S.length; i++) total += S[i]! ** 2;
    if (total === 0) return 1;
    let acc = 0;
    for (let r = 1; r <= S.length; r++) {
      acc += S[r - 1]! ** 2;
      if (acc >= rule.energy * total * (1 - 1e-12)) return Math.min(p, r);
    }
    return p;
  }
  const ratio = rule.ratio ?? 0.5;
  return Math.max(1, Math.min(p, Math.floor((ratio * m * n) / (m + n))));
}

export interface Factorization {
  /** [m, r] = U_r Σ_r (row-major float64). */
  second: Float64Array;
  /** [r, n] = V_rᵀ (plain) or V_rᵀ L⁻¹ (activation-aware). */
  first: Float64Array;
  rank: number;
  /** Singular values of W (plain) or W·L (activation-aware). */
  S: Float64Array;
  /** Damping actually used (activation-aware; raised ×10 until C is positive definite). */
  damp?: number;
}

/**
 * Truncated SVD of W [m, n] (row-major float64) at the rank `rule` gives; with `cov` (the input second moment
 * [n, n]) the activation-aware version (see the file comment).
 */
export function factorize(W: Float64Array, m: number, n: number, rule: RankRule, cov?: { c: Float64Array; damp: number } | null): Factorization {
  let L: Float64Array | null = null;
  let damp: number | undefined;
  let target: Float64Array = W;
  if (cov) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += cov.c[i * n + i]!;
    mean /= n;
    if (mean > 0) {
      damp = cov.damp;
      for (let tries = 0; tries < 8 && !L; tries++, damp *= 10) {
        const A = Float64Array.from(cov.c);
        const lambda = Math.max(damp * mean, 1e-12 * mean);
        for (let i = 0; i < n; i++) A[i * n + i] += lambda;
        L = cholesky(A, n);
        if (L) break;
      }
      if (!L) throw new Error(`the input covariance is not positive definite even with damping ${damp}`);
      target = new Float64Array(m * n);
      // W·L (L lower): (W L)_ij = Σ_{k ≥ j} W_ik L_kj
      for (let i = 0; i < m; i++)
        for (let k = 0; k < n; k++) {
          const w = W[i * n + k]!;
          if (w === 0) continue;
          for (let j = 0; j <= k; j++) target[i * n + j] += w * L[k * n + j]!;
        }
    }
  }
  const d = svd(target, m, n);
  const r = chooseRank(d.S, m, n, rule);
  const second = new Float64Array(m * r);
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) second[i * r + j] = d.U[i * d.p + j]! * d.S[j]!;
  let first: Float64Array = new Float64Array(r * n);
  for (let j = 0; j < r; j++) for (let k = 0; k < n; k++) first[j * n + k] = d.V[k * d.p + j]!;
  if (L) first = solveRightLower(first, r, L, n);
  return { second, first, rank: r, S: d.S, ...(damp !== undefined ? { damp } : {}) };
}

/** W − second·first, row-major [m, n]. */
export function residual(W: Float64Array, f: Factorization, m: number, n: number): Float64Array {
  const D = Float64Array.from(W);
  const r = f.rank;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < r; j++) {
      const a = f.second[i * r + j]!;
      if (a === 0) continue;
      for (let k = 0; k < n; k++) D[i * n + k] -= a * f.first[j * n + k]!;
    }
  return D;
}

const sq = (a: Float64Array) => a.reduce((s, x) => s + x * x, 0);

// ---------------------------------------------------------------- the method

export interface LowRankConfig {
  /** A fixed rank for every layer (clamped to min(out, in)). */
  rank: number | null;
  /** Keep the smallest rank holding this fraction of Σσ² (0 < energy ≤ 1). */
  energy: number | null;
  /** Keep this fraction of each layer's weights (0 < ratio < 1); 0.5 when no rule is given. */
  ratio: number | null;
  /** SVD-LLM whitening by the Cholesky factor of the calibration inputs' second moment. */
  activation_aware: boolean;
  /** Damping of the input covariance, relative to its mean diagonal. */
  damp: number;
  /** Activation-aware: also measure the plain SVD's output error at the same rank (one more SVD per layer). */
  compare_plain: boolean;
  /**
   * The SVD: 'exact' (one-sided Jacobi, every singular value), 'randomized' (the range finder with power iterations,
   * rsvd.ts: the top `rank` only, minutes faster on large layers; needs rank or ratio), or 'auto': exact up to
   * min(out, in) = 1024, randomized above.
   */
  svd: 'auto' | 'exact' | 'randomized';
  /** Randomized SVD: power iterations (more: closer to the exact truncation when singular values decay slowly). */
  power_iters: number;
  targets: string[] | null;
  ignore: string[] | null;
}

const SOLVERS = ['auto', 'exact', 'randomized'] as const;
/** Above this min(out, in), svd 'auto' is randomized (a 1024-wide exact Jacobi SVD already takes about a minute). */
const EXACT_MAX = 1024;

const defaults: LowRankConfig = { rank: null, energy: null, ratio: null, activation_aware: false, damp: 0.01, compare_plain: true, svd: 'auto', power_iters: 4, targets: null, ignore: null };

export interface LowRankLayerReport {
  name: string;
  out_features: number;
  in_features: number;
  rank: number;
  break_even_rank: number;
  kept_dense: boolean;
  params_before: number;
  params_after: number;
  /** ‖W − W′‖_F / ‖W‖_F. */
  weight_error: number;
  /** ‖(W − W′)X‖_F / ‖WX‖_F on the calibration inputs (null without calibration data). */
  output_error: number | null;
  /** The plain SVD's output error at the same rank (activation-aware runs with compare_plain). */
  plain_output_error: number | null;
}

/** The checked rank rule of a config; throws naming the option. */
export function rankRule(cfg: LowRankConfig): RankRule {
  const given = (['rank', 'energy', 'ratio'] as const).filter((k) => cfg[k] !== null && cfg[k] !== undefined);
  if (given.length > 1) throw new Error(`options ${given.map((k) => `'${k}'`).join(' and ')} both choose the rank: give one of rank, energy, ratio`);
  if (cfg.rank !== null && !(Number.isInteger(cfg.rank) && cfg.rank >= 1)) throw new Error(`option 'rank' must be an integer >= 1, got ${cfg.rank}`);
  if (cfg.energy !== null && !(cfg.energy > 0 && cfg.energy <= 1)) throw new Error(`option 'energy' must be in (0, 1], got ${cfg.energy}`);
  if (cfg.ratio !== null && !(cfg.ratio > 0 && cfg.ratio < 1)) throw new Error(`option 'ratio' must be in (0, 1) (the fraction of each layer's weights kept), got ${cfg.ratio}`);
  if (!(cfg.damp >= 0)) throw new Error(`option 'damp' must be >= 0, got ${cfg.damp}`);
  return { rank: cfg.rank, energy: cfg.energy, ratio: cfg.ratio ?? (cfg.rank === null && cfg.energy === null ? 0.5 : null) };
}

/** The solver a layer gets. */
function solverFor(cfg: LowRankConfig, N: number, K: number): 'exact' | 'randomized' {
  return cfg.svd === 'auto' ? (Math.min(N, K) > EXACT_MAX ? 'randomized' : 'exact') : cfg.svd;
}

/** Checks that depend on the layers' sizes (the randomized SVD gives only the top singular values). */
function checkSolvers(cfg: LowRankConfig, layers: [string, LinearLike][]): void {
  if (!(Number.isInteger(cfg.power_iters) && cfg.power_iters >= 0 && cfg.power_iters <= 20)) throw new Error(`option 'power_iters' must be an integer in [0, 20], got ${cfg.power_iters}`);
  const big = layers.find(([, m]) => solverFor(cfg, m.outFeatures, m.inFeatures) === 'randomized');
  if (!big) return;
  const why = cfg.svd === 'auto' ? `svd 'auto' is randomized for ${big[0]} [${big[1].outFeatures}×${big[1].inFeatures}] (min side > ${EXACT_MAX})` : `svd 'randomized'`;
  if (cfg.energy !== null) throw new Error(`option 'energy' needs every singular value, but ${why} computes only the top ones: give rank or ratio, or set svd: exact (slow at this size)`);
  if (cfg.activation_aware) throw new Error(`option 'activation_aware' runs the exact SVD of W·L, but ${why}: set svd: exact (slow at this size)`);
}

function plan(model: Module, cfg: LowRankConfig): { rule: RankRule; layers: [string, LinearLike][] } {
  const rule = rankRule(cfg);
  const layers = targetLinears(model, cfg.targets, cfg.ignore);
  if (layers.length === 0) throw new Error(`option 'targets': no Linear layer is selected`);
  checkSolvers(cfg, layers);
  return { rule, layers };
}

/**
 * Factorize the chosen layers of `model` in place (what the method's apply does). `batches`: calibration inputs
 * (needed for activation_aware; without them no output error is measured).
 */
export function lowRankModel(model: Module, cfg: Partial<LowRankConfig>, batches: Record<string, Tensor>[] | null, log?: (l: string) => void): LowRankLayerReport[] {
  const c: LowRankConfig = { ...defaults, ...cfg };
  const { rule, layers } = plan(model, c);
  if (c.activation_aware && !batches) throw new Error(`option 'activation_aware' needs calibration data`);
  const covs = batches ? inputCovariances(model, layers, batches) : null;
  const out: LowRankLayerReport[] = [];
  for (const [name, m] of layers) {
    const N = m.outFeatures;
    const K = m.inFeatures;
    const cov = covs?.get(name) ?? null;
    const be = breakEvenRank(N, K);
    const bias = m.bias ? m.bias.numel : 0;
    if (solverFor(c, N, K) === 'randomized') {
      out.push(lowRankRandomized(model, name, m, rule, c, cov, log));
      continue;
    }
    const W = weight64(m);
    const f = factorize(W, N, K, rule, c.activation_aware && cov ? { c: cov.c, damp: c.damp } : null);
    const D = residual(W, f, N, K);
    const outErr = (D2: Float64Array) => (cov && cov.n > 0 ? Math.sqrt(quadForm(D2, N, K, cov.c) / Math.max(quadForm(W, N, K, cov.c), 1e-300)) : null);
    let plainOut: number | null = null;
    if (c.activation_aware && c.compare_plain && cov) plainOut = outErr(residual(W, factorize(W, N, K, { rank: f.rank }), N, K));
    const kept = f.rank > be;
    const rep: LowRankLayerReport = {
      name, out_features: N, in_features: K, rank: f.rank, break_even_rank: be, kept_dense: kept,
      params_before: N * K + bias, params_after: kept ? N * K + bias : f.rank * (N + K) + bias,
      weight_error: kept ? 0 : Math.sqrt(sq(D) / Math.max(sq(W), 1e-300)),
      output_error: kept ? (cov ? 0 : null) : outErr(D),
      plain_output_error: kept ? null : plainOut,
    };
    out.push(rep);
    const fmt = (x: number | null) => (x === null ? '–' : x.toExponential(3));
    if (kept) {
      log?.(`share.lowrank ${name} [${N}×${K}]: rank ${f.rank} ≥ break-even ${be + 1} (r(m+n) ≥ mn), kept dense`);
      continue;
    }
    const bt = m.bias ? noGrad(() => m.bias!.detach()) : null;
    const lr = noGrad(() => LowRankLinear.fromFactors(new Tensor(Float32Array.from(f.second), [N, f.rank], 'float32'), new Tensor(Float32Array.from(f.first), [f.rank, K], 'float32'), bt));
    lr.training = m.training;
    model.setSubmodule(name, lr);
    log?.(`share.lowrank ${name} [${N}×${K}]: rank ${f.rank} (break-even ${be}), params ${rep.params_before} → ${rep.params_after}, weight error ${fmt(rep.weight_error)}, output error ${fmt(rep.output_error)}${plainOut !== null ? ` (plain SVD ${fmt(plainOut)})` : ''}`);
  }
  return out;
}

/**
 * One layer by the randomized SVD (rsvd.ts) at the rank the rule fixes; a rank past break-even keeps the layer dense
 * without any SVD. The weight error comes from the projection identity; the output error (with calibration data)
 * from the residual.
 */
function lowRankRandomized(model: Module, name: string, m: LinearLike, rule: RankRule, c: LowRankConfig, cov: { c: Float64Array; n: number } | null, log?: (l: string) => void): LowRankLayerReport {
  const N = m.outFeatures;
  const K = m.inFeatures;
  const be = breakEvenRank(N, K);
  const bias = m.bias ? m.bias.numel : 0;
  const r = chooseRank([], N, K, rule);
  const rep: LowRankLayerReport = {
    name, out_features: N, in_features: K, rank: r, break_even_rank: be, kept_dense: r > be,
    params_before: N * K + bias, params_after: N * K + bias, weight_error: 0, output_error: cov ? 0 : null, plain_output_error: null,
  };
  if (rep.kept_dense) {
    log?.(`share.lowrank ${name} [${N}×${K}]: rank ${r} ≥ break-even ${be + 1} (r(m+n) ≥ mn), kept dense`);
    return rep;
  }
  const W32 = noGrad(() => m.weightOutIn().contiguous().toFloat32Array());
  const t = randomizedSvd(W32, N, K, r, { powerIters: c.power_iters });
  rep.params_after = r * (N + K) + bias;
  rep.weight_error = t.relError;
  if (cov && cov.n > 0) {
    const W = Float64Array.from(W32);
    rep.output_error = Math.sqrt(quadForm(residual(W, t, N, K), N, K, cov.c) / Math.max(quadForm(W, N, K, cov.c), 1e-300));
  }
  const bt = m.bias ? noGrad(() => m.bias!.detach()) : null;
  const lr = noGrad(() => LowRankLinear.fromFactors(new Tensor(Float32Array.from(t.second), [N, r], 'float32'), new Tensor(Float32Array.from(t.first), [r, K], 'float32'), bt));
  lr.training = m.training;
  model.setSubmodule(name, lr);
  log?.(`share.lowrank ${name} [${N}×${K}]: rank ${r} (break-even ${be}; randomized SVD, ${c.power_iters} power iterations), params ${rep.params_before} → ${rep.params_after}, weight error ${rep.weight_error.toExponential(3)}${rep.output_error !== null ? `, output error ${rep.output_error.toExponential(3)}` : ''}`);
  return rep;
}

/** Summary numbers of per-layer reports (the method's report row). */
export function lowRankSummary(layers: LowRankLayerReport[], activationAware: boolean): Record<string, number | string> {
  const fact = layers.filter((l) => !l.kept_dense);
  const before = layers.reduce((a, l) => a + l.params_before, 0);
  const after = layers.reduce((a, l) => a + l.params_after, 0);
  const mean = (xs: (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
  };
  const outs = mean(fact.map((l) => l.output_error));
  const plain = mean(fact.map((l) => l.plain_output_error));
  return {
    variant: activationAware ? 'activation-aware (SVD-LLM whitening)' : 'plain SVD',
    layers: layers.length,
    factorized: fact.length,
    kept_dense: layers.length - fact.length,
    ranks: layers.map((l) => (l.kept_dense ? `dense` : String(l.rank))).join('/'),
    break_even_ranks: layers.map((l) => String(l.break_even_rank)).join('/'),
    params_before: before,
    params_after: after,
    params_ratio: before ? after / before : 1,
    mean_weight_error: mean(fact.map((l) => l.weight_error)),
    ...(Number.isNaN(outs) ? {} : { mean_output_error: outs }),
    ...(Number.isNaN(plain) ? {} : { mean_plain_output_error: plain }),
  };
}

export const shareLowRank: Method<LowRankConfig> = {
  name: 'share.lowrank',
  kind: 'one-shot',
  description: 'low-rank factorization: truncated SVD of Linear layers into two (rank, energy or ratio; activation-aware SVD-LLM whitening)',
  defaults,
  types: { rank: 'integer', energy: 'number', ratio: 'number', svd: SOLVERS, power_iters: 'integer', targets: 'string[]', ignore: 'string[]' },
  globs: ['targets', 'ignore'],
  check: (model, cfg, ctx) => {
    named('share.lowrank', () => plan(model, cfg));
    if (cfg.activation_aware && !ctx.calibration) throw new Error(`share.lowrank: option 'activation_aware' needs calibration data: give the recipe a task (or --task)`);
  },
  apply: (model, cfg, ctx) => {
    const batches = ctx.calibration ? calibrationBatches('share.lowrank', ctx) : null;
    const layers = named('share.lowrank', () => lowRankModel(model, cfg, batches, ctx.log));
    return { report: () => lowRankSummary(layers, cfg.activation_aware) };
  },
  stream: {
    targets: (model, cfg) => {
      if (cfg.activation_aware) throw new Error(`share.lowrank: option 'activation_aware' needs calibration activations and cannot stream (use the plain SVD, or compress without --stream)`);
      named('share.lowrank', () => rankRule(cfg));
      const layers = targetLinears(model, cfg.targets, cfg.ignore);
      named('share.lowrank', () => checkSolvers(cfg, layers));
      return layers.map(([n]) => n);
    },
    merge: mergeLowRankSummaries,
  },
};

/** One summary from per-block summaries (counts and parameters add; mean errors weighted by factorized layers). */
export function mergeLowRankSummaries(reports: Record<string, number | string>[]): Record<string, number | string> {
  const sum = (k: string) => reports.reduce((a, r) => a + Number(r[k] ?? 0), 0);
  const weighted = (k: string) => {
    const rs = reports.filter((r) => typeof r[k] === 'number' && Number(r.factorized) > 0);
    const n = rs.reduce((a, r) => a + Number(r.factorized), 0);
    return n ? rs.reduce((a, r) => a + Number(r[k]) * Number(r.factorized), 0) / n : undefined;
  };
  const [before, after] = [sum('params_before'), sum('params_after')];
  const out: Record<string, number | string> = {
    variant: reports[0]?.variant ?? 'plain SVD',
    layers: sum('layers'),
    factorized: sum('factorized'),
    kept_dense: sum('kept_dense'),
    ranks: reports.map((r) => r.ranks).join('/'),
    break_even_ranks: reports.map((r) => r.break_even_ranks).join('/'),
    params_before: before,
    params_after: after,
    params_ratio: before ? after / before : 1,
  };
  for (const k of ['mean_weight_error', 'mean_output_error', 'mean_plain_output_error']) {
    const v = weighted(k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

registerMethod(shareLowRank);
