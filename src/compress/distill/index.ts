/** Knowledge distillation methods: `distill.kd` (Hinton logit KD) and `distill.tinybert` (TinyBERT's losses and stages). */
export * from './losses.ts';
export * from './student.ts';
export { distillKd, type KdConfig } from './kd.ts';
export { distillTinyBert, newFitDense, TINYBERT_STAGES, type TinyBertConfig, type TinyBertStage } from './tinybert.ts';
export { loadTeacher, resolveFolder, teacherForward } from './teacher.ts';
