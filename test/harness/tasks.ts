/** Synthetic tasks for runner tests: a TaskData cycling through fixed batches (what a training stage consumes). */
import { Generator, Tensor, type compress } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import type { ModelInputs } from '../../src/models/outputs.ts';

export type Batch = Record<string, Tensor>;

/** Cycles through `batches`; calibration is the first batch, latency inputs the first batch's inputIds. */
export function cyclicTask(batches: Batch[], o: { evaluate?: (m: Module) => number; calibration?: Batch[]; metric?: string; greaterIsBetter?: boolean } = {}): compress.TaskData {
  let i = 0;
  return {
    name: 'synthetic',
    metric: o.metric ?? 'accuracy',
    greaterIsBetter: o.greaterIsBetter ?? true,
    nextBatch: () => batches[i++ % batches.length]! as unknown as ModelInputs,
    sampler: { state: () => i, setState: (s: number) => void (i = s) },
    evaluate: o.evaluate ?? (() => 0),
    calibration: () => o.calibration ?? batches.slice(0, 1),
    latencyInputs: () => ({ inputIds: batches[0]!.inputIds! }),
    evalArgs: [],
  };
}

/** `n` batches of B random sequences of T tokens in [1, vocab) with class labels in [0, classes); `mask(b, t)` gives the attention mask. */
export function randomClsBatches(seed: number, n: number, B: number, T: number, vocab: number, classes: number, mask?: (b: number, t: number) => boolean): Batch[] {
  const g = new Generator(seed);
  return Array.from({ length: n }, () => ({
    inputIds: Tensor.randint(1, vocab, [B, T], { dtype: 'int32', generator: g }),
    ...(mask ? { attentionMask: Tensor.from(Int32Array.from({ length: B * T }, (_, i) => (mask(Math.floor(i / T), i % T) ? 1 : 0)), { shape: [B, T] }) } : {}),
    labels: Tensor.randint(0, classes, [B], { dtype: 'int32', generator: g }),
  }));
}
