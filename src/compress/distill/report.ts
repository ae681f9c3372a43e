/** What a distilling step reports: the student's shape and parameter count against the model it started from. */
import type { Module } from '../../nn/module.ts';
import { anatomy } from '../../models/anatomy.ts';

export function studentReport(model: Module, paramsBefore: number): Record<string, number | string> {
  const a = anatomy(model);
  const params = model.parameters().reduce((n, p) => n + p.numel, 0);
  return { student_layers: a.blocks.length, student_hidden: a.hiddenSize, student_params: params, params_ratio: +(params / paramsBefore).toFixed(4) };
}
