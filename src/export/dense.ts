/**
 * The dense float32 weight of any linear or embedding module Shrink has: what compressed layers multiply by,
 * written out as one plain matrix (QuantLinear dequantized, ClusteredLinear gathered, sparse densified, LowRankLinear
 * multiplied out). For exporters whose format has no factorized or integer form of that kind.
 */
import type { Module } from '../nn/module.ts';
import { Conv1D, Embedding, Linear } from '../nn/layers.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { QuantEmbedding, QuantLinear, dequantize } from '../compress/quant/modules.ts';
import { LowRankLinear } from '../compress/share/lowrank.ts';
import { ClusteredLinear } from '../compress/share/clustered.ts';
import { SparseEmbedding, SparseLinear } from '../compress/prune/sparse.ts';

export interface DenseLinear {
  /** [out, in]. */
  weight: Tensor;
  bias: Tensor | null;
  /** What the module was, when it was not a plain float layer (e.g. 'QuantLinear(int8) dequantized'). */
  note: string | null;
}

export function denseLinear(m: Module, name: string): DenseLinear {
  if (m instanceof Linear) return { weight: m.weight, bias: m.bias, note: null };
  if (m instanceof Conv1D) return { weight: m.weight.t(), bias: m.bias, note: null };
  if (m instanceof QuantLinear) return { weight: m.dequantized().narrow(1, 0, m.inFeatures), bias: m.bias, note: `QuantLinear(${m.scheme}) dequantized` };
  if (m instanceof ClusteredLinear) return { weight: m.weightOutIn(), bias: m.bias, note: 'ClusteredLinear gathered from its codebook' };
  if (m instanceof SparseLinear) return { weight: m.dense(), bias: m.bias, note: 'SparseLinear densified' };
  if (m instanceof LowRankLinear) return { weight: m.weightOutIn(), bias: m.bias, note: 'LowRankLinear multiplied out' };
  throw new Error(`export: ${name} is a ${m.constructor.name}, which has no dense export`);
}

export function denseEmbedding(m: Module, name: string): { weight: Tensor; note: string | null } {
  if (m instanceof Embedding) return { weight: m.weight, note: null };
  if (m instanceof QuantEmbedding) return { weight: dequantize(m.qweight), note: 'QuantEmbedding dequantized' };
  if (m instanceof SparseEmbedding) return { weight: m.dense(), note: 'SparseEmbedding densified' };
  throw new Error(`export: ${name} is a ${m.constructor.name}, which has no dense export`);
}
