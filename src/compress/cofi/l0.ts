/**
 * CoFiPruning's hard-concrete L0 masks (Xia, Zhong & Chen, "Structured Pruning Learns Compact and Accurate Models",
 * ACL 2022), written from princeton-nlp/CoFiPruning `models/l0_module.py` (class L0Module) at commit
 * da855a809c4a15e1c964a47a37998db2e1a226fd, with `trainer/trainer.py` of the same commit for where the clamp runs.
 * Parity: test/compress/cofi-l0.test.ts against the `cofi` method fixture.
 *
 * Mask types, each with its own log α (field names are upstream's parameter names, so its l0_module.pt keys load):
 *   head          `head_loga`      [L, H]  one gate per attention head
 *   head_layer    `headlayer_loga` [L]     the whole attention sub-block of a layer
 *   intermediate  `int_loga`       [L, I]  one gate per FFN neuron
 *   mlp           `intlayer_loga`  [L]     the whole FFN sub-block of a layer
 *   hidden        `hidden_loga`    [d]     one gate per hidden dimension, shared by every layer
 * Upstream's `pruning_type` "structured_heads+structured_mlp+hidden+layer" is head + intermediate + hidden +
 * (layer = mlp + head_layer); {@link typesFromPruningType} does that mapping.
 *
 * The distribution (Louizos et al. 2018), with β the temperature and the stretch interval (a, b) = (−0.1, 1.1):
 *   training sample   z = clamp₀¹( σ((log u − log(1−u) + log α) / β) · (b − a) + a ),  u ~ U(ε, 1−ε), ε = 1e-6
 *   P(z = 0)          cdf(0) = clamp_ε^{1−ε}( σ(β · logit((0 − a)/(b − a)) − log α) )
 *   score             1 − cdf(0), the probability that a gate is not exactly zero; it is what the expected
 *                     model size is made of, so that size is differentiable in log α.
 * (Upstream multiplies the logit by β inside the CDF, exactly as written here.)
 *
 * Expected (remaining) size, the differentiable ŝ of the Lagrangian. With P_h = params per head =
 * ⌊(4d² + 4d)/H⌋ and P_i = params per FFN neuron = ⌊(2dI + d + 4d)/I⌋ (integer divisions, as upstream):
 *   without hidden:  Σ_{l,h} s_head·s_head_layer · P_h  +  Σ_{l,i} s_int·s_mlp · P_i
 *   with hidden:     Σ_k s_hidden[k] · ( Σ_{l,h} s_head·s_head_layer · P_h / d  +  Σ_{l,i} s_int·s_mlp · 2 )
 * i.e. with hidden dims the count is "hidden dims kept × (head units kept · P_h/d + neurons kept · 2)": a head
 * costs P_h/d = 4·d/H (+ its share of the biases) per kept hidden dim, a neuron only its two weight entries
 * (up-projection row and down-projection column; FFN biases are dropped from this formula but not from P_i).
 * Upstream picks the hidden formula whenever 'hidden' is a pruned type. The prunable size both are compared with is
 * L·H·P_h (if heads are pruned) + L·(2dI + 5d) (if FFN neurons are pruned); hidden gates add nothing to it.
 * Embeddings and LayerNorms never count.
 *
 * Lagrangian (the loss added to the task loss): with expected sparsity s = 1 − ŝ / prunable and target t(step) =
 * (target − start)·min(1, step / warmup) + start (just `target` when warmup = 0),
 *   L = λ₁ (s − t) + λ₂ (s − t)².
 * The model and the log α minimise it; λ₁, λ₂ are trained by gradient ASCENT (upstream: a second AdamW with lr =
 * −reg_learning_rate). {@link L0Masks.lagrangian} only returns the loss; its gradient is correct for both.
 *
 * Clamp: after every optimizer step upstream calls `constrain_parameters()` (trainer.py, right after the l0 and
 * lagrangian optimizer steps), which clamps every log α to [log 1e-2, log 1e2] ≈ [−4.605, 4.605]
 * ({@link L0Masks.clampLogAlpha}). λ₁, λ₂ are not clamped. Note that the initial means below (10) lie outside that
 * range: the first clamp pulls those gates down to 4.605.
 *
 * Initialisation (upstream, not uniform across types): log α ~ N(mean, 0.01²) with mean = 10 for head, head_layer,
 * mlp and hidden, and mean = log(1 − p) − log p (p = droprate_init, 0 meaning 0.5) only for intermediate.
 *
 * Inference masks ({@link L0Masks.deterministic}), per layer for head, head_layer, intermediate and mlp and once for
 * hidden: n = round(size − Σ score) zeros (Python round, half to even; size = H, I, 1, 1 or d); the mask is the soft
 * value σ(log α / β · 0.8) (the "magical number" 0.8 after Wang et al. 2020), with its n smallest entries set to 0.
 * The kept entries are therefore NOT 1: they are soft gates slightly below 1 (σ(12) ≈ 0.999994 at log α = 10,
 * σ(5.53) ≈ 0.996 at the clamp bound) and scale their unit's output. For a one-gate group (head_layer, mlp) n is 0
 * or 1, and 1 zeroes the gate.
 *
 * {@link calculateModelSize} is upstream's `calculate_model_size`: it counts gates > 0 and reports
 * remaining = (kept heads · kept hidden dims) · (d/H) · 4 + (kept neurons · kept hidden dims) · 2, i.e. weight matrices
 * only, no biases, so an all-ones mask reports a small positive sparsity against the prunable size.
 */
import { Tensor } from '../../tensor/tensor.ts';
import { Module } from '../../nn/module.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { defaultGenerator, type Generator } from '../../tensor/random.ts';
import { roundHalfEven } from '../../tensor/dtype.ts';
import { where } from '../../ops/elementwise.ts';
import { fmtShape } from '../../tensor/shape.ts';

/** The stretch interval (a, b) of the hard-concrete distribution and the clamp ε of its CDF and noise. */
export const LIMIT_A = -0.1;
export const LIMIT_B = 1.1;
export const EPSILON = 1e-6;
/** The bounds upstream's constrain_parameters() clamps every log α to after each optimizer step. */
export const LOG_ALPHA_MIN = Math.log(1e-2);
export const LOG_ALPHA_MAX = Math.log(1e2);

export type L0Type = 'head' | 'head_layer' | 'intermediate' | 'mlp' | 'hidden';
/** Upstream's order for its default pruning_type (also the order of initialisation draws here). */
export const L0_TYPES: readonly L0Type[] = ['head', 'intermediate', 'hidden', 'mlp', 'head_layer'];

/** One mask (or one value) per type present. */
export type L0Zs = Partial<Record<L0Type, Tensor>>;

/** Model dimensions the masks are sized from (BERT: hidden_size, intermediate_size, heads, layers). */
export interface L0Dims {
  layers: number;
  heads: number;
  hidden: number;
  intermediate: number;
}

export interface L0Config extends L0Dims {
  /** Which gates to learn (any subset; see {@link typesFromPruningType} for upstream's strings). */
  types: readonly L0Type[];
  /** Initial drop rate p of the intermediate gates (log α mean = log(1 − p) − log p); 0 means 0.5. Default 0.5. */
  droprateInit?: number;
  /** β. Default 2/3. */
  temperature?: number;
  /** The factor inside the inference soft mask σ(log α / β · m). Default 0.8. */
  magicalNumber?: number;
  /** Steps over which the target sparsity ramps from start to target; 0 = no ramp. Default 0. */
  lagrangianWarmup?: number;
  startSparsity?: number;
  targetSparsity?: number;
}

/** Upstream's parameter counts (integer divisions as there). */
export interface L0ParamCounts {
  /** 4d² + 4d: Q, K, V, O weights and biases. */
  perHeadLayer: number;
  /** ⌊perHeadLayer / H⌋. */
  perHead: number;
  /** 2dI + d + 4d (upstream's formula: the two FFN weights, the output bias, and 4d). */
  perMlpLayer: number;
  /** ⌊perMlpLayer / I⌋. */
  perIntermediateDim: number;
  /** (perHeadLayer + perMlpLayer)·L. */
  fullModelSize: number;
}

export function l0ParamCounts(dims: L0Dims): L0ParamCounts {
  const { layers: L, heads: H, hidden: d, intermediate: I } = dims;
  const perHeadLayer = d * d * 4 + d * 4;
  const perMlpLayer = d * I * 2 + d + d * 4;
  return {
    perHeadLayer,
    perHead: Math.floor(perHeadLayer / H),
    perMlpLayer,
    perIntermediateDim: Math.floor(perMlpLayer / I),
    fullModelSize: (perHeadLayer + perMlpLayer) * L,
  };
}

/** Upstream's `pruning_type` string ("structured_heads+structured_mlp+hidden+layer") as mask types, in its order. */
export function typesFromPruningType(pruningType: string): L0Type[] {
  const parts = pruningType.split('+');
  const out: L0Type[] = [];
  for (const p of parts) {
    if (p === 'structured_heads') out.push('head');
    else if (p === 'structured_mlp') out.push('intermediate');
    else if (p === 'hidden') out.push('hidden');
    else if (p !== 'layer') throw new Error(`typesFromPruningType: unknown part '${p}' in '${pruningType}' (structured_heads, structured_mlp, hidden, layer)`);
  }
  if (parts.includes('layer')) out.push('mlp', 'head_layer');
  return out;
}

/** The parameter field of each type (upstream's names). */
const FIELD = {
  head: 'head_loga',
  head_layer: 'headlayer_loga',
  intermediate: 'int_loga',
  mlp: 'intlayer_loga',
  hidden: 'hidden_loga',
} as const satisfies Record<L0Type, keyof L0Masks>;

/** Python's `x` op fp32 tensor promotes the number to fp32 first: a 0-d fp32 constant reproduces that exactly. */
const f32 = (v: number) => Tensor.full([], v);

/** F.hardtanh(x, 0, 1): clamp whose gradient is zero at the bounds too (torch's hardtanh, unlike clamp, is strict). */
function hardtanh01(x: Tensor): Tensor {
  const inside = noGrad(() => x.gt(0).mul(x.lt(1)));
  return where(inside, x, x.clamp(0, 1).detach());
}

/** P(z = 0) = cdf_qz(0, log α), differentiable in log α. */
export function cdfQz0(logAlpha: Tensor, temperature: number): Tensor {
  const xn = (0 - LIMIT_A) / (LIMIT_B - LIMIT_A);
  const logits = Math.log(xn) - Math.log(1 - xn);
  return f32(logits * temperature).sub(logAlpha).sigmoid().clamp(EPSILON, 1 - EPSILON);
}

/** Score 1 − cdf_qz(0, log α) = P(z ≠ 0). */
export function l0Score(logAlpha: Tensor, temperature: number): Tensor {
  return f32(1).sub(cdfQz0(logAlpha, temperature));
}

/** Hard-concrete sample from uniform noise u (same shape as log α): hardtanh(quantile_concrete(u, log α), 0, 1). */
export function hardConcreteSample(logAlpha: Tensor, u: Tensor, temperature: number): Tensor {
  if (u.shape.join(',') !== logAlpha.shape.join(',')) throw new Error(`hardConcreteSample: noise shape ${fmtShape(u.shape)} != log alpha shape ${fmtShape(logAlpha.shape)}`);
  const noise = noGrad(() => u.to('float32').log().sub(f32(1).sub(u.to('float32')).log()));
  const y = noise.add(logAlpha).div(f32(temperature)).sigmoid();
  return hardtanh01(y.mul(f32(LIMIT_B - LIMIT_A)).add(f32(LIMIT_A)));
}

/**
 * Upstream's _deterministic_z for one group (a layer's row, or the hidden vector, or a 0-d layer gate): the soft mask
 * σ(log α / β · m) with its round(size − Σ score) smallest entries set to 0. Returns the mask (no gradient) and the
 * expected number of zeros before rounding.
 */
export function deterministicZ(logAlpha: Tensor, size: number, temperature: number, magicalNumber: number): { mask: Tensor; expectedNumZeros: number } {
  return noGrad(() => {
    const expectedNumNonzeros = l0Score(logAlpha, temperature).sum().item();
    const expectedNumZeros = size - expectedNumNonzeros;
    const numZeros = roundHalfEven(expectedNumZeros);
    const soft = logAlpha.div(f32(temperature)).mul(f32(magicalNumber)).sigmoid().contiguous();
    if (numZeros > 0) {
      if (soft.ndim === 0) soft.data[0] = 0;
      else {
        const v = soft.data as Float32Array;
        // topk(largest=False): the smallest soft values (ties: lower index first)
        const order = Array.from(v.keys()).sort((i, j) => v[i]! - v[j]! || i - j);
        for (const i of order.slice(0, numZeros)) v[i] = 0;
      }
    }
    return { mask: soft, expectedNumZeros };
  });
}

export interface LagrangianResult {
  /** λ₁(s − t) + λ₂(s − t)², a 0-d tensor with gradient wrt every log α and both λ. */
  loss: Tensor;
  /** s = 1 − expected size / prunable size (0-d, with gradient). */
  expectedSparsity: Tensor;
  /** t at this step. */
  targetSparsity: number;
}

export interface DeterministicResult {
  /** Inference masks in natural shapes: head [L,H], head_layer [L], intermediate [L,I], mlp [L], hidden [d]. */
  masks: L0Zs;
  /** size − Σ score per group before rounding: [L] per layered type, [1] for hidden. */
  expectedNumZeros: L0Zs;
}

/**
 * The L0 module: log α per mask type, λ₁ and λ₂, and everything computed from them. A Module, so parameters()
 * yields them (log α fields in {@link L0_TYPES} order, then the λ); split off the λ (names start with `lambda`) into
 * their own gradient-ascent optimizer group, as upstream does.
 */
export class L0Masks extends Module {
  head_loga: Tensor | null = null;
  int_loga: Tensor | null = null;
  hidden_loga: Tensor | null = null;
  intlayer_loga: Tensor | null = null;
  headlayer_loga: Tensor | null = null;
  lambda_1: Tensor;
  lambda_2: Tensor;

  readonly dims: L0Dims;
  readonly types: readonly L0Type[];
  readonly droprateInit: number;
  readonly temperature: number;
  readonly magicalNumber: number;
  lagrangianWarmup: number;
  readonly startSparsity: number;
  readonly targetSparsity: number;
  readonly counts: L0ParamCounts;
  /** Heads (L·H·P_h) if heads or head layers are gated, plus FFNs (L·perMlpLayer) if neurons or FFN layers are. */
  readonly prunableModelSize: number;
  readonly fullModelSize: number;

  constructor(cfg: L0Config, opts: { generator?: Generator } = {}) {
    super();
    const { layers: L, heads: H, hidden: d, intermediate: I } = cfg;
    for (const [k, v] of Object.entries({ layers: L, heads: H, hidden: d, intermediate: I }))
      if (!Number.isInteger(v) || v <= 0) throw new Error(`L0Masks: ${k} must be a positive integer, got ${v}`);
    if (d % H !== 0) throw new Error(`L0Masks: hidden ${d} is not divisible by heads ${H}`);
    for (const t of cfg.types) if (!L0_TYPES.includes(t)) throw new Error(`L0Masks: unknown mask type '${t}' (${L0_TYPES.join(', ')})`);
    if (cfg.types.length === 0) throw new Error('L0Masks: no mask types given');
    this.dims = { layers: L, heads: H, hidden: d, intermediate: I };
    this.types = L0_TYPES.filter((t) => cfg.types.includes(t));
    const p = cfg.droprateInit ?? 0.5;
    this.droprateInit = p !== 0 ? p : 0.5;
    this.temperature = cfg.temperature ?? 2 / 3;
    this.magicalNumber = cfg.magicalNumber ?? 0.8;
    this.lagrangianWarmup = cfg.lagrangianWarmup ?? 0;
    this.startSparsity = cfg.startSparsity ?? 0;
    this.targetSparsity = cfg.targetSparsity ?? 0;
    this.counts = l0ParamCounts(this.dims);
    this.fullModelSize = this.counts.fullModelSize;
    const has = (t: L0Type) => this.types.includes(t);
    this.prunableModelSize =
      (has('head') || has('head_layer') ? this.counts.perHead * L * H : 0) + (has('intermediate') || has('mlp') ? this.counts.perMlpLayer * L : 0);
    if (this.prunableModelSize === 0) throw new Error(`L0Masks: types [${this.types}] gate nothing prunable (add head, head_layer, intermediate or mlp)`);

    const g = opts.generator ?? defaultGenerator;
    const dropMean = Math.log(1 - this.droprateInit) - Math.log(this.droprateInit);
    const shapes: Record<L0Type, number[]> = { head: [L, H], head_layer: [L], intermediate: [L, I], mlp: [L], hidden: [d] };
    for (const t of this.types) {
      const mean = t === 'intermediate' ? dropMean : 10;
      const w = Tensor.empty(shapes[t]);
      for (let i = 0; i < w.data.length; i++) w.data[i] = mean + 1e-2 * g.normal();
      this[FIELD[t]] = w.requiresGrad_();
    }
    this.lambda_1 = Tensor.zeros([]).requiresGrad_();
    this.lambda_2 = Tensor.zeros([]).requiresGrad_();
  }

  has(type: L0Type): boolean {
    return this.types.includes(type);
  }

  /** The log α parameter of a type (throws when the type is not gated). */
  logAlpha(type: L0Type): Tensor {
    const t = this[FIELD[type]];
    if (!t) throw new Error(`L0Masks: no '${type}' gates (types: ${this.types.join(', ')})`);
    return t;
  }

  /** Gates per group for deterministic(): H, I, 1, 1, d. */
  groupSize(type: L0Type): number {
    const { heads, intermediate, hidden } = this.dims;
    return { head: heads, intermediate, hidden, mlp: 1, head_layer: 1 }[type];
  }

  /** 1 − cdf_qz(0) of one type, with gradient. */
  score(type: L0Type): Tensor {
    return l0Score(this.logAlpha(type), this.temperature);
  }
  /** Scores of every type present. */
  scores(): L0Zs {
    return Object.fromEntries(this.types.map((t) => [t, this.score(t)]));
  }

  /**
   * Training masks (upstream forward(training=True)): one hard-concrete sample per gate, with gradient wrt log α.
   * `eps` gives the uniform noise per type (shape of its log α); types without it draw u ~ U(ε, 1−ε) from the generator.
   */
  sample(eps: L0Zs = {}, generator: Generator = defaultGenerator): L0Zs {
    const out: L0Zs = {};
    for (const t of this.types) {
      const la = this.logAlpha(t);
      let u = eps[t];
      if (!u) {
        u = Tensor.empty(la.shape);
        for (let i = 0; i < u.data.length; i++) u.data[i] = EPSILON + (1 - 2 * EPSILON) * generator.random();
      }
      out[t] = hardConcreteSample(la, u, this.temperature);
    }
    return out;
  }

  /** Inference masks (upstream forward(training=False)); see the header. No gradient. */
  deterministic(): DeterministicResult {
    const masks: L0Zs = {};
    const expectedNumZeros: L0Zs = {};
    for (const t of this.types) {
      const la = this.logAlpha(t).detach();
      const size = this.groupSize(t);
      if (t === 'hidden') {
        const r = deterministicZ(la, size, this.temperature, this.magicalNumber);
        masks[t] = r.mask;
        expectedNumZeros[t] = Tensor.from([r.expectedNumZeros], { dtype: 'float64' });
      } else {
        const rows = Array.from({ length: this.dims.layers }, (_, l) => deterministicZ(la.select(0, l), size, this.temperature, this.magicalNumber));
        masks[t] = Tensor.from(Float32Array.from(rows.flatMap((r) => Array.from(r.mask.data as Float32Array))), { shape: la.shape });
        expectedNumZeros[t] = Tensor.from(rows.map((r) => r.expectedNumZeros), { dtype: 'float64' });
      }
    }
    return { masks, expectedNumZeros };
  }

  /**
   * Expected remaining size ŝ (0-d, differentiable): the hidden-dim formula when `withHidden` (default: when
   * 'hidden' is gated, as upstream), else the plain one; see the header. Missing head_layer / mlp gates count as
   * kept (score 1); missing head / intermediate gates drop their term (upstream requires both).
   */
  expectedSize(opts: { withHidden?: boolean } = {}): Tensor {
    const withHidden = opts.withHidden ?? this.has('hidden');
    const { layers: L, hidden: d } = this.dims;
    // per-unit keep probability of heads [L,H] and neurons [L,I], layer gates folded in
    const unit = (fine: L0Type, layer: L0Type): Tensor | null => {
      if (!this.has(fine) && !this.has(layer)) return null;
      const s = this.has(fine) ? this.score(fine) : null;
      const ls = this.has(layer) ? this.score(layer).reshape([L, 1]) : null;
      return s && ls ? s.mul(ls) : (s ?? ls)!;
    };
    const heads = unit('head', 'head_layer');
    const neurons = unit('intermediate', 'mlp');
    let size: Tensor | null = null;
    const acc = (x: Tensor) => (size = size ? size.add(x) : x);
    if (withHidden) {
      const hs = this.score('hidden').reshape([d, 1]);
      // Σ outer(hidden, units) · per-unit cost: the products are formed elementwise as torch.outer does
      if (heads) acc(hs.mul(heads.reshape([1, -1])).sum().mul(f32(this.counts.perHead)).div(f32(d)));
      if (neurons) acc(hs.mul(neurons.reshape([1, -1])).sum().mul(f32(2)));
    } else {
      if (heads) acc(heads.sum().mul(f32(this.counts.perHead)));
      if (neurons) acc(neurons.sum().mul(f32(this.counts.perIntermediateDim)));
    }
    return size!;
  }

  /** t(step) = (target − start)·min(1, step / warmup) + start, or target when warmup = 0. */
  targetSparsityAt(step: number): number {
    if (this.lagrangianWarmup > 0) return (this.targetSparsity - this.startSparsity) * Math.min(1, step / this.lagrangianWarmup) + this.startSparsity;
    return this.targetSparsity;
  }

  /** Upstream lagrangian_regularization(step): the loss, expected sparsity and target sparsity. */
  lagrangian(step: number): LagrangianResult {
    const expectedSparsity = f32(1).sub(this.expectedSize().div(f32(this.prunableModelSize)));
    const targetSparsity = this.targetSparsityAt(step);
    const gap = expectedSparsity.sub(f32(targetSparsity));
    const loss = this.lambda_1.mul(gap).add(this.lambda_2.mul(gap.pow(2)));
    return { loss, expectedSparsity, targetSparsity };
  }

  /** Clamp every log α in place to [log 1e-2, log 1e2] (upstream constrain_parameters; call after each optimizer step). */
  clampLogAlpha(): void {
    noGrad(() => {
      for (const t of this.types) {
        const la = this.logAlpha(t);
        la.copy_(la.detach().clamp(LOG_ALPHA_MIN, LOG_ALPHA_MAX));
      }
    });
  }

  /** calculate_model_size of masks (default: this module's deterministic masks). */
  modelSize(zs: L0Zs = this.deterministic().masks): ModelSizeInfo {
    return calculateModelSize(zs, { ...this.dims, prunableModelSize: this.prunableModelSize });
  }
}

/** Upstream calculate_model_size's result (its keys in camelCase). */
export interface ModelSizeInfo {
  /** Per layer, 1 if the attention sub-block gate is > 0. */
  headLayers: number[];
  /** Per layer, 1 if the FFN sub-block gate is > 0. */
  mlpLayers: number[];
  hiddenDims: number;
  /** Kept neurons per layer (layer gates NOT applied). */
  intermediateDims: number[];
  /** Kept heads per layer (layer gates NOT applied). */
  headNums: number[];
  prunedParams: number;
  remainingParams: number;
  prunedModelSparsity: number;
}

/**
 * Upstream calculate_model_size: gates > 0 count as kept; remaining = kept (head, hidden) pairs · (d/H) · 4 + kept
 * (neuron, hidden) pairs · 2, with head/neuron gates multiplied by their layer gate; pruned = prunable − remaining.
 * Masks may have any shape with the right number of elements (e.g. upstream's broadcast shapes). A missing type
 * counts as all kept (upstream's get_z_from_zs means that too, but actually reuses the previous type's mask there).
 */
export function calculateModelSize(zs: L0Zs, dims: L0Dims & { prunableModelSize: number }): ModelSizeInfo {
  const { layers: L, heads: H, hidden: d, intermediate: I, prunableModelSize } = dims;
  const kept = (t: L0Type, n: number): number[] => {
    const z = zs[t];
    if (!z) return new Array<number>(n).fill(1);
    if (z.numel !== n) throw new Error(`calculateModelSize: '${t}' mask has ${z.numel} elements, expected ${n}`);
    return Array.from(z.toFloat32Array(), (v) => (v > 0 ? 1 : 0));
  };
  const hidden = kept('hidden', d);
  const inter = kept('intermediate', L * I);
  const mlp = kept('mlp', L);
  const head = kept('head', L * H);
  const headLayer = kept('head_layer', L);
  const hiddenDims = hidden.reduce((a, b) => a + b, 0);
  const rowSums = (v: number[], w: number) => Array.from({ length: L }, (_, l) => v.slice(l * w, (l + 1) * w).reduce((a, b) => a + b, 0));
  let headUnits = 0;
  for (let i = 0; i < L * H; i++) headUnits += head[i]! * headLayer[Math.floor(i / H)]!;
  let neuronUnits = 0;
  for (let i = 0; i < L * I; i++) neuronUnits += inter[i]! * mlp[Math.floor(i / I)]!;
  const remainingParams = headUnits * hiddenDims * (d / H) * 4 + neuronUnits * hiddenDims * 2;
  const prunedParams = prunableModelSize - remainingParams;
  return {
    headLayers: headLayer,
    mlpLayers: mlp,
    hiddenDims,
    intermediateDims: rowSums(inter, I),
    headNums: rowSums(head, H),
    prunedParams,
    remainingParams,
    prunedModelSparsity: prunedParams / prunableModelSize,
  };
}
