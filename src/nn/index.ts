export { Module, ModuleList, type StateDict, type LoadResult } from './module.ts';
export { Linear, Embedding, LayerNorm, RMSNorm, Dropout, Sequential } from './layers.ts';
export * as init from './init.ts';
export { AdamW, SGD, Optimizer, decayGroups, type AdamWOptions, type SGDOptions, type ParamGroup, type OptimizerState } from './optim.ts';
export { LRScheduler, lrMultiplier, type ScheduleName } from './schedule.ts';
export { clipGradNorm } from './clip.ts';
