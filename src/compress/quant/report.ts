/**
 * Which layers hurt: run the same calibration batches through the float model and the quantized one and compare
 * each quantized layer's output with the float layer's output on the same batch, as a relative MSE
 * ‖y_q − y‖² / ‖y‖². Errors compound through the network, so a layer's number includes what earlier layers did
 * to its input, which is what the user sees at the end.
 */
import type { Module } from '../../nn/module.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { callForward, captureActivations } from '../../nn/hooks.ts';

export interface LayerError {
  name: string;
  relMse: number;
}

/** Each named layer's outputs over the run, as float32 arrays. */
function captureOutputs(model: Module, names: string[], run: () => void): Map<string, Float32Array[]> {
  const got = captureActivations(model, names, 'output', () => noGrad(run));
  return new Map([...got].map(([n, ys]) => [n, ys.map((y) => y.toFloat32Array())]));
}

/** Relative output MSE per layer (in model order) of `quantized` against `float` on the batches. */
export function layerErrors(float: Module, quantized: Module, layers: string[], batches: Record<string, Tensor>[]): LayerError[] {
  const run = (m: Module) => () => {
    for (const b of batches) callForward(m, b);
  };
  const a = captureOutputs(float, layers, run(float));
  const b = captureOutputs(quantized, layers, run(quantized));
  return layers.map((name) => {
    let num = 0;
    let den = 0;
    const xs = a.get(name)!;
    const ys = b.get(name)!;
    for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
      const x = xs[i]!;
      const y = ys[i]!;
      for (let j = 0; j < x.length; j++) {
        num += (y[j]! - x[j]!) ** 2;
        den += x[j]! ** 2;
      }
    }
    return { name, relMse: den > 0 ? num / den : 0 };
  });
}

/** A markdown table of layer errors, worst first marked. */
export function formatLayerErrors(errs: LayerError[]): string {
  const worst = errs.reduce((w, e) => (e.relMse > w ? e.relMse : w), 0);
  return ['| layer | relative MSE |', '| --- | --- |', ...errs.map((e) => `| ${e.name} | ${e.relMse.toExponential(2)}${e.relMse === worst && worst > 0 ? ' ◀ worst' : ''} |`)].join('\n') + '\n';
}
