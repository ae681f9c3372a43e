/** CoFiPruning: L0 gates (l0.ts), where they multiply (masked.ts), distillation (distill.ts), physical pruning (finalize.ts), the method (method.ts). */
export * from './l0.ts';
export * from './masked.ts';
export * from './distill.ts';
export * from './finalize.ts';
export * from './method.ts';
