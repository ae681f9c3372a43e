/** Shared by the `share.*` methods: which layers by default, input covariances from calibration data, option errors. */
import type { Module } from '../../nn/module.ts';
import { Conv1D, Linear, type LinearLike } from '../../nn/layers.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { callForward, registerForwardPreHook, type HookHandle } from '../../nn/hooks.ts';
import { anatomy } from '../../models/anatomy.ts';
import { selectModules } from '../select.ts';
import { accumulateInputs } from '../quant/gptq-adapter.ts';
import type { RecipeContext } from '../method.ts';

/** Default targets: every module inside the encoder / decoder blocks (not embeddings, pooler or heads). */
export function blockGlobs(model: Module): string[] {
  try {
    const blocks = anatomy(model).blocks;
    if (blocks.length) return blocks.map((b) => `${b.path}.**`);
  } catch {
    // not a known architecture: every layer
  }
  return ['**'];
}

/** The Linear / Conv1D layers chosen by targets (default: the blocks') and ignore, in model order. */
export function targetLinears(model: Module, targets: string[] | null, ignore: string[] | null): [string, LinearLike][] {
  return selectModules<Linear | Conv1D>(model, { targets: targets ?? blockGlobs(model), ignore: ignore ?? [], types: [Linear, Conv1D] });
}

/** Errors of a method's option checks name the method. */
export function named<T>(method: string, run: () => T): T {
  try {
    return run();
  } catch (e) {
    throw new Error(`${method}: ${(e as Error).message}`, { cause: e });
  }
}

export function calibrationBatches(method: string, ctx: RecipeContext): Record<string, Tensor>[] {
  if (!ctx.calibration) throw new Error(`${method} needs calibration data: give the recipe a task (or --task), whose training examples calibrate`);
  const b = [...ctx.calibration()];
  if (b.length === 0) throw new Error(`${method}: the calibration data is empty`);
  return b;
}

/**
 * Each named layer's input second moment C = (2/n)·Σ x xᵀ [K, K] (float64) over the calibration batches, the
 * padding positions left out (as GPTQ's Hessian), all layers in one pass through the model as it is now.
 */
export function inputCovariances(model: Module, layers: [string, LinearLike][], batches: Iterable<Record<string, Tensor>>): Map<string, { c: Float64Array; n: number }> {
  const out = new Map<string, { c: Float64Array; n: number }>();
  const hooks: HookHandle[] = [];
  let tokenMask: ArrayLike<number> | null = null;
  try {
    for (const [name, m] of layers) {
      const K = m.inFeatures;
      const acc = { c: new Float64Array(K * K), n: 0 };
      out.set(name, acc);
      hooks.push(
        registerForwardPreHook(m, (_m, inputs) => {
          acc.n = accumulateInputs(acc.c, inputs[0] as Tensor, K, acc.n, tokenMask);
        }),
      );
    }
    const wasTraining = model.training;
    model.eval();
    try {
      noGrad(() => {
        for (const batch of batches) {
          tokenMask = batch.attentionMask ? (batch.attentionMask.contiguous().data as ArrayLike<number>) : null;
          callForward(model as Module & { forward(b: unknown): unknown }, batch as never);
        }
      });
    } finally {
      if (wasTraining) model.train();
    }
  } finally {
    for (const h of hooks) h.remove();
  }
  return out;
}

/** tr(D·C·Dᵀ) for D [N, K] and symmetric C [K, K] (float64): Σ over rows of d·C·dᵀ = ‖D·X‖² up to C's scale. */
export function quadForm(D: Float64Array, N: number, K: number, C: Float64Array): number {
  let total = 0;
  const y = new Float64Array(K);
  for (let r = 0; r < N; r++) {
    y.fill(0);
    const d = r * K;
    for (let i = 0; i < K; i++) {
      const x = D[d + i]!;
      if (x === 0) continue;
      const ci = i * K;
      for (let j = 0; j < K; j++) y[j] += x * C[ci + j]!;
    }
    for (let j = 0; j < K; j++) total += y[j]! * D[d + j]!;
  }
  return total;
}

/** A layer's weight as float64 [out, in] (row-major). */
export function weight64(m: LinearLike): Float64Array {
  return Float64Array.from(noGrad(() => m.weightOutIn().contiguous().toFloat32Array()));
}

/** The report fields every sharing method gives: the selected layers' bytes before / after and their mean relative weight error (0 for none). */
export function sharingSummary(before: number, after: number, weightErrors: readonly number[]): Record<string, number> {
  return {
    layer_bytes_before: before,
    layer_bytes_after: after,
    layer_bytes_ratio: before ? after / before : 1,
    mean_weight_error: weightErrors.length ? weightErrors.reduce((a, b) => a + b, 0) / weightErrors.length : 0,
  };
}
