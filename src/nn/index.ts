/** Layers, optimizers, schedules and clipping (torch.nn / torch.optim counterparts). */
export { Module, ModuleList, type StateDict, type LoadResult } from './module.ts';
export {
  Linear, Conv1D, Embedding, LayerNorm, RMSNorm, Dropout, Sequential,
  asLinearLike, isLinearLike, sliceLinear, sliceLayerNorm, sliceEmbedding, type LinearLike,
} from './layers.ts';
export {
  registerForwardHook, registerForwardPreHook, hasForwardHooks, captureActivations, callForward, hasForward,
  addAuxLoss, collectAuxLosses, clearAuxLosses, withAuxLosses,
  type ForwardHook, type ForwardPreHook, type HookHandle, type ForwardArgs, type ForwardResult, type WithForward,
} from './hooks.ts';
export * as init from './init.ts';
export {
  AdamW, SGD, Optimizer, decayGroups,
  type AdamWOptions, type SGDOptions, type ParamGroup, type ParamGroupInput, type Hyperparameters, type GroupState, type OptimizerState,
} from './optim.ts';
export {
  LRScheduler, lrMultiplier, constantWithWarmup, linearWithWarmup, cosineWithWarmup, SCHEDULES, type ScheduleName, type SchedulerState,
} from './schedule.ts';
export { clipGradNorm, gradNorm } from './clip.ts';
