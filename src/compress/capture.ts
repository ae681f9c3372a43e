/**
 * Token rows of modules' inputs and outputs on calibration data: what one-shot conversions fit to (MoEfication's
 * routers, FFF trees fitted to the dense MLP). One pass of every batch through the model in eval mode without
 * gradients, the named modules' first input and/or output captured by hooks, then flattened to [tokens, width] with
 * padding positions (attention mask 0) left out.
 */
import type { Module } from '../nn/module.ts';
import { captureActivations } from '../nn/hooks.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import type { ModelInputs, ModelOutput } from '../models/outputs.ts';
import type { Batch } from './prune/importance.ts';

/** Rows of each captured [B, T, H] (or [T, H]) tensor where the batch's mask is set (all rows without a mask), float32. */
function keptRows(who: string, parts: Tensor[], masks: (ArrayLike<number> | null)[]): Tensor {
  const H = parts[0]!.shape[parts[0]!.ndim - 1]!;
  const chunks: Float32Array[] = [];
  parts.forEach((t, bi) => {
    const v = t.to('float32').contiguous().toArray() as Float32Array;
    const m = masks[bi];
    const rows = v.length / H;
    if (m && m.length !== rows) throw new Error(`${who}: attention mask of ${m.length} positions for ${rows} captured rows`);
    for (let r = 0; r < rows; r++) if (!m || m[r]) chunks.push(v.subarray(r * H, r * H + H));
  });
  const out = new Float32Array(chunks.length * H);
  chunks.forEach((c, i) => out.set(c, i * H));
  return Tensor.from(out, { shape: [chunks.length, H] });
}

/**
 * The non-padding token rows of the inputs of `inputs` and the outputs of `outputs` (module paths) over `batches`,
 * keyed by path. `who` names the caller in errors.
 */
export function captureTokenRows(model: Module, batches: Batch[], inputs: readonly string[], outputs: readonly string[], who: string): { inputs: Map<string, Tensor>; outputs: Map<string, Tensor> } {
  const masks: (ArrayLike<number> | null)[] = [];
  const was = model.training;
  model.eval();
  let ins = new Map<string, Tensor[]>();
  let outs = new Map<string, Tensor[]>();
  const run = () =>
    noGrad(() => {
      for (const b of batches) {
        const am = (b.attentionMask ?? b.attention_mask) as Tensor | undefined;
        masks.push(am ? (am.to('float32').toArray() as ArrayLike<number>) : null);
        const { labels: _l, ...rest } = b;
        (model as Module & { forward(i: ModelInputs): ModelOutput }).forward(rest as unknown as ModelInputs);
      }
    });
  try {
    const withOutputs = () => (outputs.length ? void (outs = captureActivations(model, [...new Set(outputs)], 'output', run)) : run());
    if (inputs.length) ins = captureActivations(model, [...new Set(inputs)], 'input', withOutputs);
    else withOutputs();
  } finally {
    model.train(was);
  }
  const rows = (m: Map<string, Tensor[]>) => new Map([...m].map(([k, v]) => [k, keptRows(who, v, masks)]));
  return { inputs: rows(ins), outputs: rows(outs) };
}
