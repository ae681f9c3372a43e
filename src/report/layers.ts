/**
 * Per-layer numbers that `shrink compress` adds to report.json (`layers`), for `shrink report`'s per-layer plots:
 *
 * - `sparsity`: for recipes with a pruning step, the fraction of each weight layer's original weights that is gone
 *   — 1 − (nonzero weights after) / (weights before), by module name. Unstructured pruning lowers the nonzeros of
 *   a layer, structured pruning (heads, neurons) its shape; a layer removed entirely counts as 1.
 * - `error`: for models with quantized layers, each quantized layer's relative output MSE ‖y_q − y‖² / ‖y‖² against
 *   the same-named layer of the original model on a few calibration batches (as `shrink quantize --report`; errors
 *   compound, and include whatever the other steps of the recipe did). Layers whose output shape changed are left out.
 */
import type { Module } from '../nn/module.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { asLinearLike } from '../nn/layers.ts';
import { noGrad } from '../tensor/autograd.ts';
import { callForward, captureActivations } from '../nn/hooks.ts';
import { SparseEmbedding, SparseLinear } from '../compress/prune/sparse.ts';
import { QuantLinear, dequantizeRows } from '../compress/quant/modules.ts';

export interface LayerStats {
  /** Fraction of the original weights removed, per weight layer (pruning recipes). */
  sparsity?: Record<string, number>;
  /** Relative output MSE against the original model, per quantized layer. */
  error?: Record<string, number>;
}

export interface LayerWeights {
  /** Weights of the layer's dense [out, in] shape. */
  weights: number;
  /** Of those, the ones stored as nonzero (quantized layers: nonzero once dequantized). */
  nonzero: number;
}

/** Weight and nonzero counts of every weight layer (Linear, GPT-2 Conv1D, sparse and quantized linears), by name. */
export function layerWeights(model: Module): Record<string, LayerWeights> {
  const out: Record<string, LayerWeights> = {};
  for (const [name, m] of model.namedModules()) {
    if (name === '') continue;
    if (m instanceof SparseLinear) out[name] = { weights: m.outFeatures * m.inFeatures, nonzero: m.nnz };
    else if (m instanceof SparseEmbedding) out[name] = { weights: m.numEmbeddings * m.embeddingDim, nonzero: m.nnz };
    else if (m instanceof QuantLinear) {
      // zeros a pruning step left stay exact zeros when quantized symmetrically: count the dequantized weight's
      const [N, K] = m.qweight.shape;
      const w = new Float32Array(N * K);
      dequantizeRows(m.qweight, 0, N, w);
      let nz = 0;
      for (let n = 0; n < N; n++) for (let k = 0; k < m.inFeatures; k++) if (w[n * K + k] !== 0) nz++;
      out[name] = { weights: N * m.inFeatures, nonzero: nz };
    }
    else {
      const l = asLinearLike(m);
      if (!l) continue;
      const w = l.weight.toFloat32Array();
      let nz = 0;
      for (let i = 0; i < w.length; i++) if (w[i] !== 0) nz++;
      out[name] = { weights: w.length, nonzero: nz };
    }
  }
  return out;
}

/** Per-layer sparsity after against before (see the file comment), rounded to 4 decimals. */
export function layerSparsity(before: Record<string, LayerWeights>, after: Record<string, LayerWeights>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, b] of Object.entries(before)) {
    if (b.weights === 0) continue;
    const a = after[name];
    out[name] = +Math.max(0, 1 - (a ? a.nonzero : 0) / b.weights).toFixed(4);
  }
  return out;
}

/** Names of the quantized linear layers of a model. */
export function quantizedLayers(model: Module): string[] {
  return model.namedModules().filter(([n, m]) => n !== '' && m instanceof QuantLinear).map(([n]) => n);
}

/**
 * Relative output MSE of each quantized layer of `quantized` against the same-named module of `original`, on
 * `batches` (both models are run in eval mode). Layers missing from the original, or whose output size differs, are
 * left out. Values keep 3 significant digits.
 */
export function quantLayerErrors(original: Module, quantized: Module, batches: Record<string, Tensor>[]): Record<string, number> {
  const have = new Set(original.namedModules().map(([n]) => n));
  const names = quantizedLayers(quantized).filter((n) => have.has(n));
  if (!names.length || !batches.length) return {};
  original.eval();
  quantized.eval();
  const capture = (m: Module) =>
    captureActivations(m, names, 'output', () =>
      noGrad(() => {
        for (const b of batches) callForward(m, 'labels' in b ? { ...b, labels: null } : b); // outputs only: no loss
      }),
    );
  const a = capture(original);
  const b = capture(quantized);
  const out: Record<string, number> = {};
  for (const n of names) {
    const xs = a.get(n)!;
    const ys = b.get(n)!;
    if (xs.length !== ys.length || xs.some((x, i) => x.shape.join() !== ys[i]!.shape.join())) continue;
    let num = 0;
    let den = 0;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!.toFloat32Array();
      const y = ys[i]!.toFloat32Array();
      for (let j = 0; j < x.length; j++) {
        num += (y[j]! - x[j]!) ** 2;
        den += x[j]! ** 2;
      }
    }
    out[n] = den > 0 ? +(num / den).toPrecision(3) : 0;
  }
  return out;
}
