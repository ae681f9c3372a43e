/**
 * Parameter sharing (issue 16): low-rank factorization (`share.lowrank`), weight clustering (`share.kmeans`), hashing
 * (`share.hash`, HashedNets) and cross-layer sharing (`share.layers`, ALBERT).
 */
export * from './linalg.ts';
export * from './kmeans.ts';
export * from './lowrank.ts';
export * from './clustered.ts';
export * from './hash.ts';
export * from './layers.ts';
export { blockGlobs, inputCovariances, targetLinears } from './common.ts';
