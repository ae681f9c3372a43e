/**
 * Which layers hurt: run the same calibration batches through the float model and the quantized one and compare
 * each quantized layer's output with the float layer's output on the same batch, as a relative MSE
 * ‖y_q − y‖² / ‖y‖². Errors compound through the network, so a layer's number includes what earlier layers did
 * to its input, which is what the user sees at the end.
 */
import type { Module } from '../../nn/module.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';

export interface LayerError {
  name: string;
  relMse: number;
}

function captureOutputs(model: Module, names: string[], run: () => void): Map<string, Float32Array[]> {
  const out = new Map<string, Float32Array[]>(names.map((n) => [n, []]));
  const restore: (() => void)[] = [];
  for (const n of names) {
    const m = model.getSubmodule(n) as Module & { forward(x: Tensor): Tensor };
    const orig = m.forward;
    m.forward = (x: Tensor) => {
      const y = orig.call(m, x);
      out.get(n)!.push(Float32Array.from(y.contiguous().data as Float32Array));
      return y;
    };
    restore.push(() => {
      m.forward = orig;
    });
  }
  try {
    noGrad(run);
  } finally {
    for (const f of restore) f();
  }
  return out;
}

/** Relative output MSE per layer (in model order) of `quantized` against `float` on the batches. */
export function layerErrors(float: Module, quantized: Module, layers: string[], batches: Record<string, Tensor>[]): LayerError[] {
  const run = (m: Module) => () => {
    for (const b of batches) (m as unknown as { forward(i: Record<string, Tensor>): unknown }).forward(b);
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
