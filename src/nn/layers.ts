/**
 * Basic layers with torch names, argument order and default initialisation. Field names are checkpoint keys.
 *
 * Also the "swap toolkit" compression methods build on: {@link LinearLike} (one [out, in] view over Linear and
 * GPT-2's Conv1D), `fromWeights` constructors, and slicing ({@link sliceLinear}, {@link sliceLayerNorm},
 * {@link sliceEmbedding}) for structured pruning.
 */
import { Module, ModuleList } from './module.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import { defaultGenerator, type Generator } from '../tensor/random.ts';
import { dropout, embedding, layerNorm, linear, rmsNorm } from '../ops/index.ts';
import { kaimingUniform_, normal_, uniform_ } from './init.ts';

// ---------------------------------------------------------------- construction from given tensors

/**
 * Parameters handed to the next layer constructor by fromWeights / the slicers, so that building a layer from
 * existing values neither draws from the random generator nor allocates a throw-away initialisation.
 */
let pending: { weight: Tensor; bias: Tensor | null } | null = null;
function buildWith<T>(params: { weight: Tensor; bias: Tensor | null }, make: () => T): T {
  pending = params;
  try {
    return make();
  } finally {
    pending = null;
  }
}
function takePending(): { weight: Tensor; bias: Tensor | null } | null {
  const p = pending;
  pending = null;
  return p;
}

/** A new contiguous leaf holding a copy of t (optionally with the entries `idx` along `dim`), never a view. */
function copyPicked(op: string, t: Tensor, requiresGrad: boolean, sel: [dim: number, idx: readonly number[] | undefined][] = []): Tensor {
  return noGrad(() => {
    let out = t;
    for (const [dim, idx] of sel) {
      if (idx === undefined) continue;
      const size = t.shape[dim]!;
      for (const i of idx)
        if (!Number.isInteger(i) || i < 0 || i >= size) throw new Error(`${op}: index ${i} is out of range for dimension ${dim} of size ${size}`);
      out = out.indexSelect(dim, Tensor.from(Int32Array.from(idx)));
    }
    if (out === t) out = t.clone();
    return out.detach().requiresGrad_(requiresGrad);
  });
}

function check2d(op: string, w: Tensor): [number, number] {
  if (!(w instanceof Tensor) || w.ndim !== 2) throw new Error(`${op}: weight must be a 2-D tensor [out, in], got ${w instanceof Tensor ? `[${w.shape}]` : typeof w}`);
  return w.shape as [number, number];
}
function checkBias(op: string, b: Tensor | null | undefined, out: number): void {
  if (b != null && (!(b instanceof Tensor) || b.ndim !== 1 || b.shape[0] !== out)) throw new Error(`${op}: bias must be a 1-D tensor [${out}], got ${b instanceof Tensor ? `[${b.shape}]` : typeof b}`);
}

// ---------------------------------------------------------------- Linear and Conv1D

/**
 * A linear map seen as y = x·Wᵀ + b with W [out, in], whatever the module stores: {@link Linear} (weight [out, in])
 * and GPT-2's {@link Conv1D} (weight [in, out]) both implement it, so pruning, quantization and low-rank code
 * handle them without special cases. Obtain one with {@link asLinearLike}.
 */
export interface LinearLike extends Module {
  /** The stored parameter in the module's own layout (Linear [out, in], Conv1D [in, out]); checkpoint key `weight`. */
  weight: Tensor;
  bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly hasBias: boolean;
  /**
   * The weight as [out, in]. A view, never a copy: Linear returns its weight tensor itself, Conv1D a transposed
   * (non-contiguous) view of its storage. Writes through `copy_` reach the parameter; call `.contiguous()` for a
   * row-major buffer.
   */
  weightOutIn(): Tensor;
  /** Copy an [out, in] tensor into the weight, in place (storage identity, and so optimizers and ties, kept). */
  setWeightOutIn(w: Tensor): void;
  forward(x: Tensor): Tensor;
}

function setOutIn(m: LinearLike, w: Tensor): void {
  const [o, i] = check2d(`${m.constructor.name}.setWeightOutIn`, w);
  if (o !== m.outFeatures || i !== m.inFeatures) throw new Error(`${m.constructor.name}.setWeightOutIn: expected [${m.outFeatures}, ${m.inFeatures}] ([out, in]), got [${w.shape}]`);
  noGrad(() => m.weightOutIn().copy_(w));
}

/** y = x·Wᵀ + b, weight [out, in] (torch nn.Linear; init U(±1/√in) for weight and bias). */
export class Linear extends Module implements LinearLike {
  weight: Tensor;
  bias: Tensor | null;
  constructor(inFeatures: number, outFeatures: number, opts: { bias?: boolean; generator?: Generator } = {}) {
    super();
    const given = takePending();
    if (given) {
      this.weight = given.weight;
      this.bias = given.bias;
      return;
    }
    const g = opts.generator ?? defaultGenerator;
    this.weight = kaimingUniform_(Tensor.empty([outFeatures, inFeatures]), Math.sqrt(5), g).requiresGrad_();
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    this.bias = opts.bias === false ? null : uniform_(Tensor.empty([outFeatures]), -bound, bound, g).requiresGrad_();
  }
  /**
   * A Linear holding copies of `weight` [out, in] and `bias` [out] (none when omitted or null) as new trainable
   * leaves (requiresGrad true, dtype kept). Draws nothing from the random generator.
   */
  static fromWeights(weight: Tensor, bias: Tensor | null = null): Linear {
    const [o, i] = check2d('Linear.fromWeights', weight);
    checkBias('Linear.fromWeights', bias, o);
    return buildWith({ weight: copyPicked('Linear.fromWeights', weight, true), bias: bias ? copyPicked('Linear.fromWeights', bias, true) : null }, () => new Linear(i, o));
  }
  /** Input width (from the weight's shape, so it follows a replaced weight). */
  get inFeatures(): number {
    return this.weight.shape[1]!;
  }
  get outFeatures(): number {
    return this.weight.shape[0]!;
  }
  get hasBias(): boolean {
    return this.bias !== null;
  }
  /** The weight tensor itself (already [out, in]). */
  weightOutIn(): Tensor {
    return this.weight;
  }
  setWeightOutIn(w: Tensor): void {
    setOutIn(this, w);
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/**
 * HF Conv1D (GPT-2's projections): weight [in, out], y = x·W + b; init N(0, std²) for the weight, zero bias.
 * Checkpoint keys `weight` ([in, out]) and `bias`, as Hugging Face. As a {@link LinearLike}, its weightOutIn() is
 * the transposed view.
 */
export class Conv1D extends Module implements LinearLike {
  weight: Tensor;
  bias: Tensor | null;
  constructor(inFeatures: number, outFeatures: number, std = 0.02, opts: { bias?: boolean; generator?: Generator } = {}) {
    super();
    const given = takePending();
    if (given) {
      this.weight = given.weight;
      this.bias = given.bias;
      return;
    }
    this.weight = normal_(Tensor.empty([inFeatures, outFeatures]), 0, std, opts.generator).requiresGrad_();
    this.bias = opts.bias === false ? null : Tensor.zeros([outFeatures], { requiresGrad: true });
  }
  /**
   * A Conv1D holding copies of the given weight and bias as new trainable leaves. The weight is [out, in] by
   * default, as {@link Linear.fromWeights} and weightOutIn() (it is stored transposed, as [in, out]); pass
   * `{ layout: 'inOut' }` for a tensor already in Conv1D's own [in, out] layout (a Hugging Face checkpoint's).
   */
  static fromWeights(weight: Tensor, bias: Tensor | null = null, opts: { layout?: 'outIn' | 'inOut' } = {}): Conv1D {
    const [a, b] = check2d('Conv1D.fromWeights', weight);
    const inOut = opts.layout === 'inOut';
    if (opts.layout !== undefined && opts.layout !== 'outIn' && !inOut) throw new Error(`Conv1D.fromWeights: layout must be 'outIn' or 'inOut', got '${opts.layout as string}'`);
    const [o, i] = inOut ? [b, a] : [a, b];
    checkBias('Conv1D.fromWeights', bias, o);
    const w = inOut ? copyPicked('Conv1D.fromWeights', weight, true) : noGrad(() => weight.t().contiguous().detach().requiresGrad_(true));
    // t().contiguous() of a [1, n] or [n, 1] weight can be the same storage: make sure it is a copy
    const stored = w.data === weight.data ? copyPicked('Conv1D.fromWeights', w, true) : w;
    return buildWith({ weight: stored, bias: bias ? copyPicked('Conv1D.fromWeights', bias, true) : null }, () => new Conv1D(i, o));
  }
  get inFeatures(): number {
    return this.weight.shape[0]!;
  }
  get outFeatures(): number {
    return this.weight.shape[1]!;
  }
  get hasBias(): boolean {
    return this.bias !== null;
  }
  /** A transposed view [out, in] of the [in, out] weight (shares its storage; not contiguous). */
  weightOutIn(): Tensor {
    return this.weight.t();
  }
  setWeightOutIn(w: Tensor): void {
    setOutIn(this, w);
  }
  forward(x: Tensor): Tensor {
    const x2 = x.reshape([-1, x.shape[x.ndim - 1]!]);
    const y = x2.matmul(this.weight);
    return (this.bias ? y.add(this.bias) : y).reshape([...x.shape.slice(0, -1), this.weight.shape[1]!]);
  }
}

/** The module as a {@link LinearLike} (a Linear or a Conv1D, returned as is), or null. */
export function asLinearLike(m: Module): LinearLike | null {
  return m instanceof Linear || m instanceof Conv1D ? m : null;
}
export function isLinearLike(m: unknown): m is LinearLike {
  return m instanceof Linear || m instanceof Conv1D;
}

/**
 * A new module of the same kind keeping output features `outIdx` (rows of the [out, in] weight, and the bias) and
 * input features `inIdx` (its columns); an omitted list keeps them all. Indices may come in any order (the
 * outputs follow it). The new parameters are copies, not views of the old storage, and keep each old parameter's
 * requiresGrad; the training flag is kept too. The basis of structured pruning: y' = y[..., outIdx] when only
 * outputs are dropped; x ↦ layer(x with the dropped inputs zeroed) when inputs are dropped.
 */
export function sliceLinear<M extends Linear | Conv1D>(m: M, sel: { outIdx?: readonly number[]; inIdx?: readonly number[] }): M {
  const { outIdx, inIdx } = sel;
  const op = `sliceLinear(${m.constructor.name})`;
  let made: Linear | Conv1D;
  const bias = m.bias ? copyPicked(op, m.bias, m.bias.requiresGrad, [[0, outIdx]]) : null;
  if (m instanceof Linear) {
    const weight = copyPicked(op, m.weight, m.weight.requiresGrad, [[0, outIdx], [1, inIdx]]);
    made = buildWith({ weight, bias }, () => new Linear(weight.shape[1]!, weight.shape[0]!));
  } else if (m instanceof Conv1D) {
    const weight = copyPicked(op, m.weight, m.weight.requiresGrad, [[0, inIdx], [1, outIdx]]);
    made = buildWith({ weight, bias }, () => new Conv1D(weight.shape[0]!, weight.shape[1]!));
  } else throw new Error(`sliceLinear: expected a Linear or Conv1D, got ${(m as Module)?.constructor?.name}`);
  made.training = m.training;
  return made as M;
}

/** Lookup table [num, dim] (init N(0, 1); the paddingIdx row is zero and gets no gradient). */
export class Embedding extends Module {
  weight: Tensor;
  readonly paddingIdx: number | null;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: { paddingIdx?: number | null; generator?: Generator } = {}) {
    super();
    const given = takePending();
    this.weight = given ? given.weight : normal_(Tensor.empty([numEmbeddings, embeddingDim]), 0, 1, opts.generator).requiresGrad_();
    const p = opts.paddingIdx ?? null;
    if (p !== null && (p < -numEmbeddings || p >= numEmbeddings)) throw new Error(`Embedding: paddingIdx ${p} is out of range for ${numEmbeddings} embeddings`);
    this.paddingIdx = p === null ? null : p < 0 ? p + numEmbeddings : p;
    if (this.paddingIdx !== null && !given) this.weight.data.fill(0, this.paddingIdx * embeddingDim, (this.paddingIdx + 1) * embeddingDim);
  }
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight, this.paddingIdx);
  }
}

/** LayerNorm over the trailing `normalizedShape` dims (weight 1, bias 0). */
export class LayerNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  readonly normalizedShape: number[];
  readonly eps: number;
  constructor(normalizedShape: number | readonly number[], opts: { eps?: number; elementwiseAffine?: boolean; bias?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? Tensor.ones(this.normalizedShape, { requiresGrad: true }) : null;
    this.bias = affine && opts.bias !== false ? Tensor.zeros(this.normalizedShape, { requiresGrad: true }) : null;
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/** RMSNorm over the last dim (HF LlamaRMSNorm: weight 1, eps 1e-6). */
export class RMSNorm extends Module {
  weight: Tensor;
  readonly eps: number;
  constructor(dim: number, opts: { eps?: number } = {}) {
    super();
    this.eps = opts.eps ?? 1e-6;
    this.weight = Tensor.ones([dim], { requiresGrad: true });
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** Inverted dropout while training; identity in eval. */
export class Dropout extends Module {
  constructor(readonly p = 0.5, readonly generator?: Generator) {
    super();
    if (!(p >= 0 && p <= 1)) throw new Error(`Dropout: probability must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator);
  }
}

/**
 * An Embedding with the same rows (and paddingIdx) keeping hidden dims `dimIdx` (columns of the [num, dim]
 * weight), as a new copy that keeps requiresGrad. For pruning the hidden size.
 */
export function sliceEmbedding(emb: Embedding, dimIdx: readonly number[]): Embedding {
  if (!(emb instanceof Embedding)) throw new Error(`sliceEmbedding: expected an Embedding, got ${(emb as Module)?.constructor?.name}`);
  const weight = copyPicked('sliceEmbedding', emb.weight, emb.weight.requiresGrad, [[1, dimIdx]]);
  const made = buildWith({ weight, bias: null }, () => new Embedding(emb.numEmbeddings, dimIdx.length, { paddingIdx: emb.paddingIdx }));
  made.training = emb.training;
  return made;
}

/**
 * A LayerNorm (or RMSNorm) over the features `idx` of a 1-D normalized shape: same eps and affine parameters,
 * sliced copies of weight and bias (requiresGrad kept). Note that normalizing fewer features changes the
 * statistics, so outputs are not a slice of the old outputs unless the dropped features were zero.
 */
export function sliceLayerNorm<N extends LayerNorm | RMSNorm>(ln: N, idx: readonly number[]): N {
  let made: LayerNorm | RMSNorm;
  if (ln instanceof LayerNorm) {
    if (ln.normalizedShape.length !== 1) throw new Error(`sliceLayerNorm: only a 1-D normalized shape can be sliced, got [${ln.normalizedShape}]`);
    const l = new LayerNorm([idx.length], { eps: ln.eps, elementwiseAffine: ln.weight !== null || ln.bias !== null, bias: ln.bias !== null });
    l.weight = ln.weight ? copyPicked('sliceLayerNorm', ln.weight, ln.weight.requiresGrad, [[0, idx]]) : null;
    l.bias = ln.bias ? copyPicked('sliceLayerNorm', ln.bias, ln.bias.requiresGrad, [[0, idx]]) : null;
    made = l;
  } else if (ln instanceof RMSNorm) {
    const r = new RMSNorm(idx.length, { eps: ln.eps });
    r.weight = copyPicked('sliceLayerNorm', ln.weight, ln.weight.requiresGrad, [[0, idx]]);
    made = r;
  } else throw new Error(`sliceLayerNorm: expected a LayerNorm or RMSNorm, got ${(ln as Module)?.constructor?.name}`);
  made.training = ln.training;
  return made as N;
}

/** Modules applied in order (torch nn.Sequential: keys `0.weight`, `1.bias`, …). Each must have forward(x). */
export class Sequential extends ModuleList {
  constructor(...layers: Module[]) {
    super(layers);
  }
  forward(x: Tensor): Tensor {
    for (const l of this) {
      const f = (l as unknown as { forward?: (x: Tensor) => Tensor }).forward;
      if (typeof f !== 'function') throw new Error(`Sequential: ${l.constructor.name} has no forward(x)`);
      x = f.call(l, x);
    }
    return x;
  }
}
