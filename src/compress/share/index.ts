/** Parameter sharing (issue 16): low-rank factorization (`share.lowrank`) and weight clustering (`share.kmeans`). */
export * from './linalg.ts';
export * from './kmeans.ts';
export * from './lowrank.ts';
export * from './clustered.ts';
export { blockGlobs, inputCovariances, targetLinears } from './common.ts';
