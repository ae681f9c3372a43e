/** Basic layers with torch names, argument order and default initialisation. Field names are checkpoint keys. */
import { Module, ModuleList } from './module.ts';
import { Tensor } from '../tensor/tensor.ts';
import { defaultGenerator, type Generator } from '../tensor/random.ts';
import { dropout, embedding, layerNorm, linear, rmsNorm } from '../ops/index.ts';
import { kaimingUniform_, normal_, uniform_ } from './init.ts';

/** y = x·Wᵀ + b, weight [out, in] (torch nn.Linear; init U(±1/√in) for weight and bias). */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean; generator?: Generator } = {}) {
    super();
    const g = opts.generator ?? defaultGenerator;
    this.weight = kaimingUniform_(Tensor.empty([outFeatures, inFeatures]), Math.sqrt(5), g).requiresGrad_();
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    this.bias = opts.bias === false ? null : uniform_(Tensor.empty([outFeatures]), -bound, bound, g).requiresGrad_();
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** Lookup table [num, dim] (init N(0, 1); the paddingIdx row is zero and gets no gradient). */
export class Embedding extends Module {
  weight: Tensor;
  readonly paddingIdx: number | null;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: { paddingIdx?: number | null; generator?: Generator } = {}) {
    super();
    this.weight = normal_(Tensor.empty([numEmbeddings, embeddingDim]), 0, 1, opts.generator).requiresGrad_();
    const p = opts.paddingIdx ?? null;
    if (p !== null && (p < -numEmbeddings || p >= numEmbeddings)) throw new Error(`Embedding: paddingIdx ${p} is out of range for ${numEmbeddings} embeddings`);
    this.paddingIdx = p === null ? null : p < 0 ? p + numEmbeddings : p;
    if (this.paddingIdx !== null) this.weight.data.fill(0, this.paddingIdx * embeddingDim, (this.paddingIdx + 1) * embeddingDim);
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
